"""VGGish front end and sheet staff band: shapes, dtypes, reference properties, golden values."""
from __future__ import annotations

import numpy as np
import pytest

from model.features.config import FeatureConfig
from model.features.extract import audio_input, sheet_input
from model.features.frontend import (audio_patches, find_staff, frame_patches, hz_to_mel, load_grey,
                                     log_mel, mel_matrix, resample, sheet_windows, staff_band)

CFG = FeatureConfig()

# log_mel of a 440 Hz + 880 Hz tone, frame 10: bands 6..11 (golden, see _tone())
GOLDEN_LOGMEL = [1.305, 3.188, 4.089, 3.646, 1.790, -0.543]


def _tone(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.25 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)


def test_mel_matrix_matches_vggish_definition():
    m = mel_matrix(64, 257, 16000, 125.0, 7500.0)
    assert m.shape == (257, 64)
    assert np.all(m[0] == 0)  # DC bin unweighted
    assert np.all(m >= 0) and m.max() <= 1.0
    # every band has weight, and band centres rise monotonically in frequency
    centres = (m * np.arange(257)[:, None]).sum(0) / m.sum(0)
    assert np.all(m.sum(0) > 0) and np.all(np.diff(centres) > 0)
    assert hz_to_mel(700.0) == pytest.approx(1127.0 * np.log(2.0))


def test_log_mel_shape_and_peak_band():
    wave = _tone()
    mel = log_mel(wave, CFG)
    # VGGish framing: 1 + (N - 400) // 160 frames, no padding
    assert mel.shape == (1 + (len(wave) - 400) // 160, 64) and mel.dtype == np.float32
    # the loudest band holds 440 Hz
    m = mel_matrix(64, 257, 16000, 125.0, 7500.0)
    bin_440 = round(440 / 8000 * 256)
    assert int(np.argmax(mel[10])) == int(np.argmax(m[bin_440]))
    assert np.allclose(mel[10, 6:12], GOLDEN_LOGMEL, atol=2e-3)
    # silence is log(offset)
    assert np.allclose(log_mel(np.zeros(16000, np.float32), CFG), np.log(0.01), atol=1e-6)


def test_patches_are_vggish_sized_and_pooled_inputs_float16():
    wave = _tone(3.0)
    patches = audio_patches(wave, 16000, CFG)
    assert patches.shape[1:] == (96, 64)
    assert len(patches) == 3  # 298 frames: 3 full patches, remainder 10 < 48 dropped
    x = audio_input(wave, 16000, CFG)
    assert x.dtype == np.float16 and x.shape == (3, 24, 64)
    assert np.allclose(x.astype(np.float32), patches.reshape(3, 24, 4, 64).mean(2), atol=1e-2)


def test_short_audio_gives_one_padded_patch_and_resampling_keeps_pitch():
    assert audio_patches(np.zeros(100, np.float32), 16000, CFG).shape == (1, 96, 64)
    wave44 = resample(_tone(1.0, 44100), 44100, 16000)
    assert abs(len(wave44) - 16000) <= 1
    a = log_mel(wave44, CFG)[20]
    b = log_mel(_tone(1.0), CFG)[20]
    assert int(np.argmax(a)) == int(np.argmax(b))
    stereo = np.stack([_tone(1.0), _tone(1.0)], axis=1)
    assert resample(stereo, 16000, 16000).shape == (16000,)


def test_frame_patches_tail_rule():
    rows = np.arange(250, dtype=np.float32)[:, None]
    out = frame_patches(rows, 96, 96, -1.0)
    assert out.shape == (3, 96, 1)  # 96 + 96 + 58 (>= 48: padded patch)
    assert out[2, 57, 0] == 249 and out[2, 58, 0] == -1.0
    assert frame_patches(rows[:130], 96, 96, 0.0).shape == (1, 96, 1)  # tail 34 < 48 dropped


def _staff_image(space: int = 10, width: int = 400, top_pad: int = 30, bottom_pad: int = 12) -> np.ndarray:
    """Ink image: 5 staff lines and one note head two spaces above the middle line."""
    h = top_pad + 4 * space + bottom_pad
    img = np.zeros((h, width), np.float32)
    lines = [top_pad + k * space for k in range(5)]
    for y in lines:
        img[y, :] = 1.0
    head_y = lines[2] - 2 * space
    img[head_y - space // 2:head_y + space // 2, 200:212] = 1.0
    return img


def test_staff_band_aligns_staff_whatever_the_crop():
    a = _staff_image(top_pad=30, bottom_pad=12)
    b = _staff_image(top_pad=12, bottom_pad=40)
    assert find_staff(a) == (30 + 20, 10.0)
    ba, bb = staff_band(a, CFG), staff_band(b, CFG)
    assert ba.shape == (48, 200) and bb.shape == (48, 200)
    # same staff position → same rows in the band, despite different crops
    assert np.allclose(ba, bb, atol=1e-6)
    # the middle staff line sits at the band's centre row (scaled 10 px → 5 px per space)
    rows = np.flatnonzero(ba[:, 50] > 0.4)
    assert len(rows) == 5 and np.all(np.diff(rows) == 5) and rows[2] in (23, 24, 25)
    # a 20 px-per-space image (another resolution) lands on the same band
    big = np.kron(a, np.ones((2, 2), np.float32))
    assert find_staff(big)[1] == pytest.approx(20.0)
    assert np.abs(staff_band(big, CFG) - ba).max() < 0.3


def test_sheet_windows_and_png_roundtrip(tmp_path):
    from PIL import Image
    ink = _staff_image(width=1000)
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = (ink * 255).astype(np.uint8)  # black ink on transparent paper
    Image.fromarray(rgba, "RGBA").save(tmp_path / "s.png")
    grey = load_grey(tmp_path / "s.png")
    assert np.allclose(grey, ink, atol=1 / 255)
    win = sheet_windows(grey, CFG)
    assert win.shape == (10, 48, 48)  # 500 px wide band, 48-px windows, last tail 20 < 24 dropped
    x = sheet_input(tmp_path / "s.png", CFG)
    assert x.dtype == np.float16 and x.shape == win.shape
    # no staff at all (blank image) still gives windows, never an error
    assert sheet_windows(np.zeros((60, 300), np.float32), CFG).shape[1:] == (48, 48)
