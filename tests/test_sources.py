"""Importers: real files in, the same ``Song`` out, clear errors for bad input."""
from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from numpy.lib import format as npy_format

from model.sources import SOURCE_KINDS, SourceError, get_source
from model.sources import midi_file, music21_corpus, npy_release, score_file

# ---------------------------------------------------------------- registry


def test_get_source_returns_each_kind_and_rejects_unknown():
    for kind in SOURCE_KINDS:
        module = get_source(kind)
        assert callable(module.list_items) and callable(module.read_song)
    with pytest.raises(ValueError, match="lmd-npy.*midi.*musicxml.*music21-corpus"):
        get_source("mp3")


def test_source_error_message_attributes_and_pickling():
    err = SourceError("/x/a.npy", "empty file")
    assert str(err) == "/x/a.npy: empty file"
    back = pickle.loads(pickle.dumps(err))  # sent back from worker processes
    assert (back.path, back.reason, str(back)) == ("/x/a.npy", "empty file", str(err))


# ---------------------------------------------------------------- lmd-npy

def _write_npy_payload(path: Path, payload: bytes, shape=(1, 3)) -> None:
    """An .npy with a real header and an arbitrary pickle payload."""
    with open(path, "wb") as handle:
        npy_format.write_array_header_1_0(
            handle, {"descr": "|O", "fortran_order": False, "shape": shape})
        handle.write(payload)


def _object_array(rows) -> np.ndarray:
    array = np.empty((1, len(rows)), dtype=object)
    for i, row in enumerate(rows):
        array[0, i] = row
    return array


def _song_rows(n=5, gap=0.5):
    continuous = [[0.0 if i == 0 else gap, 0.4, 440.0, 90.0] for i in range(n)]
    discrete = [[60.0 + i, 2.0, 0.0 if i else 0.0] for i in range(n)]
    syllables = [f"la{i}" for i in range(n)]
    return [continuous, discrete, syllables]


def test_lmd_reads_thirty_release_songs(lmd_release):
    items = npy_release.list_items(str(lmd_release))
    assert len(items) == 7597
    assert npy_release.list_items(str(lmd_release / "Syllable_Parsing")) == items
    from model.sources.lmd_archive import find_lmd_archive
    assert npy_release.list_items(str(find_lmd_archive())) == items  # already unpacked: no work
    assert npy_release.list_items(None) == items
    allowed_beats = {v / 2 for v in (0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 6, 6.5, 8,
                                     8.5, 16, 16.5, 32)}
    with_continuations = 0
    for item in items[:30]:
        song = npy_release.read_song(item)
        assert song.song_id == Path(item).stem and song.source == "lmd-npy"
        assert len(song.notes) >= 1
        assert 20 <= song.tempo_bpm <= 400
        assert all(n.beats in allowed_beats for n in song.notes)
        assert all(isinstance(n.syllable, str) and 1 <= n.pitch <= 127 for n in song.notes)
        assert song.notes[0].onset == 0.0
        with_continuations += any(not n.word_start for n in song.notes)
    assert with_continuations >= 20  # Word_Parsing gave word boundaries


def test_lmd_first_song_units_and_words(lmd_release):
    item = npy_release.list_items(str(lmd_release))[0]
    song = npy_release.read_song(item)
    # 000203a0...: "I don't wan-na feel", eighth notes 0.326 s apart at 92 BPM.
    assert [n.syllable for n in song.notes[:5]] == ["I", "don't", "wan", "na", "feel"]
    assert [n.word_start for n in song.notes[:5]] == [True, True, True, False, True]
    assert song.notes[2].beats == 0.5  # one discrete unit = an eighth note
    assert song.tempo_bpm == pytest.approx(92.0, abs=0.5)
    assert song.notes[1].onset == pytest.approx(0.326082, abs=1e-6)


def test_align_word_starts_skips_words_missing_from_word_file():
    flags = npy_release.align_word_starts(
        ["I", "don't", "wan", "na", "feel", "wan", "na"], [["I"], ["wan", "na"], ["feel"]])
    assert flags == [True, True, True, False, True, True, True]
    assert npy_release.align_word_starts(["a", "b"], None) == [True, True]


def test_lmd_accepts_single_file_and_tar_xz(tmp_path, monkeypatch):
    monkeypatch.setenv("UGAAR_CACHE", str(tmp_path / "cache"))
    release = tmp_path / "rel"
    (release / "Syllable_Parsing").mkdir(parents=True)
    for name in ("b", "a"):
        np.save(release / "Syllable_Parsing" / f"{name}.npy", _object_array(_song_rows()),
                allow_pickle=True)
    items = npy_release.list_items(str(release))
    assert [Path(i).name for i in items] == ["a.npy", "b.npy"]
    assert npy_release.list_items(items[0]) == [items[0]]
    archive = tmp_path / "small.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(release, arcname="rel")
    unpacked = npy_release.list_items(str(archive))
    assert [Path(i).name for i in unpacked] == ["a.npy", "b.npy"]
    assert str(tmp_path / "cache") in unpacked[0]
    song = npy_release.read_song(unpacked[0])
    assert [n.pitch for n in song.notes] == [60, 61, 62, 63, 64]
    assert [n.onset for n in song.notes] == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])
    assert all(n.beats == 1.0 for n in song.notes)
    assert all(n.word_start for n in song.notes)  # no Word_Parsing here


