"""The pitch of each audio token's note: what the lyrics scorer's audio side reads beside its timing.

An audio token (:func:`model.features.tokens.sequences.audio_segments`) says
when a note starts, how long it sounds and how loud it is, and holds the audio
CNN's embedding of its sound; it says nothing explicit of its *pitch*.  The
sheet side's tokens carry each note's written pitch and interval, and the
lyrics scorer's sheet side is the better one (docs/benchmarks.md, "Lyrics
re-ranking").  These columns give the audio side the same three numbers,
measured in the recording at the token's own onset, so they do not depend on
the CNN or on the instrument:

===============  ==============================================================
``pitch_rel``    the note's pitch minus the mean of the item's pitched notes,
                 in octaves (as the sheet's ``pitch_rel``); 0 when unpitched
``interval``     the step from the previous note, in octaves; 0 when either
                 is unpitched
``pitched``      1 when a pitch was found
===============  ==============================================================

A note's pitch is the median of librosa's YIN estimate on up to
:data:`FRAMES_PER_NOTE` frames of 64 ms spread over the rows where it sounds,
after the onset row (the attack is noisy), keeping the frames whose
normalised autocorrelation at the found period is above
:data:`model.features.tokens.pitch_track.MIN_PERIODICITY` (the gate the
melody re-ranker's tracks use).  Only those frames are analysed, not the
whole recording, so an item takes a few milliseconds.

:func:`dataset_onset_pitch` computes a FeatureSet's columns once and keeps
them in its dataset's folder (written atomically, resumed after a kill).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from model.progress import CancelToken, ProgressCallback, report

from ..config import FeatureConfig
from .item_arrays import load_item_arrays, save_item_arrays
from .pitch_track import FMAX_HZ, FMIN_HZ, MIN_PERIODICITY, frame_length, periodicity
from .sequences import onset_spans

ONSET_PITCH_COLUMNS = ("pitch_rel", "interval", "pitched")
N_ONSET_PITCH = len(ONSET_PITCH_COLUMNS)
#: Analysis frames per note, spread evenly over its sounding rows after the onset row.
FRAMES_PER_NOTE = 5
#: A note needs this many periodic frames (fewer when it has fewer frames) to have a pitch.
MIN_PITCHED_FRAMES = 2
#: Bump when the columns change, so cached ones are computed again.
ONSET_PITCH_VERSION = 1
#: Items computed between two saves of the partial cache.
SAVE_EVERY = 1000


def note_pitches(wave: np.ndarray, sample_rate: int, rows: np.ndarray, config: FeatureConfig,
                 onsets: Optional[np.ndarray] = None, onset_net: Any = None) -> np.ndarray:
    """The pitch of each audio token's note, as a fractional MIDI number (NaN: none found).

    Parameters
    ----------
    wave : (n,) or (n, channels) float array
        The recording the ``rows`` were computed from.
    sample_rate : int
    rows : (T, F) log-mel rows (:func:`model.features.tokens.sequences.audio_rows`)
    config : FeatureConfig
        The features' (onset method and threshold, row length, sounding level).
    onsets, onset_net
        As :func:`model.features.tokens.sequences.onset_spans`.

    Returns
    -------
    (K,) float32, one per token of :func:`~model.features.tokens.sequences.audio_segments`.
    """
    import librosa

    y = np.asarray(wave, np.float32)
    if y.ndim > 1:
        y = y.mean(axis=1)
    starts, ends, _energy, sounding = onset_spans(rows, config, onsets, onset_net)
    row_s = config.stft_hop_s * config.audio_time_pool
    frame = frame_length(sample_rate)
    centres, owner = [], []
    for k, (a, b) in enumerate(zip(starts, ends)):
        a, b = int(a), max(int(b), int(a) + 1)
        heard = np.flatnonzero(sounding[a + 1:b]) + a + 1
        if len(heard) == 0:
            heard = np.array([a])
        pick = heard[np.unique(np.round(np.linspace(0, len(heard) - 1, min(FRAMES_PER_NOTE, len(heard))))
                               .astype(int))]
        centres += list(((pick + 0.5) * row_s * sample_rate).astype(int))
        owner += [k] * len(pick)
    out = np.full(len(starts), np.nan, np.float32)
    if not centres or len(y) < frame:
        return out
    padded = np.pad(y, frame)
    # the rows run on to the end of the last 0.96 s patch, past the recording's end: a note ringing
    # there is analysed at the recording's last samples
    centres = np.clip(np.asarray(centres), 0, len(y) - 1)
    windows = np.stack([padded[c + frame - frame // 2: c + frame + frame // 2] for c in centres])
    # one YIN frame per window: the windows end to end, hop = frame length, no centring
    f0 = librosa.yin(windows.ravel(), fmin=FMIN_HZ, fmax=FMAX_HZ, sr=sample_rate, frame_length=frame,
                     hop_length=frame, center=False)[: len(windows)]
    lags = np.clip(np.round(sample_rate / f0).astype(int), 1, frame - 1)
    periodic = periodicity(windows.T, lags) > MIN_PERIODICITY
    midi = librosa.hz_to_midi(f0)
    owner = np.asarray(owner)
    for k in range(len(starts)):
        mine = owner == k
        good = mine & periodic
        if good.sum() >= min(MIN_PITCHED_FRAMES, int(mine.sum())):
            out[k] = float(np.median(midi[good]))
    return out


def pitch_columns(pitches: np.ndarray) -> np.ndarray:
    """``(K, 3)`` :data:`ONSET_PITCH_COLUMNS` of one item's note pitches (:func:`note_pitches`)."""
    p = np.asarray(pitches, np.float64)
    ok = np.isfinite(p)
    out = np.zeros((len(p), N_ONSET_PITCH), np.float32)
    if not ok.any():
        return out
    rel = np.where(ok, (np.where(ok, p, 0.0) - p[ok].mean()) / 12.0, 0.0)
    out[:, 0] = rel
    out[1:, 1] = np.where(ok[1:] & ok[:-1], np.diff(rel), 0.0)
    out[:, 2] = ok
    return out


