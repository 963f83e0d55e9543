"""Timbre augmentation of the audio branch (``--augment``).

- ``config``: ``AugmentConfig`` (held in ``FeatureConfig.augment``), presets,
  the General MIDI programs and the held-out ones; imports no signal code;
- ``augment``: the seeded waveform augmentations, ``TimbreAugmenter`` and
  ``OnlineAugment``;
- ``cache``: the cached extra renderings of the training samples.
"""
