"""The cached per-sample features: the one input of every model in the trainer.

``FeatureSet`` is what the feature extractors produce (``model.features``)
and what the trainer, the evaluation and the GUI consume.  It is plain numpy
so it can be built synthetically in tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import json

import numpy as np

from .atomic import atomic_path

MODALITIES = ("audio", "sheet", "lyrics")
#: Input kinds of a model: the paper's mean-pooled vectors, or those plus the
#: per-position sequences (syllables, audio onsets, sheet notes).
INPUT_KINDS = ("paper", "aligned")


@dataclass
class SequenceInput:
    """One modality's inputs for sequence models: the pooled vector and the padded sequence.

    Parameters
    ----------
    pooled : np.ndarray, shape (N, D)
        The paper's mean-pooled feature.
    tokens : np.ndarray, shape (N, T, D_tok)
        Per-position features (syllables, audio onset segments, sheet notes),
        zero beyond each item's length.
    lengths : np.ndarray of int, shape (N,)
        Valid positions of each item (≥ 1).
    phonetics : np.ndarray, shape (N, T, N_PHONETIC), optional
        A lyrics query's per-syllable phonetic columns
        (:func:`model.features.tokens.phonetics.syllable_phonetics`), which the
        lyrics re-ranker reads beside the tokens; None elsewhere.
    onset_pitch : np.ndarray, shape (N, T, N_ONSET_PITCH), optional
        An audio query's per-onset pitch columns
        (:func:`model.features.tokens.onset_pitch.audio_pitch_columns`), which the
        lyrics re-ranker's audio side reads beside the tokens; None elsewhere.
    """

    pooled: np.ndarray
    tokens: np.ndarray
    lengths: np.ndarray
    phonetics: Optional[np.ndarray] = None
    onset_pitch: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.pooled)

    def __getitem__(self, index: Any) -> "SequenceInput":
        return SequenceInput(self.pooled[index], self.tokens[index], self.lengths[index],
                             None if self.phonetics is None else self.phonetics[index],
                             None if self.onset_pitch is None else self.onset_pitch[index])

    @property
    def mask(self) -> np.ndarray:
        """``(N, T)`` bool, True at valid positions."""
        return np.arange(self.tokens.shape[1])[None, :] < np.asarray(self.lengths)[:, None]


def pad_sequences(items: list[np.ndarray], max_len: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(K_i, dim)`` arrays into ``(N, max_len, dim)`` float16, zero-padded, and their lengths.

    Items longer than ``max_len`` keep their first ``max_len`` positions; an
    empty item gets length 1 with a zero token (masks never go all-false).
    """
    out = np.zeros((len(items), max_len, dim), dtype=np.float16)
    lengths = np.ones(len(items), dtype=np.int32)
    for i, item in enumerate(items):
        k = min(len(item), max_len)
        if k:
            out[i, :k] = item[:k]
            lengths[i] = k
    return out, lengths


