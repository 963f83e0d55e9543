"""Cached extra renderings of the training samples (timbre augmentation).

``load_or_render_variants`` renders every training sample ``renderings``
times in random training timbres (:class:`model.features.augmentation.augment.TimbreAugmenter`)
and keeps only what the audio CNN reads, the time-pooled log-mel patches
(float16, ~30 KB a rendering), never the waveforms.  The renderings are made
in chunks of :data:`CHUNK` samples, each written atomically as
``DATASET/features/augment/<key>/part-NNNNN.npz``, so an interrupted run
resumes at the first missing chunk; ``key`` hashes the dataset, the front-end
fields and the augmentation's rendering settings.  A damaged part is
rendered again.
"""
from __future__ import annotations

import hashlib
import json
import time
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from model.atomic import atomic_path
from model.progress import CancelToken, ProgressCallback, report

from ..config import FeatureConfig
from ..learned.pretrain import Ragged

#: Samples per cached part (a few seconds of rendering on one core).
CHUNK = 128


def variants_dir(dataset: Any, config: FeatureConfig) -> Path:
    """Folder of the cached renderings of ``dataset`` under ``config``."""
    from ..extract import FRONTEND_FIELDS
    blob = json.dumps([dataset.content_hash, config.digest(FRONTEND_FIELDS), config.augment.render_settings()],
                      sort_keys=True).encode("utf-8")
    return Path(dataset.root) / "features" / "augment" / hashlib.sha256(blob).hexdigest()[:16]


def _render_chunk(samples: Sequence[Any], config: FeatureConfig) -> dict[str, np.ndarray]:
    """All renderings of ``samples``: per rendering k, flat patches and offsets; timbre names."""
    from .augment import TimbreAugmenter, item_rng
    from ..extract import audio_input

    aug = TimbreAugmenter(config.augment, config.sample_rate)  # fresh per chunk: same result on resume
    k_total = config.augment.renderings
    out: dict[str, Any] = {"sample_ids": np.array([s.sample_id for s in samples], dtype=str)}
    names = np.empty((len(samples), k_total), dtype=object)
    try:
        for k in range(k_total):
            items = []
            for j, sample in enumerate(samples):
                wave, names[j, k] = aug.render(sample.notes, item_rng(config.augment.seed, sample.sample_id, k))
                items.append(audio_input(wave, config.sample_rate, config))
            ragged = Ragged.from_list(items, (config.patch_frames // config.audio_time_pool, config.n_mels))
            out[f"data{k}"], out[f"offsets{k}"] = ragged.data, ragged.offsets
    finally:
        aug.close()
    out["timbres"] = names.astype(str)
    return out


def _load_part(path: Path, ids: Sequence[str]) -> Optional[dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if list(data["sample_ids"]) != list(ids):
                return None
            return {name: data[name] for name in data.files}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # damaged or foreign: rendered again


def load_or_render_variants(dataset: Any, indices: Sequence[int], config: FeatureConfig, workers: int = 2,
                            progress: Optional[ProgressCallback] = None,
                            cancel: Optional[CancelToken] = None) -> tuple[list[Ragged], dict[str, Any]]:
    """The ``config.augment.renderings`` extra renderings of samples ``indices`` (cached).

    Parameters
    ----------
    dataset : Dataset
    indices : sequence of int
        Positions in ``dataset.samples`` (the training split).
    config : FeatureConfig
        Front end and ``augment`` settings.
    workers : int
        Threads (FluidSynth, the FFTs and the FLAC-free front end release the GIL).

    Returns
    -------
    (list of Ragged, dict)
        One ``Ragged`` per rendering, rows in the order of ``indices``; and
        ``{"timbres": {name: count}, "render_seconds": s, "cached_parts": n,
        "rendered_parts": n, "cache_dir": str}``.
    """
    k_total = config.augment.renderings
    if k_total <= 0:
        return [], {"timbres": {}, "render_seconds": 0.0}
    folder = variants_dir(dataset, config)
    samples = [dataset.samples[int(i)] for i in indices]
    chunks = [samples[s:s + CHUNK] for s in range(0, len(samples), CHUNK)]
    parts: list[Optional[dict[str, np.ndarray]]] = [None] * len(chunks)
    for c, chunk in enumerate(chunks):
        parts[c] = _load_part(folder / f"part-{c:05d}.npz", [s.sample_id for s in chunk])
    todo = [c for c, part in enumerate(parts) if part is None]
    cached = len(chunks) - len(todo)
    report(progress, "augment", cached * CHUNK if todo else len(samples), len(samples),
           f"extra renderings ({k_total} per training sample)")
    t0 = time.perf_counter()

    def one(c: int) -> tuple[int, dict[str, np.ndarray]]:
        part = _render_chunk(chunks[c], config)
        with atomic_path(folder / f"part-{c:05d}.npz", suffix=".npz") as tmp:
            np.savez(tmp, **part)
        return c, part

    if todo:
        folder.mkdir(parents=True, exist_ok=True)
        done = cached
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for c, part in pool.map(one, todo):
                parts[c] = part
                done += 1
                report(progress, "augment", min(done * CHUNK, len(samples)), len(samples),
                       f"extra renderings ({k_total} per training sample)")
                if cancel is not None:
                    cancel.raise_if_set()
    seconds = time.perf_counter() - t0
    variants = []
    for k in range(k_total):
        items = [p[f"data{k}"][p[f"offsets{k}"][j]:p[f"offsets{k}"][j + 1]]
                 for p in parts for j in range(len(p["sample_ids"]))]
        variants.append(Ragged.from_list(items, (config.patch_frames // config.audio_time_pool, config.n_mels)))
    timbres = Counter(str(name) for p in parts for name in p["timbres"].reshape(-1))
    return variants, {"timbres": dict(sorted(timbres.items())), "render_seconds": seconds,
                      "cached_parts": cached, "rendered_parts": len(todo), "cache_dir": str(folder)}
