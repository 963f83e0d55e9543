"""Windows (paper's sampling rules) and the stable split by song."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from model.data.samples import (assign_split, longest_silence, make_windows, sample_id_for,
                                window_starts)
from model.data.song import Note, Song


def _song(n: int, gap_at: dict[int, float] | None = None, song_id: str = "s") -> Song:
    """``n`` half-second notes back to back; ``gap_at[i]`` extra seconds of rest before note i."""
    notes = []
    t = 0.0
    for i in range(n):
        t += (gap_at or {}).get(i, 0.0)
        notes.append(Note(pitch=60 + i % 12, onset=t, duration=0.5, syllable=f"la{i}"))
        t += 0.5
    return Song(song_id=song_id, title="t", source="test", path="p", notes=notes)


@pytest.mark.parametrize("n, expected", [(0, []), (19, []), (20, [0]), (39, [0]),
                                         (40, [0, 20]), (100, [0, 20])])
def test_paper_rules_take_first_20_or_40(n, expected):
    windows, dropped = make_windows(_song(n))
    assert [start for start, _ in windows] == expected
    assert dropped == 0
    assert all(len(notes) == 20 for _, notes in windows)


def test_all_windows_are_non_overlapping_and_full():
    windows, _ = make_windows(_song(105), all_windows=True)
    assert [start for start, _ in windows] == [0, 20, 40, 60, 80]
    assert window_starts(105, 20, True) == [0, 20, 40, 60, 80]
    assert windows[2][1][0].syllable == "la40"


def test_window_with_long_silence_is_dropped_and_counted():
    # 4.5 s rest before note 25 lies in the second window only.
    windows, dropped = make_windows(_song(40, {25: 4.5}))
    assert [start for start, _ in windows] == [0]
    assert dropped == 1
    # exactly 4 s is allowed ("longer than 4 s" is dropped)
    windows, dropped = make_windows(_song(40, {25: 4.0}))
    assert len(windows) == 2 and dropped == 0


def test_silence_between_windows_does_not_count():
    # The rest before note 20 lies between window 0's last note and window 1's
    # first note: inside neither window.
    windows, dropped = make_windows(_song(40, {20: 30.0}))
    assert len(windows) == 2 and dropped == 0


def test_overlap_is_not_silence():
    a = Note(60, 0.0, 2.0, "a")
    b = Note(62, 1.0, 0.5, "b")
    assert longest_silence([a, b]) == 0.0
    assert longest_silence([a, Note(62, 7.0, 1.0, "c")]) == pytest.approx(5.0)


def test_split_is_deterministic_and_close_to_fractions():
    ids = [f"song-{i}" for i in range(5000)]
    splits = [assign_split(i, seed=3) for i in ids]
    assert splits == [assign_split(i, seed=3) for i in ids]
    share = {name: splits.count(name) / len(ids) for name in ("train", "val", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.03)
    assert share["val"] == pytest.approx(0.1, abs=0.02)
    assert share["test"] == pytest.approx(0.1, abs=0.02)
    other = [assign_split(i, seed=4) for i in ids]
    assert other != splits  # the seed changes the assignment


def test_split_is_the_same_in_another_process():
    # Python's hash() is salted per process; the split must not be.
    code = ("from model.data.samples import assign_split; "
            "print(''.join(assign_split(f'x{i}', 7)[0] for i in range(200)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == "".join(assign_split(f"x{i}", 7)[0] for i in range(200))


def test_split_fractions_respected_at_extremes():
    assert {assign_split(f"a{i}", 0, (1, 0, 0)) for i in range(300)} == {"train"}
    assert {assign_split(f"a{i}", 0, (0, 0, 1)) for i in range(300)} == {"test"}
    with pytest.raises(ValueError):
        assign_split("a", 0, (0.5, 0.5))


def test_sample_ids_are_short_safe_and_unique():
    ids = {sample_id_for(f"dir/song {i}.mid", start) for i in range(500) for start in (0, 20)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{12}-\d{5}", i) for i in ids)