def audio_pitch_columns(wave: np.ndarray, sample_rate: int, config: FeatureConfig, rows: Optional[np.ndarray] = None,
                        onset_net: Any = None) -> np.ndarray:
    """:func:`pitch_columns` of a recording's audio tokens; ``rows`` are computed from ``wave`` when not given
    (as the feature extraction does: ``audio_input``)."""
    from ..extract import audio_input
    from .sequences import audio_rows

    if rows is None:
        rows = audio_rows(audio_input(np.asarray(wave, np.float32), int(sample_rate), config))
    return pitch_columns(note_pitches(wave, sample_rate, rows, config, onset_net=onset_net))


# -- a FeatureSet's columns, cached in its dataset's folder --------------------------------------------

def _cache_path(dataset_root: str | Path, features_key: str) -> Path:
    # a folder of its own: every *.npz directly in features/ is read as a FeatureSet
    return Path(dataset_root) / "features" / "onset-pitch" / f"v{ONSET_PITCH_VERSION}-{features_key}.npz"


def _cached_rows(dataset: Any, config: FeatureConfig) -> Optional[tuple[dict[str, int], Any, np.ndarray]]:
    """The feature extraction's cached log-mel patches of ``dataset`` (id → item, patches, offsets), when kept:
    reading them is much faster than computing the front end again."""
    import zipfile

    from ..extract import inputs_cache_path

    try:
        with np.load(inputs_cache_path(dataset, config), allow_pickle=False) as z:
            ids = {str(s): i for i, s in enumerate(z["sample_ids"])}
            return ids, z["audio"], z["audio_offsets"]
    except (OSError, KeyError, ValueError, EOFError, AttributeError, zipfile.BadZipFile):
        return None  # none kept (or a folder that is not a built dataset): the rows are computed again


