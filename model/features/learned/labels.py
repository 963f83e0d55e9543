"""Per-patch and per-window pitch labels for the pre-training's auxiliary loss.

The dataset knows the notes of every sample, so each audio patch and each
sheet window can be labelled with the pitches it shows: the notes sounding
during the patch's 0.96 s, and the notes whose heads lie in the window
(``DATASET/sheet/<id>.json`` holds the head x-positions).  A linear head
shared by both CNNs predicts these multi-hot labels from each item's 128-d
vector; this teaches both branches the same pitch code fast, which the
contrastive loss alone learns slowly on 2 CPU cores (see docs/features.md).
Labels are used only during pre-training; features never depend on them.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..config import FeatureConfig
from .encoders import N_PITCHES

#: The audio renderer's shortest sounding note (``model.render.audio.MIN_DURATION_S``).
MIN_DURATION_S = 0.05
#: A note counts for a patch when it sounds at least this long inside it.
MIN_OVERLAP_S = 0.04


def _pitch_index(pitch: int) -> int:
    return min(max(int(pitch) - 21, 0), N_PITCHES - 1)


def audio_patch_labels(notes: Sequence[Any], n_patches: int, config: FeatureConfig) -> np.ndarray:
    """Multi-hot ``(n_patches, 88)`` uint8: pitches sounding in each VGGish patch."""
    out = np.zeros((n_patches, N_PITCHES), dtype=np.uint8)
    if not notes:
        return out
    onsets = np.array([n.onset for n in notes], dtype=np.float64)
    onsets = onsets - onsets.min()  # renderers start the first note at 0
    ends = onsets + np.maximum([n.duration for n in notes], MIN_DURATION_S)
    hop_s = config.patch_hop_frames * config.stft_hop_s
    len_s = config.patch_frames * config.stft_hop_s
    for k in range(n_patches):
        start, stop = k * hop_s, k * hop_s + len_s
        overlap = np.minimum(ends, stop) - np.maximum(onsets, start)
        for note, ov in zip(notes, overlap):
            if ov >= MIN_OVERLAP_S:
                out[k, _pitch_index(note.pitch)] = 1
    return out


def sheet_window_labels(notes: Sequence[Any], note_x: Sequence[float] | None, png_width: float | None,
                        n_windows: int, scale: float, config: FeatureConfig) -> np.ndarray:
    """Multi-hot ``(n_windows, 88)`` uint8: pitches whose note heads lie in each window.

    ``note_x`` are head positions in PNG pixels; ``scale`` maps PNG pixels to
    staff-band pixels.  Without positions the notes are spread evenly over
    the band's width (an approximation).
    """
    out = np.zeros((n_windows, N_PITCHES), dtype=np.uint8)
    if not notes:
        return out
    if note_x is not None and len(note_x) == len(notes):
        xs = np.asarray(note_x, dtype=np.float64) * scale
    else:
        width = (png_width or n_windows * config.sheet_hop / max(scale, 1e-6)) * scale
        xs = (np.arange(len(notes)) + 0.5) / len(notes) * width
    for note, x in zip(notes, xs):
        w = int(x // config.sheet_hop)
        for k in range(max(0, w - 1), min(n_windows, w + 1)):
            if k * config.sheet_hop <= x < k * config.sheet_hop + config.sheet_window:
                out[k, _pitch_index(note.pitch)] = 1
    return out


def dataset_item_labels(dataset: Any, sample_indices: Sequence[int], audio_counts: Sequence[int],
                        sheet_counts: Sequence[int], config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Stacked audio-patch and sheet-window labels for samples of ``dataset``.

    The PNG-to-band scale comes from the dataset's sheet resolution (LilyPond's
    staff space is 5 pt: 10 px at 144 dpi), which is what ``frontend.find_staff``
    measures on these images.
    """
    resolution = float((getattr(dataset, "renderers", {}).get("sheet") or {}).get("resolution") or 144)
    scale = config.sheet_staff_space / (5.0 * resolution / 72.0)
    audio_labels, sheet_labels = [], []
    for i, na, ns in zip(sample_indices, audio_counts, sheet_counts):
        sample = dataset.samples[i]
        audio_labels.append(audio_patch_labels(sample.notes, int(na), config))
        note_x = dataset.note_x(sample.sample_id) if hasattr(dataset, "note_x") else None
        sheet_labels.append(sheet_window_labels(sample.notes, note_x, None, int(ns), scale, config))
    empty = np.zeros((0, N_PITCHES), np.uint8)
    return (np.concatenate(audio_labels) if audio_labels else empty,
            np.concatenate(sheet_labels) if sheet_labels else empty)
