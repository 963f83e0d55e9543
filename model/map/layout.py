"""The embedding map's layout: UMAP of a run's common space, shared by the window and ``ugaar map``.

Plain Python (no Qt).  Two views of the same embeddings:

- ``shared`` (default): the layout shows the alignment the model has.
  Contrastive training leaves every modality in its own region of the
  common space (the "modality gap": on LMD-full, partners are about 1.14
  apart on unit vectors while a modality's own points sit closer to each
  other), so UMAP of all 3N points draws three islands and a sample's three
  points never meet.  The shared view is *anchored* instead
  (:func:`anchored_layout`):

  1. UMAP lays out the **recordings** alone (the anchor modality,
     :data:`ANCHOR`), so the map's geography is the audio space's;
  2. every sheet and lyrics item is drawn beside the recording that
     retrieval returns first for it (:func:`nearest_anchor`: the run's
     metric, exactly as :class:`model.search.retrieval.RetrievalIndex`
     ranks), a short seeded offset away so both stay visible.

  A sheet therefore sits next to its own recording exactly when the model
  retrieves that recording first, and next to the wrong one when it does
  not: the picture is the retrieval, not a fit to the answer.  Nothing but
  each item's own vector and the recordings' vectors decides where it goes
  (no sample ids).  Measured on the LMD-full test split over 3 seeds
  (docs/benchmarks.md, "Embedding map"): partner-in-neighbourhood 54.8 % for
  at least one partner, against 12.1 % for the earlier centred,
  balanced-graph layout of all 3N points; both partners 0.7 % in either,
  because a lyrics item lands beside its own recording only when lyrics
  retrieval ranks it first.  The anchor
  (audio rather than sheet), the top-1 placement (rather than the mean of
  the top 2) and the offset were chosen on the validation split.

  Only the picture changes: retrieval keeps the raw embeddings.
- ``modality``: UMAP of all 3N raw embeddings (three islands).

UMAP (numba) can hold the GIL for long stretches, so the window runs it in a
separate Python process (``model.map.umap_job``): its event loop never stalls and
cancelling kills the process.  Progress comes from UMAP's verbose lines.  The
2-D layout of all three modalities is cached in ``run_dir/umap-<key>.npz``,
keyed by a hash of the embeddings, the parameters and the view; the CLI reads
and writes the same cache, so both show the same layout.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from model.progress import CancelToken, Cancelled, ProgressCallback, report

MODALITIES = ("audio", "sheet", "lyrics")
#: Below this many points UMAP's neighbour graph is meaningless: a PCA layout is shown instead.
MIN_UMAP_POINTS = 150

DEFAULT_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "seed": 0, "n_epochs": 200}

#: ``shared``: anchored on the recordings, other items beside their first retrieved recording;
#: ``modality``: UMAP of the raw embeddings.
VIEWS = ("shared", "modality")
DEFAULT_VIEW = "shared"
#: The modality UMAP lays out in the shared view (chosen on validation: audio 54.6 %, sheet 53.9 %
#: partner-in-neighbourhood, LMD-full UGAAR seed 0).
ANCHOR = "audio"
#: How far (in median nearest-neighbour distances of the anchor layout) a placed item may sit from
#: its recording: enough to see both points, too little to matter (53.9–54.6 % for 0–1 on validation).
PLACEMENT_RADIUS = 0.5
#: How the shared view is made; part of its cache key (a new method never reads an old layout).
SHARED_LAYOUT = f"anchored:{ANCHOR}:top1:r{PLACEMENT_RADIUS}"
METRICS = ("cosine", "euclidean")
#: Distances :func:`nearest_anchor` asks for at once (float32; ``distance_matrix`` holds about three
#: such arrays at its peak: ≈ 200 MB).
NEAREST_BLOCK = 1 << 24


def map_key(embeddings: dict[str, np.ndarray], params: dict[str, Any], view: str = "modality",
            metric: str = "cosine") -> str:
    """Cache key of a layout.

    The ``modality`` view keeps the key it always had, so maps cached before
    the shared view existed stay valid; the ``shared`` view also hashes how it
    is made and the metric its items are placed by.
    """
    h = hashlib.sha1(json.dumps(params, sort_keys=True).encode())
    for m in MODALITIES:
        arr = np.ascontiguousarray(embeddings[m], dtype=np.float32)
        h.update(m.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    if view != "modality":
        h.update(view.encode())
        h.update(SHARED_LAYOUT.encode())
        h.update(metric.encode())
    return h.hexdigest()[:16]


def run_metric(run: Any) -> str:
    """The retrieval metric of an open run (``cosine`` when it has none, e.g. no run)."""
    metric = getattr(getattr(run, "config", None), "metric", None)
    return metric if metric in METRICS else "cosine"


def run_dir_metric(run_dir: str | Path) -> str:
    """The retrieval metric in a run folder's ``config.json``, read without opening the run."""
    try:
        metric = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get("metric")
    except (OSError, ValueError, AttributeError):
        metric = None
    return metric if metric in METRICS else "cosine"


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero); a new float32 array."""
    x = np.array(x, dtype=np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def nearest_anchor(queries: np.ndarray, anchors: np.ndarray, metric: str = "cosine", batch: int = 2048,
                   cancel: Optional[CancelToken] = None) -> np.ndarray:
    """Row of the anchor each query retrieves first, ranked as :class:`RetrievalIndex` ranks.

    Parameters
    ----------
    queries : (M, E) array
    anchors : (N, E) array
    metric : ``cosine`` or ``euclidean``
        The run's metric.  Ties go to the lower row.

    Returns
    -------
    (M,) int64 array of rows into ``anchors``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    from model.search.evaluation import distance_matrix  # torch: not at import (the UMAP child process)
    q = np.asarray(queries, dtype=np.float32)
    a = np.asarray(anchors, dtype=np.float32)
    # a block of NEAREST_BLOCK distances at a time: a million-item map stays within a few hundred MB
    batch = int(max(1, min(batch, NEAREST_BLOCK // max(len(a), 1))))
    out = np.empty(len(q), dtype=np.int64)
    for s in range(0, len(q), batch):
        if cancel is not None and cancel.is_set:
            raise Cancelled("map cancelled")
        out[s:s + batch] = np.argmin(distance_matrix(q[s:s + batch], a, metric), axis=1)
    return out


def place_beside(anchor_coords: np.ndarray, rows: np.ndarray, radius: float, seed: int) -> np.ndarray:
    """Points at ``anchor_coords[rows]``, each moved a seeded random distance ≤ ``radius`` (uniform in the disc)."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0.0, 2.0 * np.pi, len(rows))
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, len(rows)))
    offset = np.stack([np.cos(angle), np.sin(angle)], axis=1) * r[:, None]
    return (np.asarray(anchor_coords, dtype=np.float64)[rows] + offset).astype(np.float32)


def median_nn_distance(coords: np.ndarray) -> float:
    """Median distance from a 2-D point to its nearest other point (1.0 for fewer than 2 points)."""
    if len(coords) < 2:
        return 1.0
    from scipy.spatial import cKDTree
    d = cKDTree(coords).query(coords, k=2)[0][:, 1]
    positive = d[d > 0]
    return float(np.median(positive)) if len(positive) else 1.0


def anchored_layout(embeddings: dict[str, np.ndarray], anchor_coords: np.ndarray, metric: str = "cosine",
                    seed: int = 0, radius: float = PLACEMENT_RADIUS,
                    cancel: Optional[CancelToken] = None) -> np.ndarray:
    """The shared view from a 2-D layout of the anchor modality (see the module docstring).

    Parameters
    ----------
    embeddings : dict
        ``{"audio", "sheet", "lyrics"}`` → (N, E) arrays.
    anchor_coords : (N, 2) array
        Layout of ``embeddings[ANCHOR]``.
    metric : the run's retrieval metric.
    radius : float
        Largest offset from the recording, in median nearest-neighbour distances of the layout.

    Returns
    -------
    (3N, 2) float32 array: audio, sheet, lyrics rows.
    """
    anchor_coords = np.asarray(anchor_coords, dtype=np.float32)
    step = radius * median_nn_distance(anchor_coords)
    out = []
    for i, m in enumerate(MODALITIES):
        if m == ANCHOR:
            out.append(anchor_coords)
            continue
        rows = nearest_anchor(embeddings[m], embeddings[ANCHOR], metric, cancel=cancel)
        out.append(place_beside(anchor_coords, rows, step, seed=seed * 7 + i))
    return np.concatenate(out, axis=0)


def layout_input(embeddings: dict[str, np.ndarray], view: str = DEFAULT_VIEW) -> np.ndarray:
    """The rows UMAP lays out for ``view``: the anchor's N (shared), or audio, sheet, lyrics's 3N (modality)."""
    if view not in VIEWS:
        raise ValueError(f"unknown map view {view!r}; expected one of {VIEWS}")
    if view == "shared":
        return unit_rows(embeddings[ANCHOR])
    return stack(embeddings)


def stack(embeddings: dict[str, np.ndarray]) -> np.ndarray:
    """Rows: all audio, then all sheet, then all lyrics (N each)."""
    return np.concatenate([np.asarray(embeddings[m], dtype=np.float32) for m in MODALITIES], axis=0)


def load_cached(cache_dir: Optional[Path], key: str) -> Optional[np.ndarray]:
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"umap-{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["coords"].astype(np.float32)
    except Exception:  # noqa: BLE001 - partial/corrupt cache: recompute
        return None


def save_cache(cache_dir: Optional[Path], key: str, coords: np.ndarray) -> None:
    if cache_dir is None:
        return
    from model.atomic import atomic_path
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(cache_dir) / f"umap-{key}.npz", suffix=".npz") as tmp:
            np.savez(tmp, coords=coords)
    except OSError:
        pass  # a read-only run folder only costs a recompute next time


def pca_2d(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0, keepdims=True)
    _u, _s, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[:2].T).astype(np.float32)


_EPOCH_RE = re.compile(r"completed\s+(\d+)\s*/\s*(\d+)\s+epochs")


def compute_map(embeddings: dict[str, np.ndarray], *, view: str = DEFAULT_VIEW, metric: str = "cosine",
                cache_dir: Optional[Path] = None, params: Optional[dict[str, Any]] = None,
                progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                in_process: bool = False) -> tuple[np.ndarray, bool]:
    """2-D coordinates (3N × 2) for all modalities; returns ``(coords, from_cache)``.

    Parameters
    ----------
    embeddings : dict
        ``{"audio", "sheet", "lyrics"}`` → (N, E) arrays of one common space.
    view : ``shared`` or ``modality``
        See the module docstring.
    metric : ``cosine`` or ``euclidean``
        The run's retrieval metric: the shared view places each sheet and
        lyrics item beside the recording this metric ranks first.
    cache_dir : Path, optional
        The run folder: layouts are cached there as ``umap-<key>.npz``.
    in_process : bool
        Run UMAP in this process (the CLI) instead of the window's child process.
    """
    params = {**DEFAULT_PARAMS, **(params or {})}
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    key = map_key(embeddings, params, view, metric)
    n_samples = len(embeddings[MODALITIES[0]])
    cached = load_cached(cache_dir, key)
    if cached is not None and len(cached) == 3 * n_samples:
        report(progress, "umap", 1, 1, "from cache")
        return cached, True
    x = layout_input(embeddings, view)
    n = len(x)
    if n < MIN_UMAP_POINTS:
        coords = pca_2d(x)
        how = f"PCA layout ({n} points are too few for UMAP)"
    else:
        params["n_neighbors"] = int(min(params["n_neighbors"], max(2, n - 1)))
        coords = _umap(x, params) if in_process else _umap_subprocess(x, params, progress, cancel)
        how = "done"
    if view == "shared":
        report(progress, "umap", 0, 0, "placing sheets and lyrics beside their first recording")
        coords = anchored_layout(embeddings, coords, metric, seed=int(params["seed"]), cancel=cancel)
    save_cache(cache_dir, key, coords)
    report(progress, "umap", 1, 1, how)
    return coords, False


def _umap(x: np.ndarray, params: dict[str, Any], verbose: bool = False,
          knn: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """UMAP of ``x``; with ``knn`` = (indices, distances), on that neighbour graph instead of its own."""
    import warnings

    import umap
    extra: dict[str, Any] = {}
    n_neighbors = params["n_neighbors"]
    if knn is not None:
        extra["precomputed_knn"] = (np.asarray(knn[0]), np.asarray(knn[1]), None)
        n_neighbors = int(knn[0].shape[1])
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=params["min_dist"],
                        metric=params["metric"], random_state=params["seed"], verbose=verbose,
                        n_epochs=params.get("n_epochs"),
                        low_memory=True, n_jobs=1, **extra)
    with warnings.catch_warnings():
        # without a search index UMAP warns that transform() is unavailable: the map never calls it
        warnings.simplefilter("ignore", UserWarning)
        return reducer.fit_transform(x).astype(np.float32)


class UmapServer:
    """A long-lived child process running UMAP jobs one at a time.

    numba compiles UMAP's layout code on first use (~20 s on this CPU) and
    does not cache all of it on disk, so a fresh process per map would pay
    that every time.  The server compiles once (``warm_up``, e.g. while a
    model trains) and then serves maps at UMAP's real speed.  Cancelling a
    job kills the process; the next job starts a new one.
    """

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()
        self._lines: "queue.Queue[str]" = queue.Queue()
        self._reader: Optional[threading.Thread] = None
        self.listener: Optional[ProgressCallback] = None

    def _spawn(self) -> subprocess.Popen:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc
        env = dict(os.environ)
        env.setdefault("NUMBA_NUM_THREADS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        self._lines = queue.Queue()
        self.proc = subprocess.Popen([sys.executable, "-m", "model.map.umap_job", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        lines, proc = self._lines, self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put("EXIT")

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        return self.proc

    def warm_up(self) -> None:
        """Start the process and let it compile UMAP in the background (non-blocking)."""
        with self._lock:
            proc = self._spawn()
            try:
                assert proc.stdin is not None
                proc.stdin.write("WARM\n")
                proc.stdin.flush()
            except OSError:
                pass

    def run(self, x: np.ndarray, params: dict[str, Any], progress: Optional[ProgressCallback],
            cancel: Optional[CancelToken]) -> np.ndarray:
        with self._lock, tempfile.TemporaryDirectory(prefix="ugaar-umap-") as tmp:
            src = Path(tmp) / "in.npz"
            dst = Path(tmp) / "out.npz"
            np.savez(src, x=x, params=np.array(json.dumps(params)))
            proc = self._spawn()
            report(progress, "umap", 0, 0, "starting UMAP")
            assert proc.stdin is not None
            proc.stdin.write(f"JOB\t{src}\t{dst}\n")
            proc.stdin.flush()
            tail: list[str] = []
            while True:
                if cancel is not None and cancel.is_set:
                    self.kill()
                    raise Cancelled("map cancelled")
                try:
                    line = self._lines.get(timeout=0.05)
                except queue.Empty:
                    continue
                tail = (tail + [line])[-8:]
                if line == f"DONE\t{dst}":
                    break
                if line.startswith("ERROR\t") or line == "EXIT":
                    self.kill()
                    raise RuntimeError("UMAP failed: " + " | ".join(tail))
                _parse_progress(line, progress)
            with np.load(dst, allow_pickle=False) as data:
                return data["coords"].astype(np.float32)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write("QUIT\n")
                proc.stdin.flush()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()


_SERVER: Optional[UmapServer] = None


def server() -> UmapServer:
    global _SERVER
    if _SERVER is None:
        _SERVER = UmapServer()
    return _SERVER


def _umap_subprocess(x: np.ndarray, params: dict[str, Any], progress: Optional[ProgressCallback],
                     cancel: Optional[CancelToken]) -> np.ndarray:
    return server().run(x, params, progress, cancel)


def _parse_progress(line: str, progress: Optional[ProgressCallback]) -> None:
    m = _EPOCH_RE.search(line)
    if m:
        report(progress, "umap", int(m.group(1)), int(m.group(2)), "optimising layout")
    elif "Construct fuzzy simplicial set" in line or "NN descent" in line or "nearest neighbors" in line.lower():
        report(progress, "umap", 0, 0, "finding nearest neighbours")
    elif "Construct embedding" in line:
        report(progress, "umap", 0, 0, "building the layout")
    elif line.startswith("PHASE "):
        report(progress, "umap", 0, 0, line[6:].strip())
