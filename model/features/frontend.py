"""Front ends: VGGish log-mel patches for audio, resized windows for sheets.

The audio front end reproduces VGGish's (``mel_features.py`` of the
``tensorflow/models`` VGGish release): 16 kHz mono, periodic Hann window of
25 ms, 10 ms hop, FFT size the next power of two (512), magnitude spectrum,
64 HTK-mel bands from 125 to 7500 Hz, ``log(mel + 0.01)``, non-overlapping
0.96 s patches of 96 frames × 64 bands.

The sheet front end reads the engraved grey-scale PNG (fixed staff height,
no lyrics), inverts it so ink = 1 and paper = 0, finds the five staff lines,
scales the image so a staff space is a fixed number of pixels, cuts a band of
fixed height centred on the staff (so a row is a pitch position in every
image, whatever the cropped PNG's height) and cuts the band into horizontal
windows.

Everything here is numpy and deterministic; the arrays are small enough
(float16) to hold a whole dataset in memory during pre-training.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .config import FeatureConfig


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as VGGish: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def mel_matrix(n_mels: int, n_fft_bins: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """VGGish's triangular mel weights, shape ``(n_fft_bins, n_mels)``.

    Triangles are built in the mel domain between ``n_mels + 2`` edges
    spaced linearly in mel; the DC bin gets no weight.
    """
    nyquist = sample_rate / 2.0
    if not 0.0 <= fmin < fmax <= nyquist:
        raise ValueError(f"need 0 <= fmin < fmax <= {nyquist}, got {fmin}, {fmax}")
    bins_mel = hz_to_mel(np.linspace(0.0, nyquist, n_fft_bins))
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    weights = np.empty((n_fft_bins, n_mels))
    for i in range(n_mels):
        lower, center, upper = edges[i:i + 3]
        lower_slope = (bins_mel - lower) / (center - lower)
        upper_slope = (upper - bins_mel) / (upper - center)
        weights[:, i] = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
    weights[0, :] = 0.0
    weights.setflags(write=False)
    return weights


def resample(wave: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 at ``target_rate`` (libsoxr, high quality; stereo is averaged)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 2:
        # (frames, channels) as soundfile returns, or (channels, frames)
        axis = 1 if wave.shape[1] <= 8 else 0
        wave = wave.mean(axis=axis)
    if wave.ndim != 1:
        raise ValueError(f"audio must be 1-D or 2-D, got shape {wave.shape}")
    if int(sample_rate) == int(target_rate):
        return wave
    import soxr  # a well-kept resampler for any pair of rates (8 kHz phone audio, 44.1 kHz, 48 kHz)
    return soxr.resample(wave, int(sample_rate), int(target_rate), quality="HQ").astype(np.float32, copy=False)


@functools.lru_cache(maxsize=8)
def _stft_constants(win: int, n_fft: int, n_mels: int, sample_rate: int, fmin: float,
                    fmax: float) -> tuple["torch.Tensor", "torch.Tensor"]:
    import torch
    window = 0.5 - 0.5 * np.cos(2 * np.pi / win * np.arange(win))  # periodic Hann
    mel = mel_matrix(n_mels, n_fft // 2 + 1, sample_rate, fmin, fmax)
    return (torch.from_numpy(window.astype(np.float32)), torch.from_numpy(mel.astype(np.float32)))


def log_mel(wave: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram of a 16 kHz mono wave, shape ``(frames, n_mels)``, float32.

    Frames of ``stft_window_s`` every ``stft_hop_s`` without padding (VGGish),
    each windowed and zero-padded at the end to the FFT size.  A wave shorter
    than one window is zero-padded to one frame.  (Computed with torch's FFT
    on the CPU: about twice as fast as numpy's here.)
    """
    import torch
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    win = int(round(config.stft_window_s * config.sample_rate))
    hop = int(round(config.stft_hop_s * config.sample_rate))
    n_fft = 1 << int(np.ceil(np.log2(win)))
    if len(wave) < win:
        wave = np.pad(wave, (0, win - len(wave)))
    window, mel = _stft_constants(win, n_fft, config.n_mels, config.sample_rate,
                                  float(config.mel_fmin), float(config.mel_fmax))
    with torch.no_grad():
        frames = torch.from_numpy(wave).unfold(0, win, hop) * window
        spectrum = torch.fft.rfft(frames, n=n_fft).abs()
        return torch.log(spectrum @ mel + config.log_offset).numpy()


def frame_patches(frames: np.ndarray, size: int, hop: int, pad_value: float) -> np.ndarray:
    """Cut ``(T, F)`` rows into ``(P, size, F)`` patches.

    A trailing remainder of at least half a patch becomes a padded patch;
    a shorter one is dropped (VGGish drops it); there is always at least
    one patch.
    """
    t = frames.shape[0]
    starts = list(range(0, max(t - size, 0) + 1, hop))
    tail = t - (starts[-1] + size) if t >= size else t
    if t >= size and tail >= size // 2:
        starts.append(starts[-1] + hop)
    out = np.full((len(starts), size, frames.shape[1]), pad_value, dtype=np.float32)
    for i, s in enumerate(starts):
        chunk = frames[s:s + size]
        out[i, :len(chunk)] = chunk
    return out


