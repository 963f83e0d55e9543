"""UGAAR Explorer's Qt views. Everything heavy lives in ``model``."""
