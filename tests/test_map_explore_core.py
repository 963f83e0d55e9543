"""The map's GUI-free parts: lasso geometry, colour fields and legend bins, Parquet export."""
from __future__ import annotations

import numpy as np
import pytest

from model.map.export import (MAP_COLUMNS, map_rows, read_map_csv, read_map_parquet, write_map_csv,
                              write_map_parquet, write_map_table)
from model.map.fields import (FIELDS, bin_values, field_values, legend_counts, pitch_range, stress_regularity,
                              tempo)
from model.map.selection import points_in_polygon, points_in_rect, selected_rows
from model.data.song import Note, Sample


def _sample(sid, words=("Hello", "world"), pitches=(60, 67), beats=1.0, split="train", source="midi"):
    notes = tuple(Note(p, 0.5 * i, 0.5, w, True, beats) for i, (p, w) in enumerate(zip(pitches, words)))
    return Sample(sid, "song-" + sid, 0, notes, split, "T", source)


def test_lasso_selects_exactly_the_points_inside():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-2, 2, size=(5000, 2))
    # a concave "L": the unit square [0,2]² minus its upper-right quarter [1,2]²
    poly = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], dtype=float)
    got = points_in_polygon(pts, poly)
    x, y = pts[:, 0], pts[:, 1]
    want = (x > 0) & (x < 2) & (y > 0) & (y < 2) & ~((x > 1) & (y > 1))
    assert np.array_equal(got, want)
    # orientation does not matter; degenerate lassos enclose nothing
    assert np.array_equal(points_in_polygon(pts, poly[::-1]), want)
    assert not points_in_polygon(pts, poly[:2]).any()
    assert not points_in_polygon(pts, np.array([[0, 0], [1, 1], [2, 2]])).any()


def test_selection_is_reported_per_sample_and_skips_hidden_points():
    n = 4
    coords = np.array([[i, k] for k in range(3) for i in range(n)], dtype=float)  # row k: modality k
    inside = points_in_rect(coords, -0.5, 1.5, 1.5, 2.5)  # lyrics points of samples 0 and 1
    assert selected_rows(inside, n) == [0, 1]
    visible = np.ones(3 * n, dtype=bool)
    visible[2 * n:] = False  # lyrics hidden
    assert selected_rows(inside, n, visible) == []


def test_fields_and_legend_counts():
    a = _sample("a", words=("Hel", "lo"), pitches=(60, 72), beats=1.0)
    b = _sample("b", pitches=(60, 62), beats=None, split="test", source="lmd-npy")
    assert pitch_range(a) == 12 and pitch_range(b) == 2
    assert tempo(a) == pytest.approx(120.0)  # a beat per 0.5 s
    assert np.isnan(tempo(b))  # no beat values: no tempo rather than a guess
    assert 0.0 <= stress_regularity(_sample("c", words=("the", "morning", "light"))) <= 1.0
    assert np.isnan(stress_regularity(_sample("d", words=("Zwxq", "Qqzv"))))  # no known word
    samples = [a, b, None]
    for name in FIELDS:
        v = field_values(name, samples, partner_ranks=[1.0, 40.0, 3.0])
        assert len(v) == 3
    split = bin_values(field_values("split", samples), "categorical")
    assert split.labels == ["test", "train"] and split.codes.tolist() == [1, 0, -1]
    vals = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan])
    bins = bin_values(vals, "numeric", n_bins=5)
    assert len(bins.labels) == 5 and bins.codes[-1] == -1
    assert legend_counts(bins.codes, 5) == [2, 2, 2, 2, 2]
    sel = np.zeros(len(vals), dtype=bool)
    sel[:3] = True
    assert legend_counts(bins.codes, 5, sel) == [2, 1, 0, 0, 0]
    same = bin_values(np.array([3.0, 3.0]), "numeric")
    assert same.labels == ["3"] and same.codes.tolist() == [0, 0]


def test_parquet_round_trip_matches_csv(tmp_path):
    rng = np.random.default_rng(1)
    samples = {f"s{i}": _sample(f"s{i}", words=("a,b", "c\"d")) for i in range(5)}
    ids = list(samples)
    coords = rng.normal(size=(15, 2)).astype(np.float32)
    rows = map_rows(coords, ids, sample_of=samples.__getitem__, partner_ranks=[1, 2.5, np.nan, 4, 5])
    pq_path = write_map_parquet(tmp_path / "m.parquet", rows)
    csv_path = write_map_csv(tmp_path / "m.csv", rows)
    back = read_map_parquet(pq_path)
    assert list(back[0]) == list(MAP_COLUMNS)
    from_csv = read_map_csv(csv_path)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("x", "y")} for r in rows]  # noqa: E731
    assert strip(back) == strip(from_csv)
    xy = lambda rows: np.array([[r["x"], r["y"]] for r in rows], dtype=np.float32)  # noqa: E731
    assert np.array_equal(xy(back), xy(from_csv))  # both exact for the float32 layout
    got = np.array([[r["x"], r["y"]] for r in back], dtype=np.float32)
    assert np.array_equal(got, coords)
    import pyarrow.parquet as pq
    table = pq.read_table(pq_path)
    assert str(table.schema.field("x").type) == "float" and table.column("partner_rank").null_count == 3
    assert write_map_table(tmp_path / "t.parquet", rows).suffix == ".parquet"
