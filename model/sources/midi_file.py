"""MIDI and karaoke files (``.mid``, ``.midi``, ``.kar``) with lyrics on the melody.

Lyrics come from ``lyrics`` meta events, or, when a file has none (the
karaoke ``.kar`` convention), from ``text`` meta events.  The melody is the
non-drum instrument whose note onsets best match the lyric times; each
lyric takes the note starting nearest to it (the highest, when a chord).

Word boundaries follow the karaoke conventions: ``/`` or ``\\`` starts a new
line (and word), ``@`` starts a header (skipped), a leading space starts a
new word, a trailing ``-`` continues the word.  Files whose lyric events
carry no spaces at all put one word (or ``-``-joined syllable) per event.
"""
from __future__ import annotations

import bisect
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from model.data.song import Note, Song
from model.sources import SourceError, list_files, read_item_bytes

SOURCE = "midi"
EXTENSIONS = (".mid", ".midi", ".kar")
# A lyric belongs to a note starting within this many seconds of it.
MATCH_TOLERANCE_S = 0.1
# Beats are quantised to this grid (a 32nd note) for the sheet renderer.
BEAT_GRID = 0.125


@dataclass(frozen=True)
class LyricEvent:
    """One syllable with its time and whether it starts a word."""

    time: float
    text: str
    word_start: bool


def _decode(text: str) -> str:
    # mido decodes meta text as latin-1; most karaoke files are latin-1 or
    # UTF-8, so re-decode as UTF-8 when that round-trips.
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _raw_events(midi, mf) -> tuple[list[tuple[float, str]], str]:
    """(time, text) of lyric events, else of text events; and which kind."""
    found: dict[str, list[tuple[int, str]]] = {"lyrics": [], "text": []}
    for track in mf.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in found:
                found[msg.type].append((tick, _decode(msg.text)))
    kind = "lyrics" if found["lyrics"] else "text"
    events = sorted(found[kind], key=lambda e: e[0])
    return [(float(midi.tick_to_time(tick)), text) for tick, text in events], kind


def parse_lyric_events(raw: list[tuple[float, str]]) -> list[LyricEvent]:
    """Apply the karaoke text conventions to raw (time, text) events."""
    texts = [t for _, t in raw if not t.startswith("@")]
    # Do the events mark word ends with spaces at all?  If not, each event
    # is its own word unless it ends with '-'.
    spaced = any(t[:1].isspace() or t[-1:].isspace() for t in texts if t.strip("/\\ \r\n"))
    events: list[LyricEvent] = []
    new_word = True
    for time, text in raw:
        if text.startswith("@"):  # KAR header (@T title, @L language, ...)
            continue
        if text and text[0] in "/\\":
            new_word = True
            text = text[1:]
        text = text.replace("\r", " ").replace("\n", " ")
        if text[:1].isspace():
            new_word = True
        core = text.strip()
        continues = core.endswith("-")
        syllable = core.strip("-").strip()
        if syllable:
            events.append(LyricEvent(time, syllable, new_word))
            if continues:
                new_word = False
            elif spaced:
                new_word = text[-1:].isspace()
            else:
                new_word = True
        elif text[-1:].isspace() or not spaced:
            new_word = True
    return events


def _melody_instrument(midi, times: list[float]):
    """The non-drum instrument with most lyric times matched by a note onset."""
    import numpy as np

    best, best_key = None, None
    for inst in midi.instruments:
        if inst.is_drum or not inst.notes:
            continue
        onsets = np.sort(np.array([n.start for n in inst.notes]))
        idx = np.searchsorted(onsets, times)
        hits = 0
        for t, i in zip(times, idx):
            near = [abs(onsets[j] - t) for j in (i - 1, i) if 0 <= j < len(onsets)]
            hits += bool(near) and min(near) <= MATCH_TOLERANCE_S
        # Ties go to the instrument with fewer notes (less accompaniment).
        key = (hits, -len(inst.notes))
        if best_key is None or key > best_key:
            best, best_key = inst, key
    return best, (best_key[0] if best_key else 0)


def _quantise(beats: float) -> float:
    return round(beats / BEAT_GRID) * BEAT_GRID


def _load(path: str):
    import mido
    import pretty_midi

    data = read_item_bytes(path, "a MIDI file")
    if not data:
        raise SourceError(path, "empty file")
    try:
        mf = mido.MidiFile(file=io.BytesIO(data), clip=True)
        midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as exc:  # mido/pretty_midi raise many kinds on corrupt input
        raise SourceError(path, f"not a readable MIDI file ({type(exc).__name__}: {exc})") from None
    return midi, mf, hashlib.md5(data).hexdigest()


def read_song(item: str) -> Song:
    """Read one MIDI/KAR file into a song of the melody's lyric-carrying notes.

    Raises
    ------
    SourceError
        Unreadable or corrupt file, ``no lyric events``, or lyrics that sit on
        no instrument's notes.
    """
    path = str(item)
    midi, mf, digest = _load(path)
    raw, _kind = _raw_events(midi, mf)
    events = parse_lyric_events(raw)
    if not events:
        raise SourceError(path, "no lyric events")
    inst, hits = _melody_instrument(midi, [e.time for e in events])
    if inst is None or hits == 0:
        raise SourceError(path, "lyric events do not coincide with any instrument's notes")

    by_onset: dict[float, list] = {}
    for n in inst.notes:
        by_onset.setdefault(n.start, []).append(n)
    onsets = sorted(by_onset)

    resolution = midi.resolution
    notes: list[Note] = []
    used: set[float] = set()
    prev_end = None
    for event in events:
        i = bisect.bisect_left(onsets, event.time)
        candidates = [onsets[j] for j in (i - 1, i) if 0 <= j < len(onsets)]
        if not candidates:
            continue
        onset = min(candidates, key=lambda o: abs(o - event.time))
        if abs(onset - event.time) > MATCH_TOLERANCE_S or onset in used:
            continue  # a lyric between notes, or a second syllable on one note
        used.add(onset)
        note = max(by_onset[onset], key=lambda n: n.pitch)  # top of a chord
        start_tick, end_tick = midi.time_to_tick(note.start), midi.time_to_tick(note.end)
        beats = max(_quantise((end_tick - start_tick) / resolution), BEAT_GRID)
        rest = 0.0
        if prev_end is not None:
            rest = max(_quantise((start_tick - midi.time_to_tick(prev_end)) / resolution), 0.0)
        notes.append(Note(pitch=int(note.pitch), onset=float(note.start),
                          duration=float(note.end - note.start), syllable=event.text,
                          word_start=event.word_start, beats=beats, rest_beats=rest))
        prev_end = note.end
    if not notes:
        raise SourceError(path, "lyric events do not coincide with any notes")
    _times, tempi = midi.get_tempo_changes()
    tempo = float(tempi[0]) if len(tempi) else 120.0
    title = _title(raw) or Path(path).stem
    # The stem alone can repeat across folders; the content hash keeps the id
    # unique and the same on every machine.
    return Song(song_id=f"{Path(path).stem}-{digest[:10]}", title=title, source=SOURCE, path=path, notes=notes,
                tempo_bpm=round(tempo, 3))


def _title(raw: list[tuple[float, str]]) -> str:
    for _time, text in raw:
        match = re.match(r"@T\s*(.+)", text)
        if match:
            return match.group(1).strip()
    return ""


def list_items(path: str | None) -> list[str]:
    """Sorted MIDI/KAR files under a folder (recursively), or the single file."""
    return list_files(path, EXTENSIONS, "midi")