def audio_patches(wave: np.ndarray, sample_rate: int, config: FeatureConfig) -> np.ndarray:
    """VGGish patches of a wave: ``(P, patch_frames, n_mels)`` float32 log-mel."""
    wave = resample(wave, sample_rate, config.sample_rate)
    mel = log_mel(wave, config)
    return frame_patches(mel, config.patch_frames, config.patch_hop_frames,
                         float(np.log(config.log_offset)))


def pool_time(patches: np.ndarray, factor: int) -> np.ndarray:
    """Average ``(P, T, F)`` patches over non-overlapping groups of ``factor`` rows.

    This is the audio CNN's fixed first layer (see ``AudioEncoder``), applied
    once in numpy when a whole dataset is precomputed.
    """
    if factor == 1:
        return patches
    p, t, f = patches.shape
    return patches.reshape(p, t // factor, factor, f).mean(axis=2)


def load_grey(path: str | Path) -> np.ndarray:
    """A PNG as a float32 ``(H, W)`` array in [0, 1] with ink = 1, paper = 0.

    Transparent pixels count as paper (the image is composed over white).
    A file Pillow cannot decode raises :class:`model.errors.CorruptFileError`
    naming it (Pillow raises OSError, ValueError, SyntaxError, ... by format).
    """
    from PIL import Image

    from model.errors import CorruptFileError
    try:
        return _grey_of(Image, path)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, Image.DecompressionBombError) as exc:
        detail = "not an image Pillow recognises" if isinstance(exc, Image.UnidentifiedImageError) \
            else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        raise CorruptFileError(str(path), f"is not a readable PNG image ({detail})",
                               "render the sheet again") from None


def _grey_of(Image, path: str | Path) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        if img.mode == "P":
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA") and img.getextrema()[-1][0] < 255:
            arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
            grey = arr[..., :3].mean(axis=2) * arr[..., 3] + (1.0 - arr[..., 3])
            return (1.0 - grey).astype(np.float32)
        grey = np.asarray(img.convert("L"), dtype=np.float32)
    return 1.0 - grey / 255.0


def find_staff(ink: np.ndarray) -> tuple[float, float] | None:
    """Centre row and staff-space height (pixels) of the five-line staff, or None.

    Staff lines are the rows whose ink spans most of the (cropped) image
    width; of the candidate lines, the five consecutive ones with the most
    regular spacing are the staff.
    """
    if ink.size == 0:
        return None
    rows = (ink > 0.5).mean(axis=1)
    if rows.max() <= 0.3:
        return None
    candidate = rows >= 0.6 * rows.max()
    lines: list[float] = []
    r = 0
    while r < len(rows):
        if candidate[r]:
            s = r
            while r < len(rows) and candidate[r]:
                r += 1
            lines.append((s + r - 1) / 2.0)
        r += 1
    if len(lines) < 5:
        return None
    best = None
    for i in range(len(lines) - 4):
        gaps = np.diff(lines[i:i + 5])
        if gaps.min() < 2:
            continue
        spread = float(gaps.std() / gaps.mean())
        if best is None or spread < best[0]:
            best = (spread, lines[i + 2], float(gaps.mean()))
    if best is None or best[0] > 0.15:
        return None
    return best[1], best[2]


def resize(ink: np.ndarray, scale: float) -> np.ndarray:
    """Scale an ink image by ``scale`` in both directions (area filter)."""
    from PIL import Image
    h, w = ink.shape
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    if size == (w, h):
        return ink.astype(np.float32)
    img = Image.fromarray(ink.astype(np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.float32)


def staff_band(ink: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The staff normalised to a ``(sheet_height, W)`` band.

    The image is scaled so that one staff space is ``sheet_staff_space``
    pixels, then a band of ``sheet_height`` rows centred on the middle staff
    line is cut out (paper beyond the image is zero ink).  Vertical position
    in the band is therefore the same pitch position in every image.  When
    no staff is found, the image is centred and scaled as if its staff space
    were ``sheet_default_space`` pixels (the dataset renderer's 10 px).
    """
    return staff_band_scaled(ink, config)[0]


def staff_band_scaled(ink: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, float]:
    """:func:`staff_band` and the scale applied to the image (band px per image px).

    The scale maps a note's x-position in the PNG to its column in the band
    (``model.features.tokens.sequences`` cuts note-centred windows with it).
    """
    ink = np.asarray(ink, dtype=np.float32)
    found = find_staff(ink)
    centre, space = found if found is not None else ((ink.shape[0] - 1) / 2.0, config.sheet_default_space)
    scale = config.sheet_staff_space / space
    img = resize(ink, scale)
    centre_px = (centre + 0.5) * scale - 0.5
    top = int(round(centre_px - config.sheet_height / 2.0 + 0.5))
    out = np.zeros((config.sheet_height, img.shape[1]), dtype=np.float32)
    src0, src1 = max(top, 0), min(top + config.sheet_height, img.shape[0])
    if src1 > src0:
        out[src0 - top:src1 - top] = img[src0:src1]
    return out, scale


def sheet_windows(ink: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Staff band cut into ``(P, sheet_height, sheet_window)`` windows, float32."""
    band = staff_band(ink, config)
    return frame_patches(band.T, config.sheet_window, config.sheet_hop, 0.0).transpose(0, 2, 1).copy()


def sheet_windows_from_png(path: str | Path, config: FeatureConfig) -> np.ndarray:
    return sheet_windows(load_grey(path), config)