@pytest.mark.parametrize("case, reason", [
    ("empty", "empty file"),
    ("truncated", "truncated"),
    ("wrong_shape", "expected shape (1, 3)"),
    ("nan", "non-finite"),
    ("ragged", "differ in length"),
    ("float_array", "expected an object array"),
    ("not_npy", "not a .npy"),
])
def test_lmd_bad_files_give_clear_errors(tmp_path, case, reason):
    path = tmp_path / f"{case}.npy"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        np.save(path, _object_array(_song_rows(50)), allow_pickle=True)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "wrong_shape":
        rows = _song_rows()
        np.save(path, _object_array(rows[:2]), allow_pickle=True)
    elif case == "nan":
        rows = _song_rows()
        rows[0][2][1] = float("nan")
        np.save(path, _object_array(rows), allow_pickle=True)
    elif case == "ragged":
        rows = _song_rows()
        rows[2] = rows[2][:-1]
        np.save(path, _object_array(rows), allow_pickle=True)
    elif case == "float_array":
        np.save(path, np.zeros((1, 3)))
    elif case == "not_npy":
        path.write_text("hello, not numpy")
    with pytest.raises(SourceError) as info:
        npy_release.read_song(str(path))
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert reason in info.value.reason


class _RunsCode:
    """A pickle that would call os.system when loaded by an ordinary unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_lmd_pickle_that_runs_code_is_rejected_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    _write_npy_payload(path, pickle.dumps(_RunsCode(marker), protocol=2))
    with pytest.raises(SourceError) as info:
        npy_release.read_song(str(path))
    assert not marker.exists()
    assert str(path) in str(info.value)
    assert "rejected: pickle references" in info.value.reason
    assert "system" in info.value.reason
    # The check is real: an ordinary unpickler would have run it.
    pickle.loads(pickle.dumps(_RunsCode(marker), protocol=2))
    assert marker.exists()


def test_lmd_evil_word_file_only_loses_word_boundaries(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "Syllable_Parsing").mkdir()
    (tmp_path / "Word_Parsing").mkdir()
    item = tmp_path / "Syllable_Parsing" / "s.npy"
    np.save(item, _object_array(_song_rows()), allow_pickle=True)
    _write_npy_payload(tmp_path / "Word_Parsing" / "s.npy",
                       pickle.dumps(_RunsCode(marker), protocol=2), shape=(1, 4))
    song = npy_release.read_song(str(item))
    assert len(song.notes) == 5 and all(n.word_start for n in song.notes)
    assert not marker.exists()


def test_lmd_directory_and_unreadable_file(tmp_path):
    folder = tmp_path / "dir.npy"
    folder.mkdir()
    with pytest.raises(SourceError, match="is a directory") as info:
        npy_release.read_song(str(folder))
    assert info.value.path == str(folder)
    with pytest.raises(SourceError, match="file not found"):
        npy_release.read_song(str(tmp_path / "missing.npy"))
    if os.geteuid() != 0:  # root reads files whatever their mode
        locked = tmp_path / "locked.npy"
        np.save(locked, _object_array(_song_rows()), allow_pickle=True)
        locked.chmod(0)
        with pytest.raises(SourceError, match="permission denied"):
            npy_release.read_song(str(locked))


# ---------------------------------------------------------------- MIDI / KAR

def _write_lyric_midi(path: Path, with_lyrics: bool = True) -> None:
    midi = pretty_midi.PrettyMIDI(initial_tempo=100)
    accompaniment = pretty_midi.Instrument(0, name="piano")
    melody = pretty_midi.Instrument(73, name="voice")
    drums = pretty_midi.Instrument(0, is_drum=True)
    syllables = ["Hel-", "lo ", "my ", "dar-", "ling ", "good-", "night "]
    for i, text in enumerate(syllables):
        start = i * 0.6
        melody.notes.append(pretty_midi.Note(90, 64 + i, start, start + 0.3))
        if with_lyrics:
            midi.lyrics.append(pretty_midi.Lyric(text, start))
    for k in range(28):  # dense accompaniment and drums on the same beats
        accompaniment.notes.append(pretty_midi.Note(60, 48, k * 0.15, k * 0.15 + 0.1))
        drums.notes.append(pretty_midi.Note(60, 36, k * 0.15, k * 0.15 + 0.05))
    midi.instruments = [accompaniment, melody, drums]
    midi.write(str(path))


def test_midi_lyric_events_on_the_melody(tmp_path):
    path = tmp_path / "song.mid"
    _write_lyric_midi(path)
    assert midi_file.list_items(str(tmp_path)) == [str(path)]
    song = midi_file.read_song(str(path))
    assert [n.syllable for n in song.notes] == ["Hel", "lo", "my", "dar", "ling", "good", "night"]
    assert [n.word_start for n in song.notes] == [True, False, True, True, False, True, False]
    assert [n.pitch for n in song.notes] == list(range(64, 71))  # the melody, not the piano
    assert song.tempo_bpm == pytest.approx(100.0)
    assert song.notes[1].onset == pytest.approx(0.6, abs=0.01)
    # 0.3 s at 100 BPM = 0.5 beat; the 0.3-s gap before the next = 0.5 beat rest.
    assert song.notes[1].beats == pytest.approx(0.5) and song.notes[1].rest_beats == pytest.approx(0.5)
    assert song.source == "midi" and song.song_id.startswith("song-")


def test_kar_text_events_with_karaoke_conventions(tmp_path):
    path = tmp_path / "tune.kar"
    mf = mido.MidiFile(ticks_per_beat=480)
    words = mido.MidiTrack()
    texts = ["@KMIDI KARAOKE FILE", "@TMy Tune", "\\Twin", "kle ", "twin", "kle", "/lit", "tle", " star"]
    notes = mido.MidiTrack()
    notes.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120)))
    for i, text in enumerate(texts):
        words.append(mido.MetaMessage("text", text=text, time=0 if i < 3 else 480))
    for i in range(7):
        notes.append(mido.Message("note_on", note=60 + i, velocity=80, time=0 if i == 0 else 240))
        notes.append(mido.Message("note_off", note=60 + i, velocity=0, time=240))
    mf.tracks += [notes, words]
    mf.save(str(path))
    assert midi_file.list_items(str(tmp_path)) == [str(path)]
    song = midi_file.read_song(str(path))
    assert song.title == "My Tune"
    assert [n.syllable for n in song.notes] == ["Twin", "kle", "twin", "kle", "lit", "tle", "star"]
    assert [n.word_start for n in song.notes] == [True, False, True, False, True, False, True]
    assert [n.pitch for n in song.notes] == list(range(60, 67))


def test_lyric_text_conventions():
    events = midi_file.parse_lyric_events(
        [(0, "@LENGL"), (0, "Hel-"), (1, "lo\r"), (2, ""), (3, "/you"), (4, "ng"), (5, " man")])
    assert [(e.text, e.word_start) for e in events] == [
        ("Hel", True), ("lo", False), ("you", True), ("ng", False), ("man", True)]
    # No spaces anywhere: one word per event unless it ends with '-'.
    events = midi_file.parse_lyric_events([(0, "I"), (1, "want"), (2, "mo-"), (3, "re")])
    assert [e.word_start for e in events] == [True, True, True, False]


def test_midi_without_lyrics_and_bad_midi(tmp_path):
    plain = tmp_path / "plain.mid"
    _write_lyric_midi(plain, with_lyrics=False)
    with pytest.raises(SourceError, match="no lyric events") as info:
        midi_file.read_song(str(plain))
    assert info.value.path == str(plain)
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"MThd\x00\x00\x00\x06garbage" * 3)
    with pytest.raises(SourceError, match="not a readable MIDI file"):
        midi_file.read_song(str(junk))
    empty = tmp_path / "empty.kar"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty file"):
        midi_file.read_song(str(empty))
    with pytest.raises(SourceError, match="is a directory"):
        midi_file.read_song(str(tmp_path))


# ---------------------------------------------------------------- MusicXML / ABC

def _write_musicxml(path: Path) -> None:
    from music21 import meter, note, stream, tempo

    score = stream.Score()
    accompaniment = stream.Part()
    for _ in range(8):
        accompaniment.append(note.Note("C3", quarterLength=1))
    figures = stream.Part()  # a figured-bass line: lyric fields that are not text
    for fig in ["6", "#", "6/4", "7", "6", "5", "#", "6"]:
        n = note.Note("D3", quarterLength=1)
        n.lyric = fig
        figures.append(n)
    voice = stream.Part()
    voice.append(tempo.MetronomeMark(number=90))
    voice.append(meter.TimeSignature("4/4"))
    tied_a = note.Note("E4", quarterLength=1)
    tied_b = note.Note("E4", quarterLength=1)
    tied_a.tie, tied_b.tie = _tie("start"), _tie("stop")
    events = [("C4", "Hal", "begin", 1), ("D4", "le", "middle", 1), ("F4", "lu", "end", 1),
              (tied_a, "jah", "single", None), (tied_b, None, None, None),
              ("rest", None, None, 1), ("G4", "sing", "single", 0.5), ("A4", None, None, 0.5)]
    for pitch, text, syllabic, length in events:
        if pitch == "rest":
            voice.append(note.Rest(quarterLength=length))
            continue
        n = pitch if isinstance(pitch, note.Note) else note.Note(pitch, quarterLength=length)
        if text:
            n.lyric = text
            n.lyrics[0].syllabic = syllabic
        voice.append(n)
    # Part order: accompaniment and figures before the sung part.
    score.insert(0, voice)
    score.insert(0, figures)
    score.insert(0, accompaniment)
    score.write("musicxml", fp=str(path))


def _tie(kind):
    from music21 import tie
    return tie.Tie(kind)


def test_musicxml_part_with_lyrics_ties_rests_melisma(tmp_path):
    path = tmp_path / "hallelujah.musicxml"
    _write_musicxml(path)
    assert score_file.list_items(str(tmp_path)) == [str(path)]
    song = score_file.read_song(str(path))
    assert [n.syllable for n in song.notes] == ["Hal", "le", "lu", "jah", "sing"]
    assert [n.word_start for n in song.notes] == [True, False, False, True, True]
    assert [n.pitch for n in song.notes] == [60, 62, 65, 64, 67]
    assert song.notes[3].beats == 2.0  # tie merged
    assert song.notes[4].rest_beats == 1.0 and song.notes[4].beats == 1.0  # rest, then melisma
    assert song.tempo_bpm == pytest.approx(90.0)
    assert song.notes[4].onset == pytest.approx(6 * 60 / 90)
    assert song.source == "musicxml"


def test_abc_with_words(tmp_path):
    path = tmp_path / "tune.abc"
    path.write_text("X:1\nT:Little Tune\nM:4/4\nL:1/4\nQ:1/4=60\nK:C\n"
                    "C D E F | G A B c |\nw: one two three four five six se-ven\n")
    song = score_file.read_song(str(path))
    assert [n.syllable for n in song.notes] == ["one", "two", "three", "four", "five", "six", "se", "ven"]
    assert song.notes[-1].word_start is False and song.notes[-2].word_start is True
    assert song.title == "Little Tune"
    assert song.notes[1].onset == pytest.approx(1.0)


def test_malformed_and_lyricless_scores(tmp_path):
    broken = tmp_path / "broken.musicxml"
    _write_musicxml(broken)
    broken.write_text(broken.read_text()[:1500])
    with pytest.raises(SourceError, match="malformed score") as info:
        score_file.read_song(str(broken))
    assert info.value.path == str(broken)
    empty = tmp_path / "empty.xml"
    empty.write_text("")
    with pytest.raises(SourceError, match="empty file"):
        score_file.read_song(str(empty))
    plain = tmp_path / "plain.abc"
    plain.write_text("X:1\nT:No Words\nM:4/4\nL:1/4\nK:C\nC D E F |\n")
    with pytest.raises(SourceError, match="no part carries text lyrics"):
        score_file.read_song(str(plain))
    with pytest.raises(SourceError, match="is a directory"):
        score_file.read_song(str(tmp_path))


def test_figure_detection():
    assert all(score_file.is_figure(t) for t in ["6", "#", "6/4", "7b", "4-3", "b", "5 3"])
    assert not any(score_file.is_figure(t) for t in ["I", "a", "Christ", "lu", "be-"])


# ---------------------------------------------------------------- music21 corpus

def test_corpus_lists_texted_works_and_reads_a_few():
    items = music21_corpus.list_items(None)
    assert 300 <= len(items) <= 600
    assert items == sorted(items) and all(not i.startswith("/") for i in items)
    assert sum(i.startswith("bach/") for i in items) >= 250
    assert not any(i.endswith(".rntxt") for i in items)
    bach = music21_corpus.list_items("bach")
    assert bach and all(i.startswith("bach/") for i in bach)
    for item in [bach[0], bach[len(bach) // 2], next(i for i in items if i.startswith("trecento/"))]:
        song = music21_corpus.read_song(item)
        assert song.song_id == f"m21:{item}" and song.source == "music21-corpus"
        assert len(song.notes) >= 20
        assert sum(any(c.isalpha() for c in n.syllable) for n in song.notes) == len(song.notes)
        assert any(not n.word_start for n in song.notes)  # syllabic gave continuations
    with pytest.raises(SourceError, match="not a file in the music21 corpus"):
        music21_corpus.read_song("bach/no-such-work.mxl")


def test_corpus_discovery_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("UGAAR_CACHE", str(tmp_path))
    cache = music21_corpus._cache_file()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text('{"root": "x", "items": ["bach/bwv1.6.mxl"]}')
    assert music21_corpus.list_items(None) == ["bach/bwv1.6.mxl"]
