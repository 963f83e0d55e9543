"""The map's explorer tools in the window: lasso, colour by sample field with legend counts,
Parquet export, play on hover, and the large-map draw budget.

A synthetic layout is drawn over the tiny dataset's samples (no run needed:
these tools only read the layout and the samples).
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF, Qt

from model.map.export import read_map_csv, read_map_parquet

from test_app_fixtures import app_home, open_tiny, window  # noqa: F401


@pytest.fixture
def mapped(qtbot, window):
    ds = open_tiny(qtbot, window)
    ids = [s.sample_id for s in ds.samples]
    n = len(ids)
    # audio points on a line y=0, sheet at y=1, lyrics at y=2; sample r at x=r
    coords = np.array([[r, k] for k in range(3) for r in range(n)], dtype=np.float32)
    mv = window.map_view
    mv.set_coords(coords, ids)
    window.tabs.setCurrentWidget(mv)
    return mv


def test_lasso_selects_the_enclosed_samples_and_syncs_with_the_library(qtbot, window, mapped):
    mv, lib, session = mapped, window.library, window.session
    n = mv.n
    qtbot.mouseClick(mv.lasso_btn, Qt.LeftButton)
    assert mv.vb.lasso_mode and not mv.vb.box_mode
    qtbot.mouseClick(mv.box_btn, Qt.LeftButton)  # the two tools exclude each other
    assert mv.vb.box_mode and not mv.lasso_btn.isChecked() and not mv.vb.lasso_mode
    # a triangle round the lyrics points of samples 0..2 (y=2) only
    tri = [(-0.5, 1.6), (2.5, 1.6), (1.0, 2.8)]
    ids = mv.lasso_select(tri)
    assert ids == [mv.ids[r] for r in range(min(3, n))]
    assert session.map_selection == ids
    assert sorted(lib.visible_ids()) == sorted(ids) and lib.map_sel_bar.isVisibleTo(window)
    # the map rings exactly the visible points of the selected samples
    assert sorted(mv.point_info(int(i))[0] for i in mv.mapsel_points) == sorted(ids * 3)
    # hiding a modality drops its rings and its points from the lasso
    mv.show_mod["lyrics"].setChecked(False)
    assert len(mv.mapsel_points) == 2 * len(ids)
    assert mv.lasso_select(tri) == []
    mv.show_mod["lyrics"].setChecked(True)
    mv.lasso_select(tri)
    # library → map: choosing a row selects its sample, whose three points the map joins
    idx = lib.proxy.index(1, 0)
    qtbot.mouseClick(lib.table.viewport(), Qt.LeftButton, pos=lib.table.visualRect(idx).center())
    sid = lib.selected_sample_id()
    assert sid == lib.proxy.data(idx, Qt.UserRole + 1)
    assert session.selected == sid
    x, _y = mv.sel_line.getData()
    assert len(x) == 4 and x[0] == pytest.approx(mv.point_pos(sid).x())
    # "Show all" in the library clears the map's rings
    qtbot.mouseClick(lib.clear_map_sel, Qt.LeftButton)
    assert session.map_selection == [] and len(mv.mapsel_points) == 0
    # a drawn lasso (the view box's signal) selects like the programmatic one
    with qtbot.waitSignal(window.bridge.map_selection_changed):
        mv.vb.lasso_selected.emit(np.array(tri))
    assert session.map_selection == ids


def test_colour_by_any_field_with_legend_counts_of_the_selection(qtbot, window, mapped):
    mv = mapped
    n = mv.n
    for key in ("split", "source", "pitch_range", "tempo", "n_words", "stress_regularity", "partner_rank"):
        mv.set_color_field(key)
        assert mv.color_field() == key
        assert len(mv.scatter.data) == 3 * n
        values = mv.field(key)
        assert len(values) == n
        entries = mv.legend_entries()
        assert len(mv._legend_items) == len(entries)
        known = sum(1 for v in values if (v != "" if isinstance(v, str) else np.isfinite(v)))
        assert sum(t for _name, t, _c in entries) == known  # every sample with a value is counted once
    ds = window.session.dataset
    mv.set_color_field("pitch_range")
    assert mv.field("pitch_range")[0] == max(x.pitch for x in ds.samples[0].notes) - min(
        x.pitch for x in ds.samples[0].notes)
    # the legend counts the box selection
    mv.box_select(QRectF(-0.5, -0.5, 2.0, 0.6))  # audio points of samples 0 and 1
    entries = mv.legend_entries()
    assert sum(c for _name, _t, c in entries) == sum(
        1 for r in (0, 1) if np.isfinite(mv.field("pitch_range")[r]))
    assert "selected" in mv.legend.items[0][1].text
    mv.set_color_field("split")
    by_split = {name: c for name, _t, c in mv.legend_entries()}
    assert sum(by_split.values()) == 2
    assert by_split[ds.samples[0].split] >= 1
    mv.set_color_field("modality")
    assert [c for _n, _t, c in mv.legend_entries()] == [2, 2, 2]


def test_export_parquet_round_trip(qtbot, window, mapped, tmp_path):
    mv = mapped
    pq_path = mv.export_table(str(tmp_path / "map.parquet"))
    csv_path = mv.export_csv(str(tmp_path / "map.csv"))
    assert pq_path and csv_path
    rows = read_map_parquet(pq_path)
    assert len(rows) == 3 * mv.n
    got = np.array([[r["x"], r["y"]] for r in rows], dtype=np.float32)
    assert np.array_equal(got, mv.coords)
    strip = lambda rr: [{k: v for k, v in r.items() if k not in ("x", "y")} for r in rr]  # noqa: E731
    assert strip(rows) == strip(read_map_csv(csv_path))


def test_play_on_hover_is_an_option_and_debounced(qtbot, window, mapped):
    mv, session = mapped, window.session
    requests: list[tuple[str, str]] = []
    session.playback_requested.connect(lambda sid, origin: requests.append((sid, origin)))
    target = mv.ids[2]
    pts = mv.scatter.pointsAt(mv.point_pos(target, "sheet"))
    assert len(pts) and mv.point_info(int(pts[0].data()))[0] == target
    # off by default: hovering only shows the tooltip
    mv._on_hovered(mv.scatter, pts)
    qtbot.wait(2 * 350 + 100)
    assert requests == [] and target in mv.plot.toolTip()
    mv.play_on_hover.setChecked(True)
    # sweeping over several points requests nothing until the mouse rests, then only the last one
    for sid in mv.ids[:5]:
        mv.hover_point(sid)
    mv._on_hovered(mv.scatter, pts)
    assert requests == []
    qtbot.waitUntil(lambda: requests != [], timeout=3000)
    assert requests == [(target, "map")]
    # the player selected and plays that sample
    assert session.selected == target
    assert session.playback.sample_id == target and session.playback.playing
    # leaving the points cancels a pending request; unticking the option stops hover playback
    mv.hover_point(mv.ids[3])
    mv._on_hovered(mv.scatter, [])
    mv.play_on_hover.setChecked(False)
    mv.hover_point(mv.ids[4])
    qtbot.wait(600)
    assert requests == [(target, "map")]
    window.sample_view.player.stop()


def test_large_map_draws_within_its_budget(qtbot, window, mapped):
    from ugaar_app.map_view import DRAW_BUDGET, LodScatter
    n = 40_000  # 120k points, over the draw budget
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(3 * n, 2)).astype(np.float32)
    mv = mapped
    mv.set_coords(coords, [f"synthetic-{i}" for i in range(n)])
    assert isinstance(mv.scatter, LodScatter) and not mv.scatter.opts["antialias"]
    mv.plot.viewport().repaint()
    assert 0 < mv.scatter.drawn <= 1.1 * DRAW_BUDGET
    # zoomed in, every point in view is drawn
    mv.vb.setRange(QRectF(QPointF(-0.05, -0.05), QPointF(0.05, 0.05)), padding=0)
    mv.plot.viewport().repaint()
    x, y = coords[:, 0], coords[:, 1]
    in_view = int(np.count_nonzero((abs(x) < 0.06) & (abs(y) < 0.06)))
    assert 0 < mv.scatter.drawn <= in_view
    assert mv.scatter.drawn >= int(np.count_nonzero((abs(x) < 0.045) & (abs(y) < 0.045)))


def test_several_library_rows_and_the_maps_box_share_one_selection(qtbot, window, mapped):
    """Ctrl/Shift+click rows → their points are ringed; a box in the map → its rows are selected."""
    mv, lib, session = mapped, window.library, window.session
    table = lib.table

    def click(row, modifier=Qt.NoModifier):
        idx = lib.proxy.index(row, 0)
        qtbot.mouseClick(table.viewport(), Qt.LeftButton, modifier, table.visualRect(idx).center())
        return lib.proxy.data(idx, Qt.UserRole + 1)

    def ringed():
        return sorted(mv.point_info(int(i))[0] for i in mv.mapsel_points)

    first = click(0)
    assert session.selected == first and session.map_selection == []
    chosen = [first, click(2, Qt.ControlModifier), click(4, Qt.ControlModifier)]
    assert sorted(session.map_selection) == sorted(chosen) and session.map_selection_origin == "library"
    assert ringed() == sorted(chosen * 3)  # each sample's three points
    assert sorted(lib.selected_ids()) == sorted(chosen)
    assert lib.proxy.rowCount() == lib.model.rowCount()  # rows chosen here do not filter the table
    assert lib.map_sel_bar.isVisibleTo(window) and lib.clear_map_sel.text() == "Clear"
    # Shift+click extends to a range; the map follows
    click(6, Qt.ShiftModifier)
    assert len(session.map_selection) == len(lib.selected_ids()) >= 3 and len(ringed()) == 3 * len(lib.selected_ids())
    # a plain click is one sample again: the map's rings go
    one = click(1)
    assert session.selected == one and session.map_selection == [] and len(mv.mapsel_points) == 0
    assert lib.selected_ids() == [one]

    # map → library: a box round samples 2..4 selects (and lists) exactly their rows
    boxed = [mv.ids[r] for r in (2, 3, 4)]
    mv.box_select(QRectF(1.5, -0.5, 3.0, 1.0))  # the audio line y=0, x in [1.5, 4.5]
    assert session.map_selection == boxed and session.map_selection_origin == "map"
    assert sorted(lib.selected_ids()) == sorted(boxed) and sorted(lib.visible_ids()) == sorted(boxed)
    assert ringed() == sorted(boxed * 3)
    # a multi-row selection in the library, then one point clicked in the map: one sample everywhere
    qtbot.mouseClick(lib.clear_map_sel, Qt.LeftButton)
    click(0)
    click(1, Qt.ControlModifier)
    assert len(session.map_selection) == 2
    mv.select_point(5)
    assert session.selected == mv.ids[5] and session.map_selection == [] and lib.selected_ids() == [mv.ids[5]]
