"""Rendering of samples to audio (FluidSynth or built-in synth) and sheet music (LilyPond).

See ``docs/rendering.md``.
"""
from model.render.audio import (AudioRenderer, BuiltinRenderer, FluidSynthRenderer,
                                fluidsynth_available, held_out_soundfont, make_audio_renderer,
                                read_audio, write_audio)
from model.render.lilypond_source import lilypond_source
from model.render.sheet import SheetJob, SheetRenderer, SheetResult

__all__ = ["AudioRenderer", "BuiltinRenderer", "FluidSynthRenderer", "fluidsynth_available",
           "held_out_soundfont", "make_audio_renderer", "read_audio", "write_audio", "lilypond_source", "SheetJob",
           "SheetRenderer", "SheetResult"]
