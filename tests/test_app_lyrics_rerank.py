"""Lyrics re-ranking in the window: lyrics ↔ sheet / audio results scored by the run's syllable-by-note pair scorer.

Drives the real retrieval panel on the shared tiny dataset: the *Train lyrics
scorer* button (a background task writing ``RUN/lyrics_scorer.pt``), the
background re-ranking of sample and typed-lyrics queries, the box, and a
damaged scorer file when the run opens.  Each test works on its own copy of
the fixture run, so the scorer it writes never reaches the other app tests
(``tests/test_app_melody.py`` expects lyrics lists to be the learned space's).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from model.map.layout import MODALITIES
from ugaar_app import retrieval_panel
from ugaar_app.retrieval_panel import LYRICS_ORDERING_MARK, LYRICS_RERANKED_MARK, RERANKED_MARK

from test_app_fixtures import app_home, needs_trainer, open_tiny, tiny_run_path, window  # noqa: F401 - fixtures
from test_app_fixtures import list_column, list_scores, list_title, query_sample, write_lyric_midi

SCORER_FILE = "lyrics_scorer.pt"  # model.search.lyrics_rerank.RERANKER_FILE, spelled out: the file users see
LINE = "yesterday all my troubles seemed so far away"


def _open_copy(qtbot, window, tmp_path: Path, damaged: bool = False) -> Path:
    """Open the tiny dataset with a copy of the fixture run (a damaged ``lyrics_scorer.pt`` in it if asked)."""
    needs_trainer()
    run = tmp_path / "run"
    shutil.copytree(tiny_run_path(), run, ignore=shutil.ignore_patterns(SCORER_FILE))
    if damaged:
        (run / SCORER_FILE).write_bytes(b"not a checkpoint")
    with qtbot.waitSignal(window.controller.run_opened, timeout=60000):
        open_tiny(qtbot, window, run_dir=str(run))
    return run


@pytest.fixture
def copied_run(qtbot, window, tmp_path):
    """The window with the tiny dataset and a private copy of its fixture run open (no lyrics scorer)."""
    return _open_copy(qtbot, window, tmp_path)


def _wait_for_tracks(qtbot, window) -> None:
    """The "Pitch tracks" task has ended: its arrival re-runs the shown query, which would restart a re-ranking."""
    qtbot.waitUntil(lambda: not any(t.name == "Pitch tracks" for t in window.tasks.active), timeout=180000)


def _give_validation_samples(window) -> None:
    """The tiny set has one validation sample and the pair scorer refuses fewer than two (it keeps its best
    validation epoch and chooses its weight there): one training song moves to validation, in the
    session's features only (what the button trains on), not on disk."""
    rp, fs = window.retrieval, window.session.features
    if rp._lyrics_training_blocker() is None:
        return
    # the button says why it cannot train on these splits
    assert not rp.train_lyrics_btn.isEnabled() and "two validation samples" in rp.train_lyrics_btn.toolTip()
    splits, songs = np.asarray(fs.splits), np.asarray(fs.song_ids)
    moved = songs[splits == "train"][0]
    window.session.set_features(dataclasses.replace(fs, splits=np.where(songs == moved, "val", splits)))
    assert rp._lyrics_training_blocker() is None and rp.train_lyrics_btn.isEnabled()


def _train(qtbot, window, epochs: int, monkeypatch) -> object:
    """Press *Train lyrics scorer* (``epochs`` per side) and wait until the session has the scorer."""
    rp = window.retrieval
    monkeypatch.setattr(retrieval_panel, "LYRICS_SCORER_EPOCHS", epochs)
    _give_validation_samples(window)
    with qtbot.waitSignal(window.bridge.lyrics_rr_changed, timeout=300000):
        qtbot.mouseClick(rp.train_lyrics_btn, Qt.LeftButton)
        assert rp.lyrics_training is not None and rp.lyrics_training.name == "Train lyrics scorer"
        assert rp.train_lyrics_btn.text() == "Cancel lyrics scorer training"  # the same button stops it
    assert rp.lyrics_training is None and rp.train_lyrics_btn.text() == "Train lyrics scorer"
    return window.session.lyrics_rr










