"""Cleaning rules for raw songs, each configurable and counted by name.

Sources hand over songs as they found them; the rules here make a melody of
one note at a time with sensible syllables.  Every change is counted in a
:class:`CleaningReport` under the rule's name so a build report can say how
much dirt each rule removed.  Rule names (the report's keys):

``markup_dropped``
    notes whose syllable is markup, not a sung syllable: ``[chorus]``,
    ``(x2)``, chord names (``G/B``, ``Am7``), dash runs (``------``), text
    without a letter.
``apostrophe_fixed``
    backticks and typographic quotes used as apostrophes → ``'``.
``hyphen_stripped``
    karaoke continuation hyphens (``a-``, ``-ing``) removed.
``out_of_order``
    notes whose onset was earlier than the note before (fixed by sorting).
``simultaneous_dropped``
    notes sharing an onset with a higher note (the melody keeps the top).
``overlap_cut``
    notes cut to end where the next one starts.
``pitch_clamped`` / ``pitch_dropped``
    pitches outside 21–108 moved by octaves into range, or dropped.
``short_dropped``
    notes shorter than ``min_duration`` seconds.

Duplicate songs (same notes or same lyrics) are grouped by
:func:`song_fingerprints` and :func:`group_duplicates`; the builder merges
each group into one song before splitting.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from model.data.song import Note, Song

PIANO_LOW, PIANO_HIGH = 21, 108
# Onsets closer than this are one chord, not two melody notes.
SIMULTANEOUS_S = 0.001

_APOSTROPHES = str.maketrans({"`": "'", "\u2019": "'", "\u2018": "'", "\u00b4": "'"})
_BRACKETED = re.compile(r"^[\[\(\{<].*[\]\)\}>]$")
_CHORD = re.compile(r"^[A-G](?:#|b|♯|♭)?(?:maj|min|m|dim|aug|sus|add|M)?\d*(?:/[A-G](?:#|b|♯|♭)?)?$")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass
class CleaningConfig:
    """Which cleaning rules run, with their parameters.

    Parameters
    ----------
    drop_markup : bool
        Drop notes whose syllable is markup (see module docstring).
    fix_apostrophes : bool
        Backticks and typographic quotes become ``'``.
    strip_hyphens : bool
        Remove karaoke continuation hyphens at a syllable's ends.
    monophonic : bool
        Sort out-of-order onsets, keep the highest of simultaneous notes and
        cut an overlapping note where the next begins.
    pitch_policy : str
        ``"clamp"`` (move by octaves into the range) or ``"drop"``.
    pitch_low, pitch_high : int
        Allowed MIDI pitch range (piano: 21–108).
    min_duration : float
        Notes shorter than this many seconds are dropped (0 disables).
    merge_duplicates : bool
        Group duplicate songs into one before splitting (used by the builder).
    """

    drop_markup: bool = True
    fix_apostrophes: bool = True
    strip_hyphens: bool = True
    monophonic: bool = True
    pitch_policy: str = "clamp"
    pitch_low: int = PIANO_LOW
    pitch_high: int = PIANO_HIGH
    min_duration: float = 0.01
    merge_duplicates: bool = True

    def __post_init__(self) -> None:
        if self.pitch_policy not in ("clamp", "drop"):
            raise ValueError(f"pitch_policy must be 'clamp' or 'drop', not {self.pitch_policy!r}")
        if self.pitch_high - self.pitch_low < 11:
            raise ValueError("pitch range must span at least an octave")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CleaningConfig":
        """Build from a dict; missing keys take defaults, unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown cleaning options: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class CleaningReport:
    """How many times each rule changed something (rule name → count)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, rule: str, n: int = 1) -> None:
        if n:
            self.counts[rule] = self.counts.get(rule, 0) + n

    def merge(self, other: "CleaningReport") -> None:
        for rule, n in other.counts.items():
            self.add(rule, n)

    def to_json(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    @classmethod
    def from_json(cls, data: dict[str, int]) -> "CleaningReport":
        return cls({str(k): int(v) for k, v in data.items()})


def is_markup(syllable: str) -> bool:
    """True when a syllable is markup rather than something sung."""
    text = syllable.strip()
    if not _LETTER.search(text):  # '------', '', '...', '2x'-less digits
        return True
    if _BRACKETED.match(text):
        return True
    # A chord name needs a sign no lyric has (slash, digit, sharp) so that
    # the words "A", "Am" or "Be" are never taken for chords.
    if _CHORD.match(text) and re.search(r"[/\d#♯]", text):
        return True
    return False


def _drop(notes: list[Note], keep: list[bool]) -> list[Note]:
    """Keep the marked notes; a dropped note's time becomes rest before the next kept one."""
    out: list[Note] = []
    carry = 0.0
    for note, k in zip(notes, keep):
        if k:
            if carry and note.rest_beats is not None:
                note = replace(note, rest_beats=note.rest_beats + carry)
            out.append(note)
            carry = 0.0
        else:
            carry += (note.rest_beats or 0.0) + (note.beats or 0.0)
    return out


