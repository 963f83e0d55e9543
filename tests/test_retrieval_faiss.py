"""RetrievalIndex on FAISS: exact flat vs numpy, approximate recall, the stored index, torch + faiss in one process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from model.search.faiss_index import IndexConfig, choose_kind, estimate_bytes, recall_at_k
from model.progress import CancelToken, Cancelled
from model.search.retrieval import RetrievalIndex

MODS = ("audio", "sheet", "lyrics")
# Recall@10 an approximate index must reach on the small clustered set below
# (HNSW reaches ≈ 1.0 there, IVF-PQ with its 8-bit re-ranking ≈ 0.98).
RECALL_FLOOR = 0.9


def clustered(n: int, d: int, seed: int, centres: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.random.default_rng(99).standard_normal((centres, d)).astype(np.float32) * 2.0
    return (c[rng.integers(0, centres, n)] + rng.standard_normal((n, d)).astype(np.float32) * 0.7).astype(np.float32)


def brute(items: np.ndarray, q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    items, q = items.astype(np.float64), q.astype(np.float64)
    if metric == "euclidean":
        d = np.sqrt(((items - q) ** 2).sum(1))
    else:
        d = 1 - items @ q / np.linalg.norm(items, axis=1) / np.linalg.norm(q)
    order = np.argsort(d, kind="stable")[:k]
    return order, d[order]


@pytest.fixture(scope="module")
def small():
    emb = {m: clustered(3000, 32, i) for i, m in enumerate(MODS)}
    return emb, np.array([f"s{i}" for i in range(3000)])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_flat_index_equals_numpy_brute_force(small, metric):
    emb, ids = small
    index = RetrievalIndex(emb, ids, metric=metric)
    assert index.kinds == {m: "flat" for m in MODS} and index.exact and index.status_text() == "exact"
    for q in clustered(20, 32, 7):
        got = index.query(q, "audio", k=10, source="lyrics")
        order, dist = brute(emb["audio"], q, 10, metric)
        assert [s for s, _ in got] == list(ids[order])
        assert np.allclose([v for _, v in got], dist, atol=1e-4)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_recall_above_floor_and_reported(small, kind):
    emb, ids = small
    index = RetrievalIndex(emb, ids, config=IndexConfig(kind=kind, recall_queries=200))
    assert set(index.kinds.values()) == {kind} and not index.exact
    assert index.recall is not None and index.recall >= RECALL_FLOOR
    assert index.status_text().startswith(f"approximate ({kind}), recall ")
    assert index.status_text().endswith(" measured")
    queries = clustered(60, 32, 11)
    found = np.array([[int(s[1:]) for s, _ in index.query(q, "sheet", k=10)] for q in queries])
    truth = np.array([brute(emb["sheet"], q, 10, "euclidean")[0] for q in queries])
    assert recall_at_k(found, truth) >= RECALL_FLOOR
    # ranks stay exact whatever the index kind
    assert index.rank_of("s5", "audio", "audio") == 1


def test_kind_follows_size_and_memory_budget():
    cfg = IndexConfig(exact_max_items=1000)
    assert choose_kind(1000, 128, cfg, budget=0) == "flat"
    hnsw = estimate_bytes("hnsw", 10**6, 128, cfg)
    assert choose_kind(10**6, 128, cfg, budget=hnsw) == "hnsw"
    assert choose_kind(10**6, 128, cfg, budget=hnsw - 1) == "ivfpq"
    assert choose_kind(10**6, 128, cfg, budget=estimate_bytes("ivfpq", 10**6, 128, cfg) - 1) == "ivfpq-norefine"
    # a budget too small for HNSW at this size picks IVF-PQ in the index itself
    emb = {m: clustered(3000, 32, i) for i, m in enumerate(MODS)}
    index = RetrievalIndex(emb, np.arange(3000).astype(str),
                           config=IndexConfig(exact_max_items=1000, memory_budget_bytes=3 * 600_000))
    assert set(index.kinds.values()) == {"ivfpq"}


def test_build_reports_progress_and_can_be_cancelled(small):
    emb, ids = small
    seen = []
    RetrievalIndex(emb, ids, config=IndexConfig(kind="hnsw", chunk_rows=1000), progress=seen.append)
    assert {p.stage for p in seen} == {f"index {m}" for m in MODS}
    assert any(p.done == p.total == 3000 for p in seen)
    cancel = CancelToken()
    cancel.set()
    with pytest.raises(Cancelled):
        RetrievalIndex(emb, ids, config=IndexConfig(kind="hnsw"), cancel=cancel)


class FakeRun:
    """What RetrievalIndex.from_run reads of a run."""

    def __init__(self, run_dir: Path, emb: dict, ids: np.ndarray) -> None:
        self.run_dir, self._emb, self.sample_ids = run_dir, emb, ids
        self.config = SimpleNamespace(metric="euclidean")

    def embeddings(self) -> dict:
        return dict(self._emb)


def test_stored_index_round_trip_and_stale_rebuild(small, tmp_path):
    emb, ids = small
    cfg = IndexConfig(exact_max_items=1000)  # 3,000 items: approximate, so stored
    first = RetrievalIndex.from_run(FakeRun(tmp_path, emb, ids), config=cfg)
    assert not first.loaded and first.cache_error is None
    files = sorted(p.name for p in tmp_path.glob("retrieval-*"))
    assert len(files) == 4 and sum(f.endswith(".json") for f in files) == 1
    second = RetrievalIndex.from_run(FakeRun(tmp_path, emb, ids), config=cfg)
    assert second.loaded and second.kinds == first.kinds and second.recall == first.recall
    q = clustered(5, 32, 3)
    for v in q:
        assert first.query(v, "audio") == second.query(v, "audio")
    # new embeddings (the run was retrained): the stored index is stale, rebuilt and replaced
    changed = dict(emb, audio=emb["audio"] + 1.0)
    third = RetrievalIndex.from_run(FakeRun(tmp_path, changed, ids), config=cfg)
    assert not third.loaded
    assert third.query(changed["audio"][42], "audio", k=1)[0][0] == "s42"
    assert len(list(tmp_path.glob("retrieval-*"))) == 4 and not set(files) & {p.name for p in tmp_path.glob("*")}
    # a damaged index file is rebuilt, not an error
    victim = next(tmp_path.glob("retrieval-*-audio.faiss"))
    victim.write_bytes(b"not an index")
    fourth = RetrievalIndex.from_run(FakeRun(tmp_path, changed, ids), config=cfg)
    assert not fourth.loaded and fourth.query(changed["audio"][42], "audio", k=1)[0][0] == "s42"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a folder the user cannot write")
def test_read_only_run_folder_still_opens(small, tmp_path):
    emb, ids = small
    tmp_path.chmod(0o555)
    try:
        index = RetrievalIndex.from_run(FakeRun(tmp_path, emb, ids), config=IndexConfig(exact_max_items=1000))
    finally:
        tmp_path.chmod(0o755)
    assert index.cache_error is not None and str(tmp_path) in index.cache_error
    assert index.query(emb["sheet"][3], "sheet", k=1)[0][0] == "s3"


OPENMP_SCRIPT = textwrap.dedent("""
    import sys
    if sys.argv[1] == "torch-first":
        import torch, faiss
    else:
        import faiss, torch
    import numpy as np
    from model.search.retrieval import RetrievalIndex
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((4000, 64)).astype(np.float32)
    a = torch.from_numpy(x)
    for _ in range(3):  # interleave the two runtimes' thread pools
        prod = a[:500] @ a.T
        index = faiss.IndexFlatL2(64)
        index.add(x)
        d, i = index.search(x[:100], 5)
        assert (i[:, 0] == np.arange(100)).all()
    emb = {m: x for m in ("audio", "sheet", "lyrics")}
    assert RetrievalIndex(emb, np.arange(4000).astype(str)).partner_ranks("audio", "sheet").max() == 1
    print("ok", prod.shape[1])
""")


@pytest.mark.parametrize("order", ["torch-first", "faiss-first"])
def test_torch_and_faiss_share_a_process(order):
    """torch and faiss each bring an OpenMP runtime (two libgomp copies in the pip wheels); both must work.

    The app imports torch first (the window's worker), then faiss (the index);
    the reverse order is checked too.  A subprocess, so a crash or a deadlock
    fails this test instead of the test run.
    """
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", OPENMP_SCRIPT, order], cwd=root, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(root)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok 4000"
