"""Audio rendering: a sample's notes to a 16 kHz mono waveform.

Two renderers share one small interface (``name``, ``version``,
``sample_rate``, ``render(notes)``):

* ``FluidSynthRenderer`` — FluidSynth through pyfluidsynth with pretty_midi's
  bundled General MIDI SoundFont (``TimGM6mb.sf2``, piano) by default, or
  any SoundFont and General MIDI program the user chooses.  One synthesiser
  is created per renderer and reused for every sample: creating it and
  loading the SoundFont costs far more than rendering 20 notes.
* ``BuiltinRenderer`` — a few decaying harmonics with an attack/release
  envelope, in numpy.  It needs nothing installed and is the fallback.  Its
  harmonic profile and envelope can be changed (timbre augmentation,
  ``model.features.augmentation.augment``).

Every renderer returns float32 audio whose first onset is at t = 0, which
ends ``RELEASE_S`` after the last note's end, and whose peak is
``PEAK`` (so loudness does not depend on the renderer or the note count).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from model.atomic import atomic_path
from model.data.song import Note

#: Seconds of audio kept after the last note's end (the piano's release).
RELEASE_S = 0.3
#: Peak amplitude after normalisation (headroom against clipping in FLAC).
PEAK = 0.9
#: Velocity for every note: the Note contract carries none.
VELOCITY = 90
#: Shortest sounding duration; zero-length notes in dirty sources would be silent.
MIN_DURATION_S = 0.05
#: Where Debian's ``fluid-soundfont-gm`` puts FluidR3_GM: a sample set other
#: than pretty_midi's TimGM6mb, used as the held-out timbres of evaluation.
HELD_OUT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def held_out_soundfont() -> Path | None:
    """FluidR3_GM when installed (``apt-get install fluid-soundfont-gm``), else None."""
    return HELD_OUT_SOUNDFONT if HELD_OUT_SOUNDFONT.is_file() else None


def _timeline(notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Return pitches, onsets (first at 0), ends, and the total length in seconds."""
    pitches = np.clip(np.array([n.pitch for n in notes], dtype=np.int64), 0, 127)
    onsets = np.array([n.onset for n in notes], dtype=np.float64)
    durations = np.maximum(np.array([n.duration for n in notes], dtype=np.float64), MIN_DURATION_S)
    if not (np.all(np.isfinite(onsets)) and np.all(np.isfinite(durations))):
        raise ValueError("note onsets and durations must be finite")
    onsets = onsets - onsets.min()
    ends = onsets + durations
    return pitches, onsets, ends, float(ends.max()) + RELEASE_S


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """Scale to peak ``PEAK``, float32; leaves silence untouched (no division by zero).

    Every rendering, augmented rendering and audio query window goes through
    it: the audio CNN reads absolute log-mel levels.
    """
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0:
        audio = audio * (PEAK / peak)
    return audio.astype(np.float32, copy=False)