def _clean_text(notes: list[Note], config: CleaningConfig, report: CleaningReport) -> list[Note]:
    out = []
    for note in notes:
        text = note.syllable.strip()
        if config.fix_apostrophes:
            fixed = text.translate(_APOSTROPHES)
            if fixed != text:
                report.add("apostrophe_fixed")
                text = fixed
        if config.strip_hyphens and _LETTER.search(text):
            stripped = text.strip("-").strip()
            if stripped != text:
                report.add("hyphen_stripped")
                text = stripped
        out.append(note if text == note.syllable else replace(note, syllable=text))
    if config.drop_markup:
        keep = [not is_markup(n.syllable) for n in out]
        report.add("markup_dropped", keep.count(False))
        out = _drop(out, keep)
    return out


def _make_monophonic(notes: list[Note], report: CleaningReport) -> list[Note]:
    report.add("out_of_order", sum(1 for a, b in zip(notes, notes[1:]) if b.onset < a.onset))
    ordered = sorted(notes, key=lambda n: n.onset)  # stable: equal onsets keep their order
    # Simultaneous onsets: one chord; the melody is its highest note.
    kept: list[Note] = []
    for note in ordered:
        if kept and note.onset - kept[-1].onset < SIMULTANEOUS_S:
            report.add("simultaneous_dropped")
            if note.pitch > kept[-1].pitch:
                kept[-1] = note
            continue
        kept.append(note)
    out = []
    for i, note in enumerate(kept):
        if i + 1 < len(kept) and note.onset + note.duration > kept[i + 1].onset:
            report.add("overlap_cut")
            note = replace(note, duration=kept[i + 1].onset - note.onset)
        out.append(note)
    return out


def _fix_pitches(notes: list[Note], config: CleaningConfig, report: CleaningReport) -> list[Note]:
    low, high = config.pitch_low, config.pitch_high
    if config.pitch_policy == "drop":
        keep = [low <= n.pitch <= high for n in notes]
        report.add("pitch_dropped", keep.count(False))
        return _drop(notes, keep)
    out = []
    for note in notes:
        pitch = note.pitch
        if pitch < low or pitch > high:
            # Octave moves keep the pitch class (and mostly the contour).
            while pitch < low:
                pitch += 12
            while pitch > high:
                pitch -= 12
            report.add("pitch_clamped")
            note = replace(note, pitch=pitch)
        out.append(note)
    return out


def clean_song(song: Song, config: CleaningConfig, report: CleaningReport) -> Song:
    """Return a cleaned copy of ``song`` (possibly with fewer notes, even none).

    Rules run in this order: text (apostrophes, hyphens, markup), melody
    (order, simultaneous notes, overlaps), pitch range, short notes.
    """
    notes = _clean_text(list(song.notes), config, report)
    if config.monophonic:
        notes = _make_monophonic(notes, report)
    notes = _fix_pitches(notes, config, report)
    if config.min_duration > 0:
        keep = [n.duration >= config.min_duration for n in notes]
        report.add("short_dropped", keep.count(False))
        notes = _drop(notes, keep)
    return replace(song, notes=notes)


def _normalise_syllable(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def song_fingerprints(song: Song) -> tuple[str, str]:
    """(note hash, lyrics hash) of a song; ``""`` for an empty sequence.

    Notes: pitch and duration, in beats when every note has them (so a copy
    at another tempo still matches), else in 10-ms steps.  Lyrics: syllables
    lower-cased with punctuation removed.
    """
    if all(n.beats is not None for n in song.notes):
        notes = [f"{n.pitch}:{n.beats:g}" for n in song.notes]
    else:
        notes = [f"{n.pitch}:{round(n.duration * 100)}" for n in song.notes]
    syllables = [s for s in (_normalise_syllable(n.syllable) for n in song.notes) if s]

    def digest(items: list[str]) -> str:
        return hashlib.sha1(" ".join(items).encode("utf-8")).hexdigest() if items else ""

    return digest(notes), digest(syllables)


def group_duplicates(fingerprints: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Map each song id to the canonical id of its duplicate group.

    Songs join a group when they share the note hash *or* the lyrics hash
    (union–find, so chains join too); the canonical id is the smallest id
    in the group.  Empty hashes never join anything.
    """
    parent = {song_id: song_id for song_id in fingerprints}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            # The smaller id becomes the root, so the root is the canonical id.
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra

    first_by_hash: dict[tuple[int, str], str] = {}
    for song_id in sorted(fingerprints):
        for slot, digest in enumerate(fingerprints[song_id]):
            if not digest:
                continue
            other = first_by_hash.setdefault((slot, digest), song_id)
            if other != song_id:
                union(other, song_id)
    return {song_id: find(song_id) for song_id in fingerprints}
