"""Cleaning rules, each counted by name; fingerprints and duplicate grouping."""
from __future__ import annotations

import pytest

from model.data.cleaning import (CleaningConfig, CleaningReport, clean_song, group_duplicates,
                                 is_markup, song_fingerprints)
from model.data.song import Note, Song


def _song(notes, song_id="s") -> Song:
    return Song(song_id=song_id, title=song_id, source="lmd-npy", path=song_id, notes=list(notes))


def _n(pitch=60, onset=0.0, duration=0.4, syllable="la", **kw) -> Note:
    return Note(pitch=pitch, onset=onset, duration=duration, syllable=syllable, **kw)


def _seq(syllables, gap=0.5):
    return [_n(60 + i % 12, i * gap, 0.4, s) for i, s in enumerate(syllables)]


def test_markup_syllables_dropped_and_counted():
    song = _song(_seq(["I", "[chorus]", "G/B", "------", "Am7", "love", "(x2)", "A", "you", "C#m"]))
    report = CleaningReport()
    out = clean_song(song, CleaningConfig(), report)
    assert [n.syllable for n in out.notes] == ["I", "love", "A", "you"]
    assert report.counts["markup_dropped"] == 6
    assert song.notes[1].syllable == "[chorus]"  # the input is not modified
    kept = clean_song(song, CleaningConfig(drop_markup=False), CleaningReport())
    assert len(kept.notes) == 10


def test_is_markup_keeps_real_words():
    for word in ["A", "Am", "Be", "I", "Em", "don't", "oh!"]:
        assert not is_markup(word)
    for mark in ["G/B", "D7", "F#", "[Verse 2]", "...", "---", "2"]:
        assert is_markup(mark)


def test_dropped_note_time_becomes_rest_before_next():
    notes = [_n(60, 0, 0.4, "a", beats=1.0, rest_beats=0.0),
             _n(62, 0.5, 0.4, "[x]", beats=1.0, rest_beats=0.5),
             _n(64, 1.0, 0.4, "b", beats=1.0, rest_beats=0.0)]
    out = clean_song(_song(notes), CleaningConfig(), CleaningReport())
    assert [n.syllable for n in out.notes] == ["a", "b"]
    assert out.notes[1].rest_beats == 1.5


def test_apostrophes_and_hyphens():
    song = _song(_seq(["don`t", "can\u2019t", "a-", "-ing", "wan", "na"]))
    report = CleaningReport()
    out = clean_song(song, CleaningConfig(), report)
    assert [n.syllable for n in out.notes] == ["don't", "can't", "a", "ing", "wan", "na"]
    assert report.counts["apostrophe_fixed"] == 2 and report.counts["hyphen_stripped"] == 2
    raw = clean_song(song, CleaningConfig(fix_apostrophes=False, strip_hyphens=False), CleaningReport())
    assert [n.syllable for n in raw.notes][:4] == ["don`t", "can\u2019t", "a-", "-ing"]


def test_out_of_order_simultaneous_and_overlaps():
    notes = [_n(60, 0.0, 0.4, "a"), _n(62, 1.0, 0.4, "c"), _n(61, 0.5, 0.9, "b"),
             _n(70, 1.0, 0.3, "c2"), _n(64, 2.0, 0.2, "d")]
    report = CleaningReport()
    out = clean_song(_song(notes), CleaningConfig(), report)
    assert [n.syllable for n in out.notes] == ["a", "b", "c2", "d"]  # sorted; higher of the pair
    assert [n.onset for n in out.notes] == [0.0, 0.5, 1.0, 2.0]
    assert out.notes[1].duration == pytest.approx(0.5)  # cut where the next begins
    assert all(a.onset + a.duration <= b.onset + 1e-9 for a, b in zip(out.notes, out.notes[1:]))
    assert report.counts == {"out_of_order": 1, "simultaneous_dropped": 1, "overlap_cut": 1}
    same = clean_song(_song(notes), CleaningConfig(monophonic=False), CleaningReport())
    assert len(same.notes) == 5


