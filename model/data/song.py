"""Plain data shared by every source, renderer and model: notes, songs, samples.

A *song* is a sequence of syllable–note pairs; a *sample* is 20 consecutive
pairs of one song (see ``docs/architecture.md``).  These are frozen
dataclasses over built-in types so they pickle cheaply to worker processes
and serialise to JSON for the dataset manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Note:
    """One sung note and the syllable on it.

    Parameters
    ----------
    pitch : int
        MIDI pitch number (21–108 after cleaning).
    onset : float
        Onset in seconds from the start of the song.
    duration : float
        Sounding duration in seconds.
    syllable : str
        The syllable sung on this note, cleaned (no markup, no hyphens).
    word_start : bool
        True when this syllable begins a new word.  Sources without word
        information mark every syllable as a word start.
    beats : float or None
        Quantised duration in beats (quarter note = 1), when the source has
        one; the sheet renderer derives it from seconds and tempo otherwise.
    rest_beats : float or None
        Quantised rest before the note in beats, when known.
    """

    pitch: int
    onset: float
    duration: float
    syllable: str
    word_start: bool = True
    beats: float | None = None
    rest_beats: float | None = None

    def to_json(self) -> list[Any]:
        return [self.pitch, round(self.onset, 6), round(self.duration, 6), self.syllable,
                self.word_start, self.beats, self.rest_beats]

    @classmethod
    def from_json(cls, row: list[Any]) -> "Note":
        pitch, onset, duration, syllable, word_start, beats, rest_beats = row
        return cls(int(pitch), float(onset), float(duration), str(syllable), bool(word_start),
                   None if beats is None else float(beats),
                   None if rest_beats is None else float(rest_beats))


@dataclass
class Song:
    """A lyric-aligned melody from one source file.

    Parameters
    ----------
    song_id : str
        Stable id, unique within a dataset and identical on every machine
        (e.g. the file's md5 name for the LMD release, the corpus path for
        music21 works).  Splits are a pure function of it.
    title : str
        Human-readable title for the library view.
    source : str
        One of ``lmd-npy``, ``midi``, ``musicxml``, ``music21-corpus``.
    path : str
        Where it came from (file path or corpus path).
    notes : list of Note
        The melody, one note at a time, in onset order.
    tempo_bpm : float
        Tempo used to convert seconds to beats when ``Note.beats`` is None.
    """

    song_id: str
    title: str
    source: str
    path: str
    notes: list[Note] = field(default_factory=list)
    tempo_bpm: float = 120.0


@dataclass(frozen=True)
class Sample:
    """20 consecutive syllable–note pairs of one song: one item per modality.

    Parameters
    ----------
    sample_id : str
        File-system-safe id, unique in the dataset (``<song key>-<start>``).
    song_id : str
        The (deduplicated) song it belongs to; splits group by it.
    start : int
        Index of the first note in the song.
    notes : tuple of Note
        The pairs, onsets relative to the song (renderers shift them to 0).
    split : str
        ``train``, ``val`` or ``test``.
    title : str
        Song title, for display.
    source : str
        Source kind of the song.
    """

    sample_id: str
    song_id: str
    start: int
    notes: tuple[Note, ...]
    split: str
    title: str = ""
    source: str = ""

    @property
    def syllables(self) -> list[str]:
        return [n.syllable for n in self.notes]

    @property
    def words(self) -> list[str]:
        """The sample's lyrics joined into words using ``word_start`` marks."""
        words: list[str] = []
        for note in self.notes:
            if note.word_start or not words:
                words.append(note.syllable)
            else:
                words[-1] += note.syllable
        return words

    @property
    def lyrics_text(self) -> str:
        return " ".join(self.words)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = [n.to_json() for n in self.notes]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Sample":
        return cls(
            sample_id=data["sample_id"], song_id=data["song_id"], start=int(data["start"]),
            notes=tuple(Note.from_json(r) for r in data["notes"]), split=data["split"],
            title=data.get("title", ""), source=data.get("source", ""),
        )
