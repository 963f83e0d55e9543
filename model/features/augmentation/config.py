"""Settings of the audio branch's timbre augmentation (``FeatureConfig.augment``).

Kept apart from ``augment.py`` (the signal processing) so ``features/config.py`` can
hold an ``AugmentConfig`` without importing librosa or the synthesisers.

The General MIDI programs used for training never include the held-out
programs (:data:`HELD_OUT_PROGRAMS`: strings, flute, choir), and training
renders only with pretty_midi's TimGM6mb: evaluation renders those programs
with another sample set (Debian's FluidR3_GM), so the held-out test measures
timbres the encoders never heard.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from model.validate import from_known_fields

#: Names of the General MIDI programs (bank 0) this project renders with.
GM_NAMES = {0: "piano", 11: "vibraphone", 19: "organ", 24: "guitar", 40: "violin", 48: "strings",
            52: "choir", 53: "voice", 56: "trumpet", 65: "saxophone", 68: "oboe", 71: "clarinet",
            73: "flute"}
#: Programs kept out of training: the held-out timbres of ``benchmarks/timbre.py``.
#: (Violin and the "voice oohs" are left out too: too close to strings and choir.)
HELD_OUT_PROGRAMS = (48, 73, 52)
_TOO_CLOSE = {48: (40, 41, 42, 49, 50, 51), 73: (72, 74, 75, 76, 77, 78, 79), 52: (53, 54, 85, 91)}


@dataclass
class AugmentConfig:
    """Timbre augmentation of the audio branch in feature pre-training.

    ``renderings`` extra renderings of every training sample are made once
    (random program, velocity, tempo jitter, reverb, chorus, gain, EQ,
    noise) and cached beside the front-end inputs
    (``model.features.augmentation.cache``); each training step then draws, per
    item, the canonical audio or one of them and applies cheap random gain,
    EQ, noise and SpecAugment masks to its log-mel rows
    (``model.features.augmentation.augment.OnlineAugment``).

    Parameters
    ----------
    preset : str
        Name this setting came from (``none``, ``timbre``, ``timbre-lite``);
        recorded with the encoders.
    renderings : int
        Extra renderings per training sample; 0 switches augmentation off.
    programs : tuple of int
        General MIDI programs FluidSynth (TimGM6mb) draws from.
    builtin_share : float
        Share of the extra renderings made by the built-in synthesiser with
        a random harmonic profile and envelope instead of FluidSynth.
    velocity : tuple of int
        Range of MIDI velocities (one per rendering).
    tempo_jitter : float
        Note timings are scaled by a factor in ``[1 - j, 1 + j]`` before
        rendering (pitch-preserving tempo change).
    reverb_prob, chorus_prob : float
        Probability that a rendering gets a random synthetic room reverb /
        a chorus.
    gain_db : float
        Random gain in ``±gain_db`` dB per step (renderings are peak-normalised
        like the dataset's audio and the query windows).
    eq_db : float
        Random smooth EQ curve within ``±eq_db`` dB (at rendering and per step).
    noise_prob : float
        Probability of additive noise (at rendering and per step).
    noise_snr_db : tuple of float
        Range of the noise's signal-to-noise ratio in dB.
    variant_prob : float
        Per step and item: probability of an extra rendering instead of the
        dataset's own audio.
    time_masks, time_mask_rows : int
        SpecAugment: masks per patch over time, each up to this many 40 ms rows.
    freq_masks, freq_mask_bands : int
        SpecAugment: masks per patch over mel bands, each up to this many bands.
    seed : int
        Seed of every random choice (with the sample id and rendering index).
    """

    preset: str = "none"
    renderings: int = 0
    programs: tuple[int, ...] = (0, 19, 24, 56, 65, 68, 71, 11)
    builtin_share: float = 0.2
    velocity: tuple[int, int] = (55, 120)
    tempo_jitter: float = 0.08
    reverb_prob: float = 0.4
    chorus_prob: float = 0.25
    gain_db: float = 2.0
    eq_db: float = 6.0
    noise_prob: float = 0.4
    noise_snr_db: tuple[float, float] = (15.0, 40.0)
    variant_prob: float = 0.5
    time_masks: int = 1
    time_mask_rows: int = 2
    freq_masks: int = 1
    freq_mask_bands: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        self.programs = tuple(int(p) for p in self.programs)
        self.velocity = (int(self.velocity[0]), int(self.velocity[1]))
        self.noise_snr_db = (float(self.noise_snr_db[0]), float(self.noise_snr_db[1]))
        leaked = [p for p in self.programs
                  if p in HELD_OUT_PROGRAMS or any(p in close for close in _TOO_CLOSE.values())]
        if leaked:
            raise ValueError(f"augmentation programs {leaked} are held out for evaluation "
                             f"(strings, flute, choir and their neighbours)")
        if any(not 0 <= p <= 127 for p in self.programs):
            raise ValueError("General MIDI programs are 0-127")
        if self.renderings < 0:
            raise ValueError("renderings must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.renderings > 0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("programs", "velocity", "noise_snr_db"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AugmentConfig":
        return from_known_fields(cls, data)

    def render_settings(self) -> dict[str, Any]:
        """The fields that decide the cached extra renderings (not the per-step ones)."""
        data = self.to_dict()
        for key in ("preset", "variant_prob", "gain_db", "time_masks", "time_mask_rows", "freq_masks",
                    "freq_mask_bands"):
            data.pop(key)
        return data

    def timbres(self) -> list[str]:
        """What the extra renderings sound like, for the encoders' metadata and the window."""
        if not self.enabled:
            return []
        names = [f"{GM_NAMES.get(p, f'GM program {p}')} (FluidSynth TimGM6mb)" for p in self.programs]
        if self.builtin_share > 0:
            names.append("built-in synth (random harmonics and envelopes)")
        return names


#: ``ugaar features extract --augment PRESET``.
PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    # 4 extra renderings: measured on the music21 set (docs/features.md, "Timbre augmentation")
    "timbre": {"renderings": 4},
    # half the rendering cost, for a quick try
    "timbre-lite": {"renderings": 2},
}


def augment_preset(name: str, seed: int = 0) -> AugmentConfig:
    """The :class:`AugmentConfig` of a named preset (``none``, ``timbre``, ``timbre-lite``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r} (choose from {', '.join(PRESETS)})")
    if name == "none":
        return AugmentConfig()  # the neutral value: left out of FeatureConfig.digest()
    return AugmentConfig(preset=name, seed=seed, **PRESETS[name])
