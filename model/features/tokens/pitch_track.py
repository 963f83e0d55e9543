"""The sung or played pitch of a monophonic recording, frame by frame, whatever the instrument.

The audio branch's CNN and onset tokens learn the timbre they were trained on
(``docs/benchmarks.md``, "Onsets are the timbre gap").  The fundamental
frequency of a melody does not depend on the instrument, so
:mod:`model.search.melody_rerank` compares a recording's pitch track with a
sheet's notes to re-rank the retrieval's top candidates.

The track is librosa's YIN estimate every 20 ms, kept where the frame is both
loud (within :data:`LOUD_DB` of the recording's loudest frame) and periodic
(normalised autocorrelation at the found period above :data:`MIN_PERIODICITY`),
then one frame in :data:`KEEP_EVERY` (60 ms frames: the contour DTW costs
grow with the product of the lengths).  Silence, rests and unpitched frames
are dropped, so the track is the melody's pitches in order, without time gaps.

Why these settings (validation renderings of LMD-full, re-ranking one UGAAR
run's top 50, ``docs/benchmarks.md``, "Melody re-ranking"): the loudness gate
alone let the noise frames of piano at 20 dB SNR through and left
sheet→audio R@1 at 89 %; the periodicity gate gives 97 %.

:func:`dataset_pitch_tracks` computes a dataset folder's tracks once and keeps
them in ``DATASET/features/pitch-tracks/v1.npz`` (written atomically, resumed
from its partial file after a kill).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from model.progress import CancelToken, ProgressCallback, report

from .item_arrays import load_item_arrays, save_item_arrays

#: Analysis hop in seconds (YIN and the gates).
HOP_S = 0.02
#: Keep one analysed frame in this many: the track's frames are HOP_S × KEEP_EVERY = 60 ms.
KEEP_EVERY = 3
#: Seconds per frame of a track (and of a note contour, :func:`model.search.melody_rerank.note_contour`).
TRACK_FRAME_S = HOP_S * KEEP_EVERY
#: Lowest and highest fundamental searched (Hz): A1 to F6, the range of sung and played melodies.
FMIN_HZ, FMAX_HZ = 55.0, 1400.0
#: A frame is loud when within this many dB of the recording's loudest.
LOUD_DB = 35.0
#: A frame is pitched when its normalised autocorrelation at the YIN period exceeds this.
MIN_PERIODICITY = 0.5
#: Bump when the track changes, so cached tracks are computed again.
TRACK_VERSION = 1
#: Items computed between two saves of the partial cache.
SAVE_EVERY = 500


def frame_length(sample_rate: int) -> int:
    """The analysis frame in samples: 64 ms rounded up to a power of two (1024 at 16 kHz), more than two
    periods of FMIN_HZ (also :mod:`.onset_pitch`'s)."""
    return int(2 ** np.ceil(np.log2(0.064 * sample_rate)))


def periodicity(frames: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation of each column of ``frames`` at its own lag (the gate of
    :data:`MIN_PERIODICITY`, here and in :mod:`.onset_pitch`)."""
    n = frames.shape[0]
    out = np.zeros(frames.shape[1])
    for t in range(frames.shape[1]):
        lag = int(lags[t])
        a, b = frames[:n - lag, t], frames[lag:, t]
        denom = np.sqrt(float(a @ a) * float(b @ b))
        out[t] = float(a @ b) / denom if denom > 0 else 0.0
    return out


def pitch_track(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The pitched frames of a monophonic recording, as fractional MIDI numbers.

    Parameters
    ----------
    wave : (n,) or (n, channels) float array
    sample_rate : int

    Returns
    -------
    (T,) float32 array
        One value every :data:`TRACK_FRAME_S` seconds of pitched sound (69.0 is
        A4 = 440 Hz); empty for silence, noise or a recording shorter than one
        analysis frame.
    """
    import librosa

    y = np.asarray(wave, np.float32)
    if y.ndim > 1:
        y = y.mean(axis=1)
    frame = frame_length(sample_rate)
    hop = max(1, int(round(HOP_S * sample_rate)))
    if len(y) < frame or not np.any(y):
        return np.zeros(0, np.float32)
    f0 = librosa.yin(y, fmin=FMIN_HZ, fmax=FMAX_HZ, sr=sample_rate, frame_length=frame, hop_length=hop)
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop)[0]
    frames = librosa.util.frame(np.pad(y, frame // 2), frame_length=frame, hop_length=hop)
    n = min(len(f0), len(rms), frames.shape[1])
    f0, rms, frames = f0[:n], rms[:n], frames[:, :n]
    level_db = 20.0 * np.log10(rms + 1e-9)
    lags = np.clip(np.round(sample_rate / f0).astype(int), 1, frame - 1)
    pitched = (level_db > level_db.max() - LOUD_DB) & (periodicity(frames, lags) > MIN_PERIODICITY)
    midi = librosa.hz_to_midi(f0[pitched])
    return np.asarray(midi[::KEEP_EVERY], np.float32)


def _cache_path(dataset_root: str | Path) -> Path:
    # a folder of its own: every *.npz directly in features/ is read as a FeatureSet
    return Path(dataset_root) / "features" / "pitch-tracks" / f"v{TRACK_VERSION}.npz"


def cached_pitch_tracks(dataset) -> dict[str, np.ndarray]:
    """The tracks already cached for ``dataset`` (finished and partial caches), without computing any."""
    final = _cache_path(dataset.root)
    tracks = load_item_arrays(final.with_name(final.stem + ".partial.npz"))
    tracks.update(load_item_arrays(final))
    return tracks


def dataset_pitch_tracks(dataset, sample_ids: Optional[Sequence[str]] = None,
                         progress: Optional[ProgressCallback] = None,
                         cancel: Optional[CancelToken] = None) -> dict[str, np.ndarray]:
    """Pitch tracks of a dataset's audio items, computed once and cached in its folder.

    Parameters
    ----------
    dataset : model.data.dataset.Dataset
    sample_ids : sequence of str, optional
        The items wanted (default: all).
    progress, cancel
        Reported to and checked between items (about 25 ms an item on one core).

    Returns
    -------
    dict
        sample id → :func:`pitch_track` of its audio.  An item whose audio file
        cannot be read gets an empty track (it is then ranked by the
        embeddings alone) and is not cached, so a repaired file is read again.

    Notes
    -----
    The finished cache is ``DATASET/features/pitch-tracks/v1.npz``; while it is
    computed, every :data:`SAVE_EVERY` items go to ``v1.partial.npz`` beside it,
    which a later call resumes from.  A folder that cannot be written still
    gets its tracks, uncached.
    """
    from model.errors import WriteError

    wanted = list(sample_ids) if sample_ids is not None else [s.sample_id for s in dataset.samples]
    final = _cache_path(dataset.root)
    partial = final.with_name(final.stem + ".partial.npz")
    tracks = load_item_arrays(final)
    if all(s in tracks for s in wanted):
        return {s: tracks[s] for s in wanted}
    tracks.update(load_item_arrays(partial))
    todo = [s for s in wanted if s not in tracks]
    writable = True
    unreadable: set[str] = set()

    def save(path: Path) -> None:
        nonlocal writable
        if writable:
            try:
                save_item_arrays(path, {s: t for s, t in tracks.items() if s not in unreadable})
            except WriteError:
                writable = False

    for i, sid in enumerate(todo):
        if cancel is not None:
            cancel.raise_if_set()
        try:
            wave, sr = dataset.load_audio(sid)
            tracks[sid] = pitch_track(wave, sr)
        except Exception:  # a damaged or missing file: this item falls back to the embeddings
            tracks[sid], _ = np.zeros(0, np.float32), unreadable.add(sid)
        report(progress, "pitch tracks", i + 1, len(todo))
        if (i + 1) % SAVE_EVERY == 0 and i + 1 < len(todo):
            save(partial)
    save(final)
    if writable and partial.exists():
        partial.unlink(missing_ok=True)
    return {s: tracks[s] for s in wanted}
