"""Partner ranks of large runs from the FAISS index's top K (above a threshold, lowered here).

A clustered synthetic set: each sample's partner is its own vector plus
noise of varying strength, so some partners rank first, some within the top
K and some far beyond it.  Below the threshold the ranks stay the exact
N × N ones (tests/test_retrieval.py covers their values).
"""
from __future__ import annotations

import numpy as np
import pytest

from model.search.partner_rank import (DIRECTIONS, format_rank, median_partner_ranks, partner_rank_table,
                                       rank_cap)
from model.progress import Cancelled, CancelToken
from model.search.retrieval import EXACT_RANKS_MAX_ITEMS, PARTNER_TOP_K, RetrievalIndex

N, DIM, CLUSTERS, K = 3000, 24, 30, 20
LOWERED = 1000  # below N: the top-K path


def _clustered(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM)) * 4.0
    base = centres[rng.integers(0, CLUSTERS, N)] + rng.normal(size=(N, DIM))
    # per-sample noise from tiny to larger than a cluster: ranks from 1 to far beyond K
    noise = rng.uniform(0.01, 2.0, size=(N, 1))
    return {m: (base + noise * rng.normal(size=(N, DIM))).astype(np.float32) for m in ("audio", "sheet", "lyrics")}


@pytest.fixture(scope="module", params=["euclidean", "cosine"])
def index(request):
    emb = _clustered()
    return RetrievalIndex(emb, np.array([f"s{i}" for i in range(N)]), request.param)


def test_top_k_ranks_equal_the_exact_ones_within_k_and_k_plus_1_beyond(index):
    assert index.partner_rank_cap() is None and index.partner_rank_cap(LOWERED, K) == K + 1
    for source, target in (("audio", "sheet"), ("lyrics", "audio")):
        exact = index.partner_ranks(source, target)  # N ≤ the default threshold: exact
        seen = []
        approx = index.partner_ranks(source, target, exact_max_items=LOWERED, top_k=K, progress=seen.append)
        within = exact <= K
        assert 0.2 < within.mean() < 0.9, within.mean()  # both cases well represented
        assert np.array_equal(approx[within], exact[within])
        assert np.all(approx[~within] == K + 1)
        assert seen[-1].done == seen[-1].total == N and seen[-1].stage == "partner ranks"


def test_the_table_says_it_is_capped_and_the_library_text_shows_beyond_k(index):
    table = partner_rank_table(index, exact_max_items=LOWERED)
    cap = rank_cap(index, LOWERED)
    assert cap == PARTNER_TOP_K + 1 and set(table) == set(DIRECTIONS)
    assert all(r.max() <= cap for r in table.values()) and any((r == cap).any() for r in table.values())
    median = median_partner_ranks(table)
    beyond = median >= cap
    assert beyond.any() and (~beyond).any()
    assert format_rank(float(median[beyond][0]), cap) == f"> {PARTNER_TOP_K}"
    assert format_rank(3.0, cap) == "3" and format_rank(2.5, cap) == "2.5" and format_rank(None, cap) == ""
    assert format_rank(float(cap), None) == str(cap)  # exact ranks are never shown as "> K"
    assert rank_cap(index) is None and EXACT_RANKS_MAX_ITEMS >= 11_000  # the benchmark dataset stays exact


def test_top_k_ranks_cancel_between_chunks(index):
    cancel = CancelToken()
    cancel.set()
    with pytest.raises(Cancelled):
        index.partner_ranks("audio", "sheet", exact_max_items=LOWERED, top_k=K, cancel=cancel)


def test_library_rank_column_shows_beyond_k(qapp):
    from ugaar_app.library import RANK, LibraryModel

    class Sample:
        def __init__(self, i):
            self.sample_id, self.split, self.source, self.words = f"s{i}", "test", "lmd", ["la"]
            self.song_id, self.meta, self.lyrics = f"song{i}", {}, "la"

    model = LibraryModel()
    model.set_samples([Sample(i) for i in range(3)])
    model.set_ranks(["s0", "s1", "s2"], np.array([1.0, 55.5, 101.0]), cap=101)
    shown = [model.data(model.index(r, RANK)) for r in range(3)]
    assert shown == ["1", "55.5", "> 100"]
    assert "top 100" in model.data(model.index(2, RANK), 3)  # Qt.ToolTipRole
    model.set_ranks(["s0", "s1", "s2"], np.array([1.0, 55.5, 101.0]))  # exact ranks: numbers
    assert model.data(model.index(2, RANK)) == "101"
