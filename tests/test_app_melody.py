"""Melody re-ranking in the window: audio ↔ sheet results re-ordered by how a recording's pitch follows a sheet's notes.

Drives the real retrieval panel on the shared tiny dataset and its fixture
run: the session's reranker, the background pitch tracks, the checkboxes,
and dropped files (a flute rendering by FluidSynth, a MIDI file).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from model.map.layout import MODALITIES
from ugaar_app.retrieval_panel import ORDERING_MARK, RERANKED_MARK

from test_app_fixtures import app_home, trained, window  # noqa: F401 - fixtures
from test_app_fixtures import (list_column, list_scores, list_title, query_sample, write_flute_wav,
                               write_lyric_midi)

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def _wait_for_tracks(qtbot, window) -> None:
    """The "Pitch tracks" task started when the run became active (if some were missing) has ended."""
    qtbot.waitUntil(lambda: not any(t.name == "Pitch tracks" for t in window.tasks.active), timeout=180000)


def _unique_sample(window) -> str:
    """A sample of the run whose melody is found in no other sample's (either way, to 0.2 semitone a frame).

    Chorales repeat their first phrase, and the tiny dataset cuts overlapping
    windows: a flute playing one of them also plays most of the other, and
    re-ranking by melody cannot (and should not) tell them apart.
    """
    from model.search.melody_rerank import contour_distance, note_contour
    ds = window.session.dataset
    contours = {s.sample_id: note_contour(s.notes) for s in ds.samples}

    def apart(a: str, b: str) -> bool:
        return min(contour_distance(contours[a], contours[b], within=True),
                   contour_distance(contours[b], contours[a], within=True)) > 0.2

    in_run = set(window.session.embedding_ids)
    return next(sid for sid in contours if sid in in_run and all(apart(sid, o) for o in contours if o != sid))










def test_sample_queries_are_reranked_and_the_boxes_rerun_them(qtbot, window, trained):
    rp, session = window.retrieval, window.session
    _wait_for_tracks(qtbot, window)
    melody, index = session.melody, session.index
    assert melody is not None and melody.metric == session.run.config.metric
    from model.features.tokens.pitch_track import cached_pitch_tracks
    cached = cached_pitch_tracks(session.dataset)  # the task cached every item in the dataset folder
    assert {s.sample_id for s in session.dataset.samples} <= set(cached)
    sid = _unique_sample(window)
    assert len(melody.track_of(sid)) > 0  # the reranker got them

    # the boxes say what they do: the pitch against the notes, the run's number of candidates, any key
    assert f"{melody.config.k} nearest" in rp.melody_box.toolTip() and "pitch" in rp.melody_box.toolTip()
    assert "another key" in rp.any_key_box.toolTip()

    k = rp.k.value()
    query_sample(window, sid, "audio")
    assert rp.reranked == {"sheet": True}  # audio → lyrics is not a melody pair
    assert list_title(rp, "sheet").endswith(RERANKED_MARK) and RERANKED_MARK not in list_title(rp, "lyrics")
    assert list_column(rp, "sheet") == "score" and list_column(rp, "lyrics") == "dist"
    expected = melody.query_sample(index, sid, "audio", "sheet", k)
    assert rp.result_ids("sheet") == [r for r, _ in expected]
    assert list_scores(rp, "sheet") == [f"{d:.3f}" for _, d in expected]  # the combined score is shown
    assert rp.result_ids("sheet")[0] == sid and rp.partner_rank("sheet") == 1

    # off: the same query from the learned space alone, said in the title and the column
    rp.melody_box.setChecked(False)
    assert not rp.any_key_box.isEnabled()
    assert rp.reranked == {} and RERANKED_MARK not in list_title(rp, "sheet") and list_column(rp, "sheet") == "dist"
    plain = index.query_sample(sid, "audio", "sheet", k)
    assert rp.result_ids("sheet") == [r for r, _ in plain]
    assert list_scores(rp, "sheet") == [f"{d:.3f}" for _, d in plain]
    assert rp.query_sample_id == sid

    # on again, in any key: the session's reranker gets the any-key setting (the whole library by
    # key-free pitch, for dropped recordings); a library item is in its own key, so its list stays
    rp.melody_box.setChecked(True)
    assert rp.reranked == {"sheet": True} and rp.any_key_box.isEnabled()
    in_key = list_scores(rp, "sheet")
    rp.any_key_box.setChecked(True)
    assert session.melody is melody and melody.config.any_key and session.melody_any_key
    assert melody.config == type(melody.config).for_any_key()
    assert list_scores(rp, "sheet") == in_key and rp.result_ids("sheet")[0] == sid
    rp.any_key_box.setChecked(False)
    assert not melody.config.any_key and melody.config == type(melody.config)()

    # from the sheet, its recordings are re-ranked by their pitch tracks
    query_sample(window, sid, "sheet")
    assert rp.reranked == {"audio": True} and list_title(rp, "audio").endswith(RERANKED_MARK)
    assert rp.result_ids("audio") == [r for r, _ in melody.query_sample(index, sid, "sheet", "audio", k)]
    assert rp.result_ids("audio")[0] == sid
    # lyrics → the others: no melody, nothing re-ranked
    query_sample(window, sid, "lyrics")
    assert rp.reranked == {} and not any(RERANKED_MARK in t.text() for t in rp.list_titles.values())


def test_pitch_tracks_are_computed_in_the_background_and_the_list_follows(qtbot, window, trained, tmp_path):
    from ugaar_app.controller import melody_reranker
    rp, session = window.retrieval, window.session
    _wait_for_tracks(qtbot, window)
    ds = session.dataset
    cache = Path(ds.root) / "features" / "pitch-tracks"
    shutil.move(str(cache), str(tmp_path / "pitch-tracks"))  # as on a dataset never opened before
    melody, missing = melody_reranker(ds, session.run.config.metric)
    assert missing and melody is not None
    session.melody = melody  # what the controller makes active with a run whose tracks are not cached
    sid = _unique_sample(window)
    query_sample(window, sid, "audio")
    assert rp.reranked == {}  # the sample's own track is not in yet: the learned ranking, not marked

    # a cancelled task hands nothing over and says so
    task = window.controller.compute_pitch_tracks()
    with qtbot.waitSignal(task.ended, timeout=30000):
        task.cancel()
    assert task.result is None and len(melody.track_of(sid)) == 0
    assert any("Pitch tracks cancelled" in text for _level, text in session.messages)

    task = window.controller.compute_pitch_tracks()
    assert task.name == "Pitch tracks"
    assert window.controller.compute_pitch_tracks() is task  # another run of this dataset shares it
    rp.query_selected()
    assert "pitch tracks are still being computed" in rp.header.text()  # why the list is not re-ranked yet
    with qtbot.waitSignal(window.bridge.melody_changed, timeout=180000):
        pass
    assert len(melody.track_of(sid)) > 0 and (cache / "v1.npz").is_file()
    # the panel ran its query again with the sample's track
    assert rp.reranked == {"sheet": True} and rp.query_sample_id == sid
    assert rp.result_ids("sheet") == [r for r, _ in melody.query_sample(session.index, sid, "audio", "sheet",
                                                                         rp.k.value())]


def test_a_dropped_flute_rendering_finds_its_sheet(qtbot, window, trained, tmp_path):
    rp, session = window.retrieval, window.session
    sid = _unique_sample(window)
    path = write_flute_wav(session.dataset.sample(sid).notes, tmp_path / "flute.wav")  # a timbre never heard
    with qtbot.waitSignal(rp.embedded, timeout=120000):
        rp.query_file(str(path))
    assert rp.current_source() == "audio"
    assert rp.query_track is not None and len(rp.query_track) > 0 and rp.query_track_within
    assert rp.reranked == {"sheet": True} and list_title(rp, "sheet").endswith(RERANKED_MARK)
    assert rp.result_ids("sheet")[0] == sid
    vec = rp.query_vectors[("audio", "sheet")]
    expected = session.melody.query_vector(session.index, vec, "audio", "sheet", rp.k.value(), rp.query_track,
                                           within=True)
    assert rp.result_ids("sheet") == [r for r, _ in expected]
    # off: the matched window's vector in the learned space alone
    rp.melody_box.setChecked(False)
    assert rp.reranked == {} and list_column(rp, "sheet") == "dist"
    assert rp.result_ids("sheet") == [r for r, _ in session.index.query(vec, "sheet", rp.k.value(), source="audio")]
    rp.melody_box.setChecked(True)
    assert rp.result_ids("sheet")[0] == sid

    if os.environ.get("UGAAR_SCREENSHOTS"):  # docs/screenshots/melody_rerank.png (see docs/app.md)
        _save_melody_screenshot(qtbot, window, sid)


def test_any_key_orders_the_whole_library_in_the_background(qtbot, window, trained, tmp_path):
    import dataclasses

    rp, session = window.retrieval, window.session
    sid = _unique_sample(window)
    sample = session.dataset.sample(sid)
    # a flute 3 semitones above the sheet: in its key only by removing each melody's middle pitch
    up = [dataclasses.replace(n, pitch=n.pitch + 3) for n in sample.notes]
    path = write_flute_wav(up, tmp_path / "flute-up3.wav")
    rp.any_key_box.setChecked(True)
    melody, index = session.melody, session.index
    assert melody.config.k == 0  # the whole library, the slow setting this test is about
    with qtbot.waitSignal(rp.embedded, timeout=120000):
        rp.query_file(str(path))
    assert rp.current_source() == "audio" and rp.query_track_within
    vec, track = rp.query_vectors[("audio", "sheet")], rp.query_track

    def ordered() -> bool:
        return rp.ordering is None and rp.reranked == {"sheet": True}

    # another k: the query runs again; until its ordering arrives the learned space's list stands in,
    # not marked re-ranked, and the header and the title say what is coming
    rp.k.setValue(5)
    assert rp.ordering is not None and rp.reranked == {}
    assert "ordering the whole library by melody in any key" in rp.header.text()
    assert list_title(rp, "sheet").endswith(ORDERING_MARK) and list_column(rp, "sheet") == "dist"
    assert rp.result_ids("sheet") == [r for r, _ in index.query(vec, "sheet", 5, source="audio")]
    qtbot.waitUntil(ordered, timeout=60000)
    qtbot.wait(300)  # the superseded k = 10 ordering, cancelled, must not overwrite the list
    assert rp.result_ids("sheet") == [r for r, _ in melody.query_vector(index, vec, "audio", "sheet", 5, track,
                                                                       within=True)]

    rp.k.setValue(10)
    qtbot.waitUntil(ordered, timeout=60000)
    k = rp.k.value()
    expected = melody.query_vector(index, vec, "audio", "sheet", k, track, within=True)
    assert rp.result_ids("sheet") == [r for r, _ in expected]
    assert list_scores(rp, "sheet") == [f"{d:.3f}" for _, d in expected]
    assert rp.result_ids("sheet")[0] == sid
    assert list_title(rp, "sheet").endswith(RERANKED_MARK) and list_column(rp, "sheet") == "score"
    # the header reports the time until the ordered list was shown, the background part included
    assert "ordering" not in rp.header.text() and f"{rp.last_latency_ms:.1f} ms" in rp.header.text()

    # in the sheet's key only (top 100 re-ranked, on the GUI thread): the transposed recording is
    # 3 semitones off its own sheet in every frame, and its sheet is not first
    rp.any_key_box.setChecked(False)
    assert rp.ordering is None and rp.reranked == {"sheet": True}
    assert rp.result_ids("sheet") == [r for r, _ in melody.query_vector(index, vec, "audio", "sheet", k, track,
                                                                       within=True)]
    assert rp.result_ids("sheet")[0] != sid


def _save_melody_screenshot(qtbot, window, sid: str) -> None:
    """The dropped flute recording's results, its sheet first in the re-ranked list and shown in the sample view."""
    rp = window.retrieval
    _wait_for_tracks(qtbot, window)  # their arrival runs the query again: the header's "still being computed" goes
    qtbot.wait(200)
    rp.why.toggle.setChecked(False)  # a dropped file is not explained: the lists get the room
    # the map's tool row sets the central widget's minimum width: room for a wide right dock
    window.resize(2150, 1050)
    qtbot.wait(200)  # the docks take their new sizes once the window has its own
    window.resizeDocks([window.library_dock, window.sample_dock], [260, 900], Qt.Horizontal)
    window.resizeDocks([window.sample_dock, window.retrieval_dock], [330, 650], Qt.Vertical)
    qtbot.wait(200)
    tree = rp.lists[str(rp.targets.index("sheet"))]
    item = tree.topLevelItem(0)
    assert item.data(0, Qt.UserRole) == sid and rp.reranked == {"sheet": True}
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=tree.visualItemRect(item).center())
    qtbot.waitUntil(lambda: window.session.selected == sid, timeout=10000)
    assert rp.result_ids("sheet")[0] == sid  # a clicked result keeps the list
    qtbot.wait(300)
    window.grab().save(str(SHOTS / "melody_rerank.png"))


def test_a_dropped_midi_file_is_reranked_by_its_notes(qtbot, window, trained, tmp_path):
    from model.search.melody_rerank import note_contour
    rp, session = window.retrieval, window.session
    sid = _unique_sample(window)
    path = write_lyric_midi(session.dataset.sample(sid).notes, tmp_path / "query.mid")
    with qtbot.waitSignal(rp.embedded, timeout=120000):
        rp.query_file(str(path))
    emb = rp._ensure_embedder()
    assert not rp.query_track_within
    assert np.array_equal(rp.query_track, note_contour(emb.midi_notes(str(path))))
    # the file's notes re-rank both of its melody pairs: its audio → sheet and its sheet → audio
    for source, target in (("audio", "sheet"), ("sheet", "audio")):
        rp.source.setCurrentIndex(MODALITIES.index(source))
        assert rp.reranked == {target: True} and list_title(rp, target).endswith(RERANKED_MARK)
        assert rp.result_ids(target)[0] == sid
