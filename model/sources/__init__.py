"""Importers: every source yields the same ``model.song.Song``."""
