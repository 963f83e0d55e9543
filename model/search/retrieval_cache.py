"""A run's approximate retrieval indexes on disk, next to its ``embeddings.npz``.

Building HNSW or IVF-PQ over a million items takes minutes, so
:meth:`model.search.retrieval.RetrievalIndex.from_run` keeps them in the run folder:

- ``retrieval-<fingerprint>-<key>.faiss``: one FAISS index per embedding key
  (``@`` written as ``__``), each written atomically;
- ``retrieval-<fingerprint>.json``: kinds, tuned parameters and measured
  recall, written last, so it exists only once every index file does.

The fingerprint hashes what the indexes are built from (every vector, the
sample ids, the metric, the build settings and the FAISS version): when the
run's embeddings change, the names no longer match and the indexes are
rebuilt; files of other fingerprints are then removed.  Exact flat indexes
are not stored: building one is a copy of the vectors.  A damaged or
unreadable file is treated as absent (the index is rebuilt); the cache is an
optimisation, never a reason to fail opening a run.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from model.atomic import atomic_path, write_json
from model.search.faiss_index import IndexConfig, KeyIndex, faiss

FORMAT = 1
PREFIX = "retrieval-"


def fingerprint(embeddings: Mapping[str, np.ndarray], sample_ids: np.ndarray, metric: str,
                config: IndexConfig) -> str:
    """A 32-hex-digit hash of everything the indexes depend on (≈ 1 s per GB of vectors)."""
    h = hashlib.blake2b(digest_size=16)
    head = {"format": FORMAT, "faiss": faiss.__version__, "metric": metric, "config": config.key()}
    h.update(json.dumps(head, sort_keys=True).encode())
    h.update("\0".join(map(str, sample_ids)).encode())
    for key in sorted(embeddings):
        x = np.ascontiguousarray(embeddings[key], dtype=np.float32)
        h.update(f"{key}:{x.shape}".encode())
        h.update(memoryview(x).cast("B"))
    return h.hexdigest()


def _index_path(run_dir: Path, fp: str, key: str) -> Path:
    return run_dir / f"{PREFIX}{fp}-{key.replace('@', '__')}.faiss"


def _meta_path(run_dir: Path, fp: str) -> Path:
    return run_dir / f"{PREFIX}{fp}.json"


def load(run_dir: str | Path, fp: str, metric: str) -> Optional[dict[str, KeyIndex]]:
    """The stored indexes with fingerprint ``fp``, or None when absent, stale or unreadable."""
    run_dir = Path(run_dir)
    meta_path = _meta_path(run_dir, fp)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        out = {}
        for key, info in meta["keys"].items():
            index = faiss.read_index(str(_index_path(run_dir, fp, key)))
            out[key] = KeyIndex(info["kind"], index, metric, int(index.d), info.get("recall"),
                                int(info.get("param", 0)), float(info.get("build_seconds", 0.0)))
        return out
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):  # faiss reports a bad file as RuntimeError
        return None


def save(run_dir: str | Path, fp: str, indexes: Mapping[str, KeyIndex]) -> bool:
    """Store the approximate ones of ``indexes`` under fingerprint ``fp``; False when there are none.

    Raises
    ------
    model.errors.WriteError
        The run folder cannot be written (full disk, read-only); files of the
        previous fingerprint are then left as they were.
    """
    run_dir = Path(run_dir)
    stored = {k: v for k, v in indexes.items() if not v.exact}
    if not stored:
        return False
    for key, ki in stored.items():
        path = _index_path(run_dir, fp, key)
        with atomic_path(path, suffix=".faiss") as tmp:
            try:
                faiss.write_index(ki.index, str(tmp))
            except RuntimeError as exc:  # faiss reports a failed fwrite as RuntimeError, not OSError
                raise OSError(None, f"FAISS could not write the index: {exc}") from exc
    write_json(_meta_path(run_dir, fp), {
        "format": FORMAT, "faiss": faiss.__version__,
        "keys": {k: {"kind": v.kind, "recall": v.recall, "param": v.param, "build_seconds": v.build_seconds}
                 for k, v in stored.items()}})
    remove_others(run_dir, fp)
    return True


def remove_others(run_dir: str | Path, keep: str) -> None:
    """Delete stored indexes of fingerprints other than ``keep`` (stale ones)."""
    for path in Path(run_dir).glob(f"{PREFIX}*"):
        if path.suffix in (".faiss", ".json") and not path.name.startswith(f"{PREFIX}{keep}"):
            with contextlib.suppress(OSError):
                path.unlink()
