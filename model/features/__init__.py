"""Feature extractors: VGGish-style audio, VGG-style sheet, skip-gram lyrics.

See ``docs/features.md``.  The public API:

- ``FeatureConfig``: every parameter that changes the features;
- ``extract_features(dataset, config, encoders_dir=..., device=..., progress=..., cancel=..., force=...)``
  → ``FeatureSet`` (cached under ``DATASET/features/``);
- ``load_embedder(encoders_dir)`` → ``Embedder`` for new items (a typed lyrics
  line, a WAV, a PNG, notes, a MIDI file).
"""
from __future__ import annotations

from .config import FeatureConfig
from .embedder import Embedder, load_embedder
from .extract import (default_encoders_dir, extract_features, has_trained_encoders, load_encoders)

__all__ = ["FeatureConfig", "extract_features", "load_embedder", "Embedder", "load_encoders",
           "has_trained_encoders", "default_encoders_dir"]
