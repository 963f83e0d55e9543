"""The map's layout without Qt: shared vs modality view, partner-in-neighbourhood, ``ugaar map``, labels."""
from __future__ import annotations

import numpy as np
import pytest

from model.map.layout import ANCHOR, anchored_layout, compute_map, layout_input, map_key, nearest_anchor
from model.data.labels import is_placeholder_title, sample_label
from model.map.alignment import partner_in_neighbourhood
from model.map.export import MAP_COLUMNS, map_rows, read_map_csv, write_map_csv
from model.data.song import Note, Sample

from test_app_fixtures import needs_trainer, tiny_dataset_path, tiny_run_path  # noqa: F401

MODS = ("audio", "sheet", "lyrics")


def _gapped(n=60, dim=16, gap=3.0, seed=0):
    """Paired unit vectors: a shared per-sample part plus a large per-modality offset (the modality gap)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim))
    emb = {}
    for i, m in enumerate(MODS):
        off = np.zeros(dim)
        off[i] = gap
        v = base + 0.1 * rng.normal(size=(n, dim)) + off
        emb[m] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return emb


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_nearest_anchor_is_the_index_top_1(metric):
    from model.search.retrieval import RetrievalIndex
    rng = np.random.default_rng(3)
    emb = {m: rng.normal(size=(40, 8)).astype(np.float32) * rng.uniform(0.5, 3, size=(40, 1)).astype(np.float32)
           for m in MODS}
    ids = [f"s{i}" for i in range(40)]
    index = RetrievalIndex(emb, ids, metric=metric)
    for m in ("sheet", "lyrics"):
        rows = nearest_anchor(emb[m], emb["audio"], metric, batch=7)
        expect = [index.row(index.query_sample(sid, m, "audio", 1)[0][0]) for sid in ids]
        assert rows.tolist() == expect
    with pytest.raises(ValueError):
        nearest_anchor(emb["sheet"], emb["audio"], "manhattan")


def test_nearest_anchor_holds_a_bounded_block_and_answers_the_same(monkeypatch):
    import model.map.layout as layout
    rng = np.random.default_rng(5)
    q, a = rng.normal(size=(90, 6)).astype(np.float32), rng.normal(size=(70, 6)).astype(np.float32)
    whole = nearest_anchor(q, a, "euclidean")
    monkeypatch.setattr(layout, "NEAREST_BLOCK", 150)  # two query rows against 70 anchors at a time
    assert np.array_equal(layout.nearest_anchor(q, a, "euclidean"), whole)


def test_anchored_layout_draws_each_item_beside_its_first_recording_not_its_own():
    emb = _gapped(n=50)
    anchor = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32) * 10
    coords = anchored_layout(emb, anchor, "cosine", radius=0.5)
    assert coords.shape == (150, 2) and ANCHOR == "audio"
    assert np.array_equal(coords[:50], anchor)
    from scipy.spatial import cKDTree
    step = 0.5 * np.median(cKDTree(anchor).query(anchor, k=2)[0][:, 1])
    for mi, m in ((1, "sheet"), (2, "lyrics")):
        top = nearest_anchor(emb[m], emb["audio"], "cosine")
        assert np.all(np.linalg.norm(coords[mi * 50:(mi + 1) * 50] - anchor[top], axis=1) <= step + 1e-5)
    # the positions come from the vectors, never from the sample's row: a sheet swapped for
    # another sample's vector moves to where that vector's first recording is
    swapped = dict(emb)
    swapped["sheet"] = emb["sheet"][::-1].copy()
    moved = anchored_layout(swapped, anchor, "cosine", radius=0.0)
    top = nearest_anchor(emb["sheet"], emb["audio"], "cosine")
    assert np.allclose(moved[50:100], anchor[top[::-1]])
    # seeded: the same input gives the same picture
    assert np.array_equal(coords, anchored_layout(emb, anchor, "cosine", radius=0.5))


def test_map_key_tells_views_and_metrics_apart():
    emb = _gapped(n=10)
    params = {"n_neighbors": 15}
    keys = {map_key(emb, params, "modality"), map_key(emb, params, "shared", "cosine"),
            map_key(emb, params, "shared", "euclidean")}
    assert len(keys) == 3
    # the per-modality view's key ignores the metric (its layout does not use one)
    assert map_key(emb, params, "modality", "cosine") == map_key(emb, params, "modality", "euclidean")
    with pytest.raises(ValueError):
        layout_input(emb, "islands")


def test_partner_in_neighbourhood_definition():
    # three modalities of 4 samples: samples sit far apart, modalities of a sample on top of each other
    n = 4
    centres = np.arange(n)[:, None] * np.array([[100.0, 0.0]])
    coords = np.concatenate([centres + [0, 0], centres + [0, 1], centres + [1, 0]])
    r = partner_in_neighbourhood(coords, k=2)
    assert r["both"] == 1.0 and r["any"] == 1.0 and r["points"] == 3 * n
    # k=1: the nearest other point is one partner, never both
    r1 = partner_in_neighbourhood(coords, k=1)
    assert r1["both"] == 0.0 and r1["any"] == 1.0
    # modalities as islands: nobody's partner is near
    islands = np.concatenate([centres * 0.01 + [0, 0], centres * 0.01 + [1e4, 0], centres * 0.01 + [0, 1e4]])
    r2 = partner_in_neighbourhood(islands, k=2)
    assert r2["any"] == 0.0
    # rows restrict the evaluated points, not the neighbours
    r3 = partner_in_neighbourhood(coords, k=2, rows=np.array([True, False, False, False]))
    assert r3["points"] == 3


def test_shared_view_brings_partners_together_synthetic():
    emb = _gapped(n=60)
    shared, _ = compute_map(emb, view="shared", in_process=True)   # 180 points: UMAP
    modality, _ = compute_map(emb, view="modality", in_process=True)
    a_shared = partner_in_neighbourhood(shared)
    a_mod = partner_in_neighbourhood(modality)
    assert a_shared["any"] > a_mod["any"] + 0.3
    assert a_shared["both"] > a_mod["both"]


def _sample(title, song_id, words):
    notes = tuple(Note(60, float(i), 0.5, w) for i, w in enumerate(words))
    return Sample(sample_id=f"{song_id}-0", song_id=song_id, start=0, notes=notes, split="test",
                  title=title, source="lmd-npy")


def test_labels_are_lyrics_for_hash_named_songs():
    md5 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    s = _sample(md5, md5, ["yes", "ter", "day", "all", "my", "trou", "bles", "seemed"])
    assert is_placeholder_title(md5, md5) and is_placeholder_title("", "x")
    assert sample_label(s) == " ".join(s.words[:6]) + " …"
    assert md5 not in sample_label(s)
    named = _sample("Let It Be", "song-1", ["when", "i"])
    assert sample_label(named) == "Let It Be"


def test_map_csv_round_trip(tmp_path):
    n = 5
    coords = np.random.default_rng(1).normal(size=(3 * n, 2)).astype(np.float32)
    ids = [f"s{i}" for i in range(n)]
    rows = map_rows(coords, ids, splits=["train"] * n, partner_ranks=[1, 2, 3.5, 4, np.nan])
    path = write_map_csv(tmp_path / "m.csv", rows)
    back = read_map_csv(path)
    assert list(back[0].keys()) == list(MAP_COLUMNS) and len(back) == 3 * n
    got = np.array([[r["x"], r["y"]] for r in back], dtype=np.float32)
    assert np.array_equal(got, coords)  # 9 significant digits: float32 exactly
    assert [r["modality"] for r in back] == ["audio"] * n + ["sheet"] * n + ["lyrics"] * n
    assert back[2]["partner_rank"] == "3.5" and back[4]["partner_rank"] == ""


# ---- on a small real run ----------------------------------------------------------------------------
def test_map_cli_writes_the_layout_and_reports_alignment(tmp_path, capsys):
    needs_trainer()
    from model.cli import main
    from model.data.dataset import Dataset
    run = tiny_run_path()
    figures = {}
    for view in ("shared", "modality"):
        out = tmp_path / f"{view}.csv"
        assert main(["map", run, "--view", view, "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "partner-in-neighbourhood" in text and "both partners" in text and "at least one" in text
        rows = read_map_csv(out)
        ds = Dataset.open(tiny_dataset_path())
        from model.ugaar.run import Run
        ids = [str(i) for i in Run.open(run).sample_ids]
        assert len(rows) == 3 * len(ids)
        assert list(rows[0].keys()) == list(MAP_COLUMNS)
        assert {r["modality"] for r in rows} == set(MODS)
        by_id = {s.sample_id: s for s in ds.samples}
        for r in rows[:5]:
            s = by_id[r["sample_id"]]
            assert r["song_id"] == s.song_id and r["split"] == s.split and r["label"] == sample_label(s)
            assert r["lyrics"] == " ".join(s.lyrics_text.split())
            assert float(r["partner_rank"]) >= 1
        coords = np.array([[r["x"], r["y"]] for r in rows])
        figures[view] = partner_in_neighbourhood(coords)
    # the shared view keeps a sample's modalities together better than the raw space
    assert figures["shared"]["any"] > figures["modality"]["any"]
    assert figures["shared"]["both"] >= figures["modality"]["both"]
    # --split writes only that split's points (the tiny set may lack a test split: take its smallest)
    splits = [str(x) for x in Run.open(run).splits]
    split = min(set(splits), key=splits.count)
    out = tmp_path / "split.csv"
    assert main(["map", run, "--split", split, "--out", str(out)]) == 0
    assert "points" in capsys.readouterr().out
    rows = read_map_csv(out)
    assert len(rows) == 3 * splits.count(split) and all(r["split"] == split for r in rows)


def test_shared_view_does_not_change_retrieval(tmp_path):
    needs_trainer()
    from model.search.partner_rank import partner_rank_table
    from model.search.retrieval import RetrievalIndex
    from model.ugaar.run import Run
    run = Run.open(tiny_run_path())
    emb = {m: np.asarray(v) for m, v in run.embeddings().items()}
    ids = [str(i) for i in run.sample_ids]
    index = RetrievalIndex(emb, ids, metric=run.config.metric)
    ranks_before = partner_rank_table(index)
    top_before = index.query_sample(ids[0], "audio", "sheet", 5)
    raw = {m: v.copy() for m, v in emb.items()}
    compute_map(emb, view="shared", metric=run.config.metric, cache_dir=tmp_path, in_process=True)
    for m in MODS:
        assert np.array_equal(emb[m], raw[m])
    after = RetrievalIndex(emb, ids, metric=run.config.metric)
    assert index.query_sample(ids[0], "audio", "sheet", 5) == top_before
    assert after.query_sample(ids[0], "audio", "sheet", 5) == top_before
    for d, r in partner_rank_table(after).items():
        assert np.array_equal(r, ranks_before[d])
    # the batched ranks are the index's own rank_of
    for sid in ids[:4]:
        row = index.row(sid)
        assert ranks_before[("audio", "sheet")][row] == index.rank_of(sid, "audio", "sheet")
        assert ranks_before[("lyrics", "audio")][row] == index.rank_of(sid, "lyrics", "audio")
