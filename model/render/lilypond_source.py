"""LilyPond source text for sample snippets (pure functions, no processes).

A snippet is one staff: clef chosen by the notes' range, durations
quantised to thirty-seconds (quarter = 1 beat) and written as tied notes when a
value has no single (dotted or double-dotted) note symbol, rests between notes, no time signature,
no title, tagline or bar numbers.  Syllables, which come from untrusted
files, only ever appear inside escaped LilyPond string literals.

``sheet.py`` wraps one snippet per ``\\book`` block so a single LilyPond run
engraves a whole batch.
"""
from __future__ import annotations

from typing import Sequence

from model.data.song import Note

LILYPOND_LANGUAGE_VERSION = "2.24.0"
#: Quantisation grid in beats (a thirty-second note): the LMD release's
#: values are multiples of 1/8 beat (0.375 = dotted sixteenth is common).
GRID_BEATS = 0.125
#: Longest note or rest written; one outlier (the release has 32-beat
#: values) would otherwise make a snippet many times wider than the rest.
MAX_BEATS = 8.0
#: Note values with a single symbol, longest first: beats -> LilyPond duration.
DURATIONS: tuple[tuple[float, str], ...] = (
    (6.0, "1."), (4.0, "1"), (3.5, "2.."), (3.0, "2."), (2.0, "2"), (1.75, "4.."),
    (1.5, "4."), (1.0, "4"), (0.875, "8.."), (0.75, "8."), (0.5, "8"), (0.375, "16."),
    (0.25, "16"), (0.125, "32"),
)
#: Longest syllable shown under the staff; longer (untrusted) text is cut so
#: one odd lyric field cannot make a display image arbitrarily wide.
MAX_SYLLABLE_CHARS = 40
#: Clefs with the MIDI range of their staff lines (bottom line, top line).
CLEF_RANGES: tuple[tuple[str, int, int], ...] = (
    ("treble", 64, 77), ("bass", 43, 57), ("treble_8", 52, 65),
)
_NAMES = ("c", "cis", "d", "dis", "e", "f", "fis", "g", "gis", "a", "ais", "b")

#: Printed once per batch file: paper/layout shared by every book, and the
#: Scheme callback that logs each note head's X extent (staff spaces,
#: relative to the system) on stderr so the renderer can place a play cursor.
PREAMBLE = r"""\version "%s"
#(define (ugaar-note-x id)
   (lambda (grob)
     (let* ((sys (ly:grob-system grob))
            (ext (ly:grob-extent grob sys X)))
       (ly:message "UGAARX ~a ~a ~a" id (car ext) (cdr ext)))))
\header { tagline = ##f }
\paper { page-breaking = #ly:one-line-breaking indent = 0 }
\layout {
  \context { \Score \remove Bar_number_engraver }
  \context { \Staff \omit TimeSignature }
}
""" % LILYPOND_LANGUAGE_VERSION


def quantise_beats(beats: float, minimum: float = GRID_BEATS) -> float:
    """Round to the 1/8-beat grid, clamp to [minimum, MAX_BEATS]."""
    q = round(max(0.0, float(beats)) / GRID_BEATS) * GRID_BEATS
    return min(MAX_BEATS, max(minimum, q))


def split_beats(beats: float) -> list[str]:
    """Split a quantised value into LilyPond durations to be tied, longest first."""
    parts: list[str] = []
    left = beats
    for value, token in DURATIONS:
        while left >= value - 1e-9:
            parts.append(token)
            left -= value
    return parts


def pitch_name(pitch: int) -> str:
    """MIDI pitch to LilyPond absolute pitch (60 -> c')."""
    pitch = min(127, max(0, int(pitch)))
    octave = pitch // 12 - 4
    marks = "'" * octave if octave > 0 else "," * -octave
    return _NAMES[pitch % 12] + marks


def choose_clef(pitches: Sequence[int]) -> str:
    """The clef needing the fewest ledger-line semitones (ties: treble, bass, treble_8)."""
    def cost(low: int, high: int) -> int:
        return sum(max(0, low - p, p - high) for p in pitches)

    return min(CLEF_RANGES, key=lambda c: cost(c[1], c[2]))[0]


