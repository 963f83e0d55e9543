"""The window's side of the error contract: bad files and damaged runs become one message.

A file dropped on the retrieval panel that is not what its name says, and a
run folder whose files are damaged, each give one non-blocking message
through the session (the CLI's one line, naming the file), and the window
keeps working: the active run stays active and a query still answers.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from test_app_fixtures import app_home, needs_trainer, open_tiny, trained, window  # noqa: F401


def _still_answers(qtbot, window) -> None:
    """The active run still answers a query from a sample."""
    ret = window.retrieval
    qtbot.mouseClick(ret.mode_sample, Qt.LeftButton)
    window.session.select(window.session.dataset.samples[0].sample_id, origin="test")
    ret.query_selected()
    assert ret.result_ids(ret.targets[0])


BAD_FILES = {  # file name, bytes, words the message must contain
    "text as wav": ("notes.wav", b"these are my notes, not a recording\n", "is not an audio file"),
    "empty wav": ("empty.wav", b"", "empty"),
    "text as midi": ("tune.mid", b"not a midi file at all", "not a readable MIDI file"),
    "empty midi": ("empty.mid", b"", "empty"),
    "png as kar": ("song.kar", b"\x89PNG\r\n\x1a\n" + bytes(40), "is a PNG image, not MIDI"),
}


def test_dropped_bad_files_give_one_message_and_the_window_keeps_working(qtbot, window, trained, tmp_path):
    ret = window.retrieval
    run_before = window.session.run
    for case, (name, data, words) in BAD_FILES.items():
        path = tmp_path / name
        path.write_bytes(data)
        before = len(window.session.messages)
        with qtbot.waitSignal(window.bridge.message, timeout=60000) as blocker:
            ret.drop.dropped.emit(str(path))  # what the drop zone emits for a dropped file
        level, text = blocker.args
        assert level == "error", (case, text)
        assert str(path) in text and words in text, (case, text)
        assert "\n" not in text and "Traceback" not in text and text.count("failed") == 0, (case, text)
        qtbot.wait(50)
        assert len(window.session.messages) == before + 1, window.session.messages[before:]  # one message
        assert ret.drop.label.text().startswith("Drop a MIDI")  # the drop zone is ready again
    assert window.session.run is run_before
    _still_answers(qtbot, window)


def _corrupt_runs(runs_root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Damaged copies of a real run: folder → (the damaged file, words of the reason)."""
    made = {}

    def copy(name: str) -> Path:
        d = runs_root / f"zz-corrupt-{name}"
        shutil.copytree(good, d)
        return d

    d = copy("config-not-json")
    (d / "config.json").write_text('{"method": "ugaar", "epochs": ', encoding="utf-8")
    made["config-not-json"] = (d / "config.json", "is not valid JSON")
    d = copy("config-a-list")
    (d / "config.json").write_text("[1, 2, 3]", encoding="utf-8")
    made["config-a-list"] = (d / "config.json", "holds a JSON list, not an object")
    d = copy("metrics-a-list")
    (d / "metrics.json").write_text('["R@1"]', encoding="utf-8")
    made["metrics-a-list"] = (d / "metrics.json", "holds a JSON list, not an object")
    d = copy("status-binary")
    (d / "status.json").write_bytes(b"\xff\xfe\x00garbage")
    made["status-binary"] = (d / "status.json", "is not a text (UTF-8 JSON) file")
    return made


def test_corrupt_runs_are_listed_as_corrupt_and_opening_one_is_a_message(qtbot, window, trained):
    runs_root = Path(trained).parent
    made = _corrupt_runs(runs_root, Path(trained))
    # a run whose config is fine but whose embeddings were cut short by a copy
    cut = runs_root / "zz-corrupt-embeddings-cut"
    shutil.copytree(trained, cut)
    emb = cut / "embeddings.npz"
    emb.write_bytes(emb.read_bytes()[:200])
    try:
        panel = window.training
        runs = panel.refresh_runs()  # one damaged folder never breaks the list
        listed = {r["run_dir"]: r for r in runs}
        assert str(trained) in listed and listed[str(trained)].get("status") == "finished"
        for folder, (damaged, words) in made.items():
            r = listed[str(runs_root / f"zz-corrupt-{folder}")]
            assert r["status"] == "corrupt" and str(damaged) in r["problem"] and words in r["problem"], r
        assert listed[str(cut)]["status"] == "finished"  # its JSON files are fine: found when opened
        shown = {panel.runs.topLevelItem(i).data(0, Qt.UserRole): panel.runs.topLevelItem(i)
                 for i in range(panel.runs.topLevelItemCount())}
        item = shown[str(runs_root / "zz-corrupt-config-a-list")]
        assert item.text(3) == "corrupt" and "config.json" in item.toolTip(3)

        run_before = window.session.run
        cases = [(runs_root / f"zz-corrupt-{f}", damaged, words) for f, (damaged, words) in made.items()]
        cases.append((cut, emb, "is truncated or damaged"))
        for folder, damaged, words in cases:
            before = len(window.session.messages)
            with qtbot.waitSignal(window.bridge.message, timeout=60000) as blocker:
                window.controller.open_run(str(folder))
            level, text = blocker.args
            assert level == "error" and str(damaged) in text and words in text, text
            assert "\n" not in text and "Traceback" not in text
            qtbot.wait(100)  # the map preview of the same folder must not add a second message
            assert len(window.session.messages) == before + 1, window.session.messages[before:]
            assert window.session.run is run_before  # the active run stays active
        panel.runs.setCurrentItem(item)  # selecting a corrupt run replays nothing and breaks nothing
        _still_answers(qtbot, window)
    finally:
        for d in runs_root.glob("zz-corrupt-*"):
            shutil.rmtree(d, ignore_errors=True)
        window.training.refresh_runs()


def test_list_runs_survives_every_damaged_json(tmp_path):
    """``list_runs`` on plain folders (no window): each damaged file is a corrupt row, never an exception."""
    from ugaar_app.controller import list_runs

    class Ds:
        root = tmp_path

    good = {"method": "ugaar", "seed": 1, "epochs": 2}
    cases = {"ok": {"config.json": json.dumps(good), "status.json": '{"status": "finished"}',
                    "metrics.json": '{"val": {"a→b": {"R@1": 50.0}}}'},
             "config-null": {"config.json": "null"},
             "config-method-number": {"config.json": '{"method": 5}'},
             "status-list": {"config.json": json.dumps(good), "status.json": "[]"},
             "metrics-val-list": {"config.json": json.dumps(good), "metrics.json": '{"val": [1]}'},
             "metrics-r1-text": {"config.json": json.dumps(good), "metrics.json": '{"val": {"x": {"R@1": "hi"}}}'}}
    for name, files in cases.items():
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        for fname, text in files.items():
            (d / fname).write_text(text, encoding="utf-8")
    rows = {Path(r["run_dir"]).name: r for r in list_runs(Ds())}
    assert rows["ok"]["status"] == "finished" and rows["ok"]["val_r1"] == 50.0
    assert rows["config-null"]["status"] == "corrupt" and "config.json" in rows["config-null"]["problem"]
    assert rows["config-method-number"]["status"] == "corrupt"
    assert rows["status-list"]["status"] == "corrupt" and "status.json" in rows["status-list"]["problem"]
    assert rows["metrics-val-list"].get("status") != "corrupt" and "val_r1" not in rows["metrics-val-list"]
    assert "val_r1" not in rows["metrics-r1-text"]