def _wait_reranked(qtbot, rp, targets: dict[str, bool]) -> None:
    qtbot.waitUntil(lambda: rp.lyrics_ordering is None and rp.lyrics_reranked == targets, timeout=60000)


def test_train_button_writes_the_scorer_and_sample_queries_use_it(qtbot, window, copied_run, monkeypatch):
    rp, session = window.retrieval, window.session
    _wait_for_tracks(qtbot, window)
    assert session.lyrics_rr is None
    # without a scorer the box says how to get one: the button or the command
    assert not rp.lyrics_box.isEnabled() and rp.lyrics_box.isChecked()
    assert "Train lyrics scorer" in rp.lyrics_box.toolTip() and "ugaar lyrics-scorer" in rp.lyrics_box.toolTip()

    rr = _train(qtbot, window, 2, monkeypatch)
    assert (copied_run / SCORER_FILE).is_file()
    assert rr is not None and set(rr.scorers) == {"sheet", "audio"} and set(rr.weights) == {"sheet", "audio"}
    assert len(rr.info["sheet"]["history"]) == 2 and len(rr.info["audio"]["history"]) == 2
    assert rp.lyrics_box.isEnabled() and "syllable" in rp.lyrics_box.toolTip()
    assert any("Lyrics scorer trained" in text and SCORER_FILE in text for _l, text in session.messages)
    from model.search.lyrics_rerank import LyricsReranker
    saved = LyricsReranker.load(copied_run, session.features)  # what opening the run again reads
    assert saved.weights == rr.weights

    index, k = session.index, rp.k.value()
    sid = next(s for s in session.embedding_ids if s in rr.row)
    query_sample(window, sid, "lyrics")
    # the learned space's list stands in, marked as on its way, until the background task brings the scored one
    assert rp.lyrics_ordering is not None and rp.lyrics_reranked == {}
    assert list_title(rp, "sheet").endswith(LYRICS_ORDERING_MARK) and list_column(rp, "sheet") == "dist"
    assert rp.result_ids("sheet") == [r for r, _ in index.query_sample(sid, "lyrics", "sheet", k)]
    assert "re-ranking the whole library by syllables" in rp.header.text()
    _wait_reranked(qtbot, rp, {"sheet": True, "audio": True})
    expected = rr.query_index(index, index.vector(sid, "lyrics", "sheet"), "lyrics", "sheet", k,
                              rr.library_query("lyrics", sid))
    assert rp.result_ids("sheet") == [r for r, _ in expected]
    assert list_scores(rp, "sheet") == [f"{d:.3f}" for _, d in expected]  # the combined score is shown
    assert list_title(rp, "sheet").endswith(LYRICS_RERANKED_MARK) and list_column(rp, "sheet") == "score"
    assert list_title(rp, "audio").endswith(LYRICS_RERANKED_MARK)
    assert "re-ranking" not in rp.header.text() and f"{rp.last_latency_ms:.1f} ms" in rp.header.text()

    # off: the learned space alone, at once, unmarked
    rp.lyrics_box.setChecked(False)
    assert rp.lyrics_ordering is None and rp.lyrics_reranked == {} and rp.query_sample_id == sid
    assert rp.result_ids("sheet") == [r for r, _ in index.query_sample(sid, "lyrics", "sheet", k)]
    assert LYRICS_RERANKED_MARK not in list_title(rp, "sheet") and LYRICS_ORDERING_MARK not in list_title(rp, "sheet")
    assert list_column(rp, "sheet") == "dist"

    # on again, and k changed while the re-ranking is pending: the superseded one never overwrites the list
    rp.lyrics_box.setChecked(True)
    assert rp.lyrics_ordering is not None
    rp.k.setValue(5)
    _wait_reranked(qtbot, rp, {"sheet": True, "audio": True})
    qtbot.wait(300)
    expected = rr.query_index(index, index.vector(sid, "lyrics", "sheet"), "lyrics", "sheet", 5,
                              rr.library_query("lyrics", sid))
    assert rp.result_ids("sheet") == [r for r, _ in expected]

    # from the sheet: its lyrics list by syllables, its audio list by melody (both marked, each its own way)
    query_sample(window, sid, "sheet")
    _wait_reranked(qtbot, rp, {"lyrics": True})
    assert list_title(rp, "lyrics").endswith(LYRICS_RERANKED_MARK) and LYRICS_RERANKED_MARK not in list_title(rp, "audio")
    if rp.reranked.get("audio"):
        assert list_title(rp, "audio").endswith(RERANKED_MARK)
    expected = rr.query_index(index, index.vector(sid, "sheet", "lyrics"), "sheet", "lyrics", 5,
                              rr.library_query("sheet", sid))
    assert rp.result_ids("lyrics") == [r for r, _ in expected]
    # from the audio: its lyrics list by the audio side's scorer (onsets), its sheet list never by syllables
    query_sample(window, sid, "audio")
    _wait_reranked(qtbot, rp, {"lyrics": True})
    assert LYRICS_RERANKED_MARK not in list_title(rp, "sheet")
    expected = rr.query_index(index, index.vector(sid, "audio", "lyrics"), "audio", "lyrics", 5,
                              rr.library_query("audio", sid))
    assert rp.result_ids("lyrics") == [r for r, _ in expected]


