"""Record a query: the GUI-free Recorder with a WAV standing in for the microphone, then the panel's button."""
from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile
from PySide6.QtCore import Qt

from model.search.recording import NoInputDeviceError, Recorder, sounddevice_factory, wav_stream_factory
from test_app_fixtures import app_home, open_tiny, trained, window  # noqa: F401 - fixtures


def _wav(path, seconds=3.0, rate=22050):
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 392 * t)).astype(np.float32)
    soundfile.write(str(path), wave, rate, subtype="FLOAT")
    return wave, rate


def _wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)
    assert predicate()


def test_recorder_captures_a_stream_and_saves_it(tmp_path):
    wave, rate = _wav(tmp_path / "in.wav")
    rec = Recorder(wav_stream_factory(tmp_path / "in.wav"))
    rec.start()
    assert rec.recording and rec.sample_rate == rate
    _wait(lambda: rec.seconds >= len(wave) / rate)
    assert -14.0 < rec.level_db() < -13.0  # the meter: RMS of a 0.3 sine is -13.5 dBFS
    audio = rec.stop()
    assert not rec.recording and np.allclose(audio, wave)
    out = rec.save(tmp_path / "kept.wav")
    back, back_rate = soundfile.read(str(out), dtype="float32")
    assert back_rate == rate and np.allclose(back, wave, atol=1e-4)


def test_recorder_stops_at_its_limit(tmp_path):
    _wav(tmp_path / "long.wav", seconds=3.0, rate=8000)
    rec = Recorder(wav_stream_factory(tmp_path / "long.wav"), max_seconds=1.0)
    rec.start()
    assert rec.full.wait(10.0)
    assert len(rec.stop()) == 8000 and rec.seconds == 1.0


def test_no_input_device_is_said_in_plain_words(monkeypatch):
    sd = pytest.importorskip("sounddevice")
    monkeypatch.setattr(sd, "query_devices", lambda: [{"name": "speakers", "max_input_channels": 0}])
    with pytest.raises(NoInputDeviceError, match="no microphone"):
        sounddevice_factory(44100, 1, lambda *a: None)


def _planted(tmp_path, ds, sample):
    """A dataset item's audio inside a longer recording (silence around it) at 44.1 kHz."""
    import soxr
    wave, sr = ds.load_audio(sample.sample_id)
    total = max(min(int(len(wave) * 2.2), int(28 * sr)), len(wave) + 4 * sr)  # under the 30 s limit
    host = np.random.default_rng(0).normal(0, 1e-4, total).astype(np.float32)
    at = (total - len(wave)) // 2
    host[at:at + len(wave)] += wave
    path = tmp_path / "sung.wav"
    soundfile.write(str(path), soxr.resample(host, sr, 44100), 44100)
    return path, at / sr, (at + len(wave)) / sr


def test_record_button_queries_with_the_recording(qtbot, window, trained, tmp_path):
    panel = window.retrieval
    ds = window.session.dataset
    sample = ds.samples[0]
    path, start_s, end_s = _planted(tmp_path, ds, sample)
    panel.stream_factory = wav_stream_factory(path)
    qtbot.mouseClick(panel.record_btn, Qt.LeftButton)
    assert panel.recorder is not None and panel.recorder.recording and panel.record_btn.text() == "■ Stop"
    qtbot.waitUntil(lambda: panel.recorder.seconds >= soundfile.info(str(path)).duration - 0.01, timeout=20000)
    with qtbot.waitSignal(panel.embedded, timeout=60000):
        qtbot.mouseClick(panel.record_btn, Qt.LeftButton)
    assert panel.record_btn.text() == "● Record" and panel.save_rec_btn.isEnabled()
    assert panel.recording_path is not None and panel.recording_path.is_file()
    match = panel.audio_match
    assert match is not None and match.windows > 1
    assert "matched" in panel.header.text() and "recording-" in panel.header.text()
    assert panel.result_ids("sheet") and panel.result_ids("lyrics")
    # the kept recording can be saved where the user says
    saved = panel.save_recording(str(tmp_path / "mine.wav"))
    assert saved is not None and soundfile.info(str(saved)).frames == soundfile.info(str(panel.recording_path)).frames


def test_record_without_microphone_says_so(qtbot, window, trained):
    panel = window.retrieval

    def no_device(*_args):
        raise NoInputDeviceError("Record", "this computer has no microphone or other audio input",
                                 "connect one, or drop an audio file instead")

    panel.stream_factory = no_device
    assert panel.start_recording() is False
    assert "no microphone" in panel.header.text() and panel.recorder is None
    assert panel.rec_label.text() == "No microphone"
    assert any("no microphone" in text for _level, text in window.session.messages)


def test_import_form_carries_the_chosen_timbre(qtbot, window, tmp_path):
    panel = window.datasets
    sf2 = tmp_path / "mine.sf2"
    sf2.write_bytes(b"RIFF")
    panel.renderer.setCurrentIndex(panel.renderer.findData("fluidsynth"))
    panel.soundfont.setText(str(sf2))
    panel.program.setValue(73)
    config = panel.make_config()
    assert (config.audio_renderer, config.soundfont, config.program) == ("fluidsynth", str(sf2), 73)
    panel.renderer.setCurrentIndex(panel.renderer.findData("builtin"))
    assert not panel.program.isEnabled()
    config = panel.make_config()
    assert (config.audio_renderer, config.soundfont, config.program) == ("builtin", None, 0)