class AudioRenderer:
    """Interface of every audio renderer.

    Attributes
    ----------
    name : str
        ``"fluidsynth"`` or ``"builtin"``; recorded in the dataset manifest.
    version : str
        Human-readable version including the SoundFont, for the manifest.
    sample_rate : int
        Output rate in Hz (16 000 for the audio features).
    """

    name = "base"
    version = ""
    sample_rate = 16000

    def render(self, notes: Sequence[Note]) -> np.ndarray:
        """Render ``notes`` to float32 mono audio.

        Parameters
        ----------
        notes : sequence of Note
            The melody; onsets are shifted so the first one is at 0.

        Returns
        -------
        numpy.ndarray
            float32, shape (n,), peak ``PEAK``; length = last note end +
            ``RELEASE_S``.  Empty input gives ``RELEASE_S`` of silence.
        """
        if not notes:
            return np.zeros(int(round(RELEASE_S * self.sample_rate)), dtype=np.float32)
        audio = self._render(notes)
        if not np.any(audio):
            # A renderer that produced nothing (e.g. a SoundFont without that
            # key) must not yield a silent training sample.
            audio = BuiltinRenderer(self.sample_rate)._render(notes)
        return peak_normalise(audio)

    def _render(self, notes: Sequence[Note]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class BuiltinRenderer(AudioRenderer):
    """Numpy harmonic synthesiser: the fallback that needs nothing installed.

    Each note is ``HARMONICS`` sine partials with amplitudes 1/k and a decay
    that grows with k (a plucked/piano-like timbre), a 10 ms attack and a
    linear release of ``RELEASE_S`` after the note's end.
    """

    name = "builtin"
    version = "builtin-harmonic 1"  # bump when the sound changes
    HARMONICS = 4
    ATTACK_S = 0.01

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = int(sample_rate)
        #: Optional timbre (augmentation): harmonic amplitudes (index k-1 for
        #: harmonic k), decay rate of the fundamental (1/s) and attack (s).
        #: None keeps the canonical 1/k, 1.5 (1 + k) and 10 ms above.
        self.profile: np.ndarray | None = None
        self.decay = 1.5
        self.attack_s = self.ATTACK_S
        #: Vibrato depth in cents at 5.5 Hz (0: none, the canonical sound).
        self.vibrato_cents = 0.0

    def _render(self, notes: Sequence[Note]) -> np.ndarray:
        sr = self.sample_rate
        pitches, onsets, ends, total = _timeline(notes)
        out = np.zeros(int(round(total * sr)), dtype=np.float32)
        attack = max(1, int(self.attack_s * sr))
        release = max(1, int(RELEASE_S * sr))
        for pitch, onset, end in zip(pitches, onsets, ends):
            start = int(round(onset * sr))
            held = max(attack, int(round((end - onset) * sr)))
            length = min(held + release, out.size - start)
            if length <= 0:
                continue
            out[start:start + length] += self._tone(int(pitch), length, held, attack)
        return out

    def _tone(self, pitch: int, length: int, held: int, attack: int) -> np.ndarray:
        """One note: harmonics k = 1..HARMONICS, amplitude 1/k, decay exp(-1.5 (1 + k) t).

        Only one sin, one cos and one exp are evaluated per sample: higher
        harmonics come from the Chebyshev recurrence
        sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x) and the decays from
        powers of one exponential (float32 throughout; this is the hot loop).
        """
        sr = self.sample_rate
        t = np.arange(length, dtype=np.float32) / np.float32(sr)
        f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        x = (2 * np.pi * f0) * t
        if self.vibrato_cents:  # phase modulation: every harmonic's frequency swings by the same cents
            rate = 5.5
            swing = f0 * (2.0 ** (self.vibrato_cents / 1200.0) - 1.0)
            x = x + np.float32(swing / rate) * np.sin(np.float32(2 * np.pi * rate) * t)
        two_cos = 2 * np.cos(x)
        base = np.exp(np.float32(-self.decay) * t)  # decay of the fundamental is base**2
        sin_prev, sin_k = np.zeros_like(t), np.sin(x)
        decay = base * base
        amps = self.profile  # None: the canonical 1/k, computed as before (bit-identical audio)
        tone = sin_k * decay if amps is None else sin_k * decay * np.float32(amps[0])
        for k in range(2, (self.HARMONICS if amps is None else len(amps)) + 1):
            if k * f0 >= sr / 2:  # above Nyquist it would alias
                break
            sin_prev, sin_k = sin_k, two_cos * sin_k - sin_prev
            decay = decay * base
            tone += sin_k * decay / k if amps is None else sin_k * decay * np.float32(amps[k - 1])
        env = np.ones(length, dtype=np.float32)
        env[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False)
        if length > held:
            env[held:] = np.linspace(1.0, 0.0, length - held)
        return tone * env


def _soundfont_path() -> Path:
    """pretty_midi's bundled General MIDI SoundFont (TimGM6mb.sf2)."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def fluidsynth_available() -> tuple[bool, str]:
    """Whether pyfluidsynth imports and libfluidsynth loads.

    Returns
    -------
    (bool, str)
        ``(True, version)`` or ``(False, reason)``.
    """
    try:
        import fluidsynth  # noqa: F401  (raises ImportError when the C library is missing)
    except (ImportError, OSError) as exc:
        return False, f"pyfluidsynth/libfluidsynth not loadable: {exc}"
    if getattr(fluidsynth, "Synth", None) is None:
        return False, "module 'fluidsynth' is not pyfluidsynth"
    if not _soundfont_path().is_file():
        return False, f"SoundFont missing: {_soundfont_path()}"
    return True, _fluidsynth_version(fluidsynth)


def _fluidsynth_version(module) -> str:
    import ctypes

    try:
        func = module._fl.fluid_version_str
        func.restype = ctypes.c_char_p
        return func().decode()
    except (AttributeError, OSError):
        return "unknown"


class FluidSynthRenderer(AudioRenderer):
    """FluidSynth with a GM SoundFont (default: the bundled piano); one synthesiser per renderer.

    The synthesiser has no audio driver: samples are pulled with
    ``get_samples`` segment by segment between note events, which is
    faster than writing a MIDI file and rendering it offline.  Reverb and
    chorus are off, so nothing rings over from one sample into the next
    (``system_reset`` does not empty FluidSynth's reverb: a sample rendered
    with it on differed by up to 0.05 depending on the one before, measured;
    augmentation adds a seeded reverb and chorus in numpy instead).
    Not thread-safe: give each worker its own renderer.

    Parameters
    ----------
    sample_rate : int
        Output rate in Hz.
    soundfont : path, optional
        A General MIDI SoundFont (.sf2); default pretty_midi's TimGM6mb.
    program : int
        General MIDI program 0–127 of bank 0 (0 = acoustic grand piano).
    velocity : int
        MIDI velocity of every note.
    """

    name = "fluidsynth"
    #: FluidSynth's internal block size (FLUID_BUFSIZE).
    BLOCK = 64

    def __init__(self, sample_rate: int = 16000, soundfont: str | os.PathLike[str] | None = None,
                 program: int = 0, velocity: int = VELOCITY) -> None:
        ok, info = fluidsynth_available()
        if not ok:
            raise RuntimeError(f"FluidSynth renderer unavailable: {info}")
        import fluidsynth

        if not 0 <= int(program) <= 127:
            raise ValueError(f"General MIDI program must be 0-127, got {program}")
        self.sample_rate = int(sample_rate)
        self.program, self.velocity = int(program), int(velocity)
        self._synth = fluidsynth.Synth(gain=0.5, samplerate=float(self.sample_rate),
                                       channels=16, **{"synth.reverb.active": 0,
                                                       "synth.chorus.active": 0})
        sf = Path(soundfont) if soundfont is not None else _soundfont_path()
        if not sf.is_file():
            raise RuntimeError(f"SoundFont not found: {sf}")
        self.soundfont = sf
        self._sfid = self._synth.sfload(str(sf))
        if self._sfid < 0:
            raise RuntimeError(f"FluidSynth could not load {sf}")
        self._synth.program_select(0, self._sfid, 0, self.program)  # bank 0
        # The canonical renderer keeps its old identity, so existing datasets stay valid.
        self.version = f"fluidsynth {info} + {sf.name}"
        if self.program:
            self.version += f" program {self.program}"
        if self.velocity != VELOCITY:
            self.version += f" velocity {self.velocity}"
        # A synthesiser's first render differs from every later one by up to
        # 0.07 in amplitude (measured; later renders agree within 0.001), so
        # without this warm-up, one short note per piano key, a sample's audio
        # would depend on whether it was the first one its worker rendered.
        self._render([Note(p, 0.05 * i, 0.05, "") for i, p in enumerate(range(21, 109))])

    def set_voice(self, program: int | None = None, velocity: int | None = None) -> None:
        """Change the General MIDI program and the velocity of later renders (augmentation)."""
        if program is not None and int(program) != self.program:
            self.program = int(program)
            self._synth.program_select(0, self._sfid, 0, self.program)
        if velocity is not None:
            self.velocity = int(np.clip(velocity, 1, 127))

    def _pull(self, frames: int, chunks: list[np.ndarray]) -> None:
        if frames > 0:
            stereo = self._synth.get_samples(frames).reshape(-1, 2)
            chunks.append(stereo.mean(axis=1, dtype=np.float32))

    def _render(self, notes: Sequence[Note]) -> np.ndarray:
        sr = self.sample_rate
        pitches, onsets, ends, total = _timeline(notes)
        # Events as (frame, order, pitch); order 0 = note-off first, so a
        # repeated pitch at the same frame re-strikes instead of being cut.
        events = [(int(round(o * sr)), 1, int(p)) for p, o in zip(pitches, onsets)]
        events += [(int(round(e * sr)), 0, int(p)) for p, e in zip(pitches, ends)]
        events.sort()
        total_frames = int(round(total * sr))
        self._synth.all_sounds_off(0)  # belt and braces: a clean start for every sample
        chunks: list[np.ndarray] = []
        now = 0
        for frame, is_on, pitch in events:
            self._pull(frame - now, chunks)
            now = max(now, frame)
            if is_on:
                self._synth.noteon(0, pitch, self.velocity)
            else:
                self._synth.noteoff(0, pitch)
        self._pull(total_frames - now, chunks)
        self._synth.all_sounds_off(0)
        # FluidSynth renders in blocks of BLOCK frames and applies events at
        # block starts; finishing on a block boundary makes the next sample
        # start at block phase 0, so a sample renders identically whatever
        # was rendered before it.
        pad = -total_frames % self.BLOCK
        if pad:
            self._synth.get_samples(pad)
        return np.concatenate(chunks) if chunks else np.zeros(total_frames, np.float32)

    def close(self) -> None:
        """Free the synthesiser (also done when the object is collected)."""
        synth, self._synth = getattr(self, "_synth", None), None
        if synth is not None:
            synth.delete()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the module may be gone already
            pass


def make_audio_renderer(kind: str = "auto", sample_rate: int = 16000,
                        soundfont: str | os.PathLike[str] | None = None, program: int = 0) -> AudioRenderer:
    """Create an audio renderer.

    Parameters
    ----------
    kind : {"auto", "fluidsynth", "builtin"}
        ``"auto"`` uses FluidSynth when libfluidsynth loads, else the built-in
        synthesiser; ``"fluidsynth"`` raises ``RuntimeError`` when unavailable.
    sample_rate : int
        Output rate in Hz.
    soundfont, program
        FluidSynth only: SoundFont file (default TimGM6mb) and General MIDI
        program (default 0, piano).  Giving either makes ``"auto"`` mean
        FluidSynth, so a chosen timbre never silently becomes the built-in synth.
    """
    chosen = soundfont is not None or int(program) != 0
    if kind == "builtin":
        if chosen:
            raise ValueError("--soundfont and --program need the fluidsynth renderer")
        return BuiltinRenderer(sample_rate)
    if kind == "fluidsynth" or (kind == "auto" and chosen):
        return FluidSynthRenderer(sample_rate, soundfont=soundfont, program=program)
    if kind == "auto":
        if fluidsynth_available()[0]:
            try:
                return FluidSynthRenderer(sample_rate)
            except RuntimeError:
                pass
        return BuiltinRenderer(sample_rate)
    raise ValueError(f"unknown audio renderer kind {kind!r} (auto, fluidsynth, builtin)")


def write_audio(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int) -> None:
    """Write mono audio atomically as 16-bit FLAC (``path`` should end in .flac)."""
    import soundfile

    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path, suffix=".flac") as tmp:
        soundfile.write(str(tmp), data, int(sample_rate), format="FLAC", subtype="PCM_16")


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read audio as float32 mono and its sample rate."""
    import soundfile

    data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1).astype(np.float32, copy=False), int(sr)