def test_a_typed_line_and_a_dropped_midi_file_are_reranked(qtbot, window, copied_run, monkeypatch, tmp_path):
    import time

    rp, session = window.retrieval, window.session
    _wait_for_tracks(qtbot, window)
    rr = _train(qtbot, window, 1, monkeypatch)
    index, k = session.index, rp.k.value()

    rp.mode_lyrics.setChecked(True)
    rp._on_mode()
    rp.lyrics.setText(LINE)
    with qtbot.waitSignal(rp.embedded, timeout=120000):
        rp.query_lyrics()
    # the typed line's per-syllable inputs were kept with its embedding (computed off the GUI thread)
    tokens = rr.query_tokens("lyrics", rp._ensure_embedder().lyrics_sequence(LINE))
    assert set(rp.query_sequences) == {"lyrics"}
    assert all(np.array_equal(a, b) for a, b in zip(rr.query_tokens("lyrics", rp.query_sequences["lyrics"]), tokens))
    assert rp.lyrics_ordering is not None and list_title(rp, "sheet").endswith(LYRICS_ORDERING_MARK)
    vec = rp.query_vectors[("lyrics", "sheet")]
    assert rp.result_ids("sheet") == [r for r, _ in index.query(vec, "sheet", k, source="lyrics")]
    _wait_reranked(qtbot, rp, {"sheet": True, "audio": True})
    t0 = time.perf_counter()
    expected = rr.query_index(index, vec, "lyrics", "sheet", k, tokens)
    print(f"lyrics → sheet re-ranking of a typed line: {(time.perf_counter() - t0) * 1000:.1f} ms "
          f"over {len(rr.sample_ids)} items; shown after {rp.last_latency_ms:.1f} ms")
    assert rp.result_ids("sheet") == [r for r, _ in expected]
    assert list_title(rp, "sheet").endswith(LYRICS_RERANKED_MARK) and list_column(rp, "sheet") == "score"
    expected = rr.query_index(index, rp.query_vectors[("lyrics", "audio")], "lyrics", "audio", k, tokens)
    assert rp.result_ids("audio") == [r for r, _ in expected]

    # a dropped MIDI file: its syllables and its engraved notes are scored too, as `ugaar query --midi` does
    sample = session.dataset.sample(next(s for s in session.embedding_ids if s in rr.row))
    path = write_lyric_midi(sample.notes, tmp_path / "query.mid")
    with qtbot.waitSignal(rp.embedded, timeout=120000):
        rp.query_file(str(path))
    assert set(rp.query_sequences) == {"audio", "sheet", "lyrics"}
    rp.source.setCurrentIndex(MODALITIES.index("lyrics"))
    _wait_reranked(qtbot, rp, {"sheet": True, "audio": True})
    file_tokens = rr.query_tokens("lyrics", rp.query_sequences["lyrics"])
    vec = rp.query_vectors[("lyrics", "sheet")]
    assert rp.result_ids("sheet") == [r for r, _ in rr.query_index(index, vec, "lyrics", "sheet", k, file_tokens)]
    rp.source.setCurrentIndex(MODALITIES.index("sheet"))  # sheet → lyrics from the file's notes
    _wait_reranked(qtbot, rp, {"lyrics": True})
    sheet_tokens = rr.query_tokens("sheet", rp.query_sequences["sheet"])
    assert sheet_tokens[0][:, 3].any()  # the file's written durations are in its sheet tokens
    vec = rp.query_vectors[("sheet", "lyrics")]
    assert rp.result_ids("lyrics") == [r for r, _ in rr.query_index(index, vec, "sheet", "lyrics", k, sheet_tokens)]

    # a dropped recording: the matched window's onsets and their pitch are scored against every line
    import soundfile
    wav = tmp_path / "sung.wav"
    soundfile.write(str(wav), session.dataset.load_audio(sample.sample_id)[0], 16000)
    with qtbot.waitSignal(rp.embedded, timeout=120000):
        rp.query_file(str(wav))
    assert set(rp.query_sequences) == {"audio"} and rp.query_sequences["audio"].onset_pitch is not None
    _wait_reranked(qtbot, rp, {"lyrics": True})
    audio_tokens = rr.query_tokens("audio", rp.query_sequences["audio"])
    vec = rp.query_vectors[("audio", "lyrics")]
    assert rp.result_ids("lyrics") == [r for r, _ in rr.query_index(index, vec, "audio", "lyrics", k, audio_tokens)]
    assert list_title(rp, "lyrics").endswith(LYRICS_RERANKED_MARK)
    if os.environ.get("UGAAR_SCREENSHOTS"):  # docs/screenshots/recording_lyrics.png (see docs/app.md)
        rp.why.toggle.setChecked(False)  # a dropped file is not explained: the lists get the room
        window.resize(1800, 1000)
        qtbot.wait(300)
        window.grab().save(str(Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "recording_lyrics.png"))


