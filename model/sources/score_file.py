"""Scores with lyrics: MusicXML (``.xml``, ``.musicxml``, ``.mxl``), kern, ABC.

music21 parses the file; the song is the part that carries the most text
lyrics (the first such part on a tie: the soprano of a chorale), first
verse.  Tied notes are merged; a note without a syllable that follows a
syllable's note (a melisma) lengthens that syllable; rests become the next
note's ``rest_beats``; ``syllabic`` (begin/middle/end/single) gives the word
boundaries.  Lyric fields that are figures (figured bass, roman numerals,
digits) are not lyrics and are skipped.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from model.data.song import Note, Song
from model.sources import SourceError, list_files, read_item_bytes

SOURCE = "musicxml"
EXTENSIONS = (".xml", ".musicxml", ".mxl", ".krn", ".abc")
DEFAULT_BPM = 120.0

_FIGURE = re.compile(r"^[\d#b♭♮♯+\-_/\\ ,.°øx()\[\]]*\d[\d#b♭♮♯+\-_/\\ ,.°øx()\[\]]*$|^[#b♭♮♯+_]+$")
_ROMAN = re.compile(r"^[b#♭♯]?(?:vii|vi|v|iv|iii|ii|i|VII|VI|V|IV|III|II|I)[o°ø+]?\d*(?:/.*)?$")
_LETTER = re.compile(r"[^\W\d_]")


def is_figure(text: str) -> bool:
    """True for figured-bass or digit-only fields (``6``, ``#``, ``6/4``)."""
    return bool(_FIGURE.match(text.strip())) or not _LETTER.search(text)


def _verse_one(note) -> Any:
    """The note's first-verse lyric object, or None."""
    lyrics = [ly for ly in getattr(note, "lyrics", []) if (ly.text or "").strip()]
    if not lyrics:
        return None
    for lyric in lyrics:
        if lyric.number == 1:
            return lyric
    return lyrics[0]


def _part_lyric_score(part) -> int:
    """How many text (non-figure) first-verse lyrics a part carries.

    A part whose fields are mostly roman numerals or figures counts 0, so an
    analysis or continuo part never wins over a sung one.
    """
    texts = []
    for note in part.recurse().notes:
        lyric = _verse_one(note)
        if lyric is not None:
            texts.append(lyric.text.strip())
    if not texts:
        return 0
    figures = sum(1 for t in texts if is_figure(t) or _ROMAN.match(t))
    if figures * 2 > len(texts):
        return 0
    return sum(1 for t in texts if not is_figure(t))


def _seconds_map(score) -> tuple[list[tuple[float, float, float]], float]:
    """Piecewise (offset quarters, seconds there, quarter BPM) and the first BPM."""
    from music21 import tempo

    marks = []
    for mark in score.flatten().getElementsByClass(tempo.MetronomeMark):
        bpm = mark.getQuarterBPM()
        if bpm and bpm > 0:
            marks.append((float(mark.offset), float(bpm)))
    marks.sort()
    pieces = [(0.0, 0.0, marks[0][1] if marks and marks[0][0] <= 0 else DEFAULT_BPM)]
    for offset, bpm in marks:
        start, seconds, old = pieces[-1]
        if offset <= start:
            pieces[-1] = (start, seconds, bpm)
            continue
        pieces.append((offset, seconds + (offset - start) * 60.0 / old, bpm))
    return pieces, pieces[0][2]


def _to_seconds(pieces: list[tuple[float, float, float]], quarters: float) -> float:
    for start, seconds, bpm in reversed(pieces):
        if quarters >= start:
            return seconds + (quarters - start) * 60.0 / bpm
    return quarters * 60.0 / pieces[0][2]


def _top_pitch(element) -> int:
    if element.isChord:
        return max(p.midi for p in element.pitches)
    return element.pitch.midi


def song_from_score(score, path: str, song_id: str, title: str, source: str) -> Song:
    """Build a song from a parsed music21 score (or single part).

    Raises
    ------
    SourceError
        When no part carries text lyrics.
    """
    from music21 import stream

    if isinstance(score, stream.Opus):  # an ABC book: the first tune with lyrics
        for sub in score.scores:
            if max((_part_lyric_score(p) for p in (sub.parts or [sub])), default=0):
                score = sub
                break
        else:
            raise SourceError(path, "no part carries text lyrics")
    parts = list(score.parts) or [score]
    ranked = [(_part_lyric_score(p), -i) for i, p in enumerate(parts)]
    best_score, neg_index = max(ranked)
    if best_score == 0:
        raise SourceError(path, "no part carries text lyrics")
    part = parts[-neg_index]
    pieces, first_bpm = _seconds_map(score)

    flat = part.flatten().stripTies()
    # Syllable spans in quarters: [onset, end, pitch, text, word_start].
    spans: list[list[Any]] = []
    for element in flat.notesAndRests:
        length = float(element.quarterLength)
        if length <= 0:  # grace notes carry no time
            continue
        onset = float(element.offset)
        if element.isRest:
            continue
        lyric = _verse_one(element)
        if lyric is not None and not is_figure(lyric.text):
            word_start = lyric.syllabic in (None, "begin", "single", "composite")
            spans.append([onset, onset + length, _top_pitch(element), lyric.text.strip(), word_start])
        elif spans and onset >= spans[-1][1] - 1e-6:
            # A melisma note: the syllable goes on, if no rest came between.
            if onset - spans[-1][1] < 1e-6:
                spans[-1][1] = onset + length
    if not spans:
        raise SourceError(path, "no notes carry text lyrics")

    notes = []
    prev_end = None
    for onset, end, pitch, text, word_start in spans:
        start_s, end_s = _to_seconds(pieces, onset), _to_seconds(pieces, end)
        rest = 0.0 if prev_end is None else max(onset - prev_end, 0.0)
        notes.append(Note(pitch=int(pitch), onset=start_s, duration=end_s - start_s,
                          syllable=text, word_start=bool(word_start),
                          beats=round(end - onset, 6), rest_beats=round(rest, 6)))
        prev_end = end
    if not title:
        metadata = getattr(score, "metadata", None)
        title = (metadata.title if metadata is not None and metadata.title else "") or Path(path).stem
    return Song(song_id=song_id, title=title, source=source, path=path, notes=notes,
                tempo_bpm=round(first_bpm, 3))


_ABC_TOKEN = re.compile(r"[^\s\-_*|]+|-|_|\*|\|")


def abc_syllables(line: str) -> list[tuple[str | None, bool]]:
    """(syllable, word start) per note of an ABC ``w:`` line; None = no new syllable.

    ABC rules: ``-`` right after a syllable splits a word; a ``-`` on its own,
    ``_`` (hold) and ``*`` (skip) take a note without a new syllable; ``~``
    joins words on one note; ``|`` (bar jump) is ignored here.
    """
    out: list[tuple[str | None, bool]] = []
    new_word = True
    prev_end = -1
    for match in _ABC_TOKEN.finditer(line.replace("\\-", "\u2010")):
        token = match.group()
        if token == "-":
            if match.start() == prev_end:  # "syl-": the word goes on
                new_word = False
            else:
                out.append((None, False))
            prev_end = -1
        elif token in ("_", "*"):
            out.append((None, False))
        elif token == "|":
            continue
        else:
            out.append((token.replace("~", " ").replace("\u2010", "-"), new_word))
            new_word = True
            prev_end = match.end()
    return out


def attach_abc_lyrics(score, text: str) -> None:
    """Put ABC ``w:`` lyrics on the notes (music21 reads ABC without them).

    Handled: one voice per tune (several ``X:`` tunes in a file are matched
    to the opus's scores in order).  Tied continuations and grace notes take
    no syllable, as the ABC standard says.
    """
    from music21 import stream

    tunes = re.split(r"(?m)^X:", text)[1:] or [text]
    scores = list(score.scores) if isinstance(score, stream.Opus) else [score]
    for sub, tune in zip(scores, tunes):
        parts = list(sub.parts) or [sub]
        if len(parts) != 1:
            continue  # several voices: which w: line goes where is not tracked
        notes = [n for n in parts[0].recurse().notes
                 if float(n.quarterLength) > 0 and not (n.tie and n.tie.type in ("stop", "continue"))]
        if any(n.lyrics for n in notes):
            continue  # a music21 that reads ABC lyrics itself
        syllables = [pair for line in re.findall(r"(?m)^w:(.*)$", tune) for pair in abc_syllables(line)]
        for n, (syllable, word_start) in zip(notes, syllables):
            if syllable:
                n.addLyric(syllable)
                n.lyrics[-1].syllabic = "begin" if word_start else "middle"


def parse_score(path: str, force_source: bool = True):
    """Parse a score file with music21, ABC lyrics attached.

    Raises
    ------
    SourceError
        When music21 cannot parse it.
    """
    from music21 import converter

    try:
        score = converter.parse(path, forceSource=force_source)
    except Exception as exc:  # music21 raises many kinds on malformed input
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise SourceError(path, f"malformed score ({type(exc).__name__}: {reason})") from None
    if path.lower().endswith(".abc"):
        with open(path, encoding="utf-8", errors="replace") as handle:
            attach_abc_lyrics(score, handle.read())
    return score


def _check_readable(path: str) -> bytes:
    data = read_item_bytes(path, "a score file")
    if not data.strip():
        raise SourceError(path, "empty file")
    return data


def read_song(item: str) -> Song:
    """Read one MusicXML/kern/ABC file.

    Raises
    ------
    SourceError
        Unreadable, empty or malformed file, or no part with text lyrics.
    """
    path = str(item)
    data = _check_readable(path)
    score = parse_score(path)
    digest = hashlib.md5(data).hexdigest()[:10]
    return song_from_score(score, path, f"{Path(path).stem}-{digest}", "", SOURCE)


def list_items(path: str | None) -> list[str]:
    """Sorted score files under a folder (recursively), or the single file."""
    return list_files(path, EXTENSIONS, "musicxml")
