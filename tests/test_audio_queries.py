"""Audio queries from real files: formats, resampling, checks, and the best window of a long recording."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from model.search.audio_query import (MIN_QUERY_S, best_window, load_query_audio, sample_seconds, window_spans)
from model.errors import BadInputError, UgaarError
from model.render.audio import BuiltinRenderer
from model.data.song import Note


def _tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[int(np.argmax(spec))])


FORMATS = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"),
           ("mp3", "MP3", "MPEG_LAYER_III")]


@pytest.mark.parametrize("ext,fmt,subtype", FORMATS)
def test_each_format_round_trips_at_16k(tmp_path, ext, fmt, subtype):
    if fmt not in soundfile.available_formats() or subtype not in soundfile.available_subtypes(fmt):
        pytest.skip(f"this libsndfile ({soundfile.__libsndfile_version__}) cannot write {fmt}")
    path = tmp_path / f"q.{ext}"
    stereo = np.stack([_tone(3.0, 44100), _tone(3.0, 44100)], axis=1)
    soundfile.write(str(path), stereo, 44100, format=fmt, subtype=subtype)
    audio = load_query_audio(path, 16000)
    assert audio.sample_rate == 16000 and audio.source_rate == 44100 and audio.wave.dtype == np.float32
    assert abs(audio.duration_s - 3.0) < 0.1  # MP3 adds a little encoder delay
    assert abs(_peak_hz(audio.wave, 16000) - 440.0) < 2.0
    assert audio.warnings == []


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_resampling_keeps_pitch_and_length(tmp_path, rate):
    path = tmp_path / f"r{rate}.wav"
    soundfile.write(str(path), _tone(2.5, rate, 330.0), rate)
    audio = load_query_audio(path, 16000)
    assert abs(len(audio.wave) - 2.5 * 16000) <= 2
    assert abs(_peak_hz(audio.wave, 16000) - 330.0) < 2.0


def test_silent_short_and_clipped_files_get_their_messages(tmp_path):
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(3 * 16000, np.float32), 16000)
    with pytest.raises(BadInputError, match=r"silent\.wav: has no signal"):
        load_query_audio(silent, subject="--audio")
    short = tmp_path / "one-second.wav"
    soundfile.write(str(short), _tone(1.0, 16000), 16000)
    with pytest.raises(UgaarError, match=rf"one-second\.wav: is only 1\.0 s long; a query needs at least {MIN_QUERY_S:g} s"):
        load_query_audio(short)
    clipped = tmp_path / "clipped.wav"
    soundfile.write(str(clipped), np.clip(_tone(3.0, 16000, amp=3.0), -1, 1), 16000)
    audio = load_query_audio(clipped, subject="recording")
    assert len(audio.warnings) == 1 and "recording" in audio.warnings[0] and "clipped.wav is clipped" in audio.warnings[0]


def test_windows_cover_the_recording():
    assert window_spans(100, 10, 8.0) == [(0, 100)]  # up to a quarter longer than a window: one window
    spans = window_spans(300, 10, 8.0, onsets_s=[3.3])
    assert spans[0] == (0, 80) and spans[-1] == (220, 300) and (33, 113) in spans
    assert all(b - a == 80 for a, b in spans)


MELODIES = {f"m{i}": tuple(Note(int(p), 0.4 * j, 0.35, "la")
                           for j, p in enumerate(np.random.default_rng(i).integers(55, 80, 20)))
            for i in range(6)}


def _chroma(wave: np.ndarray, rate: int) -> np.ndarray:
    """A stand-in embedder: the pitch-class profile (the test is about the sliding, not the CNN)."""
    import librosa
    c = librosa.feature.chroma_stft(y=wave, sr=rate, n_fft=2048, hop_length=512).mean(axis=1)
    return c / (np.linalg.norm(c) + 1e-9)


def test_long_recording_finds_the_planted_segment(tmp_path):
    synth = BuiltinRenderer(16000)
    waves = {k: synth.render(v) for k, v in MELODIES.items()}
    bank = {k: _chroma(w, 16000) for k, w in waves.items()}
    rng = np.random.default_rng(0)
    host = rng.normal(0, 1e-3, 30 * 16000).astype(np.float32)
    start = int(11.3 * 16000)
    planted = waves["m3"]
    host[start:start + len(planted)] += planted
    path = tmp_path / "long.flac"
    soundfile.write(str(path), host, 16000)

    def search(vec, _target):
        dists = sorted((float(1 - vec @ v), k) for k, v in bank.items())
        return [(k, d) for d, k in dists]

    window_s = sample_seconds([type("S", (), {"notes": v})() for v in MELODIES.values()])
    match = best_window(load_query_audio(path), window_s, _chroma, lambda f, _t: f, search, ["sheet"], k=3)
    assert match.results["sheet"][0][0] == "m3" and len(match.results["sheet"]) == 3
    assert match.start_s <= 11.3 + 0.3 and match.end_s >= 11.3 + len(planted) / 16000 - 0.3
    assert match.windows > 1 and "matched 11." in match.describe()
