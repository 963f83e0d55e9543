"""The cached per-sample features: the one input of every model in the trainer.

``FeatureSet`` is what the feature extractors produce (``model.features``)
and what the trainer, the evaluation and the GUI consume.  It is plain numpy
so it can be built synthetically in tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json

import numpy as np

from .atomic import atomic_path

MODALITIES = ("audio", "sheet", "lyrics")


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
    """

    sample_ids: np.ndarray
    song_ids: np.ndarray
    splits: np.ndarray
    audio: np.ndarray
    sheet: np.ndarray
    lyrics: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.sample_ids)
        for name in ("song_ids", "splits", *MODALITIES):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FeatureSet: {name} has {len(getattr(self, name))} rows, expected {n}")

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
                          self.audio[idx], self.sheet[idx], self.lyrics[idx], dict(self.meta))

    def split(self, name: str) -> "FeatureSet":
        return self.subset(self.splits == name)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` atomically (no pickles: strings as unicode arrays)."""
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, sample_ids=self.sample_ids.astype(str), song_ids=self.song_ids.astype(str),
                     splits=self.splits.astype(str), audio=self.audio, sheet=self.sheet,
                     lyrics=self.lyrics, meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path) -> "FeatureSet":
        with np.load(path, allow_pickle=False) as data:
            return cls(data["sample_ids"], data["song_ids"], data["splits"],
                       data["audio"].astype(np.float32), data["sheet"].astype(np.float32),
                       data["lyrics"].astype(np.float32), json.loads(str(data["meta"])))


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
