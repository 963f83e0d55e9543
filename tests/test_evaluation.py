"""Retrieval metrics on hand-made rankings (ties included), Random's expectation, tables."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from model.search.evaluation import (DIRECTION_NAMES, metrics_from_ranks, random_expectation, ranks, retrieval_metrics,
                                     table_one, table_two, validation_score, write_results)


def test_ranks_hand_made_with_ties():
    q = np.array([[0.0], [10.0], [5.0]])
    t = np.array([[1.0], [-1.0], [5.0]])
    # q0: d(true)=1, d(t1)=1 (tie counts against) → 2; q1: d(true)=11 > 9 > 5 → 3; q2: d=0 → 1
    assert ranks(q, t).tolist() == [2, 3, 1]
    m = metrics_from_ranks(np.array([2, 3, 1]))
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@5"] == 100.0 and m["R@10"] == 100.0
    assert m["MedR"] == 2.0 and m["MeanR"] == 2.0 and m["N"] == 3.0
    assert m["MedR/N"] == pytest.approx(2 / 3)


def test_all_identical_embeddings_rank_last():
    e = np.zeros((4, 3))
    assert ranks(e, e).tolist() == [4, 4, 4, 4]


def test_cosine_metric():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    t = np.array([[2.0, 0.1], [5.0, 0.0]])  # both targets point along x: q1's true partner is farther
    assert ranks(q, t, "cosine").tolist() == [2, 2]
    assert ranks(q, t, "euclidean").tolist() == [1, 2]
    with pytest.raises(ValueError):
        ranks(q, t, "manhattan")


def test_median_of_even_count():
    m = metrics_from_ranks(np.array([1, 2, 3, 10]))
    assert m["MedR"] == 2.5 and m["MeanR"] == 4.0 and m["R@1"] == 25.0 and m["R@10"] == 100.0


def test_retrieval_metrics_six_directions_and_pair_views():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 8))
    emb = {"audio": base, "sheet": base + 1e-3, "lyrics": rng.standard_normal((30, 8))}
    res = retrieval_metrics(emb)
    assert list(res) == DIRECTION_NAMES
    assert res["audio→sheet"]["R@1"] == 100.0 and res["sheet→audio"]["MedR"] == 1.0
    # a pair-specific view is used for its direction only
    emb["lyrics@audio"] = base
    emb["audio@lyrics"] = base
    res2 = retrieval_metrics(emb)
    assert res2["lyrics→audio"]["R@1"] == 100.0
    assert res2["lyrics→sheet"] == res["lyrics→sheet"]


def test_random_matches_analytic_expectation():
    n, reps = 200, 30
    rng = np.random.default_rng(0)
    acc = {k: [] for k in ("R@1", "R@5", "R@10", "MeanR", "MedR")}
    for _ in range(reps):
        m = metrics_from_ranks(ranks(rng.standard_normal((n, 16)), rng.standard_normal((n, 16))))
        for k in acc:
            acc[k].append(m[k])
    exp = random_expectation(n)
    total = n * reps
    for k, K in (("R@1", 1), ("R@5", 5), ("R@10", 10)):
        p = K / n
        se = 100 * np.sqrt(p * (1 - p) / total)
        assert abs(np.mean(acc[k]) - exp[k]) < 4 * se, k
    se_mean = np.sqrt((n * n - 1) / 12 / total)  # variance of a uniform rank on 1..n
    assert abs(np.mean(acc["MeanR"]) - exp["MeanR"]) < 4 * se_mean
    assert abs(np.mean(acc["MedR"]) - exp["MedR"]) < 0.1 * n


def test_validation_score_prefers_better():
    good = {d: metrics_from_ranks(np.array([1, 1, 2])) for d in DIRECTION_NAMES}
    bad = {d: metrics_from_ranks(np.array([3, 2, 3])) for d in DIRECTION_NAMES}
    assert validation_score(good) > validation_score(bad)


def test_tables_and_results_files(tmp_path):
    rng = np.random.default_rng(1)
    runs = []
    for seed in range(2):
        e = {m: rng.standard_normal((20, 4)) for m in ("audio", "sheet", "lyrics")}
        runs.append(retrieval_metrics(e))
    by_method = {"baseline": runs, "ugaar": runs[:1]}
    t1 = table_one(by_method)
    assert "Baseline (n=2)" in t1 and "±" in t1 and "audio→lyrics R@1" in t1
    t2 = table_two(by_method)
    assert t2.count("retrieval**") == 6 and "| 20 |" in t2
    records = [{"method": "baseline", "seed": s, "split": "test", "metrics": r, "config": {"seed": s},
                "dataset_hash": "abc", "code_version": "v0"} for s, r in enumerate(runs)]
    write_results(tmp_path / "r.csv", tmp_path / "r.md", records)
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 12 and rows[0]["dataset_hash"] == "abc" and rows[0]["code_version"] == "v0"
    md = (tmp_path / "r.md").read_text()
    assert "Table I" in md and "Table II" in md and "paper" in md and "abc" in md
