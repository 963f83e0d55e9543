"""Training, retrieval, map and export with the real core on a tiny dataset."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, QPoint, QRectF, Qt

from test_app_fixtures import app_home, needs_trainer, open_tiny, trained, window  # noqa: F401


def test_start_and_stop_real_training(qtbot, window):
    needs_trainer()
    open_tiny(qtbot, window)
    assert window.session.features is not None
    panel = window.training
    assert panel.start_btn.isEnabled()
    panel.epochs.setValue(500)  # long enough that only Stop ends it
    qtbot.mouseClick(panel.start_btn, Qt.LeftButton)
    task = panel.task
    assert task is not None and not panel.start_btn.isEnabled() and panel.stop_btn.isEnabled()
    qtbot.waitUntil(lambda: panel.g_curves.points() > 0 and panel.d_curves.points() > 0, timeout=60000)
    qtbot.mouseClick(panel.stop_btn, Qt.LeftButton)
    qtbot.waitUntil(lambda: task.done, timeout=60000)
    qtbot.wait(50)
    assert panel.last_status == "stopped"
    assert str(panel.run_dir) in panel.run_names()   # the run is listed
    import json
    assert json.loads((panel.run_dir / "config.json").read_text())["inputs"] == "aligned"
    assert {"total"} <= set(panel.g_curves.data) and panel.g_curves.checks["total"].isChecked()
    # each term is toggleable
    panel.g_curves.checks["total"].setChecked(False)
    assert not panel.g_curves.curves["total"].isVisible()
    assert panel.start_btn.isEnabled()
    xs, ys = panel.g_curves.data["total"]
    assert len(xs) >= 1 and np.isfinite(ys).all()
    # resume the stopped run: the same curve continues from the checkpointed step
    last_step = max(xs)
    for i in range(panel.runs.topLevelItemCount()):
        if panel.runs.topLevelItem(i).data(0, Qt.UserRole) == str(panel.run_dir):
            panel.runs.setCurrentItem(panel.runs.topLevelItem(i))
    qtbot.mouseClick(panel.resume_btn, Qt.LeftButton)
    task2 = panel.task
    assert task2 is not task and not task2.done
    qtbot.waitUntil(lambda: max(panel.g_curves.data["total"][0]) > last_step, timeout=60000)
    panel.stop()
    qtbot.waitUntil(lambda: task2.done, timeout=60000)
    assert panel.last_status == "stopped"



def test_training_panel_offers_both_input_kinds(qtbot, window):
    needs_trainer()
    open_tiny(qtbot, window)
    panel = window.training
    assert window.session.features.has_sequences
    assert panel.inputs.currentData() == "aligned"  # the default when the features have sequences
    assert panel.form_settings()["inputs"] == "aligned"
    panel.inputs.setCurrentIndex(panel.inputs.findData("paper"))
    config = panel.make_config(epochs=1)
    assert config.inputs == "paper" and config.epochs == 1


def test_diverging_training_shows_failure_and_keeps_the_window_usable(qtbot, window):
    """A loss that turns NaN/inf ends the run as failed, with a message, not a hang or a crash."""
    needs_trainer()
    open_tiny(qtbot, window)
    panel = window.training
    task = panel.start(epochs=3, lr_g=1e30, lr_d=1e30, grad_clip=0.0)
    assert task is not None
    qtbot.waitUntil(lambda: task.done, timeout=60000)
    qtbot.wait(50)
    assert panel.last_status == "failed"
    status = panel.status.text().lower()
    assert "failed" in status and ("nan" in status or "inf" in status)
    assert any("training failed" in t.lower() and "last good checkpoint" in t.lower()
               for t in window.notifications.texts())
    assert panel.start_btn.isEnabled() and not panel.stop_btn.isEnabled()
    assert str(panel.run_dir) in panel.run_names()   # the failed run stays listed, checkpoint kept
    assert (panel.run_dir / "checkpoint.pt").exists()


def test_row_selection_agrees_everywhere_and_partner_is_marked(qtbot, window, trained):
    qtbot.waitUntil(lambda: window.map_view.coords is not None, timeout=60000)
    lib = window.library
    ds = window.session.dataset
    sid = next(s.sample_id for s in ds.samples if s.split == "train")
    row = lib.model.row_of(sid)
    lib.table.selectionModel().setCurrentIndex(lib.proxy.mapFromSource(lib.model.index(row, 0)),
                                               QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
    # sample view
    assert sid in window.sample_view.meta.text()
    # retrieval: the true partner is listed and marked at the rank the index gives
    ret = window.retrieval
    index = window.session.index
    ret.melody_box.setChecked(False)  # the learned space's ranks here; melody re-ranking: test_app_melody.py
    assert ret.result_ids("sheet") and ret.result_ids("lyrics")
    for target in ("sheet", "lyrics"):
        rank = index.rank_of(sid, "audio", target)
        assert ret.partner_rank(target) == (rank if rank <= ret.k.value() else None)
    assert ret.partner_rank("sheet") is not None
    # all six directions reachable through the source modality
    for i, src in enumerate(("audio", "sheet", "lyrics")):
        ret.source.setCurrentIndex(i)
        assert set(ret.targets) == {"audio", "sheet", "lyrics"} - {src}
        assert ret.result_ids(ret.targets[0])
    # map: the selected sample's three points are joined
    mv = window.map_view
    x, y = mv.sel_line.getData()
    assert len(x) == 4
    for k, mod in enumerate(("audio", "sheet", "lyrics")):
        p = mv.point_pos(sid, mod)
        assert (x[k], y[k]) == pytest.approx((p.x(), p.y()))
    assert len(mv.neighbours) > 0
    # clicking a retrieval result selects it everywhere
    tree = ret.lists["0"]
    item = tree.topLevelItem(1)
    tree.itemClicked.emit(item, 0)
    assert window.session.selected == item.data(0, Qt.UserRole)
    assert lib.selected_sample_id() == item.data(0, Qt.UserRole)


def test_click_map_point_selects_library_row(qtbot, window, trained):
    qtbot.waitUntil(lambda: window.map_view.coords is not None, timeout=60000)
    window.tabs.setCurrentWidget(window.map_view)
    mv = window.map_view
    mv.play_on_click.setChecked(False)
    qtbot.wait(100)
    target = mv.ids[-1]
    vb = mv.plot.getViewBox()
    scene_pt = vb.mapViewToScene(mv.point_pos(target, "sheet"))
    view_pt = mv.plot.mapFromScene(scene_pt)
    qtbot.mouseClick(mv.plot.viewport(), Qt.LeftButton, pos=QPoint(int(view_pt.x()), int(view_pt.y())))
    qtbot.waitUntil(lambda: window.session.selected is not None, timeout=3000)
    chosen = window.session.selected
    assert window.library.selected_sample_id() == chosen
    assert chosen == target or np.allclose(  # another point drawn on the same pixel
        [mv.point_pos(chosen, m).x() for m in ("audio", "sheet", "lyrics")][1],
        mv.point_pos(target, "sheet").x(), atol=abs(vb.viewPixelSize()[0]) * 8)
    # hovering shows the lyrics of the point under the mouse
    pts = mv.scatter.pointsAt(mv.point_pos(target, "lyrics"))
    mv._on_hovered(mv.scatter, pts)
    hovered_id, _mod = mv.point_info(int(pts[0].data()))
    assert window.session.dataset.sample(hovered_id).words[0] in mv.plot.toolTip()
    # colour by split / song, and hiding a modality, redraw the same points
    mv.color_by.setCurrentIndex(1)
    mv.color_by.setCurrentIndex(2)
    mv.show_mod["sheet"].setChecked(False)
    assert len(mv.scatter.data) == 2 * mv.n
    mv.show_mod["sheet"].setChecked(True)
    mv.color_by.setCurrentIndex(0)
    # box selection lists the boxed samples in the library
    xs, ys = mv.coords[:, 0], mv.coords[:, 1]
    mv.box_select(QRectF(float(xs.min()) - 1, float(ys.min()) - 1, float(np.ptp(xs)) + 2, float(np.ptp(ys)) + 2))
    assert sorted(window.library.visible_ids()) == sorted(mv.ids)
    assert window.library.map_sel_bar.isVisibleTo(window)
    mv.box_select(QRectF(float(xs.min()) - 1, float(ys.min()) - 1, 1e-9, 1e-9))
    n_all = len(window.session.dataset.samples)
    assert len(window.library.visible_ids()) == n_all  # an empty box clears the map filter
    assert not window.library.map_sel_bar.isVisibleTo(window)
    mv.box_select(QRectF(float(xs.min()) - 1, float(ys.min()) - 1, float(np.ptp(xs)) + 2, float(np.ptp(ys)) + 2))
    qtbot.mouseClick(window.library.clear_map_sel, Qt.LeftButton)
    assert len(window.library.visible_ids()) == len(window.session.dataset.samples)


def test_exports(qtbot, window, trained, tmp_path):
    from ugaar_app.export import export_tables, write_projector
    s = window.session
    vec, meta = write_projector(s.embeddings, s.embedding_ids, s.dataset, tmp_path / "proj")
    n = len(s.embedding_ids)
    assert len(vec.read_text().splitlines()) == 3 * n
    lines = meta.read_text().splitlines()
    assert lines[0].startswith("sample_id\tmodality") and len(lines) == 3 * n + 1
    assert len(vec.read_text().splitlines()[0].split("\t")) == s.embeddings["audio"].shape[1]
    out = export_tables(window, tmp_path / "tables.csv")
    assert out is not None
    csv_rows = (tmp_path / "tables.csv").read_text().splitlines()
    assert csv_rows[0].startswith("direction,R@1") and len(csv_rows) == 7
    md = (tmp_path / "tables.md").read_text()
    assert "audio→sheet" in md and "| direction |" in md


def test_typed_lyrics_and_dropped_midi_queries(qtbot, window, trained, tmp_path):
    ret = window.retrieval
    ds = window.session.dataset
    sample = next(s for s in ds.samples if s.split == "train")
    qtbot.mouseClick(ret.mode_lyrics, Qt.LeftButton)
    assert ret.lyrics.isVisible() and not ret.source.isEnabled()
    ret.lyrics.setText(sample.lyrics_text)
    with qtbot.waitSignal(ret.embedded, timeout=60000):
        qtbot.keyClick(ret.lyrics, Qt.Key_Return)
    assert set(ret.targets) == {"audio", "sheet"}
    ids = ret.result_ids("audio")
    assert len(ids) == min(ret.k.value(), len(ds.samples))
    assert "typed lyrics" in ret.header.text()
    # a MIDI file with lyric events, written here, dropped on the panel
    import pretty_midi
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    t = 0.0
    for note in sample.notes:
        inst.notes.append(pretty_midi.Note(90, note.pitch, t, t + 0.4))
        pm.lyrics.append(pretty_midi.Lyric(note.syllable, t))
        t += 0.5
    pm.instruments.append(inst)
    path = tmp_path / "query.mid"
    pm.write(str(path))
    with qtbot.waitSignal(ret.embedded, timeout=60000):
        ret.query_file(str(path))
    assert ret.mode_file.isChecked()
    assert "modalities" in ret.drop.label.text()
    assert ret.result_ids(ret.targets[0])
    # a file that is not music becomes a message, not a crash
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with qtbot.waitSignal(window.bridge.message, timeout=60000) as blocker:
        ret.query_file(str(bad))
    assert blocker.args[0] == "error" and "bad.mid" in blocker.args[1]


def test_extract_features_button_uses_the_cache(qtbot, window):
    from test_app_fixtures import needs_features
    needs_features()
    open_tiny(qtbot, window)
    panel = window.datasets
    assert panel.features_btn.isEnabled() and "Cached" in panel.features_label.text()
    with qtbot.waitSignal(window.bridge.features_changed, timeout=120000) as blocker:
        qtbot.mouseClick(panel.features_btn, Qt.LeftButton)
    assert blocker.args[0] is not None and len(blocker.args[0]) == len(window.session.dataset.samples)
    qtbot.waitUntil(lambda: panel.features_btn.isEnabled(), timeout=10000)
