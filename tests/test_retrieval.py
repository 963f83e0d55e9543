"""RetrievalIndex: exact top-k against brute force, ranks consistent with evaluation (FAISS in test_retrieval_faiss)."""
from __future__ import annotations

import numpy as np
import pytest

from model.search.evaluation import ranks
from model.search.retrieval import RetrievalIndex


@pytest.fixture()
def data():
    rng = np.random.default_rng(3)
    emb = {m: rng.standard_normal((200, 16)).astype(np.float32) for m in ("audio", "sheet", "lyrics")}
    ids = np.array([f"id{i}" for i in range(200)])
    return emb, ids


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_query_is_exact_top_k(data, metric):
    emb, ids = data
    index = RetrievalIndex(emb, ids, metric=metric)
    q = np.random.default_rng(9).standard_normal(16).astype(np.float32)
    got = index.query(q, "sheet", k=10)
    items = emb["sheet"].astype(np.float64)
    if metric == "euclidean":
        d = np.sqrt(((items - q) ** 2).sum(1))
    else:
        d = 1 - items @ q / np.linalg.norm(items, axis=1) / np.linalg.norm(q)
    order = np.argsort(d)[:10]
    assert [s for s, _ in got] == list(ids[order])
    assert np.allclose([v for _, v in got], d[order], atol=1e-4)
    assert all(a[1] <= b[1] for a, b in zip(got, got[1:]))


def test_query_sample_and_rank_of(data):
    emb, ids = data
    emb = dict(emb)
    emb["sheet"] = emb["audio"] + 0.01  # every audio's own sheet is nearest
    index = RetrievalIndex(emb, ids)
    top = index.query_sample("id7", "audio", "sheet", k=3)
    assert top[0][0] == "id7" and len(top) == 3
    assert index.rank_of("id7", "audio", "sheet") == 1
    r = ranks(emb["lyrics"], emb["audio"])
    for i in (0, 5, 17):
        assert index.rank_of(f"id{i}", "lyrics", "audio") == r[i]


def test_errors(data):
    emb, ids = data
    index = RetrievalIndex(emb, ids)
    with pytest.raises(KeyError):
        index.query_sample("nope", "audio", "sheet")
    with pytest.raises(KeyError):
        index.query(np.zeros(16), "video")
    with pytest.raises(ValueError):
        index.query(np.zeros(5), "audio")
    with pytest.raises(ValueError):
        RetrievalIndex({"audio": emb["audio"]}, ids)
    assert len(index.query(np.zeros(16), "audio", k=1000)) == 200


def test_pair_specific_views():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50, 4)).astype(np.float32)
    emb = {"audio": rng.standard_normal((50, 4)), "sheet": rng.standard_normal((50, 4)),
           "lyrics": rng.standard_normal((50, 4)), "lyrics@audio": base, "audio@lyrics": base}
    index = RetrievalIndex(emb, np.array([str(i) for i in range(50)]))
    assert index.rank_of("3", "lyrics", "audio") == 1
    assert index.query_sample("3", "audio", "lyrics", k=1)[0][0] == "3"


def test_larger_exact_index_matches_brute_force():
    # (was: the float16 screen is exact; that path is gone, FAISS serves these sizes, docs/scaling.md)
    from model.search.faiss_index import IndexConfig
    rng = np.random.default_rng(5)
    emb = {m: rng.standard_normal((5000, 32)).astype(np.float32) for m in ("audio", "sheet", "lyrics")}
    ids = np.array([str(i) for i in range(5000)])
    index = RetrievalIndex(emb, ids, config=IndexConfig(kind="flat"))
    assert index.exact
    for q in rng.standard_normal((20, 32)).astype(np.float32):
        got = index.query(q, "audio", k=10)
        d = np.sqrt(((emb["audio"].astype(np.float64) - q) ** 2).sum(1))
        order = np.argsort(d)[:10]
        assert [s for s, _ in got] == list(ids[order])
        assert np.allclose([v for _, v in got], d[order], atol=1e-4)
