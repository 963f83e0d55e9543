"""The embedding map's layout: UMAP of a run's common space, shared by the window and ``ugaar map``.

Plain Python (no Qt).  Two views of the same embeddings:

- ``shared`` (default): the layout shows the alignment between modalities.
  Contrastive training leaves every modality in its own region of the
  common space (the "modality gap": on LMD-full, partners are about 1.14
  apart on unit vectors while a modality's own points sit closer to each
  other), so UMAP draws three islands and a sample's three points never
  meet.  Two steps undo that for the picture:

  1. each modality's mean, computed on the training split only (no test
     information leaks into the picture), is subtracted and the rows are
     re-normalised (:func:`remove_modality_offsets`);
  2. UMAP's neighbour graph is *balanced* (:func:`balanced_knn`): each point
     gets its ``n_neighbors // 3`` nearest points in each modality, each
     modality's nearest counting as near.  Centring alone is not enough:
     on the music21 default set 97 % of a point's 15 nearest neighbours
     were still of its own modality after it (near-duplicate windows of a
     song are closer to each other than any partner), and the map kept its
     islands (docs/benchmarks.md, "Embedding map").

  Only the picture changes: retrieval keeps the raw embeddings
  (``model.search.retrieval.RetrievalIndex``).
- ``modality``: the raw embeddings, as before (three islands).

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

#: ``shared``: modality offsets removed (partners land together); ``modality``: raw embeddings.
VIEWS = ("shared", "modality")
DEFAULT_VIEW = "shared"
#: How the shared view builds UMAP's neighbour graph; part of its cache key.
SHARED_GRAPH = "centred+balanced-knn"


def map_key(embeddings: dict[str, np.ndarray], params: dict[str, Any], view: str = "modality",
            train_mask: Optional[np.ndarray] = None) -> str:
    """Cache key of a layout.

    The ``modality`` view keeps the key it always had, so maps cached before
    the shared view existed stay valid; the ``shared`` view also hashes the
    training mask its offsets are computed on.
    """
    h = hashlib.sha1(json.dumps(params, sort_keys=True).encode())
    for m in MODALITIES:
        arr = np.ascontiguousarray(embeddings[m], dtype=np.float32)
        h.update(m.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    if view != "modality":
        h.update(view.encode())
        h.update(SHARED_GRAPH.encode())
        if train_mask is not None:
            h.update(np.packbits(np.asarray(train_mask, dtype=bool)).tobytes())
    return h.hexdigest()[:16]


def remove_modality_offsets(embeddings: dict[str, np.ndarray],
                            train_mask: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """Each modality minus its mean over the training rows, rows re-normalised to unit length.

    Returns new arrays; the inputs (which the retrieval index uses) are not
    touched.  The mean comes from ``train_mask`` rows only, so the picture of
    the test split is not fitted to the test split; with no training rows
    (e.g. a run on a test-only feature set) every row is used.
    """
    out = {}
    for m in MODALITIES:
        v = np.array(embeddings[m], dtype=np.float32)  # a copy: never centre the caller's array
        rows = v
        if train_mask is not None:
            mask = np.asarray(train_mask, dtype=bool)
            if mask.shape == (len(v),) and mask.any():
                rows = v[mask]
        v -= rows.mean(axis=0, keepdims=True)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        out[m] = v
    return out


def train_mask_of(splits: Optional[Any]) -> Optional[np.ndarray]:
    """Boolean mask of the ``train`` rows of ``splits`` (None when unknown)."""
    if splits is None:
        return None
    return np.asarray([str(s) == "train" for s in splits], dtype=bool)


def balanced_knn(x: np.ndarray, n: int, per: int, batch: int = 1024,
                 cancel: Optional[CancelToken] = None) -> tuple[np.ndarray, np.ndarray]:
    """A neighbour graph with ``per`` neighbours from each modality, for UMAP's ``precomputed_knn``.

    Parameters
    ----------
    x : (3N, E) array
        Rows audio, sheet, lyrics (N each), unit length (cosine distance).
    n : int
        N.
    per : int
        Neighbours taken in each modality (the point itself excluded).

    Returns
    -------
    (indices, distances) : (3N, 1 + 3·per) arrays
        Column 0 is the point itself at distance 0.  Within each modality the
        distances are shifted so that its nearest point is at 0: UMAP
        calibrates each point's edge weights from its nearest distance, and
        unshifted, the own modality's far smaller distances would take all the
        weight and redraw the islands.
    """
    total = len(x)
    per = int(max(1, min(per, n - 1)))
    k = 1 + 3 * per
    idx = np.empty((total, k), dtype=np.int64)
    dst = np.empty((total, k), dtype=np.float32)
    idx[:, 0] = np.arange(total)
    dst[:, 0] = 0.0
    blocks = [np.ascontiguousarray(x[b * n:(b + 1) * n], dtype=np.float32) for b in range(3)]
    for a in range(0, total, batch):
        if cancel is not None and cancel.is_set:
            raise Cancelled("map cancelled")
        q = np.asarray(x[a:a + batch], dtype=np.float32)
        rows = np.arange(a, a + len(q))
        cols_i, cols_d = [], []
        for b, block in enumerate(blocks):
            d = 1.0 - q @ block.T
            mine = (rows >= b * n) & (rows < (b + 1) * n)
            d[np.nonzero(mine)[0], rows[mine] - b * n] = np.inf  # the point itself is column 0
            j = np.argpartition(d, per - 1, axis=1)[:, :per]
            dj = np.take_along_axis(d, j, axis=1)
            order = np.argsort(dj, axis=1)
            j, dj = np.take_along_axis(j, order, axis=1), np.take_along_axis(dj, order, axis=1)
            cols_i.append(j + b * n)
            cols_d.append(dj - dj[:, :1])
        ii, dd = np.concatenate(cols_i, axis=1), np.concatenate(cols_d, axis=1)
        order = np.argsort(dd, axis=1, kind="stable")
        idx[a:a + len(q), 1:] = np.take_along_axis(ii, order, axis=1)
        # + a hair: UMAP treats a zero distance to another point as a duplicate of it
        dst[a:a + len(q), 1:] = np.take_along_axis(dd, order, axis=1) + 1e-6
    return idx, dst


def layout_input(embeddings: dict[str, np.ndarray], view: str = DEFAULT_VIEW,
                 train_mask: Optional[np.ndarray] = None) -> np.ndarray:
    """The (3N, E) rows UMAP lays out for ``view``: audio, then sheet, then lyrics."""
    if view not in VIEWS:
        raise ValueError(f"unknown map view {view!r}; expected one of {VIEWS}")
    if view == "shared":
        return stack(remove_modality_offsets(embeddings, train_mask))
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


def compute_map(embeddings: dict[str, np.ndarray], *, view: str = DEFAULT_VIEW, splits: Optional[Any] = None,
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
    splits : (N,) sequence of str, optional
        Each sample's split; the ``shared`` view removes offsets computed on
        the ``train`` rows (all rows when None).
    cache_dir : Path, optional
        The run folder: layouts are cached there as ``umap-<key>.npz``.
    in_process : bool
        Run UMAP in this process (the CLI) instead of the window's child process.
    """
    params = {**DEFAULT_PARAMS, **(params or {})}
    mask = train_mask_of(splits) if view == "shared" else None
    key = map_key(embeddings, params, view, mask)
    cached = load_cached(cache_dir, key)
    if cached is not None and len(cached) == 3 * len(embeddings[MODALITIES[0]]):
        report(progress, "umap", 1, 1, "from cache")
        return cached, True
    x = layout_input(embeddings, view, mask)
    n = len(x)
    if n < MIN_UMAP_POINTS:
        coords = pca_2d(x)
        save_cache(cache_dir, key, coords)
        report(progress, "umap", 1, 1, f"PCA layout ({n} points are too few for UMAP)")
        return coords, False
    params["n_neighbors"] = int(min(params["n_neighbors"], max(2, n - 1)))
    knn = None
    if view == "shared":
        report(progress, "umap", 0, 0, "finding each modality's nearest neighbours")
        knn = balanced_knn(x, n // 3, max(1, params["n_neighbors"] // 3), cancel=cancel)
    if in_process:
        coords = _umap(x, params, knn=knn)
    else:
        coords = _umap_subprocess(x, params, progress, cancel, knn)
    save_cache(cache_dir, key, coords)
    report(progress, "umap", 1, 1, "done")
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
            cancel: Optional[CancelToken], knn: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
        with self._lock, tempfile.TemporaryDirectory(prefix="ugaar-umap-") as tmp:
            src = Path(tmp) / "in.npz"
            dst = Path(tmp) / "out.npz"
            arrays = {"knn_indices": knn[0], "knn_dists": knn[1]} if knn is not None else {}
            np.savez(src, x=x, params=np.array(json.dumps(params)), **arrays)
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
                     cancel: Optional[CancelToken],
                     knn: Optional[tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    return server().run(x, params, progress, cancel, knn)


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