def dataset_onset_pitch(features: Any, positions: int, progress: Optional[ProgressCallback] = None,
                        cancel: Optional[CancelToken] = None, dataset: Any = None) -> np.ndarray:
    """``(N, positions, 3)`` :data:`ONSET_PITCH_COLUMNS` of a FeatureSet's audio tokens, from its dataset's audio.

    Parameters
    ----------
    features : FeatureSet
        Extracted from a dataset folder (``meta["dataset_root"]``) that is still there.
    positions : int
    progress, cancel
        Reported to and checked between items.
    dataset : Dataset, optional
        The features' dataset, already open (default: opened from ``meta["dataset_root"]``).

    Returns
    -------
    float32 array, zero beyond each item's tokens.  An item whose audio cannot be read, or whose onsets
    found again are not its tokens' (features of another onset setting), gets zeros (``pitched`` = 0):
    its scores then rest on its other columns.

    Raises
    ------
    DatasetError
        When the dataset cannot be opened, naming it.

    Notes
    -----
    The columns are kept in ``DATASET/features/onset-pitch/v1-<features key>.npz``; while they are computed,
    every :data:`SAVE_EVERY` items go to a ``.partial.npz`` beside it, which a later call resumes from.  The
    feature extraction's cached front end is read when it is there, otherwise each item's log-mel rows are
    computed again from its audio.
    """
    from model.data.dataset import Dataset, DatasetError
    from model.errors import WriteError
    from model.feature_set import pad_sequences

    from .sequences import AUDIO_SCALARS, audio_rows

    root = features.meta.get("dataset_root")
    if not root or not Path(root).is_dir():
        raise DatasetError(str(root or "the features' dataset"), "the lyrics scorer's audio pitch columns come "
                           "from the dataset's audio, and the dataset the features were extracted from is not there",
                           "put the dataset back where it was extracted from")
    config = FeatureConfig.from_dict(features.meta.get("config") or {})
    final = _cache_path(root, str(features.meta.get("cache_key") or "features"))
    partial = final.with_name(final.stem + ".partial.npz")
    wanted = [str(s) for s in features.sample_ids]
    columns = load_item_arrays(final, (N_ONSET_PITCH,))
    if any(s not in columns for s in wanted):
        columns.update(load_item_arrays(partial, (N_ONSET_PITCH,)))
    todo = [s for s in wanted if s not in columns]
    seq = features.input_of("audio", "aligned")
    lengths = dict(zip(wanted, (int(n) for n in seq.lengths)))
    writable, failed = True, set()

    def save(path: Path) -> None:
        nonlocal writable
        if writable:
            try:
                save_item_arrays(path, {s: c for s, c in columns.items() if s not in failed}, (N_ONSET_PITCH,))
            except WriteError:
                writable = False

    if todo:
        dataset = Dataset.open(root) if dataset is None else dataset
        onset_net = None
        if config.onset_method == "learned":
            from ..learned.onset_net import load as load_onset_net
            onset_net = load_onset_net(features.meta.get("encoders_dir"))
        # the extraction's front end (hundreds of MB), read at the first audio file that opens: not for a
        # call that only retries broken files
        front, front_read = None, False
        row_s = config.stft_hop_s * config.audio_time_pool
        ioi_col = seq.tokens.shape[2] - len(AUDIO_SCALARS) + AUDIO_SCALARS.index("log_ioi")
        index = {s: i for i, s in enumerate(wanted)}
    for i, sid in enumerate(todo):
        if cancel is not None:
            cancel.raise_if_set()
        n = lengths[sid]
        try:
            wave, sr = dataset.load_audio(sid)
        except Exception:  # a damaged or missing file: this item's scores rest on its other columns
            wave = None
        if wave is None or np.asarray(wave).size == 0:
            columns[sid], _ = np.zeros((n, N_ONSET_PITCH), np.float32), failed.add(sid)
        else:
            if not front_read:
                front, front_read = _cached_rows(dataset, config), True
            if front is not None and sid in front[0]:
                j = front[0][sid]
                rows = audio_rows(front[1][front[2][j]:front[2][j + 1]])
            else:
                from ..extract import audio_input
                rows = audio_rows(audio_input(np.asarray(wave, np.float32), int(sr), config))
            starts, ends, _e, _s = onset_spans(rows, config, None, onset_net)
            # the tokens' own notes, or none: another onset setting would put pitches on other tokens
            iois = np.log((np.maximum(ends, starts + 1) - starts) * row_s)
            if len(starts) == n and np.allclose(iois, seq.tokens[index[sid], :n, ioi_col], atol=4e-3):
                columns[sid] = pitch_columns(note_pitches(wave, sr, rows, config, starts))
            else:
                columns[sid] = np.zeros((n, N_ONSET_PITCH), np.float32)
        report(progress, "audio pitch", i + 1, len(todo), "the pitch of each audio token's note")
        if (i + 1) % SAVE_EVERY == 0 and i + 1 < len(todo):
            save(partial)
    if todo:
        save(final)
        if writable and partial.exists():
            partial.unlink(missing_ok=True)
    return pad_sequences([columns[s][:positions] for s in wanted], positions, N_ONSET_PITCH)[0].astype(np.float32)
