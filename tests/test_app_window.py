"""The window on a tiny real dataset: library, sample view, player, filters, settings."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt

from test_app_fixtures import app_home, open_tiny, window  # noqa: F401 - fixtures


def _select_row(window, row):
    lib = window.library
    idx = lib.proxy.index(row, 0)
    lib.table.selectionModel().setCurrentIndex(idx, QItemSelectionModel.ClearAndSelect | QItemSelectionModel.Rows)
    return lib.proxy.data(idx, Qt.UserRole + 1)


def test_library_row_selects_everywhere(qtbot, window):
    ds = open_tiny(qtbot, window)
    assert window.library.model.rowCount() == len(ds.samples) > 0
    sid = _select_row(window, 2)
    assert window.session.selected == sid
    sample = ds.sample(sid)
    # sample view shows that sample's three modalities
    from model.data.labels import sample_label
    assert window.sample_view.header.text() == sample_label(sample)
    assert sid in window.sample_view.meta.text()
    assert not window.sample_view.sheet.pixmap_item.pixmap().isNull()
    assert window.sample_view.lyrics.sample is sample
    assert sample.syllables[0] in window.sample_view.lyrics.text.text()
    # selecting from elsewhere moves the library row
    other = ds.samples[-1].sample_id
    window.session.select(other, origin="test")
    assert window.library.selected_sample_id() == other


def test_filters_text_and_split(qtbot, window):
    ds = open_tiny(qtbot, window)
    lib = window.library
    word = ds.samples[0].words[1]
    qtbot.keyClicks(lib.search, word)
    shown = lib.visible_ids()
    assert ds.samples[0].sample_id in shown
    assert all(word.lower() in (ds.sample(i).lyrics_text + ds.sample(i).title + i).lower() for i in shown)
    lib.search.clear()
    lib.split_box.setCurrentText("train")
    assert set(lib.visible_ids()) == set(ds.split_ids("train"))
    assert "of" in lib.count_label.text()
    # a selection outside the filter clears the filter so the row shows
    outside = next((s.sample_id for s in ds.samples if s.split != "train"), None)
    if outside is not None:
        window.session.select(outside, origin="test")
        assert window.library.selected_sample_id() == outside


def test_player_without_device_moves_cursor_and_highlight(qtbot, window):
    ds = open_tiny(qtbot, window)
    player = window.sample_view.player
    # no sound card here: plain words, and nothing else breaks
    assert not player.output.available
    assert "No audio output device" in player.device_label.text()
    assert player.device_label.isVisibleTo(window)
    _select_row(window, 0)
    sheet = window.sample_view.sheet
    assert sheet.cursor_position() is None
    qtbot.keyClick(window, Qt.Key_Space)  # space toggles play
    assert window.session.playback.playing
    assert window.session.playback.device_ok is False
    qtbot.waitUntil(lambda: window.sample_view.lyrics.current >= 2, timeout=8000)
    x1 = sheet.cursor_position()
    qtbot.wait(400)
    x2 = sheet.cursor_position()
    assert x1 is not None and x2 is not None and x2 > x1
    # the cursor sits between the recorded note centres of the sounding syllable
    xs = sheet.note_positions()
    i = window.sample_view.lyrics.current
    assert xs[0] <= x2 <= xs[-1] + 1
    assert i >= 2 and window.session.playback.position > 0
    qtbot.keyClick(window, Qt.Key_Space)
    assert not window.session.playback.playing


def test_hovered_audio_onset_highlights_its_note_within_the_onset_tolerance(qtbot, window):
    """A hovered "Why" audio onset a little before a note (as detected onsets land) highlights
    that note, as the heatmap's alignment and per-note importance count it (notes_of_onsets)."""
    from model.search.alignment_view import ONSET_TOLERANCE_S
    open_tiny(qtbot, window)
    sid = _select_row(window, 0)
    sv = window.sample_view
    k = next(i for i in range(1, len(sv.times)) if sv.times[i] - sv.times[i - 1] > 2 * ONSET_TOLERANCE_S)
    sv.highlight_position(sid, "audio", 0, sv.times[k] - ONSET_TOLERANCE_S / 2)
    assert sv.lyrics.current == k and sv.sheet.cursor.isVisible()
    sv.highlight_position(sid, "audio", 0, sv.times[k] - 2 * ONSET_TOLERANCE_S)
    assert sv.lyrics.current == k - 1
    sv.highlight_position(sid, "audio", -1, -1.0)
    assert sv.lyrics.current == -1 and not sv.sheet.cursor.isVisible()


def test_sheet_zoom_and_display_toggle(qtbot, window):
    ds = open_tiny(qtbot, window)
    sid = _select_row(window, 0)
    sheet = window.sample_view.sheet
    plain_w = sheet.pixmap_item.pixmap().width()
    s0 = sheet.scale_factor
    qtbot.mouseClick(sheet.zoom_in_btn, Qt.LeftButton)
    assert sheet.scale_factor > s0 and not sheet.fit_mode
    qtbot.mouseClick(sheet.fit_btn, Qt.LeftButton)
    assert sheet.fit_mode
    if ds.display_sheet_path(sid) is not None:
        sheet.with_lyrics.setChecked(True)
        assert "syllables" in sheet.info.text()
        assert sheet.pixmap_item.pixmap().height() > 0
        sheet.with_lyrics.setChecked(False)
        assert sheet.pixmap_item.pixmap().width() == plain_w


def test_panels_say_what_to_do_next(qtbot, window):
    # nothing open: every panel says what to do next
    assert "No dataset" in window.map_view.placeholder.text()
    assert "Open a dataset" in window.retrieval.header.text()
    assert not window.training.start_btn.isEnabled()
    ds = open_tiny(qtbot, window)
    assert window.datasets.report.toPlainText().count(str(len(ds.samples))) >= 1
    if window.session.features is None:
        assert "features" in window.map_view.placeholder.text()


def test_settings_remember_last_dataset(qtbot, window, app_home):
    ds = open_tiny(qtbot, window)
    window.close()
    from ugaar_app.main_window import MainWindow
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.show()
    with qtbot.waitSignal(w2.interactive, timeout=30000):
        w2.restore_session()
    assert w2.session.dataset is not None and str(w2.session.dataset.root) == str(ds.root)
    assert w2.session.selected is not None  # first row selected once interactive
    w2.tasks.wait(10000)


def test_bad_dataset_is_a_message_not_a_crash(qtbot, window, tmp_path):
    (tmp_path / "junk").mkdir()
    with qtbot.waitSignal(window.bridge.message, timeout=10000) as blocker:
        window.controller.open_dataset(tmp_path / "junk")
    assert blocker.args[0] == "error"
    assert "not a finished dataset" in blocker.args[1]
    assert window.notifications.list.count() >= 1
    assert "⚠" in window.msg_button.text()
