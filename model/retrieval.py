"""Exact top-k retrieval over each modality's embeddings (torch, no approximation).

The GUI and ``ugaar query`` both call :class:`RetrievalIndex`.  Distances are
Euclidean (``‖q‖² − 2 q·v + ‖v‖²`` with the items' squared norms cached,
then ``sqrt``) or cosine (``1 − cos``, items normalised once); the top k
come from ``torch.topk`` on one matrix–vector product per query, which is
exact and fast enough for a million items (see docs/benchmarks.md).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

MODALITIES = ("audio", "sheet", "lyrics")


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
        ``cpu`` or ``cuda``.
    """

    # Above this many items, queries screen candidates with a float16 copy first
    # (half the memory traffic), then re-rank them exactly in float32.
    HALF_SCREEN_MIN = 200_000
    # Relative error bound of a float16 dot product with float32 accumulation is
    # ≈ 2⁻¹⁰ |v|·|q|; 2⁻⁸ leaves a 4× margin.
    HALF_REL_ERROR = 2.0 ** -8

    def __init__(self, embeddings: Mapping[str, np.ndarray], sample_ids: np.ndarray, metric: str = "euclidean",
                 device: str = "cpu", half_screen: bool | None = None) -> None:
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
        self.metric = metric
        self.device = torch.device(device)
        self.sample_ids = np.asarray(sample_ids).astype(str)
        self._row = {sid: i for i, sid in enumerate(self.sample_ids)}
        self._items: dict[str, torch.Tensor] = {}
        self._sq: dict[str, torch.Tensor] = {}
        for key, value in embeddings.items():
            t = torch.as_tensor(np.ascontiguousarray(value), dtype=torch.float32).to(self.device)
            if t.ndim != 2 or len(t) != len(self.sample_ids):
                raise ValueError(f"embeddings[{key!r}] has shape {tuple(t.shape)}, expected ({len(self.sample_ids)}, E)")
            if metric == "cosine":
                t = torch.nn.functional.normalize(t, dim=1)
            self._items[key] = t
            self._sq[key] = t.pow(2).sum(1)
        use_half = (len(self.sample_ids) >= self.HALF_SCREEN_MIN) if half_screen is None else half_screen
        self._half: dict[str, torch.Tensor] = {}
        self._max_norm: dict[str, float] = {}
        self.fallbacks = 0  # queries whose float16 screen could not certify the exact top-k
        for key, t in self._items.items():
            self._max_norm[key] = float(self._sq[key].max().sqrt()) if len(t) else 0.0
            if use_half and len(t) and self._max_norm[key] < 100.0:
                # [v, ‖v‖², 0…] so that one float16 product with [−2q, 1, 0…] is the score
                width = (t.shape[1] + 1 + 7) // 8 * 8
                aug = torch.zeros((len(t), width), dtype=torch.float16, device=self.device)
                aug[:, : t.shape[1]] = t.half()
                aug[:, t.shape[1]] = self._sq[key].half()
                self._half[key] = aug
        missing = [m for m in MODALITIES if m not in self._items]
        if missing:
            raise ValueError(f"embeddings lack modalities {missing}")

    @classmethod
    def from_run(cls, run, metric: str | None = None, device: str = "cpu") -> "RetrievalIndex":
        """The index over a run's saved embeddings (its own feature set)."""
        return cls(run.embeddings(), run.sample_ids, metric or run.config.metric, device)

    def __len__(self) -> int:
        return len(self.sample_ids)

    def _key(self, target: str, source: str | None) -> str:
        if target not in MODALITIES:
            raise KeyError(f"unknown modality {target!r}; expected one of {MODALITIES}")
        if source is not None and f"{target}@{source}" in self._items:
            return f"{target}@{source}"
        return target

    def vector(self, sample_id: str, modality: str, partner: str | None = None) -> np.ndarray:
        """The stored embedding of one sample in one modality."""
        return self._items[self._key(modality, partner)][self.row(sample_id)].cpu().numpy()

    def row(self, sample_id: str) -> int:
        try:
            return self._row[str(sample_id)]
        except KeyError:
            raise KeyError(f"sample {sample_id!r} is not in the index") from None

    def _euclidean_top_k(self, key: str, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-k of ‖v‖² − 2 v·q (ranks like ‖q − v‖²).

        Large indexes first screen with float16 (half the bytes to read), take
        m ≫ k candidates, re-score them in float32 and certify the result: every
        item outside the candidates has a float32 score ≥ its float16 score −
        2·ε·|v|max·|q| ≥ the m-th screened score − that margin; when this bound
        is not above the k-th exact score, the query falls back to float32.
        """
        items, sq = self._items[key], self._sq[key]
        half = self._half.get(key)
        n = len(items)
        m = max(16 * k, 256)
        if half is not None and m < n and k > 0:
            qa = torch.zeros(half.shape[1], dtype=torch.float16, device=self.device)
            qa[: len(q)] = (-2.0 * q).half()
            qa[len(q)] = 1.0
            approx = half @ qa
            cand_scores, cand = torch.topk(approx, m, largest=False, sorted=True)
            exact = torch.addmv(sq[cand], items[cand], q, alpha=-2.0)
            values, pos = torch.topk(exact, k, largest=False, sorted=True)
            vmax, qn = self._max_norm[key], float(q.norm())
            margin = 2.0 * self.HALF_REL_ERROR * (2.0 * vmax * qn + vmax * vmax)
            if float(values[-1]) <= float(cand_scores[-1]) - margin:
                return values, cand[pos]
            self.fallbacks += 1
        # one fused pass over the items
        score = torch.addmv(sq, items, q, alpha=-2.0)
        return torch.topk(score, k, largest=False, sorted=True)

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
        items = self._items[key]
        q = self._query_tensor(vector, items.shape[1])
        if self.metric == "cosine":
            return 1.0 - items @ q
        return (q.pow(2).sum() - 2.0 * (items @ q) + self._sq[key]).clamp_min(0.0).sqrt()

    def query(self, vector: np.ndarray, target: str, k: int = 10, source: str | None = None) -> list[tuple[str, float]]:
        """Exact top-k items of ``target`` nearest to ``vector``: [(sample_id, distance)] ascending.

        ``source`` (optional) names the query's modality; only pair-specific
        spaces (CCA) need it.
        """
        key = self._key(target, source)
        items = self._items[key]
        q = self._query_tensor(vector, items.shape[1])
        k = max(0, min(int(k), len(items)))
        if self.metric == "cosine":
            score = 1.0 - items @ q
            values, idx = torch.topk(score, k, largest=False, sorted=True)
        else:
            values, idx = self._euclidean_top_k(key, q, k)
            values = (values + q.pow(2).sum()).clamp_min(0.0).sqrt()
        ids = self.sample_ids[idx.cpu().numpy()]
        return [(str(s), float(v)) for s, v in zip(ids, values.cpu().numpy())]

    def query_sample(self, sample_id: str, source: str, target: str, k: int = 10) -> list[tuple[str, float]]:
        """Top-k items of ``target`` for the ``source`` item of ``sample_id``."""
        return self.query(self.vector(sample_id, source, target), target, k, source)

    def rank_of(self, sample_id: str, source: str, target: str) -> int:
        """1-based rank of the sample's own ``target`` item for its ``source`` query (ties count against)."""
        d = self.distances(self.vector(sample_id, source, target), target, source)
        return int((d <= d[self.row(sample_id)]).sum())

    def partner_ranks(self, source: str, target: str, batch: int = 512) -> np.ndarray:
        """1-based rank of every sample's own ``target`` item for its ``source`` query, (N,) int.

        The same rank as :meth:`rank_of` (ties count against), for all samples
        at once: ``batch`` queries per matrix product.
        """
        items = self._items[self._key(target, source)]
        queries = self._items[self._key(source, target)]
        if items.shape[1] != queries.shape[1]:
            raise ValueError(f"{source} and {target} live in different spaces")
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
        return out