def note_values(notes: Sequence[Note], tempo_bpm: float = 120.0) -> list[tuple[float, float]]:
    """(rest before, note length) in quantised beats for each note.

    ``Note.beats``/``rest_beats`` are used when present; otherwise the values
    come from seconds and ``tempo_bpm`` (rests from the gap between the
    previous note's end and this onset).  The first note never gets a rest:
    a snippet starts at its first note, like its audio.
    """
    per_second = tempo_bpm / 60.0
    values: list[tuple[float, float]] = []
    for i, note in enumerate(notes):
        length = note.beats if note.beats is not None else note.duration * per_second
        if i == 0:
            rest = 0.0
        elif note.rest_beats is not None:
            rest = note.rest_beats
        else:
            prev = notes[i - 1]
            rest = (note.onset - prev.onset - prev.duration) * per_second
        values.append((quantise_beats(rest, minimum=0.0), quantise_beats(length)))
    return values


def escape_string(text: str) -> str:
    """A LilyPond string literal for untrusted text.

    Backslashes and quotes are escaped, control characters dropped, and
    strings that cannot be encoded are repaired, so no syllable can end the
    literal early or inject LilyPond or Scheme code.
    """
    clean = "".join(ch for ch in str(text) if ch >= " " and ch != "\x7f")
    clean = clean.encode("utf-8", errors="replace").decode("utf-8")
    clean = clean.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{clean}"'


def music_source(notes: Sequence[Note], tempo_bpm: float = 120.0) -> tuple[str, list[int]]:
    """The note sequence and, per note, how many (tied) note heads it has."""
    tokens: list[str] = []
    heads: list[int] = []
    for note, (rest, length) in zip(notes, note_values(notes, tempo_bpm)):
        if rest > 0:
            tokens.extend("r" + d for d in split_beats(rest))
        parts = split_beats(length)
        name = pitch_name(note.pitch)
        tokens.append("~ ".join(name + d for d in parts))
        heads.append(len(parts))
    return " ".join(tokens), heads


def lyrics_source(notes: Sequence[Note]) -> str:
    """One escaped syllable per note, ``--`` hyphens inside words."""
    out: list[str] = []
    for i, note in enumerate(notes):
        if i > 0:
            out.append("--" if not note.word_start else "")
        out.append(escape_string(note.syllable[:MAX_SYLLABLE_CHARS] or " "))
    return " ".join(tok for tok in out if tok)


def score_source(notes: Sequence[Note], with_lyrics: bool = False, tempo_bpm: float = 120.0,
                 log_id: str | None = None) -> str:
    """A ``\\score`` block: one staff, optional lyrics, optional note-x logging."""
    music, _ = music_source(notes, tempo_bpm)
    clef = choose_clef([n.pitch for n in notes])
    log = f'\\override NoteHead.after-line-breaking = #(ugaar-note-x "{log_id}") ' if log_id else ""
    voice = f'\\new Voice = "m" {{ {log}\\clef "{clef}" {music} }}'
    if with_lyrics:
        body = f'<< {voice}\n  \\new Lyrics \\lyricsto "m" {{ {lyrics_source(notes)} }} >>'
    else:
        body = voice
    return f"\\score {{\n  {body}\n  \\layout {{ }}\n}}"


def lilypond_source(notes: Sequence[Note], with_lyrics: bool = False,
                    tempo_bpm: float = 120.0) -> str:
    """A complete LilyPond file for one snippet (for tests and debugging).

    Parameters
    ----------
    notes : sequence of Note
        The sample's notes.
    with_lyrics : bool
        Add the syllables under the notes (display version only).
    tempo_bpm : float
        Tempo for notes without ``beats``.
    """
    return PREAMBLE + score_source(notes, with_lyrics, tempo_bpm) + "\n"


def book_source(out_name: str, score: str) -> str:
    """Wrap a score in a ``\\book`` whose output file is ``out_name``."""
    return f'\\book {{\n\\bookOutputName "{out_name}"\n{score}\n}}\n'
