"""Retrieval at scale: FAISS index build, memory, top-10 latency in two modalities, recall@10 against exact.

Synthetic 128-d vectors from a Gaussian mixture (4,096 centres, each point
its centre plus a 32-d correlated spread plus isotropic noise, so neighbours
are neither trivially separated nor uniformly random), generated chunk by
chunk from a fixed seed, so 10M items are never all in memory: the index is
filled chunk by chunk and exact ground truth is a chunked exact search.  Two
target modalities ("audio", "sheet") get one index each; each timed query
asks both for their top 10 through ``RetrievalIndex.query`` with a fresh
vector from the same mixture ("lyrics").  Recall@10 is over the timed
queries, against the exact top 10.

Goals (issue 12): 15k exact and ≤ 2 ms; 1M ≤ 5 ms with recall@10 ≥ 0.95;
10M in ≤ 24 GB answering in ≤ 20 ms.

``--compare`` adds, on the same data and queries, the exact FAISS flat index
and the torch paths this project used before FAISS (float32 ``addmv`` +
``topk``, and the certified float16 screen above 200k items), for sizes up
to ``--compare-max``.

    python benchmarks/retrieval.py [--sizes 15000 1000000 10000000] [--compare] [--threads 2]

Peak memory: about the index (≈ 3.4 GB at 10M with IVF-PQ) plus one chunk
and the training sample; ``--compare`` holds the raw vectors (N × 512 B per
modality, with a float16 copy) and is limited to ``--compare-max``.
"""
from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from model.search.faiss_index import (IndexConfig, KeyIndex, build_key_index, exact_top_k, faiss, prepare,
                                      recall_at_k)
from model.search.retrieval import RetrievalIndex

GOALS = {15_000: "exact, ≤ 2 ms", 1_000_000: "≤ 5 ms, recall ≥ 0.95", 10_000_000: "≤ 24 GB, ≤ 20 ms"}
MODALITY_SEED = {"audio": 1, "sheet": 2, "lyrics": 3, "tune": 4}


@dataclass(frozen=True)
class Mixture:
    """A reproducible clustered data set, generated in chunks.

    Parameters
    ----------
    dim, centres, spread_dim : int
        Dimension, mixture components, rank of the correlated spread.
    spread, noise : float
        Scale of the correlated spread and of the isotropic noise
        (centres are standard normal).
    seed : int
    chunk_rows : int
    """

    dim: int = 128
    centres: int = 4096
    spread_dim: int = 32
    spread: float = 0.8
    noise: float = 0.25
    seed: int = 0
    chunk_rows: int = 250_000

    def _basis(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        centres = rng.standard_normal((self.centres, self.dim), dtype=np.float32)
        w = (rng.standard_normal((self.spread_dim, self.dim)) / np.sqrt(self.spread_dim)).astype(np.float32)
        return centres, w

    def chunk(self, modality: str, i: int, rows: int, basis) -> np.ndarray:
        centres, w = basis
        rng = np.random.default_rng([self.seed, MODALITY_SEED[modality], i])
        x = centres[rng.integers(0, self.centres, rows)]
        x += self.spread * (rng.standard_normal((rows, self.spread_dim), dtype=np.float32) @ w)
        x += self.noise * rng.standard_normal((rows, self.dim), dtype=np.float32)
        return x

    def source(self, modality: str, n: int) -> Callable[[], Iterator[np.ndarray]]:
        """A re-iterable chunk source of ``n`` rows of ``modality`` (the same rows every time)."""
        basis = self._basis()

        def chunks() -> Iterator[np.ndarray]:
            for i, a in enumerate(range(0, n, self.chunk_rows)):
                yield self.chunk(modality, i, min(self.chunk_rows, n - a), basis)
        return chunks

    def array(self, modality: str, n: int) -> np.ndarray:
        return np.concatenate(list(self.source(modality, n)()))


class TorchExact:
    """The torch search this project used before FAISS (kept here to compare; removed from model/).

    Euclidean only.  ``half=True`` is its float16 screen: take the 256 best
    by a float16 product with [v, ‖v‖²], re-score them in float32, and fall
    back to the full float32 pass when a certified bound does not hold, so
    it is exact either way.
    """

    HALF_REL_ERROR = 2.0 ** -8

    def __init__(self, x: np.ndarray, half: bool) -> None:
        self.items = torch.from_numpy(x)
        self.sq = self.items.pow(2).sum(1)
        self.max_norm = float(self.sq.max().sqrt())
        self.fallbacks = 0
        self.half = None
        if half:
            width = (x.shape[1] + 1 + 7) // 8 * 8
            aug = torch.zeros((len(x), width), dtype=torch.float16)
            aug[:, : x.shape[1]] = self.items.half()
            aug[:, x.shape[1]] = self.sq.half()
            self.half = aug

    def memory_bytes(self) -> int:
        return self.items.numel() * 4 + self.sq.numel() * 4 + (self.half.numel() * 2 if self.half is not None else 0)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        qt = torch.from_numpy(q.reshape(-1))
        if self.half is not None:
            m = max(16 * k, 256)
            qa = torch.zeros(self.half.shape[1], dtype=torch.float16)
            qa[: len(qt)] = (-2.0 * qt).half()
            qa[len(qt)] = 1.0
            cand_scores, cand = torch.topk(self.half @ qa, m, largest=False, sorted=True)
            exact = torch.addmv(self.sq[cand], self.items[cand], qt, alpha=-2.0)
            values, pos = torch.topk(exact, k, largest=False, sorted=True)
            margin = 2.0 * self.HALF_REL_ERROR * (2.0 * self.max_norm * float(qt.norm()) + self.max_norm ** 2)
            if float(values[-1]) <= float(cand_scores[-1]) - margin:
                return cand[pos].numpy()
            self.fallbacks += 1
        return torch.topk(torch.addmv(self.sq, self.items, qt, alpha=-2.0), k, largest=False).indices.numpy()


def latency(search: Callable[[np.ndarray], list], queries: np.ndarray, warmup: int = 3) -> tuple[float, float, list]:
    """Median and p90 ms of ``search`` over ``queries`` (after ``warmup`` untimed ones), and its answers."""
    for q in queries[:warmup]:
        search(q)
    times, answers = [], []
    for q in queries:
        t = time.perf_counter()
        answers.append(search(q))
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times)), 1000 * float(np.percentile(times, 90)), answers


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def run_size(n: int, data: Mixture, args, print_row: Callable[..., None]) -> None:
    targets = ("audio", "sheet")
    queries = data.array("lyrics", args.queries + 3)  # fresh vectors, 3 for warm-up
    tune = data.array("tune", 400)  # tuning queries, disjoint from the timed ones
    config = IndexConfig(memory_budget_bytes=int(args.memory_gb * 2 ** 30), kind=args.kind, seed=0)
    sources = {t: data.source(t, n) for t in targets}
    truth = {t: exact_top_k(sources[t], prepare(queries, args.metric), 10, args.metric) for t in targets}
    ids = np.arange(n).astype(str)
    t0 = time.perf_counter()
    built: dict[str, KeyIndex] = {}
    for t in targets:
        built[t] = build_key_index(sources[t], n, data.dim, args.metric, config, budget=config.memory_budget_bytes // 2,
                                   queries=tune, name=t)
    build_s = time.perf_counter() - t0
    index = RetrievalIndex.from_indexes(built, ids, args.metric)

    def both(q):
        return [index.query(q, t, k=10, source="lyrics") for t in targets]
    med, p90, answers = latency(both, queries)
    rec = np.mean([recall_at_k(np.array([[int(s) for s, _ in a[j]] for a in answers]), truth[t])
                   for j, t in enumerate(targets)])
    kind = "/".join(sorted({b.kind for b in built.values()}))
    param = "" if kind == "flat" else f" ({'ef' if kind == 'hnsw' else 'nprobe'} {max(b.param for b in built.values())})"
    print_row(n, f"FAISS {kind}{param}", build_s, index.memory_bytes(), med, p90, rec, GOALS.get(n, "–"))
    del index, built
    if not args.compare or n > args.compare_max or args.metric != "euclidean":
        return
    arrays = {t: data.array(t, n) for t in targets}
    for label, make in (("FAISS flat (exact)", lambda x: _flat(x)),
                        ("torch float32 (before)", lambda x: TorchExact(x, half=False)),
                        ("torch float16 screen (before)", lambda x: TorchExact(x, half=True))):
        t0 = time.perf_counter()
        idx = {t: make(arrays[t]) for t in targets}
        build_s = time.perf_counter() - t0
        med, p90, answers = latency(lambda q: [idx[t].search(q[None] if "FAISS" in label else q, 10)
                                               for t in targets], queries)
        rec = np.mean([recall_at_k(np.array([np.asarray(a[j]).reshape(-1) for a in answers]), truth[t])
                       for j, t in enumerate(targets)])
        extra = f", {sum(i.fallbacks for i in idx.values())} fallbacks" if "screen" in label else ""
        print_row(n, label + extra, build_s, sum(i.memory_bytes() for i in idx.values()), med, p90, rec, "")
    del arrays


