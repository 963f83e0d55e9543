"""Datasets panel: import a MIDI folder with a bad file (report says why), cancel a build."""
from __future__ import annotations

from PySide6.QtCore import Qt

from test_app_fixtures import app_home, open_tiny, window  # noqa: F401 - fixtures


def _write_midi(path, words, pitch0=60):
    import pretty_midi
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0, name="melody")
    t = 0.0
    for i, w in enumerate(words):
        inst.notes.append(pretty_midi.Note(90, pitch0 + (i * 3) % 12, t, t + 0.4))
        pm.lyrics.append(pretty_midi.Lyric(w + " ", t))
        t += 0.5
    pm.instruments.append(inst)
    pm.write(str(path))


def test_import_midi_folder_shows_report_with_skipped_file(qtbot, window, tmp_path):
    src = tmp_path / "midis"
    src.mkdir()
    words = "la li lo lu le ma mi mo mu me na ni no nu ne pa pi po pu pe".split()
    _write_midi(src / "song_a.mid", words)
    _write_midi(src / "song_b.mid", list(reversed(words)), pitch0=55)
    (src / "broken.mid").write_bytes(b"MThd not really")
    panel = window.datasets
    window.tabs.setCurrentWidget(panel)
    panel.source.setCurrentIndex(panel.source.findData("midi"))
    assert panel.path.isEnabled()
    panel.path.setText(str(src))
    panel.name.setText("my-midis")
    with qtbot.waitSignal(window.controller.dataset_opened, timeout=120000):
        qtbot.mouseClick(panel.build_btn, Qt.LeftButton)
    ds = window.session.dataset
    assert ds is not None and ds.root.name == "my-midis" and len(ds.samples) >= 2
    report = panel.report.toPlainText()
    assert "broken.mid" in report and "skipped" in report
    assert window.library.model.rowCount() == len(ds.samples)


def test_cancel_build_keeps_window_working(qtbot, window):
    panel = window.datasets
    panel.source.setCurrentIndex(panel.source.findData("music21-corpus"))
    panel.name.setText("to-cancel")
    panel.limit.setValue(40)
    qtbot.mouseClick(panel.build_btn, Qt.LeftButton)
    task = panel.task
    assert task is not None and panel.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: task.last_progress is not None, timeout=60000)
    qtbot.mouseClick(panel.cancel_btn, Qt.LeftButton)
    # task.done is set on the worker thread before its queued `cancelled` and `ended` signals reach
    # the GUI thread; the panel re-enabling Build (its `ended` slot, delivered after `cancelled`'s
    # notification) is when the window has seen the end
    qtbot.waitUntil(lambda: task.done and panel.build_btn.isEnabled(), timeout=120000)
    assert task.result is None and task.error is None  # cancelled, not failed
    assert any("cancelled" in t.lower() for t in window.notifications.texts())
    assert panel.build_btn.isEnabled() and not panel.bar.isVisible()
    assert window.session.dataset is None


def test_features_label_says_how_audio_onsets_were_found(qtbot, window):
    """The datasets panel names the onset detector of the features' audio tokens (issue 10)."""
    from model.ugaar.synthetic import synthetic_features, synthetic_stress_features
    from ugaar_app.dataset_panel import FEATURES_TIP

    open_tiny(qtbot, window)
    label = window.datasets.features_label
    aligned = synthetic_stress_features(40)
    aligned.meta["config"] = {"onset_method": "flux", "onset_delta": 0.02}
    window.session.set_features(aligned)
    qtbot.waitUntil(lambda: "Audio onsets: spectral flux (threshold 0.02 over 3 rows)." in label.text(),
                    timeout=5000)  # written before onset_window existed: picked over 3 rows
    assert label.text().startswith("Cached: 40 samples") and label.toolTip() == FEATURES_TIP
    assert "--onset-method learned" in label.toolTip()
    fine = synthetic_stress_features(40)
    fine.meta["config"] = {"onset_method": "flux", "onset_delta": 0.015, "onset_window": 1, "onset_picking": "fixed"}
    fine.meta["onset_picking"] = {"items": 40, "exact_share": {"0.015/1": 0.9}, "chosen": "0.015/1"}
    window.session.set_features(fine)
    qtbot.waitUntil(lambda: "Audio onsets: spectral flux (threshold 0.015 over 1 row, chosen on the dataset's "
                            "notes)." in label.text(), timeout=5000)
    learned = synthetic_stress_features(40)
    learned.meta["config"] = {"onset_method": "learned", "onset_delta": 0.05}
    window.session.set_features(learned)
    qtbot.waitUntil(lambda: label.text().endswith("Audio onsets: learned detector."), timeout=5000)
    window.session.set_features(synthetic_features(40))  # the paper's pooled features: no audio tokens
    qtbot.waitUntil(lambda: "Audio onsets" not in label.text(), timeout=5000)
