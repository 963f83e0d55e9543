"""Capture a query from the microphone, GUI-free (the window's Record button drives it).

:class:`Recorder` takes a *stream factory*: a callable
``factory(sample_rate, channels, callback) -> stream`` returning an object
with ``start()``, ``stop()`` and ``close()`` that calls
``callback(block, frames, time, status)`` with ``(frames, channels)``
float32 blocks, as ``sounddevice.InputStream`` does.  The default factory
opens ``sounddevice.InputStream``; tests pass :func:`wav_stream_factory`,
which plays a WAV file through the same callback, so they drive the same
path as a microphone.

The recorder keeps the level of the last block (for a meter), stops by
itself after :data:`MAX_SECONDS`, and writes what it heard as a WAV file
(atomically) that the query path reads like a dropped file.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from model.errors import UgaarError

#: Longest recording: a query is one 20-note window, and 30 s holds several.
MAX_SECONDS = 30.0
#: Capture rate; the query path resamples to the front end's 16 kHz with soxr.
SAMPLE_RATE = 44100

StreamFactory = Callable[[int, int, Callable[..., None]], Any]


class NoInputDeviceError(UgaarError):
    """There is no microphone (or PortAudio is missing): said in plain words."""


def sounddevice_factory(sample_rate: int, channels: int, callback: Callable[..., None]) -> Any:
    """Open the default input device with ``sounddevice.InputStream``.

    Raises
    ------
    NoInputDeviceError
        PortAudio is not installed, no device has an input channel, or the
        default input cannot be opened.
    """
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:
        raise NoInputDeviceError("Record", f"audio input is unavailable ({exc})",
                                 "install PortAudio (apt-get install libportaudio2), or drop a file instead") from None
    try:
        devices = sd.query_devices()
        if not any(int(d.get("max_input_channels", 0)) > 0 for d in devices):
            raise NoInputDeviceError("Record", "this computer has no microphone or other audio input",
                                     "connect one, or drop an audio file instead")
        return sd.InputStream(samplerate=sample_rate, channels=channels, dtype="float32", callback=callback)
    except NoInputDeviceError:
        raise
    except Exception as exc:  # sounddevice.PortAudioError and friends: the device refused
        raise NoInputDeviceError("Record", f"the microphone could not be opened ({exc})",
                                 "check that an input device is connected and allowed, or drop a file instead") from None


def wav_stream_factory(path: str | Path, block: int = 2048, realtime: bool = False) -> StreamFactory:
    """A stand-in for ``sounddevice.InputStream`` that plays ``path`` through the callback.

    ``start()`` feeds the file block by block from a thread (as fast as it
    can unless ``realtime``); the stream's rate is the file's (the factory's
    ``sample_rate`` argument is ignored, and :attr:`Recorder.sample_rate`
    follows the stream's ``samplerate``).
    """
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)

    class _WavStream:
        samplerate = rate

        def __init__(self, callback: Callable[..., None]) -> None:
            self.callback = callback
            self._stop = threading.Event()
            self._thread: Optional[threading.Thread] = None

        def _run(self) -> None:
            import time
            for start in range(0, len(data), block):
                if self._stop.is_set():
                    return
                chunk = data[start:start + block]
                self.callback(chunk, len(chunk), None, None)
                if realtime:
                    time.sleep(len(chunk) / rate)

        def start(self) -> None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

        def join(self, timeout: float | None = None) -> None:
            if self._thread is not None:
                self._thread.join(timeout)

        def stop(self) -> None:
            self._stop.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(5.0)

        def close(self) -> None:
            self.stop()

    def factory(_sample_rate: int, _channels: int, callback: Callable[..., None]) -> Any:
        return _WavStream(callback)

    return factory


class Recorder:
    """Records mono audio from a stream factory; level meter, time limit, WAV out.

    Parameters
    ----------
    factory : callable, optional
        ``factory(sample_rate, channels, callback)``; default
        :func:`sounddevice_factory`.
    sample_rate : int
        Requested capture rate.
    max_seconds : float
        Capture stops by itself after this much audio.

    Notes
    -----
    The stream's callback runs on the audio thread; it only appends a copy
    of the block under a lock.  ``level`` and ``seconds`` are read by the
    window's timer.
    """

    def __init__(self, factory: Optional[StreamFactory] = None, sample_rate: int = SAMPLE_RATE,
                 max_seconds: float = MAX_SECONDS) -> None:
        self.factory = factory or sounddevice_factory
        self.sample_rate = int(sample_rate)
        self.max_seconds = float(max_seconds)
        self._blocks: list[np.ndarray] = []
        self._frames = 0
        self._lock = threading.Lock()
        self._stream: Any = None
        self.level = 0.0
        self.peak = 0.0
        self.full = threading.Event()

    # -- capture ---------------------------------------------------------------
    def start(self) -> None:
        """Open the stream and start capturing (:class:`NoInputDeviceError` without an input)."""
        if self._stream is not None:
            return
        with self._lock:
            self._blocks, self._frames, self.level, self.peak = [], 0, 0.0, 0.0
        self.full.clear()
        stream = self.factory(self.sample_rate, 1, self._callback)
        self.sample_rate = int(getattr(stream, "samplerate", self.sample_rate) or self.sample_rate)
        self._stream = stream
        stream.start()

    def _callback(self, block: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        mono = np.asarray(block, dtype=np.float32)
        mono = mono.mean(axis=1) if mono.ndim == 2 else mono.reshape(-1)
        limit = int(self.max_seconds * self.sample_rate)
        with self._lock:
            room = limit - self._frames
            if room <= 0:
                self.full.set()
                return
            mono = mono[:room].copy()
            self._blocks.append(mono)
            self._frames += len(mono)
            if mono.size:
                self.level = float(np.sqrt(np.mean(mono.astype(np.float64) ** 2)))
                self.peak = max(self.peak, float(np.max(np.abs(mono))))
            if self._frames >= limit:
                self.full.set()

    @property
    def recording(self) -> bool:
        return self._stream is not None

    @property
    def seconds(self) -> float:
        """Seconds captured so far."""
        return self._frames / float(self.sample_rate)

    def level_db(self) -> float:
        """Level of the last block in dBFS (-100 for silence): the meter's value."""
        return 20.0 * float(np.log10(max(self.level, 1e-5)))

    def stop(self) -> np.ndarray:
        """Stop and close the stream; the audio captured so far (mono float32)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        return self.audio()

    def audio(self) -> np.ndarray:
        with self._lock:
            return np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the captured audio as a 16-bit WAV (atomically); returns ``path``."""
        import soundfile

        from model.atomic import atomic_path
        path = Path(path)
        with atomic_path(path, suffix=".wav") as tmp:
            soundfile.write(str(tmp), np.clip(self.audio(), -1.0, 1.0), self.sample_rate,
                            format="WAV", subtype="PCM_16")
        return path