def test_pitch_clamp_and_drop():
    notes = [_n(5, 0, 0.4, "a"), _n(60, 0.5, 0.4, "b"), _n(123, 1.0, 0.4, "c")]
    report = CleaningReport()
    clamped = clean_song(_song(notes), CleaningConfig(pitch_policy="clamp"), report)
    assert [n.pitch for n in clamped.notes] == [29, 60, 99]  # whole octaves into 21-108
    assert report.counts["pitch_clamped"] == 2
    report = CleaningReport()
    dropped = clean_song(_song(notes), CleaningConfig(pitch_policy="drop"), report)
    assert [n.pitch for n in dropped.notes] == [60] and report.counts["pitch_dropped"] == 2
    with pytest.raises(ValueError):
        CleaningConfig(pitch_policy="wrap")


def test_short_notes_dropped():
    notes = [_n(60, 0, 0.005, "a"), _n(62, 0.5, 0.4, "b"), _n(64, 1.0, 0.0, "c")]
    report = CleaningReport()
    out = clean_song(_song(notes), CleaningConfig(min_duration=0.01), report)
    assert [n.syllable for n in out.notes] == ["b"] and report.counts["short_dropped"] == 2
    assert len(clean_song(_song(notes), CleaningConfig(min_duration=0), CleaningReport()).notes) == 3


def test_song_may_end_empty():
    out = clean_song(_song(_seq(["[intro]", "---"])), CleaningConfig(), CleaningReport())
    assert out.notes == []


def test_config_and_report_json_round_trip():
    config = CleaningConfig(pitch_policy="drop", min_duration=0.02, merge_duplicates=False)
    assert CleaningConfig.from_json(config.to_json()) == config
    assert CleaningConfig.from_json({}) == CleaningConfig()
    with pytest.raises(ValueError, match="unknown cleaning options: bogus"):
        CleaningConfig.from_json({"bogus": 1})
    a, b = CleaningReport(), CleaningReport()
    a.add("overlap_cut", 2)
    b.add("overlap_cut")
    b.add("short_dropped", 3)
    b.add("pitch_clamped", 0)
    a.merge(b)
    assert a.to_json() == {"overlap_cut": 3, "short_dropped": 3}
    assert CleaningReport.from_json(a.to_json()).counts == a.counts


def test_fingerprints_tempo_and_case_insensitive():
    base = [_n(60 + i, i * 0.5, 0.4, s, beats=1.0) for i, s in enumerate(["Hel", "lo", "World"])]
    slower = [_n(60 + i, i * 0.8, 0.7, s.lower() + ",", beats=1.0)
              for i, s in enumerate(["Hel", "lo", "World"])]
    other = [_n(50 + i, i * 0.5, 0.4, s, beats=2.0) for i, s in enumerate(["good", "bye", "now"])]
    fa, fb, fc = (song_fingerprints(_song(x)) for x in (base, slower, other))
    assert fa == fb  # same notes in beats, same lyrics up to case/punctuation
    assert fa[0] != fc[0] and fa[1] != fc[1]
    assert song_fingerprints(_song([])) == ("", "")


def test_group_duplicates_union_of_notes_or_lyrics():
    fingerprints = {
        "d": ("n1", "l1"),
        "b": ("n2", "l1"),   # same lyrics as d
        "c": ("n2", "l3"),   # same notes as b: joins d's group through b
        "a": ("n4", "l4"),   # alone
        "e": ("", ""),       # empty song: joins nothing
        "f": ("", ""),
    }
    groups = group_duplicates(fingerprints)
    assert groups == {"a": "a", "b": "b", "c": "b", "d": "b", "e": "e", "f": "f"}


def test_cleaning_real_release_songs(lmd_release):
    from model.sources import npy_release

    report = CleaningReport()
    for item in npy_release.list_items(str(lmd_release))[:200]:
        out = clean_song(npy_release.read_song(item), CleaningConfig(), report)
        assert all(21 <= n.pitch <= 108 and n.duration >= 0.01 for n in out.notes)
        assert all(a.onset < b.onset for a, b in zip(out.notes, out.notes[1:]))
        assert all(a.onset + a.duration <= b.onset + 1e-9 for a, b in zip(out.notes, out.notes[1:]))
        assert not any("`" in n.syllable or is_markup(n.syllable) for n in out.notes)
    assert report.counts.get("overlap_cut", 0) > 0