class _flat:
    """An exact FAISS flat index searched like RetrievalIndex does (one thread per query)."""

    def __init__(self, x: np.ndarray) -> None:
        self.index = faiss.IndexFlatL2(x.shape[1])
        self.index.add(x)
        self.fallbacks = 0

    def memory_bytes(self) -> int:
        return self.index.ntotal * self.index.d * 4

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        from model.search.faiss_index import omp_threads
        with omp_threads(1):
            return self.index.search(q, k)[1][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15_000, 1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=200, help="timed queries per size (recall is over these)")
    parser.add_argument("--threads", type=int, default=2, help="threads for building (queries use one)")
    parser.add_argument("--metric", choices=["euclidean", "cosine"], default="euclidean")
    parser.add_argument("--memory-gb", type=float, default=12.0,
                        help="memory budget of the two indexes together; chooses HNSW or IVF-PQ")
    parser.add_argument("--kind", choices=["flat", "hnsw", "ivfpq", "ivfpq-norefine"], default=None,
                        help="force an index kind (default: chosen by size and budget)")
    parser.add_argument("--compare", action="store_true",
                        help="also time exact FAISS flat and the former torch float32 / float16-screen paths")
    parser.add_argument("--compare-max", type=int, default=1_000_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    data = Mixture()
    print(f"faiss {faiss.__version__}, torch {torch.__version__}, {args.threads} build threads, 1 query thread, "
          f"metric {args.metric}, {data.dim}-d mixture of {data.centres} centres, {args.queries} queries, "
          f"top-10 in audio + sheet per query, budget {args.memory_gb:g} GB")
    print("| N | index | build (s) | memory (MB) | median (ms) | p90 (ms) | recall@10 | goal |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")

    def print_row(n, label, build_s, mem, med, p90, rec, goal):
        print(f"| {n:,} | {label} | {build_s:.1f} | {mem / 2 ** 20:,.0f} | {med:.2f} | {p90:.2f} | {rec:.3f} | {goal} |",
              flush=True)
    for n in args.sizes:
        run_size(n, data, args, print_row)
    print(f"peak RSS {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
