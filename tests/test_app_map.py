"""The map's views, typed-search highlight, CSV export, partner ranks and readable labels, in the window."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from model.data.labels import sample_label
from model.map.alignment import partner_in_neighbourhood
from model.map.export import MAP_COLUMNS, read_map_csv

from test_app_fixtures import app_home, trained, window  # noqa: F401

MODS = ("audio", "sheet", "lyrics")


@pytest.fixture
def mapped(qtbot, window, trained):
    """The fixture run open, with its map laid out."""
    qtbot.waitUntil(lambda: window.map_view.coords is not None and window.map_view.task is not None
                    and window.map_view.task.done, timeout=120000)
    return trained


def _switch_view(qtbot, mv, view):
    with qtbot.waitSignal(mv.computed, timeout=120000):
        mv.set_view(view)
    assert mv.view() == view


def test_shared_view_is_default_and_keeps_partners_closer(qtbot, window, mapped):
    mv = window.map_view
    assert mv.view() == "shared" and window.session.map_view == "shared"
    shared = partner_in_neighbourhood(mv.coords)
    shared_coords = mv.coords.copy()
    _switch_view(qtbot, mv, "modality")
    modality = partner_in_neighbourhood(mv.coords)
    assert not np.allclose(mv.coords, shared_coords)
    assert window.session.map_view == "modality"
    # removing the modality offsets brings each sample's points into each other's neighbourhood
    assert shared["any"] > modality["any"], (shared, modality)
    assert shared["both"] >= modality["both"], (shared, modality)
    # the selected sample's three points are still joined in either view
    sid = mv.ids[0]
    window.session.select(sid, origin="test")
    x, _y = mv.sel_line.getData()
    assert len(x) == 4
    # the retrieval index keeps the raw embeddings whichever view is shown
    index = window.session.index
    raw = window.session.embeddings
    from model.search.retrieval import RetrievalIndex
    fresh = RetrievalIndex(raw, window.session.embedding_ids, metric=index.metric)
    assert index.query_sample(sid, "audio", "sheet", 5) == fresh.query_sample(sid, "audio", "sheet", 5)
    _switch_view(qtbot, mv, "shared")
    assert np.allclose(mv.coords, shared_coords)  # from the run's cache


def test_typed_search_highlights_its_points(qtbot, window, mapped):
    mv, lib = window.map_view, window.library
    ds = window.session.dataset
    word = ds.samples[0].words[1]
    qtbot.keyClicks(lib.search, word)
    matches = set(lib.visible_ids())
    assert ds.samples[0].sample_id in matches and window.session.highlight
    ringed = {mv.point_info(i)[0] for i in mv.highlighted}
    assert ringed == matches & set(mv.ids)
    assert len(mv.highlighted) == 3 * len(ringed)
    xs, _ys = mv.highlight_item.getData()
    assert len(xs) == len(mv.highlighted)
    # a hidden modality's points are not ringed; clearing the text clears the rings
    mv.show_mod["lyrics"].setChecked(False)
    assert len(mv.highlighted) == 2 * len(ringed)
    mv.show_mod["lyrics"].setChecked(True)
    lib.search.clear()
    assert mv.highlighted == [] and window.session.highlight == []


def test_map_export_round_trip_matches_the_cli(qtbot, window, mapped, tmp_path, capsys):
    mv = window.map_view
    qtbot.waitUntil(lambda: window.session.partner_ranks is not None, timeout=60000)
    path = mv.export_csv(str(tmp_path / "map.csv"))
    assert path is not None
    rows = read_map_csv(path)
    assert list(rows[0].keys()) == list(MAP_COLUMNS) and len(rows) == 3 * mv.n
    got = np.array([[r["x"], r["y"]] for r in rows], dtype=np.float32)
    assert np.array_equal(got, mv.coords)
    first = window.session.sample(rows[0]["sample_id"])
    assert rows[0]["label"] == sample_label(first) and rows[0]["split"] == first.split
    assert rows[0]["partner_rank"] != ""
    # `ugaar map` writes the same layout, the same rows
    from model.cli import main
    cli_path = tmp_path / "cli.csv"
    assert main(["map", mapped, "--view", "shared", "--out", str(cli_path)]) == 0
    capsys.readouterr()
    assert read_map_csv(cli_path) == rows


def test_partner_rank_column_sorts_and_colours_the_map(qtbot, window, mapped):
    from ugaar_app.library import RANK
    lib, mv = window.library, window.map_view
    qtbot.waitUntil(lambda: window.session.partner_ranks is not None, timeout=60000)
    assert not lib.table.horizontalHeader().isSectionHidden(RANK)
    index = window.session.index
    ids = window.session.embedding_ids
    ranks = dict(zip(ids, window.session.partner_ranks))
    sid = ids[0]
    six = [index.rank_of(sid, s, t) for s in MODS for t in MODS if s != t]
    assert ranks[sid] == pytest.approx(np.median(six))
    lib.table.sortByColumn(RANK, Qt.AscendingOrder)
    shown = [lib.model.rank(i) for i in lib.visible_ids()]
    assert shown == sorted(shown)  # numeric, not text order
    lib.table.sortByColumn(RANK, Qt.DescendingOrder)
    assert lib.model.rank(lib.visible_ids()[0]) == max(shown)
    mv.color_by.setCurrentIndex(3)
    assert [name for name in (item for item in mv._legend_items)] and len(mv._legend_items) == 4
    assert len(mv.scatter.data) == 3 * mv.n


def test_hash_named_songs_are_labelled_by_their_lyrics(qtbot, window, tmp_path):
    from model.data.dataset import BuildConfig, build_dataset
    from test_app_datasets import _write_midi
    src = tmp_path / "lmd-like"
    src.mkdir()
    md5 = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    words = "when the night has come and the land is dark and the moon is the only light we see".split()
    _write_midi(src / f"{md5}.mid", words + words[:4])
    out = tmp_path / "ds"
    build_dataset(BuildConfig(source="midi", path=str(src), out=str(out), workers=1))
    with qtbot.waitSignal(window.controller.dataset_opened, timeout=60000):
        window.controller.open_dataset(out)
    ds = window.session.dataset
    s = ds.samples[0]
    assert md5 in s.title or md5 in s.song_id
    from ugaar_app.library import ID, SONG
    lib = window.library
    song_cell = lib.model.index(0, SONG).data()
    assert md5 not in song_cell and song_cell.split()[0] == s.words[0]
    assert lib.model.index(0, ID).data() == s.sample_id
    assert not lib.table.horizontalHeader().isSectionHidden(ID)
    window.session.select(s.sample_id, origin="test")
    assert window.sample_view.header.text() == sample_label(s) == song_cell
