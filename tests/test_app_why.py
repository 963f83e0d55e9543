"""Why this result in the window: the alignment heatmap under the retrieval results.

Drives the real retrieval panel on the shared tiny dataset and its aligned
fixture run (test_app_fixtures.trained): a clicked result gets a heatmap with
one row per query syllable and one column per result note (or audio onset),
labelled as the dataset names them; hovering a cell moves the sample view's
note cursor and lyrics highlight; a run on paper features says so instead.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from model.search.alignment_view import NO_ALIGNMENT_PAPER, note_name
from model.map.layout import MODALITIES

from test_app_fixtures import app_home, needs_trainer, tiny_dataset_path, trained, window  # noqa: F401

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def _query(qtbot, window, source: str, k: int = 100) -> str:
    """Select the first sample of the run's index and query from its ``source`` modality."""
    rp = window.retrieval
    sid = str(window.session.embedding_ids[0])
    rp.k.setValue(k)  # the tiny set is small: the partner is always listed
    rp.source.setCurrentIndex(MODALITIES.index(source))
    window.session.select(sid, origin="test")
    qtbot.waitUntil(lambda: rp.query_sample_id == sid, timeout=10000)
    return sid


def _click_result(qtbot, rp, target: str, rid: str):
    tree = rp.lists[str(rp.targets.index(target))]
    item = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
                if tree.topLevelItem(i).data(0, Qt.UserRole) == rid)
    tree.scrollToItem(item)
    with qtbot.waitSignal(rp.why.computed, timeout=60000):
        qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=tree.visualItemRect(item).center())
    return item


def test_a_result_shows_one_row_per_syllable_and_one_column_per_note(qtbot, window, trained):
    rp, sv, fs = window.retrieval, window.sample_view, window.session.features
    sid = _query(qtbot, window, "lyrics")
    sample = window.session.sample(sid)
    row = list(map(str, fs.sample_ids)).index(sid)
    n_syl, n_notes = int(fs.lengths["lyrics"][row]), int(fs.lengths["sheet"][row])
    _click_result(qtbot, rp, "sheet", sid)  # the true partner's sheet
    assert window.session.selected == sid
    heat = rp.why.heatmap()
    assert heat is not None and heat.shape == (n_syl, n_notes)
    assert np.all(np.isfinite(heat)) and np.abs(heat).max() > 0
    rows, cols = rp.why.axis_labels()
    assert rows == [n.syllable for n in sample.notes[:n_syl]]
    assert cols == [note_name(n.pitch) for n in sample.notes[:n_notes]]
    # the axes write every k-th label when all would overlap, from the first one
    for drawn, labels in zip(rp.why.tick_labels(), (rows, cols)):
        step = len(labels) // len(drawn) if len(drawn) else 0
        assert drawn and drawn[0] == labels[0] and set(drawn) <= set(labels) and step >= 1
    # the partner: its alignment path (syllable k on note k) is drawn over the diagonal
    x, y = rp.why.path_item.getData()
    assert len(x) == min(n_syl, n_notes) and np.allclose(x, y)
    # the result's importance: bars under the sheet, a tint over the syllables
    assert sv.sheet.importance is not None and len(sv.sheet.importance) == len(sample.notes)
    assert len(sv.sheet._importance_items) == len(sample.notes)
    assert sv.lyrics.weights == sv.sheet.importance
    # hovering cell (query syllable 2, result note 5) puts the note cursor and the highlight on note 5
    rp.why.hover_cell(2, 5)
    assert sv.sheet.cursor.isVisible()
    assert sv.sheet.cursor_position() == pytest.approx(sv.sheet.note_positions()[5])
    assert sv.lyrics.current == 5
    assert "Δ" in rp.why.heat.toolTip()
    rp.why.hover_cell(-1, -1)
    assert not sv.sheet.cursor.isVisible() and sv.lyrics.current == -1

    # the same query against an audio result: columns are onsets at their times in seconds
    _click_result(qtbot, rp, "audio", sid)
    heat = rp.why.heatmap()
    rows, cols = rp.why.axis_labels()
    assert heat.shape == (n_syl, int(fs.lengths["audio"][row])) and len(cols) == heat.shape[1]
    times = [float(c.removesuffix(" s")) for c in cols]
    assert all(c.endswith(" s") for c in cols) and times == sorted(times) and times[-1] < 30
    rp.why.hover_cell(0, 1)
    assert sv.lyrics.current >= 0 and sv.sheet.cursor.isVisible()

    if os.environ.get("UGAAR_SCREENSHOTS"):  # docs/screenshots/why_result.png (see docs/app.md)
        _click_result(qtbot, rp, "sheet", sid)
        rp.why.hover_cell(4, 4)
        # the map's tool row sets the central widget's minimum width: room for a wide right dock
        window.resize(2150, 1050)
        qtbot.wait(200)  # the docks take their new sizes once the window has its own
        window.resizeDocks([window.library_dock, window.sample_dock], [300, 720], Qt.Horizontal)
        window.resizeDocks([window.sample_dock, window.retrieval_dock], [360, 620], Qt.Vertical)
        qtbot.wait(200)
        rp.results_split.setSizes([150, 470])
        qtbot.wait(300)
        window.grab().save(str(SHOTS / "why_result.png"))


@lru_cache(maxsize=None)
def _paper_run_path() -> str:
    """A one-epoch Baseline on the paper's pooled features of the tiny dataset."""
    from model.data.dataset import Dataset
    from model.ugaar.config import RunConfig
    from model.ugaar.trainer import Trainer
    from ugaar_app.controller import find_cached_features
    ds = Dataset.open(tiny_dataset_path())
    run_dir = Path(ds.root) / "runs" / "fixture-paper"
    Trainer(RunConfig.for_method("baseline", inputs="paper", epochs=1, seed=0), find_cached_features(ds),
            run_dir).run()
    return str(run_dir)


def test_a_run_on_paper_features_says_it_has_no_alignment(qtbot, window, trained):
    needs_trainer()
    rp = window.retrieval
    with qtbot.waitSignal(window.controller.run_opened, timeout=60000):
        window.controller.open_run(_paper_run_path())
    assert window.session.run.config.inputs == "paper"
    sid = _query(qtbot, window, "lyrics")
    _click_result(qtbot, rp, "sheet", rp.result_ids("sheet")[0])
    assert rp.why.heatmap() is None and not rp.why.plots.isVisibleTo(window)
    assert rp.why.message.isVisibleTo(window) and rp.why.message.text() == NO_ALIGNMENT_PAPER
    assert "paper features" in rp.why.message.text() and sid
