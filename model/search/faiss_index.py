"""One FAISS index over one modality's vectors: exact flat, HNSW or IVF-PQ, chosen by size and memory.

:class:`model.search.retrieval.RetrievalIndex` keeps one :class:`KeyIndex` per
embedding key (``"audio"``, ``"lyrics@audio"`` …).  Which kind is built:

- ``flat`` (``IndexFlatL2``, or ``IndexFlatIP`` for cosine) up to
  :data:`EXACT_MAX_ITEMS` items: exact, and one query over that many items
  stays near 2 ms on one core (docs/scaling.md has the measurement);
- ``hnsw`` (``IndexHNSWFlat``) above it when its estimated memory fits the
  budget;
- ``ivfpq`` (``IndexIVFPQ`` re-ranked with an 8-bit scalar-quantised copy,
  ``IndexRefine``) when HNSW does not fit; ``ivfpq-norefine`` when even the
  re-ranking copy does not.

Approximate indexes are tuned at build time: ``efSearch`` (HNSW) or
``nprobe`` (IVF) is raised until recall@10 against an exact search reaches
:attr:`IndexConfig.target_recall` on half of a query sample, and the recall is
then *measured* on the other half, so the figure shown to the user was not
the one the parameters were fitted to.

Approximate indexes search in L2; cosine vectors are normalised first, where
``‖a − b‖² = 2 − 2 cos`` ranks exactly like cosine distance.

Vectors come from a :data:`ChunkSource` (a callable returning an iterator
of (m, d) float32 chunks, callable more than once), so an index over 10M
vectors can be built, trained and checked without holding them all.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import numpy as np

from model.progress import CancelToken, ProgressCallback, report

try:  # faiss is a declared dependency; the message says how to install it where it is missing
    import faiss
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError("faiss is not installed: pip install 'faiss-cpu>=1.15,<1.16'") from exc

# Above this many items per key, the exact flat index gives way to an
# approximate one.  One single-thread flat query over 50,000 128-d vectors
# takes ≈ 2 ms (25.6 MB read); two target modalities per GUI query then stay
# within the ≤ 5 ms a click may spend on retrieval.  Measured with
# ``benchmarks/retrieval.py --sizes 15000 50000 100000`` (docs/scaling.md).
EXACT_MAX_ITEMS = 50_000

# Candidate search-time parameters tried, in order, until the target recall is met.
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
NPROBE_STEPS = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 512)

KINDS = ("flat", "hnsw", "ivfpq", "ivfpq-norefine")

ChunkSource = Callable[[], Iterator[np.ndarray]]


@dataclass(frozen=True)
class IndexConfig:
    """How :func:`build_key_index` chooses and tunes an index.

    Parameters
    ----------
    exact_max_items : int
        Keys with at most this many items get an exact flat index.
    memory_budget_bytes : int or None
        Memory all keys' indexes may take together; None: half of the memory
        available when the index is built.
    kind : str or None
        Force one of :data:`KINDS` (benchmarks, tests); None chooses.
    hnsw_m, hnsw_ef_construction : int
        HNSW graph degree and build-time beam width.
    ivf_nlist : int or None
        IVF lists; None: ≈ 4 √N, a power of two in [64, 8192].
    pq_m : int or None
        PQ sub-quantisers (bytes per code); None: the largest divisor of the
        dimension not above d / 4.
    refine_k_factor : int
        IVF-PQ re-ranks this many × k candidates with the 8-bit copy.
    target_recall : float
        Recall@10 the search-time parameter is tuned to reach.
    recall_queries : int
        Queries sampled to tune and measure recall (half each).
    chunk_rows : int
        Rows per chunk when adding arrays and computing exact ground truth.
    seed : int
        Seeds the query sample and the IVF training sample.
    """

    exact_max_items: int = EXACT_MAX_ITEMS
    memory_budget_bytes: Optional[int] = None
    kind: Optional[str] = None
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    ivf_nlist: Optional[int] = None
    pq_m: Optional[int] = None
    refine_k_factor: int = 8
    target_recall: float = 0.98
    recall_queries: int = 400
    chunk_rows: int = 65_536
    seed: int = 0

    def replace(self, **changes) -> "IndexConfig":
        return replace(self, **changes)

    def key(self) -> dict:
        """The fields that change what is built (for a persisted index's fingerprint)."""
        return {k: getattr(self, k) for k in ("exact_max_items", "kind", "hnsw_m", "hnsw_ef_construction",
                                              "ivf_nlist", "pq_m", "refine_k_factor", "target_recall",
                                              "recall_queries", "seed")}


@dataclass
class KeyIndex:
    """A built FAISS index over one key's vectors.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    index : faiss.Index
    metric : str
        ``euclidean`` or ``cosine`` (how raw scores become distances).
    dim : int
    recall : float or None
        Recall@10 against exact, measured at build time on held-out queries
        (1.0 for ``flat``; None when there were too few queries to measure).
    param : int
        The tuned ``efSearch`` or ``nprobe`` (0 for ``flat``).
    build_seconds : float
    """

    kind: str
    index: "faiss.Index"
    metric: str
    dim: int
    recall: Optional[float] = 1.0
    param: int = 0
    build_seconds: float = 0.0

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def memory_bytes(self) -> int:
        """Bytes the index holds: its vectors or codes, ids, graph and centroids (not a copy of it)."""
        return index_bytes(self.kind, self.index) if not _on_gpu(self.index) else 4 * self.dim * len(self)

    def search(self, queries: np.ndarray, k: int, threads: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of (m, d) float32 ``queries``: distances (m, k) ascending and row ids (m, k), −1 for none.

        Distances are Euclidean, or ``1 − cos`` for cosine.  ``threads``
        bounds FAISS's OpenMP threads for this call: one query cannot use more
        than one (FAISS parallelises over queries), and asking for more makes
        it wait at a barrier for busy cores.
        """
        q = prepare(queries, self.metric)
        with omp_threads(threads):
            scores, ids = self.index.search(q, k)
        return self._distances(scores), ids

    def _distances(self, scores: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            # flat cosine is inner product; the others are L2² of unit vectors = 2 − 2 cos
            return (1.0 - scores) if self.kind == "flat" else scores / 2.0
        return np.sqrt(np.maximum(scores, 0.0))


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 2-D array, rows normalised for cosine."""
    x = np.ascontiguousarray(np.atleast_2d(x), dtype=np.float32)
    if metric == "cosine":
        x = x.copy()
        faiss.normalize_L2(x)
    return x


def array_source(x: np.ndarray, rows: int = 65_536) -> ChunkSource:
    """A :data:`ChunkSource` over an in-memory (N, d) array (views, no copies for float32 input)."""
    return lambda: (x[a:a + rows] for a in range(0, len(x), rows))


@contextlib.contextmanager
def omp_threads(n: Optional[int]) -> Iterator[None]:
    """FAISS's OpenMP thread count for the calling thread, restored afterwards (None: unchanged).

    ``omp_set_num_threads`` sets the calling thread's own setting, so a query
    on the GUI thread does not change a build on a worker, and FAISS's
    OpenMP runtime is its own (not torch's), so torch's threads are untouched.
    """
    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; total physical memory where that is unknown)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` items: ≈ 4 √n as a power of two in [64, 8192] (bounded by n / 39 to train)."""
    target = 4.0 * math.sqrt(max(n, 1))
    nlist = 2 ** int(round(math.log2(max(target, 1.0))))
    nlist = min(max(nlist, 64), 8192)
    return max(1, min(nlist, n // 39 if n >= 39 else 1))


def default_pq_m(d: int) -> int:
    """PQ sub-quantisers: the largest divisor of ``d`` not above d / 4 (32 for 128-d)."""
    for m in range(max(1, d // 4), 0, -1):
        if d % m == 0:
            return m
    return 1


def estimate_bytes(kind: str, n: int, d: int, config: IndexConfig) -> int:
    """Estimated memory of an index of ``kind`` over ``n`` ``d``-dim vectors.

    HNSW: the vectors plus 2M neighbour ids on level 0 and about M / (M − 1)
    more on the upper levels, plus per-item level bookkeeping.  IVF-PQ: one
    code and one 8-byte id per item, the 8-bit re-ranking copy, centroids.
    """
    if kind == "flat":
        return 4 * d * n
    if kind == "hnsw":
        m = config.hnsw_m
        return n * (4 * d + 4 * (2 * m + m / max(m - 1, 1)) + 16)
    nlist = config.ivf_nlist or default_nlist(n)
    code = config.pq_m or default_pq_m(d)
    per_item = code + 8 + (d if kind == "ivfpq" else 0)
    return int(n * per_item + 4 * d * nlist + 4 * 256 * d)


def choose_kind(n: int, d: int, config: IndexConfig, budget: int) -> str:
    """The index kind for ``n`` items: exact up to the threshold, else the best that fits ``budget`` bytes."""
    if config.kind is not None:
        if config.kind not in KINDS:
            raise ValueError(f"index kind must be one of {KINDS}, got {config.kind!r}")
        return config.kind
    if n <= config.exact_max_items:
        return "flat"
    for kind in ("hnsw", "ivfpq"):
        if estimate_bytes(kind, n, d, config) <= budget:
            return kind
    return "ivfpq-norefine"


def exact_top_k(source: ChunkSource, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Row ids (m, k) of the exact top-k, one chunk at a time (memory: one chunk).

    ``queries`` must already be :func:`prepare`-d.  Chunks are merged with
    FAISS's ``ResultHeap``; each chunk is one BLAS product.
    """
    keep_max = metric == "cosine"
    heap = faiss.ResultHeap(len(queries), k, keep_max=keep_max)
    offset = 0
    fmetric = faiss.METRIC_INNER_PRODUCT if keep_max else faiss.METRIC_L2
    for chunk in source():
        chunk = prepare(chunk, metric)
        kk = min(k, len(chunk))
        scores, ids = faiss.knn(queries, chunk, kk, metric=fmetric)
        if kk < k:  # a short last chunk: pad with sentinels the heap never keeps
            pad = np.full((len(queries), k - kk), -np.inf if keep_max else np.inf, dtype=np.float32)
            scores = np.hstack([scores, pad])
            ids = np.hstack([ids, np.full((len(queries), k - kk), -1, dtype=np.int64)])
        heap.add_result(scores, np.where(ids >= 0, ids + offset, -1))
        offset += len(chunk)
    heap.finalize()
    return heap.I


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (the exact top-k) present in the same row of ``found``."""
    k = truth.shape[1]
    hits = [len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits) / k) if len(hits) else float("nan")


def _on_gpu(index) -> bool:
    return "Gpu" in type(index).__name__


def to_device(index, device: str):
    """``index`` on a CUDA device when ``device`` asks for one and faiss-gpu can (flat and IVF only).

    faiss-gpu is optional: with faiss-cpu, without CUDA, or for HNSW (which
    FAISS has no GPU version of) the index stays on the CPU.
    """
    if not str(device).startswith("cuda") or not hasattr(faiss, "StandardGpuResources"):
        return index
    try:
        if faiss.get_num_gpus() < 1 or isinstance(index, faiss.IndexHNSW):
            return index
        gpu = int(str(device).split(":")[1]) if ":" in str(device) else 0
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
    except (RuntimeError, AttributeError):  # a kind faiss-gpu cannot hold: stay on the CPU
        return index


def _sample_rows(source: ChunkSource, n: int, want: int, metric: str) -> np.ndarray:
    """About ``want`` rows spread evenly over the source (every ⌈n / want⌉-th row), prepared."""
    stride = max(1, -(-n // max(want, 1)))
    parts, offset = [], 0
    for chunk in source():
        start = (-offset) % stride
        parts.append(prepare(chunk[start::stride], metric))
        offset += len(chunk)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _new_index(kind: str, n: int, d: int, metric: str, config: IndexConfig):
    if kind == "flat":
        return faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, config.hnsw_m)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        return index
    # the factory gives an index that owns its parts (no Python-side lifetimes to keep)
    spec = f"IVF{config.ivf_nlist or default_nlist(n)},PQ{config.pq_m or default_pq_m(d)}x8"
    index = faiss.index_factory(d, spec if kind == "ivfpq-norefine" else spec + ",Refine(SQ8)")
    # The factory turns on polysemous training (code orderings for Hamming
    # filtering, which nothing here uses); it makes training ≈ 30× slower.
    faiss.downcast_index(faiss.extract_index_ivf(index)).do_polysemous_training = False
    if kind == "ivfpq":
        index.k_factor = config.refine_k_factor
    return index


def _set_param(index, kind: str, value: int) -> None:
    if kind == "hnsw":
        index.hnsw.efSearch = value
    elif kind.startswith("ivfpq"):
        faiss.extract_index_ivf(index).nprobe = value


def index_bytes(kind: str, index) -> int:
    """Memory of a built CPU index from its parts: vectors or codes, ids, graph, centroids."""
    n, d = int(index.ntotal), int(index.d)
    if kind == "flat":
        return 4 * d * n
    if kind == "hnsw":
        h = index.hnsw
        return 4 * d * n + 4 * h.neighbors.size() + 4 * h.levels.size() + 8 * h.offsets.size()
    ivf = faiss.extract_index_ivf(index)
    total = n * (ivf.code_size + 8) + 4 * d * ivf.nlist + 4 * 256 * d
    if kind == "ivfpq":
        total += n * index.refine_index.sa_code_size()
    return int(total)


def build_key_index(source: ChunkSource, n: int, d: int, metric: str, config: IndexConfig = IndexConfig(), *,
                    budget: Optional[int] = None, queries: Optional[np.ndarray] = None, name: str = "",
                    progress: Optional[ProgressCallback] = None,
                    cancel: Optional[CancelToken] = None) -> KeyIndex:
    """Build, tune and check the index over the ``n`` × ``d`` vectors of ``source``.

    Parameters
    ----------
    source : ChunkSource
        Called once to add the vectors, and again to train IVF and to compute
        exact ground truth for the recall check.
    metric : ``euclidean`` or ``cosine``
    budget : int or None
        Bytes this index may take; None: ``config.memory_budget_bytes`` or half
        of the available memory.
    queries : (m, d) array or None
        Queries for tuning and measuring recall (the other modalities' vectors
        are the realistic choice); None: ``config.recall_queries`` rows of the
        source itself, each moved by a little noise so it is not its own answer.
    name : str
        The key, for progress messages.

    Raises
    ------
    model.progress.Cancelled
        ``cancel`` was set (checked between chunks).
    """
    t0 = time.perf_counter()
    if budget is None:
        budget = config.memory_budget_bytes or available_memory() // 2
    kind = choose_kind(n, d, config, budget)
    index = _new_index(kind, n, d, metric, config)
    stage = f"index {name}".strip()
    if not index.is_trained:
        report(progress, stage, 0, n, f"{name}: training IVF-PQ")
        nlist = faiss.extract_index_ivf(index).nlist
        index.train(_sample_rows(source, n, min(n, 40 * nlist), metric))
    done = 0
    for chunk in source():
        if cancel is not None:
            cancel.raise_if_set()
        index.add(prepare(chunk, metric))
        done += len(chunk)
        report(progress, stage, done, n, f"{name}: {kind}, {done:,} / {n:,} items")
    result = KeyIndex(kind, index, metric, d)
    if kind != "flat":
        _tune(result, source, n, metric, config, queries, progress, stage)
    result.build_seconds = time.perf_counter() - t0
    return result


def _tune(result: KeyIndex, source: ChunkSource, n: int, metric: str, config: IndexConfig,
          queries: Optional[np.ndarray], progress: Optional[ProgressCallback], stage: str, k: int = 10) -> None:
    """Raise efSearch / nprobe until recall@k reaches the target on one half of the queries; measure on the other."""
    rng = np.random.default_rng(config.seed)
    if queries is None:
        rows = _sample_rows(source, n, config.recall_queries, "euclidean")
        rows = rows[rng.permutation(len(rows))[: config.recall_queries]]
        scale = float(np.std(rows)) if len(rows) else 1.0
        queries = rows + rng.normal(0.0, 0.05 * scale, rows.shape).astype(np.float32)
    else:
        queries = np.asarray(queries, np.float32)
        queries = queries[rng.permutation(len(queries))[: config.recall_queries]]
    q = prepare(queries, metric)
    k = min(k, n)
    report(progress, stage, n, n, "measuring recall against an exact search")
    truth = exact_top_k(source, q, k, metric)
    half = len(q) // 2
    tune_q, tune_t, test_q, test_t = q[:half], truth[:half], q[half:], truth[half:]
    steps = EF_SEARCH_STEPS if result.kind == "hnsw" else NPROBE_STEPS
    if result.kind.startswith("ivfpq"):
        steps = tuple(s for s in steps if s <= faiss.extract_index_ivf(result.index).nlist) or (1,)
    chosen = steps[-1]
    for value in steps:
        _set_param(result.index, result.kind, value)
        if len(tune_q) == 0 or recall_at_k(result.index.search(tune_q, k)[1], tune_t) >= config.target_recall:
            chosen = value
            break
    _set_param(result.index, result.kind, chosen)
    result.param = chosen
    result.recall = recall_at_k(result.index.search(test_q, k)[1], test_t) if len(test_q) >= 10 else None
