"""Arrays of varying length per dataset item, kept by sample id in one ``.npz``.

The dataset folder's derived caches (:mod:`.pitch_track`'s tracks, :mod:`.onset_pitch`'s
columns) store one array per item: ``ids``, each item's ``lengths`` and all ``values``
end to end, written atomically.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


def save_item_arrays(path: str | Path, items: dict[str, np.ndarray], row_shape: tuple[int, ...] = ()) -> None:
    """Write ``items`` (sample id → ``(n_i, *row_shape)`` array) to ``path`` atomically, as float32.

    Raises ``model.errors.WriteError`` naming the file when it cannot be written.
    """
    from model.atomic import atomic_path

    ids = list(items)
    lengths = np.array([len(items[s]) for s in ids], np.int64)
    values = (np.concatenate([items[s] for s in ids]).astype(np.float32) if ids
              else np.zeros((0, *row_shape), np.float32))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, ids=np.array(ids, dtype=str), lengths=lengths, values=values)


def load_item_arrays(path: str | Path, row_shape: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays stored at ``path`` by :func:`save_item_arrays`; empty when the file is missing, damaged
    or holds rows of another shape (the caller then computes them again)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ids, lengths, values = [str(s) for s in z["ids"]], z["lengths"], z["values"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return {}
    if len(ids) != len(lengths) or int(lengths.sum()) != len(values) or values.shape[1:] != tuple(row_shape):
        return {}
    ends = np.cumsum(lengths)
    return {s: values[e - n:e] for s, n, e in zip(ids, lengths, ends)}
