"""Embed new items that are in no dataset: a typed line, a WAV, a PNG, notes, a MIDI.

The GUI's query box and ``ugaar query`` use this.  An ``Embedder`` wraps one
set of trained encoders and applies exactly the same front ends as
``extract_features`` (the same float16 inputs), so a dataset item embedded
here gives its cached feature row back (up to float rounding).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from model.feature_set import SequenceInput, pad_sequences
from model.data.song import Note

from .extract import Encoders, audio_input, load_encoders, sheet_input
from .frontend import load_grey
from .learned.encoders import mean_by_sample
from .tokens.prosody import syllabify_text
from .tokens.sequences import (audio_rows, audio_segments, lyrics_tokens, sheet_segments, tokens_from_segments)

MAX_NOTES = 20


class Embedder:
    """Features of new items with one set of trained encoders.

    Parameters
    ----------
    encoders : Encoders
        From ``load_encoders``.
    device : str
        ``"cpu"`` or ``"cuda"``.
    audio_renderer : str, optional
        Renderer for ``notes``/``midi_file`` (``"fluidsynth"``, ``"builtin"``
        or ``"auto"``); default: the one of the dataset the encoders were
        trained on, when recorded, else ``"auto"``.
    """

    def __init__(self, encoders: Encoders, device: str = "cpu", audio_renderer: str | None = None,
                 sequence_settings: Mapping[str, Any] | None = None) -> None:
        self.encoders = encoders
        # a query is cut into tokens as the run's features were (their onset threshold, …)
        self.config = encoders.config.with_sequence_settings(sequence_settings)
        if self.config.onset_method == "learned" and encoders.onset_net is None:
            raise FileNotFoundError(f"{encoders.folder}: these features cut audio at learned onsets, but the "
                                    "encoders folder has no onset_net.pt; run `ugaar features extract DATASET "
                                    "--onset-method learned` with these encoders")
        self.device = device
        recorded = (encoders.report.get("audio_renderer") or {}).get("name") \
            if isinstance(encoders.report.get("audio_renderer"), dict) else None
        self.audio_renderer_kind = audio_renderer or (recorded if recorded in ("fluidsynth", "builtin")
                                                      else "auto")
        self._audio_renderer: Any = None
        self._sheet_renderer: Any = None

    @property
    def lyrics_dim(self) -> int:
        return self.encoders.lyrics.dim

    @torch.no_grad()
    def _embed(self, encoder: Any, items: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(items)).to(self.device, torch.float32)
        vec = encoder(x)
        return mean_by_sample(vec, [len(items)])[0].float().cpu().numpy()

    # -- single modalities ------------------------------------------------
    def lyrics(self, text: str) -> np.ndarray:
        """A typed lyrics line → ``(D_lyrics,)``; unknown words give zeros, never an error."""
        return self.encoders.lyrics.encode_text(text or "")

    def lyrics_syllables(self, syllables: Sequence[str], word_starts: Sequence[bool] | None = None) -> np.ndarray:
        """Syllables with word starts (as in a dataset sample) → ``(D_lyrics,)``."""
        starts = list(word_starts) if word_starts is not None else [True] * len(syllables)
        return self.encoders.lyrics.encode_sample(list(syllables), starts)

    def audio(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """A waveform at any rate (mono or stereo) → ``(128,)``."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.size == 0:
            raise ValueError("empty audio")
        return self._embed(self.encoders.model.audio.forward_pooled,
                           audio_input(wave, int(sample_rate), self.config))

    def audio_file(self, path: str | Path) -> np.ndarray:
        """A WAV/FLAC/OGG file (anything libsndfile reads) → ``(128,)``."""
        import soundfile
        data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
        return self.audio(data.mean(axis=1), sr)

    def sheet_png(self, path: str | Path) -> np.ndarray:
        """An engraved one-staff image (no lyrics) → ``(128,)``."""
        return self._embed(self.encoders.model.sheet, sheet_input(path, self.config))

    # -- sequence inputs (runs with inputs="aligned") ----------------------
    def _sequence(self, pooled: np.ndarray, tokens: np.ndarray) -> SequenceInput:
        padded, lengths = pad_sequences([tokens], self.config.sequence_max_len, tokens.shape[1])
        return SequenceInput(np.asarray(pooled, np.float32)[None, :], padded, lengths)

    @torch.no_grad()
    def _cnn_tokens(self, encoder: Any, segments: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        model = self.encoders.model
        was_training = model.training
        model.eval()
        try:
            return tokens_from_segments(encoder, [segments], self.device)[0]
        finally:
            model.train(was_training)

    def lyrics_sequence(self, text: str) -> SequenceInput:
        """A typed lyrics line → pooled vector and per-syllable tokens (one item).

        Syllables come from :func:`model.features.tokens.prosody.syllabify_text`
        (orthographic split, CMUdict syllable counts); the pooled vector is
        :meth:`lyrics`, as for runs on the paper's inputs.
        """
        syllables, starts = syllabify_text(text or "")
        return self._lyrics_sequence(self.lyrics(text), syllables, starts)

    def lyrics_syllables_sequence(self, syllables: Sequence[str],
                                  word_starts: Sequence[bool] | None = None) -> SequenceInput:
        starts = list(word_starts) if word_starts is not None else [True] * len(syllables)
        return self._lyrics_sequence(self.lyrics_syllables(syllables, starts), list(syllables), starts)

    def _lyrics_sequence(self, pooled: np.ndarray, syllables: Sequence[str], starts: Sequence[bool]) -> SequenceInput:
        """The lyrics tokens of one line, and its phonetic columns for the lyrics re-ranker."""
        from model.features.tokens.phonetics import N_PHONETIC, syllable_phonetics

        sequence = self._sequence(pooled, lyrics_tokens(self.encoders.lyrics, list(syllables), starts))
        sequence.phonetics, _ = pad_sequences([syllable_phonetics(syllables, starts)],
                                              self.config.sequence_max_len, N_PHONETIC)
        return sequence

    def audio_sequence(self, wave: np.ndarray, sample_rate: int) -> SequenceInput:
        """A waveform → pooled vector and per-onset tokens (onsets found in the audio itself)."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.size == 0:
            raise ValueError("empty audio")
        from .tokens.onset_pitch import N_ONSET_PITCH, audio_pitch_columns

        patches = audio_input(wave, int(sample_rate), self.config)
        pooled = self._embed(self.encoders.model.audio.forward_pooled, patches)
        rows = audio_rows(patches)
        segments = audio_segments(rows, self.config, onset_net=self.encoders.onset_net)
        sequence = self._sequence(pooled, self._cnn_tokens(self.encoders.model.audio.forward_pooled, segments))
        # each onset's pitch, for the lyrics re-ranker's audio side (a few ms)
        sequence.onset_pitch, _ = pad_sequences([audio_pitch_columns(wave, sample_rate, self.config, rows,
                                                                     self.encoders.onset_net)],
                                                self.config.sequence_max_len, N_ONSET_PITCH)
        return sequence

    def audio_file_sequence(self, path: str | Path) -> SequenceInput:
        import soundfile
        data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
        return self.audio_sequence(data.mean(axis=1), sr)

    def sheet_sequence(self, path: str | Path, note_x: Sequence[float] | None = None,
                       notes: Sequence[Note] | None = None) -> SequenceInput:
        """An engraved staff → pooled vector and per-note tokens (windows every half width without ``note_x``).

        ``notes``: the notes the staff engraves, when known (their written
        durations, rests and pitches fill the tokens' note columns).
        """
        segments = sheet_segments(load_grey(path), note_x, self.config, notes)
        return self._sequence(self.sheet_png(path), self._cnn_tokens(self.encoders.model.sheet, segments))

    def notes_sequence(self, notes: Sequence[Note]) -> dict[str, SequenceInput]:
        """Render notes on the fly → ``{"audio", "sheet", "lyrics"}`` sequence inputs."""
        notes = tuple(notes)
        if not notes:
            raise ValueError("no notes to embed")
        return {"audio": self.audio_sequence(self._render_audio(notes), self.config.sample_rate),
                "sheet": self._engraved(notes, lambda png, x: self.sheet_sequence(png, x, notes)),
                "lyrics": self.lyrics_syllables_sequence([n.syllable for n in notes], [n.word_start for n in notes])}

    def midi_file_sequence(self, path: str | Path, max_notes: int = MAX_NOTES) -> dict[str, SequenceInput]:
        """A MIDI/KAR file with lyric events: sequence inputs of its first ``max_notes`` cleaned notes."""
        return self.notes_sequence(self.midi_notes(path, max_notes))

    # -- notes and MIDI ---------------------------------------------------
    def notes(self, notes: Sequence[Note]) -> dict[str, np.ndarray]:
        """Render notes to audio and a sheet on the fly → ``{"audio", "sheet", "lyrics"}``."""
        notes = tuple(notes)
        if not notes:
            raise ValueError("no notes to embed")
        return {"audio": self.notes_audio(notes), "sheet": self._engraved(notes, lambda png, _x: self.sheet_png(png)),
                "lyrics": self.lyrics_syllables([n.syllable for n in notes], [n.word_start for n in notes])}

    def notes_audio(self, notes: Sequence[Note]) -> np.ndarray:
        """Render notes to audio with this embedder's synthesiser → ``(128,)``."""
        return self.audio(self._render_audio(notes), self.config.sample_rate)

    def _render_audio(self, notes: Sequence[Note]) -> np.ndarray:
        if self._audio_renderer is None:
            from model.render.audio import make_audio_renderer
            self._audio_renderer = make_audio_renderer(self.audio_renderer_kind, self.config.sample_rate)
        return self._audio_renderer.render(tuple(notes))

    def _engraved(self, notes: Sequence[Note], embed: Any) -> Any:
        """Engrave ``notes`` with LilyPond into a temporary PNG; ``embed(png, note_x)`` of it."""
        from model.render.sheet import SheetJob, SheetRenderer
        if self._sheet_renderer is None:
            self._sheet_renderer = SheetRenderer()
        with tempfile.TemporaryDirectory(prefix="ugaar-embed-") as tmp:
            png = Path(tmp) / "query.png"
            result = self._sheet_renderer.render_batch([SheetJob(png, tuple(notes))])[0]
            if not result.ok:
                raise ValueError(f"LilyPond could not engrave these notes: {result.error}")
            return embed(png, result.note_x)

    def midi_file(self, path: str | Path, max_notes: int = MAX_NOTES) -> dict[str, np.ndarray]:
        """A MIDI/KAR file with lyric events: its first ``max_notes`` cleaned notes."""
        return self.notes(self.midi_notes(path, max_notes))

    @staticmethod
    def midi_notes(path: str | Path, max_notes: int = MAX_NOTES) -> tuple[Note, ...]:
        """The first ``max_notes`` cleaned notes of a MIDI/KAR file with lyric events."""
        from model.data.cleaning import CleaningConfig, CleaningReport, clean_song
        from model.sources.midi_file import read_song
        song = clean_song(read_song(str(path)), CleaningConfig(), CleaningReport())
        if not song.notes:
            raise ValueError(f"{path}: no notes left after cleaning")
        return tuple(song.notes[:max_notes])


def load_embedder(encoders_dir: str | Path, device: str = "cpu", audio_renderer: str | None = None,
                  sequence_settings: Mapping[str, Any] | None = None) -> Embedder:
    """An ``Embedder`` over the trained encoders in ``encoders_dir``.

    ``sequence_settings``: the features' ``meta["config"]`` (or a dict of
    ``SEQUENCE_FIELDS``), so a query is cut into tokens as those features were.
    """
    return Embedder(load_encoders(encoders_dir, device), device, audio_renderer, sequence_settings)