@dataclass
class FeatureSet:
    """Per-sample features of a dataset, aligned row by row.

    Parameters
    ----------
    sample_ids : np.ndarray of str, shape (N,)
    song_ids : np.ndarray of str, shape (N,)
    splits : np.ndarray of str, shape (N,)
        ``train``, ``val`` or ``test``.
    audio : np.ndarray of float32, shape (N, 128)
    sheet : np.ndarray of float32, shape (N, 128)
    lyrics : np.ndarray of float32, shape (N, D_lyrics)
    meta : dict
        Provenance: dataset hash, extractor config, checkpoint hash.
    tokens, lengths : dict, optional
        Per-position sequences ``{modality: (N, T, D_tok)}`` and their lengths
        ``{modality: (N,)}`` (``model.features.tokens.sequences``); empty for the
        paper's mean-pooled features only.
    """

    sample_ids: np.ndarray
    song_ids: np.ndarray
    splits: np.ndarray
    audio: np.ndarray
    sheet: np.ndarray
    lyrics: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, np.ndarray] = field(default_factory=dict)
    lengths: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.sample_ids)
        for name in ("song_ids", "splits", *MODALITIES):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FeatureSet: {name} has {len(getattr(self, name))} rows, expected {n}")
        if set(self.tokens) != set(self.lengths) or (self.tokens and set(self.tokens) != set(MODALITIES)):
            raise ValueError("FeatureSet: sequences need tokens and lengths for all three modalities")
        for m in self.tokens:
            if len(self.tokens[m]) != n or len(self.lengths[m]) != n or self.tokens[m].ndim != 3:
                raise ValueError(f"FeatureSet: {m} sequences do not have {n} rows of (T, D) tokens")

    @property
    def has_sequences(self) -> bool:
        return bool(self.tokens)

    def input_of(self, name: str, kind: str = "paper") -> "np.ndarray | SequenceInput":
        """What a model of input ``kind`` reads for modality ``name``.

        ``paper``: the pooled ``(N, D)`` array; ``aligned``: a
        :class:`SequenceInput` (pooled vector and padded sequence).
        """
        if kind == "paper":
            return self.modality(name)
        if kind != "aligned":
            raise ValueError(f"unknown input kind {kind!r}; expected one of {INPUT_KINDS}")
        if not self.has_sequences:
            raise ValueError("these features have no per-position sequences (extracted before sequence "
                             "inputs existed): run `ugaar features extract DATASET --force`, or train with "
                             "--inputs paper")
        return SequenceInput(self.modality(name), self.tokens[name], self.lengths[name])

    def __len__(self) -> int:
        return len(self.sample_ids)

    def modality(self, name: str) -> np.ndarray:
        if name not in MODALITIES:
            raise KeyError(f"unknown modality {name!r}; expected one of {MODALITIES}")
        return getattr(self, name)

    def subset(self, mask_or_index: np.ndarray) -> "FeatureSet":
        """Rows selected by a boolean mask or an index array."""
        idx = np.asarray(mask_or_index)
        return FeatureSet(self.sample_ids[idx], self.song_ids[idx], self.splits[idx],
                          self.audio[idx], self.sheet[idx], self.lyrics[idx], dict(self.meta),
                          {m: v[idx] for m, v in self.tokens.items()},
                          {m: v[idx] for m, v in self.lengths.items()})

    def split(self, name: str) -> "FeatureSet":
        return self.subset(self.splits == name)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` atomically (no pickles: strings as unicode arrays)."""
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, sample_ids=self.sample_ids.astype(str), song_ids=self.song_ids.astype(str),
                     splits=self.splits.astype(str), audio=self.audio, sheet=self.sheet,
                     lyrics=self.lyrics, meta=np.array(json.dumps(self.meta)),
                     **{f"tokens_{m}": v for m, v in self.tokens.items()},
                     **{f"lengths_{m}": v for m, v in self.lengths.items()})

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        with np.load(path, allow_pickle=False) as data:
            seq = [m for m in MODALITIES if f"tokens_{m}" in data.files]
            return cls(data["sample_ids"], data["song_ids"], data["splits"],
                       data["audio"].astype(np.float32), data["sheet"].astype(np.float32),
                       data["lyrics"].astype(np.float32), json.loads(str(data["meta"])),
                       {m: data[f"tokens_{m}"] for m in seq}, {m: data[f"lengths_{m}"] for m in seq})


def cached_feature_files(dataset_root: str | Path) -> list[Path]:
    """A dataset's cached FeatureSet files (``DATASET/features/*.npz``), oldest first.

    Leaves out files being written (``model.atomic`` temp files start with a
    dot) and front-end input caches (``inputs*``).  Plain file listing: no
    torch import, so the window can call it on its start-up path.
    """
    folder = Path(dataset_root) / "features"
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.npz") if not p.name.startswith(("inputs", "."))]
    return sorted(files, key=lambda p: p.stat().st_mtime)
