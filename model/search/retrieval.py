"""Top-k retrieval over each modality's embeddings, on FAISS.

The GUI and ``ugaar query`` both call :class:`RetrievalIndex`.  Each
embedding key gets one :class:`model.search.faiss_index.KeyIndex`: an exact flat
index up to :data:`model.search.faiss_index.EXACT_MAX_ITEMS` items, HNSW above it,
IVF-PQ when HNSW would not fit in memory.  Distances are Euclidean or cosine
(``1 − cos``); approximate indexes report the recall@10 they reached against
an exact search on held-out queries when they were built
(:attr:`RetrievalIndex.recall`, :meth:`RetrievalIndex.status_text`).

:meth:`~RetrievalIndex.rank_of` and :meth:`~RetrievalIndex.distances` need
every item's distance, so they stay exact matrix products in torch over the
float32 vectors, whatever the index kind.  :meth:`~RetrievalIndex.partner_ranks`
does that for every sample at once up to :data:`EXACT_RANKS_MAX_ITEMS` items
(N × N distances); above it, each sample's rank is read from the FAISS
index's top :data:`PARTNER_TOP_K`, and a partner not among them is reported
as ``PARTNER_TOP_K + 1`` (:meth:`~RetrievalIndex.partner_rank_cap`).

:meth:`RetrievalIndex.from_run` stores approximate indexes next to the run's
``embeddings.npz`` (:mod:`model.search.retrieval_cache`) and rebuilds them when the
embeddings change.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import torch

from model.search import retrieval_cache
from model.errors import WriteError
from model.search.faiss_index import (IndexConfig, KeyIndex, array_source, available_memory, build_key_index,
                                      to_device)
from model.progress import CancelToken, ProgressCallback, report

MODALITIES = ("audio", "sheet", "lyrics")

#: Up to this many items, :meth:`RetrievalIndex.partner_ranks` is exact (all
#: N × N distances).  Measured (128-d, 2 torch threads, on a shared machine):
#: 2.8 s per direction at 10k items and 21 s at 30k, growing as N², so about
#: 10 s per direction (a minute for the window's six) at 20k.  The 11k-sample
#: benchmark dataset stays exact.
EXACT_RANKS_MAX_ITEMS = 20_000

#: Above :data:`EXACT_RANKS_MAX_ITEMS`, ranks come from each query's top K of
#: the FAISS index; a partner further away is reported as K + 1 ("> K").
PARTNER_TOP_K = 100

#: Queries per FAISS search when ranking from the top K (FAISS spreads one
#: search over its threads; progress and cancel are checked between chunks).
RANK_CHUNK = 4096


class RetrievalIndex:
    """An index over ``{"audio", "sheet", "lyrics"}`` embeddings of the same N samples.

    Parameters
    ----------
    embeddings : dict
        Modality → (N, E) array (keys ``"A@B"`` for pair-specific spaces, as
        CCA runs produce, are honoured for queries from B into A).
    sample_ids : (N,) array of str
    metric : ``euclidean`` or ``cosine``
    device : str
        ``cpu`` or ``cuda`` (torch tensors for ranks; flat and IVF FAISS
        indexes too where faiss-gpu is installed).
    config : IndexConfig, optional
        Index kind thresholds, memory budget and recall target.
    prebuilt : dict, optional
        Key → :class:`KeyIndex` already built over these vectors (loaded from
        a run folder); keys not in it are built.
    progress, cancel
        Reported to / checked while building approximate indexes (minutes at
        a million items: build on a worker thread).
    query_threads : int
        FAISS threads per single query: 1, since FAISS parallelises over
        queries and one query on two threads only waits at a barrier.

    Attributes
    ----------
    loaded : bool
        Whether :meth:`from_run` found the approximate indexes on disk.
    cache_error : str or None
        Why they could not be stored (read-only run folder, full disk).
    """

    def __init__(self, embeddings: Mapping[str, np.ndarray], sample_ids: np.ndarray, metric: str = "euclidean",
                 device: str = "cpu", config: Optional[IndexConfig] = None, *,
                 prebuilt: Optional[Mapping[str, KeyIndex]] = None, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None, query_threads: int = 1) -> None:
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
        self.metric = metric
        self.device = torch.device(device)
        self.config = config or IndexConfig()
        self.query_threads = query_threads
        self.loaded = False
        self.cache_error: Optional[str] = None
        self.sample_ids = np.asarray(sample_ids).astype(str)
        self._row: Optional[dict[str, int]] = None  # built on the first look-up (10M ids take seconds)
        arrays: dict[str, np.ndarray] = {}
        for key, value in embeddings.items():
            a = np.ascontiguousarray(value, dtype=np.float32)  # no copy for float32 input
            if a.ndim != 2 or len(a) != len(self.sample_ids):
                raise ValueError(f"embeddings[{key!r}] has shape {a.shape}, expected ({len(self.sample_ids)}, E)")
            if metric == "cosine":
                norm = np.linalg.norm(a, axis=1, keepdims=True)
                a = a / np.where(norm > 0, norm, 1.0)
            arrays[key] = a
        missing = [m for m in MODALITIES if m not in arrays]
        if missing:
            raise ValueError(f"embeddings lack modalities {missing}")
        self._items: dict[str, torch.Tensor] = {}
        self._sq: dict[str, torch.Tensor] = {}
        for key, a in arrays.items():
            t = torch.from_numpy(a).to(self.device)
            self._items[key] = t
            self._sq[key] = t.pow(2).sum(1)
        budget = (self.config.memory_budget_bytes or available_memory() // 2) // max(len(arrays), 1)
        self._index: dict[str, KeyIndex] = {}
        for key, a in arrays.items():
            ki = (prebuilt or {}).get(key)
            if ki is None or len(ki) != len(a) or ki.dim != a.shape[1]:
                ki = build_key_index(array_source(a, self.config.chunk_rows), len(a), a.shape[1], metric,
                                     self.config, budget=budget, queries=self._recall_queries(key, arrays),
                                     name=key, progress=progress, cancel=cancel)
            ki.index = to_device(ki.index, str(self.device))
            self._index[key] = ki

    def _recall_queries(self, key: str, arrays: Mapping[str, np.ndarray]) -> Optional[np.ndarray]:
        """Queries that tune and check ``key``'s approximate index: the other modalities' vectors in its space.

        Those are what the window asks (lyrics → audio …); for a pair-specific
        key ``A@B`` the queries are ``B@A``.  None (the index samples its own
        rows) when no other key shares the space.
        """
        if "@" in key:
            a, b = key.split("@", 1)
            others = [f"{b}@{a}"]
        else:
            others = [m for m in MODALITIES if m != key]
        others = [o for o in others if o in arrays and arrays[o].shape[1] == arrays[key].shape[1]]
        if not others or len(arrays[key]) <= self.config.exact_max_items and self.config.kind is None:
            return None
        per = -(-self.config.recall_queries // len(others))
        return np.concatenate([arrays[o][:: max(1, len(arrays[o]) // per)][:per] for o in others])

    @classmethod
    def from_run(cls, run, metric: str | None = None, device: str = "cpu", config: Optional[IndexConfig] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                 persist: bool = True) -> "RetrievalIndex":
        """The index over a run's saved embeddings (its own feature set).

        Approximate indexes are loaded from the run folder when their
        fingerprint matches the embeddings, else built and stored there
        (``persist``); a folder that cannot be written only costs a rebuild
        next time (:attr:`cache_error` says why).
        """
        emb, ids = run.embeddings(), run.sample_ids
        metric = metric or run.config.metric
        config = config or IndexConfig()
        run_dir = getattr(run, "run_dir", None)
        approximate = config.kind not in (None, "flat") or len(ids) > config.exact_max_items
        fp = retrieval_cache.fingerprint(emb, ids, metric, config) if persist and run_dir and approximate else None
        prebuilt = retrieval_cache.load(run_dir, fp, metric) if fp else None
        index = cls(emb, ids, metric, device, config, prebuilt=prebuilt, progress=progress, cancel=cancel)
        index.loaded = prebuilt is not None
        if fp and prebuilt is None:
            try:
                retrieval_cache.save(run_dir, fp, index._index)
            except WriteError as exc:
                index.cache_error = str(exc)
        return index

    @classmethod
    def from_indexes(cls, indexes: Mapping[str, KeyIndex], sample_ids: np.ndarray, metric: str,
                     query_threads: int = 1) -> "RetrievalIndex":
        """An index that only answers :meth:`query` (no vectors kept): for collections too large to hold twice.

        ``indexes`` may cover any keys; :meth:`vector`, :meth:`distances` and
        the rank methods raise ``ValueError`` since they need the vectors.
        """
        self = cls.__new__(cls)
        self.metric, self.device, self.config = metric, torch.device("cpu"), IndexConfig()
        self.query_threads, self.loaded, self.cache_error = query_threads, False, None
        self.sample_ids = np.asarray(sample_ids).astype(str)
        self._row = None
        self._items, self._sq, self._index = {}, {}, dict(indexes)
        return self

    # ---- what kind of index this is ---------------------------------------------------------
    @property
    def kinds(self) -> dict[str, str]:
        """Key → index kind (``flat``, ``hnsw``, ``ivfpq``, ``ivfpq-norefine``)."""
        return {k: v.kind for k, v in self._index.items()}

    @property
    def exact(self) -> bool:
        """Whether every query is answered exactly (all keys on flat indexes)."""
        return all(v.exact for v in self._index.values())

    @property
    def recall(self) -> Optional[float]:
        """The lowest recall@10 measured over the keys' approximate indexes; 1.0 when exact, None if unmeasured."""
        if self.exact:
            return 1.0
        values = [v.recall for v in self._index.values() if not v.exact]
        return None if any(r is None for r in values) else min(values)

    def status_text(self) -> str:
        """One phrase for the window's status: ``exact`` or ``approximate (hnsw), recall 0.98 measured``."""
        if self.exact:
            return "exact"
        kinds = ", ".join(sorted({v.kind for v in self._index.values() if not v.exact}))
        r = self.recall
        return f"approximate ({kinds}), " + ("recall not measured" if r is None else f"recall {r:.2f} measured")

    def memory_bytes(self) -> int:
        """Bytes held by the FAISS indexes (not counting the float32 vectors kept for ranks)."""
        return sum(v.memory_bytes() for v in self._index.values())

    def __len__(self) -> int:
        return len(self.sample_ids)

    def _key(self, target: str, source: str | None) -> str:
        if target not in MODALITIES:
            raise KeyError(f"unknown modality {target!r}; expected one of {MODALITIES}")
        if source is not None and f"{target}@{source}" in self._index:
            return f"{target}@{source}"
        return target

    def vector(self, sample_id: str, modality: str, partner: str | None = None) -> np.ndarray:
        """The stored embedding of one sample in one modality (unit length for cosine indexes)."""
        return self._vectors(self._key(modality, partner))[self.row(sample_id)].cpu().numpy()

    def row(self, sample_id: str) -> int:
        if self._row is None:
            self._row = {sid: i for i, sid in enumerate(self.sample_ids)}
        try:
            return self._row[str(sample_id)]
        except KeyError:
            raise KeyError(f"sample {sample_id!r} is not in the index") from None

    def _vectors(self, key: str) -> torch.Tensor:
        try:
            return self._items[key]
        except KeyError:
            raise ValueError("this index was made from FAISS indexes alone and keeps no vectors") from None

    def _query_tensor(self, vector: np.ndarray | torch.Tensor, dim: int) -> torch.Tensor:
        q = torch.as_tensor(np.asarray(vector) if not isinstance(vector, torch.Tensor) else vector,
                            dtype=torch.float32).to(self.device).reshape(-1)
        if q.shape[0] != dim:
            raise ValueError(f"query has dimension {q.shape[0]}, the index {dim}")
        if self.metric == "cosine":
            q = torch.nn.functional.normalize(q, dim=0)
        return q

    def distances(self, vector: np.ndarray | torch.Tensor, target: str, source: str | None = None) -> torch.Tensor:
        """Distances (N,) from ``vector`` to every item of ``target``."""
        key = self._key(target, source)
        items = self._vectors(key)
        q = self._query_tensor(vector, items.shape[1])
        if self.metric == "cosine":
            return 1.0 - items @ q
        return (q.pow(2).sum() - 2.0 * (items @ q) + self._sq[key]).clamp_min(0.0).sqrt()

    def query(self, vector: np.ndarray, target: str, k: int = 10, source: str | None = None) -> list[tuple[str, float]]:
        """Top-k items of ``target`` nearest to ``vector``: [(sample_id, distance)] ascending.

        Exact where the index is (:attr:`exact`); else the approximate index's
        answer, with the recall :attr:`recall` says.  ``source`` (optional)
        names the query's modality; only pair-specific spaces (CCA) need it.
        """
        key = self._key(target, source)
        ki = self._index[key]
        if isinstance(vector, torch.Tensor):
            vector = vector.detach().cpu().numpy()
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != ki.dim:
            raise ValueError(f"query has dimension {q.shape[1]}, the index {ki.dim}")
        k = max(0, min(int(k), len(ki)))
        if k == 0:
            return []
        dist, idx = ki.search(q, k, threads=self.query_threads)
        keep = idx[0] >= 0  # an approximate index may find fewer than k
        ids = self.sample_ids[idx[0][keep]]
        return [(str(s), float(v)) for s, v in zip(ids, dist[0][keep])]

    def query_sample(self, sample_id: str, source: str, target: str, k: int = 10) -> list[tuple[str, float]]:
        """Top-k items of ``target`` for the ``source`` item of ``sample_id``."""
        return self.query(self.vector(sample_id, source, target), target, k, source)

    def rank_of(self, sample_id: str, source: str, target: str) -> int:
        """1-based rank of the sample's own ``target`` item for its ``source`` query (ties count against)."""
        d = self.distances(self.vector(sample_id, source, target), target, source)
        return int((d <= d[self.row(sample_id)]).sum())

    def partner_rank_cap(self, exact_max_items: Optional[int] = None,
                         top_k: int = PARTNER_TOP_K) -> Optional[int]:
        """The value that stands for "beyond the top K" in :meth:`partner_ranks` (K + 1), or None when exact."""
        limit = EXACT_RANKS_MAX_ITEMS if exact_max_items is None else exact_max_items
        return int(top_k) + 1 if len(self) > limit and len(self) > top_k else None

    def partner_ranks(self, source: str, target: str, batch: int = 512, *, exact_max_items: Optional[int] = None,
                      top_k: int = PARTNER_TOP_K, progress: Optional[ProgressCallback] = None,
                      cancel: Optional[CancelToken] = None) -> np.ndarray:
        """1-based rank of every sample's own ``target`` item for its ``source`` query, (N,) int.

        Up to ``exact_max_items`` items (default :data:`EXACT_RANKS_MAX_ITEMS`)
        the same rank as :meth:`rank_of` (ties count against), for all samples
        at once: ``batch`` queries per matrix product.  Above it, the rank
        within each query's top ``top_k`` of the FAISS index
        (:meth:`_top_k_ranks`); a partner not among them gets ``top_k + 1``
        (:meth:`partner_rank_cap` says whether that applies).
        """
        items = self._vectors(self._key(target, source))
        queries = self._vectors(self._key(source, target))
        if items.shape[1] != queries.shape[1]:
            raise ValueError(f"{source} and {target} live in different spaces")
        if self.partner_rank_cap(exact_max_items, top_k) is not None:
            return self._top_k_ranks(source, target, int(top_k), progress, cancel)
        n = len(items)
        out = np.empty(n, dtype=np.int64)
        sq = self._sq[self._key(target, source)]
        for a in range(0, n, batch):
            q = queries[a:a + batch]
            if self.metric == "cosine":
                d = 1.0 - q @ items.T
            else:
                d = (q.pow(2).sum(1, keepdim=True) - 2.0 * (q @ items.T) + sq[None, :]).clamp_min(0.0).sqrt()
            rows = torch.arange(len(q), device=self.device)
            own = d[rows, a + rows]
            out[a:a + len(q)] = (d <= own[:, None]).sum(1).cpu().numpy()
            report(progress, "partner ranks", a + len(q), n, f"{source} → {target}")
            if cancel is not None:
                cancel.raise_if_set()
        return out

    def _top_k_ranks(self, source: str, target: str, k: int, progress: Optional[ProgressCallback],
                     cancel: Optional[CancelToken]) -> np.ndarray:
        """Partner ranks from each query's top ``k`` of the FAISS index, ``k + 1`` beyond; O(N k) memory.

        The partner's own distance is computed exactly; its rank is one plus
        the other items of the top ``k`` at most that far (ties count
        against, as in the exact ranks), so a partner that an approximate
        index missed is still ranked when everything nearer was found.
        Where the index is exact the ranks equal the exact ones for every
        partner within the top ``k``.  Approximate indexes rank with their
        measured recall.
        """
        key_t, key_s = self._key(target, source), self._key(source, target)
        ki = self._index[key_t]
        items, queries = self._vectors(key_t), self._vectors(key_s)
        n = len(items)
        out = np.empty(n, dtype=np.int64)
        for a in range(0, n, RANK_CHUNK):
            b = min(n, a + RANK_CHUNK)
            q = queries[a:b]
            dist, idx = ki.search(q.cpu().numpy(), k)
            if self.metric == "cosine":
                own = (1.0 - (q * items[a:b]).sum(1)).cpu().numpy()
            else:
                own = (q - items[a:b]).pow(2).sum(1).sqrt().cpu().numpy()
            rows = np.arange(a, b)[:, None]
            found = idx >= 0
            # FAISS's distances and these differ in the last bits: the partner itself is never counted twice
            closer = found & (idx != rows) & (dist <= own[:, None])
            beyond = found.sum(1) == k
            beyond &= dist[:, -1] <= own  # the whole top k is at most as far: the partner ranks after k
            beyond &= ~(idx == rows).any(1)
            out[a:b] = np.where(beyond, k + 1, 1 + closer.sum(1))
            report(progress, "partner ranks", b, n, f"{source} → {target} (top {k})")
            if cancel is not None:
                cancel.raise_if_set()
        return out
