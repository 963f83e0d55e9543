"""Audio rendering with the real FluidSynth and the built-in synthesiser."""
from __future__ import annotations

import ctypes.util
import sys

import numpy as np
import pytest

from model.render.audio import (PEAK, RELEASE_S, BuiltinRenderer, fluidsynth_available,
                                make_audio_renderer, read_audio, write_audio)
from model.data.song import Note

SR = 16000
HAS_FLUIDSYNTH = fluidsynth_available()[0]
KINDS = ["builtin", pytest.param("fluidsynth", marks=pytest.mark.skipif(
    not HAS_FLUIDSYNTH, reason="libfluidsynth not installed"))]


def melody(n: int = 20, start: float = 12.5) -> list[Note]:
    """A 20-note melody that does not start at 0 (renderers must shift it)."""
    return [Note(60 + (i * 7) % 12, start + 0.45 * i, 0.4, "la") for i in range(n)]


@pytest.fixture(scope="module", params=KINDS)
def renderer(request):
    return make_audio_renderer(request.param, SR)


def test_length_peak_and_not_silent(renderer):
    notes = melody()
    audio = renderer.render(notes)
    expected = 0.45 * 19 + 0.4 + RELEASE_S  # first onset shifted to 0
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size / SR - expected) < 2 / SR
    assert abs(float(np.abs(audio).max()) - PEAK) < 1e-3
    assert float(np.sqrt(np.mean(audio ** 2))) > 0.05


def test_pitch_is_the_note(renderer):
    """A single A4 has its strongest spectral peak near 440 Hz (or an octave of it)."""
    audio = renderer.render([Note(69, 3.0, 1.0, "a")])
    spectrum = np.abs(np.fft.rfft(audio[: SR]))
    peak_hz = np.argmax(spectrum) * SR / (2 * (spectrum.size - 1))
    ratio = peak_hz / 440.0
    assert min(abs(ratio - k) for k in (1, 2, 3)) < 0.03, peak_hz


def test_onsets_are_placed(renderer):
    """Silence between two notes 2 s apart; sound right after the second onset."""
    audio = renderer.render([Note(64, 5.0, 0.2, "a"), Note(67, 7.0, 0.5, "b")])
    rms = lambda a, b: float(np.sqrt(np.mean(audio[int(a * SR):int(b * SR)] ** 2)))  # noqa: E731
    assert rms(1.0, 1.9) < 0.01 * rms(2.0, 2.3)
    assert rms(0.0, 0.2) > 0.05


def test_reused_synth_does_not_leak_between_samples(renderer):
    notes = melody(8)
    first = renderer.render(notes)
    renderer.render([Note(40, 0.0, 3.0, "x")])  # a long low note in between
    again = renderer.render(notes)
    assert first.shape == again.shape
    # FluidSynth differs in a handful of samples (voice allocation); a leaked
    # note would differ over a whole stretch.
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    assert rms(first - again) < 0.02 * rms(first)


@pytest.mark.parametrize("kind", KINDS)
def test_audio_does_not_depend_on_render_order(kind):
    """A fresh renderer's first sample equals the same sample rendered later.

    Without the warm-up in FluidSynthRenderer the first render of a synth
    differed by up to 0.07, so a dataset's audio depended on which worker
    rendered which sample first.
    """
    notes = melody(12)
    fresh = make_audio_renderer(kind, SR).render(notes)
    used = make_audio_renderer(kind, SR)
    used.render(melody(20, start=0.0))
    used.render([Note(40, 0.0, 2.0, "x")])
    later = used.render(notes)
    assert fresh.shape == later.shape
    assert float(np.abs(fresh - later).max()) < 0.005


def test_empty_input_is_short_silence(renderer):
    audio = renderer.render([])
    assert audio.size == int(RELEASE_S * SR) and not np.any(audio)


def test_zero_duration_notes_still_sound(renderer):
    audio = renderer.render([Note(60, 1.0, 0.0, "a"), Note(62, 1.0, 0.0, "b")])
    assert float(np.abs(audio).max()) > 0.5


def test_detection_matches_the_library():
    """``auto`` picks FluidSynth exactly when libfluidsynth is on this machine."""
    present = ctypes.util.find_library("fluidsynth") is not None
    ok, info = fluidsynth_available()
    assert ok == present, info
    auto = make_audio_renderer("auto", SR)
    assert auto.name == ("fluidsynth" if present else "builtin")
    if ok:
        assert "TimGM6mb" in auto.version and info in auto.version


def test_without_pyfluidsynth_auto_falls_back(monkeypatch):
    # A None entry in sys.modules is how Python reports a missing module:
    # ``import fluidsynth`` raises ImportError exactly as on a machine without it.
    monkeypatch.setitem(sys.modules, "fluidsynth", None)
    ok, reason = fluidsynth_available()
    assert not ok and "fluidsynth" in reason
    assert isinstance(make_audio_renderer("auto", SR), BuiltinRenderer)
    with pytest.raises(RuntimeError, match="FluidSynth renderer unavailable"):
        make_audio_renderer("fluidsynth", SR)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError):
        make_audio_renderer("timidity")


def test_flac_round_trip_is_atomic(tmp_path):
    audio = BuiltinRenderer(SR).render(melody(5))
    path = tmp_path / "sub" / "s.flac"
    write_audio(path, audio, SR)
    assert [p.name for p in path.parent.iterdir()] == ["s.flac"]  # no temp file left
    back, sr = read_audio(path)
    assert sr == SR and back.shape == audio.shape
    assert float(np.abs(back - audio).max()) < 2 / 32768


def test_non_finite_timing_is_a_clear_error(renderer):
    with pytest.raises(ValueError, match="finite"):
        renderer.render([Note(60, float("nan"), 0.5, "a")])
