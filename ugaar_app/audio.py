"""Audio output and the playback clock, in plain Python (no Qt).

The clock is what drives the sheet cursor and the syllable highlight, so
they move the same way with or without a sound card: when PortAudio or an
output device is missing the player still "plays" silently and says so.
"""
from __future__ import annotations

import bisect
import threading
import time
from typing import Callable, Optional, Sequence

import numpy as np

NO_DEVICE_MESSAGE = ("No audio output device was found, so playback is silent here. "
                     "The sheet cursor and the lyrics still follow the music.")


class PlaybackClock:
    """Position in seconds of a (possibly silent) playback."""

    def __init__(self, time_fn: Callable[[], float] = time.monotonic) -> None:
        self._time = time_fn
        self.duration = 0.0
        self._start_pos = 0.0
        self._started_at: Optional[float] = None

    @property
    def playing(self) -> bool:
        if self._started_at is None:
            return False
        if self._raw() >= self.duration:
            self._start_pos = self.duration
            self._started_at = None
            return False
        return True

    def _raw(self) -> float:
        if self._started_at is None:
            return self._start_pos
        return self._start_pos + (self._time() - self._started_at)

    @property
    def position(self) -> float:
        return max(0.0, min(self._raw(), self.duration))

    def start(self, duration: float, position: float = 0.0) -> None:
        self.duration = max(0.0, float(duration))
        self._start_pos = max(0.0, min(float(position), self.duration))
        self._started_at = self._time()

    def pause(self) -> None:
        self._start_pos = self.position
        self._started_at = None

    def seek(self, position: float) -> None:
        playing = self.playing
        self._start_pos = max(0.0, min(float(position), self.duration))
        self._started_at = self._time() if playing else None


def note_times(onsets: Sequence[float]) -> list[float]:
    """Onsets relative to the first note (the renderers start audio there)."""
    if not onsets:
        return []
    first = onsets[0]
    return [max(0.0, t - first) for t in onsets]


def current_note(times: Sequence[float], position: float) -> int:
    """Index of the note sounding at ``position`` (-1 before the first)."""
    return bisect.bisect_right(list(times), position + 1e-9) - 1


def cursor_x(times: Sequence[float], xs: Sequence[float], position: float) -> float:
    """Cursor x interpolated between note x-centres by time."""
    if not xs:
        return 0.0
    i = current_note(times, position)
    if i < 0:
        return float(xs[0])
    if i >= len(xs) - 1 or i >= len(times) - 1:
        return float(xs[min(i, len(xs) - 1)])
    t0, t1 = times[i], times[i + 1]
    frac = 0.0 if t1 <= t0 else (position - t0) / (t1 - t0)
    return float(xs[i] + (xs[i + 1] - xs[i]) * max(0.0, min(1.0, frac)))


def estimate_note_x(width: float, n_notes: int, left: float = 0.12, right: float = 0.97) -> list[float]:
    """Evenly spaced note centres when the renderer recorded none."""
    if n_notes <= 0:
        return []
    if n_notes == 1:
        return [width * (left + right) / 2]
    step = (right - left) / (n_notes - 1)
    return [width * (left + i * step) for i in range(n_notes)]


class AudioOutput:
    """sounddevice output with a live volume; silent when no device exists."""

    def __init__(self) -> None:
        self.available = False
        self.message = ""
        self._sd = None
        self._stream = None
        self._data: Optional[np.ndarray] = None
        self._frame = 0
        self.volume = 0.8
        self._lock = threading.Lock()
        self.probe()

    def probe(self) -> bool:
        try:
            import sounddevice as sd  # raises OSError when PortAudio is missing
        except (OSError, ImportError) as exc:
            self.available = False
            self.message = ("Audio playback is unavailable: the PortAudio library is not installed "
                            f"({exc}). Install libportaudio2 to hear samples; everything else works.")
            return False
        try:
            sd.query_devices(kind="output")
        except Exception:  # noqa: BLE001 - PortAudioError, ValueError
            self.available = False
            self.message = NO_DEVICE_MESSAGE
            self._sd = sd
            return False
        self._sd = sd
        self.available = True
        self.message = ""
        return True

    def play(self, audio: np.ndarray, sample_rate: int, position: float = 0.0) -> bool:
        """Start playing from ``position`` seconds; False (and a message) when silent."""
        self.stop()
        if not self.available or self._sd is None:
            return False
        with self._lock:
            self._data = np.asarray(audio, dtype=np.float32)
            self._frame = int(position * sample_rate)

        def callback(outdata, frames, _time, _status):  # audio thread
            with self._lock:
                data = self._data
                start = self._frame
                chunk = data[start:start + frames] if data is not None else np.zeros(0, np.float32)
                self._frame = start + frames
                vol = self.volume
            outdata[:len(chunk), 0] = chunk * vol
            outdata[len(chunk):, 0] = 0.0
            if len(chunk) < frames:
                raise self._sd.CallbackStop

        try:
            self._stream = self._sd.OutputStream(samplerate=sample_rate, channels=1,
                                                 dtype="float32", callback=callback)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - device vanished, busy, ...
            self._stream = None
            self.available = False
            self.message = f"Audio output failed ({exc}); playback continues silently."
            return False
        return True

    def set_volume(self, volume: float) -> None:
        with self._lock:
            self.volume = float(max(0.0, min(1.0, volume)))

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # noqa: BLE001
                pass