def test_a_damaged_scorer_file_is_named_and_the_run_still_opens(qtbot, window, tmp_path):
    run = _open_copy(qtbot, window, tmp_path, damaged=True)
    session, rp = window.session, window.retrieval
    assert session.run is not None and session.index is not None  # the run opened all the same
    assert session.lyrics_rr is None and not rp.lyrics_box.isEnabled()
    warnings = [text for level, text in session.messages if level == "warning" and SCORER_FILE in text]
    assert warnings and str(run / SCORER_FILE) in warnings[0] and "ugaar lyrics-scorer" in warnings[0]
    # lyrics lists are the learned space's
    sid = session.embedding_ids[0]
    query_sample(window, sid, "lyrics")
    assert rp.lyrics_ordering is None and rp.lyrics_reranked == {}
    assert rp.result_ids("sheet") == [r for r, _ in session.index.query_sample(sid, "lyrics", "sheet", rp.k.value())]


def test_the_train_button_uses_the_cli_default_epochs():
    """The panel's epochs are a literal (the panel must not import torch at start-up); it stays the
    default of ``ugaar lyrics-scorer``."""
    from model.search.lyrics_rerank import EPOCHS_DEFAULT

    assert retrieval_panel.LYRICS_SCORER_EPOCHS == EPOCHS_DEFAULT
