"""Samples and splits: 20-note windows of a song, and a stable split by song.

Paper §III-A (see ``../shared/reference/method.md`` §1): keep the first 20
syllable–note pairs of a song as one sample, or the first 40 as two; drop a
window in which the silence between two consecutive notes is longer than 4 s.
``all_windows`` takes every non-overlapping window instead (more data, never
the benchmark default).

The split is a pure function of ``(seed, song_id)`` through SHA-1, so it is
the same on every machine and in every process (Python's ``hash()`` is salted
per process and would not be).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

from model.data.song import Note, Song

SPLITS = ("train", "val", "test")


def rest_before(previous: Note, note: Note) -> float:
    """Silence in seconds between the end of ``previous`` and the onset of ``note``.

    Negative values (overlaps) count as no silence.
    """
    return max(0.0, note.onset - (previous.onset + previous.duration))


def longest_silence(notes: Sequence[Note]) -> float:
    """Longest silence between consecutive notes of ``notes`` (0 for < 2 notes)."""
    return max((rest_before(a, b) for a, b in zip(notes[:-1], notes[1:])), default=0.0)


def window_starts(n_notes: int, window: int = 20, all_windows: bool = False) -> list[int]:
    """Start indices of the candidate windows of a song with ``n_notes`` notes.

    Paper rules: at most two windows, at 0 and ``window``; ``all_windows``:
    every non-overlapping full window.
    """
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    full = n_notes // window
    if not all_windows:
        full = min(full, 2)
    return [k * window for k in range(full)]


def make_windows(song: Song, window: int = 20, all_windows: bool = False,
                 max_silence: float = 4.0) -> tuple[list[tuple[int, tuple[Note, ...]]], int]:
    """Cut ``song`` into sample windows.

    Parameters
    ----------
    song : Song
        A cleaned song (notes in onset order).
    window : int
        Notes per sample (20 in the paper).
    all_windows : bool
        Take every non-overlapping window instead of the first two.
    max_silence : float
        A window whose longest silence between consecutive notes (onset of
        the next minus end of the previous) exceeds this many seconds is
        dropped.

    Returns
    -------
    windows : list of (start, notes)
        Kept windows with the index of their first note.
    dropped : int
        Candidate windows dropped for a long silence.
    """
    notes = song.notes
    kept: list[tuple[int, tuple[Note, ...]]] = []
    dropped = 0
    for start in window_starts(len(notes), window, all_windows):
        chunk = tuple(notes[start:start + window])
        if longest_silence(chunk) > max_silence:
            dropped += 1
            continue
        kept.append((start, chunk))
    return kept, dropped


def _unit_interval(text: str) -> float:
    """Map ``text`` to [0, 1) through the first 8 bytes of its SHA-1."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def assign_split(song_id: str, seed: int = 0,
                 fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> str:
    """Return ``"train"``, ``"val"`` or ``"test"`` for a song.

    A pure function of ``(seed, song_id)``: every sample of a song lands in
    the same split, on every machine.

    Parameters
    ----------
    song_id : str
        Stable song id (after duplicate merging: the canonical id).
    seed : int
        Changes the assignment as a whole.
    fractions : sequence of 3 floats
        Train, val and test shares; normalised to sum 1.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions!r}")
    total = float(sum(fractions))
    u = _unit_interval(f"{int(seed)}\x00{song_id}")
    edge = 0.0
    for name, share in zip(SPLITS, fractions):
        edge += share / total
        if u < edge:
            return name
    return SPLITS[-1]  # u just below 1 with rounding in the edges


def sample_id_for(song_id: str, start: int) -> str:
    """Short file-system-safe sample id: 12 hex of SHA-1(song id) + start index."""
    key = hashlib.sha1(song_id.encode("utf-8")).hexdigest()[:12]
    return f"{key}-{int(start):05d}"
