"""Per-position features: one token per syllable, per audio onset, per engraved note.

The paper's features mean-pool each sample (method.md §2), which removes what
lyrics and melody share: their syllable-by-note structure.  These sequences
keep it, and every modality gets it from its *own* signal:

* **lyrics** — per syllable: the skip-gram syllable and word vectors (zeros
  and a flag when unknown) and the prosodic features of
  :mod:`model.features.tokens.prosody` (stress, word position, line start, …);
* **audio** — per onset found in the audio itself (spectral flux on the
  40 ms log-mel rows the audio CNN reads, ``librosa``'s peak picking): the
  CNN's 128-d embedding of the 0.96 s patch starting at the onset, the log
  inter-onset interval, the share of that interval that sounds (a rest after
  a note is silence), loudness and spectral centroid relative to the sample.
  No note list is needed, so a dropped recording takes the same path as a
  dataset item;
* **sheet** — per note x-position (the engraver reports them; a dropped
  image without them gets windows every half window width): the sheet
  CNN's 128-d embedding of a window centred on the note, the log distance to
  the next note in staff spaces (engraved spacing grows with duration), the
  ink's vertical centre in the window (pitch height) and, when the notes the
  staff engraves are known (every dataset item and every dropped MIDI, KAR
  or MusicXML file: the engraving is made from them), what the engraving
  says of each note exactly — its written duration and the rest before it
  in beats, its pitch relative to the item's mean and the interval from the
  previous note (:func:`note_structure`).  Reading those off the image
  would be optical music recognition of our own engraving; the spacing and
  height columns are the image's rough version of the same (validation:
  sheet → lyrics MedR/N 0.10 from spacing and height, 0.08 with the notes;
  docs/training.md).

Sequences are padded to ``FeatureConfig.sequence_max_len`` and stored in the
FeatureSet beside the pooled features (``FeatureSet.tokens``/``lengths``).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from model.progress import CancelToken, ProgressCallback, report

from ..config import FeatureConfig
from ..frontend import load_grey, staff_band_scaled
from .prosody import N_PROSODY, syllable_features

#: Bump when a token's definition changes: it is part of the feature-cache key.
SEQUENCE_VERSION = 2
AUDIO_SCALARS = ("log_ioi", "sounding", "loudness", "centroid")
SHEET_SCALARS = ("log_spacing", "height", "notes_known", "log_beats", "log_rest", "pitch_rel", "interval",
                 "long_note", "short_note")
#: The last this-many columns of each modality's token describe *structure*
#: (timing, spacing, stress, word position) rather than content embeddings;
#: CCA's lyrics pairs read only these (docs/training.md, "Syllable-level alignment").
STRUCTURE_DIMS = {"audio": len(AUDIO_SCALARS), "sheet": len(SHEET_SCALARS), "lyrics": N_PROSODY}


# -- lyrics ----------------------------------------------------------------------

def lyrics_tokens(lyrics_encoder: Any, syllables: Sequence[str], word_starts: Sequence[bool]) -> np.ndarray:
    """``(K, D_lyrics + 1 + N_PROSODY)``: skip-gram vectors, an unknown flag, prosody."""
    from ..learned.lyrics import syllables_and_words
    syllables = list(syllables)
    starts = list(word_starts)
    vecs = lyrics_encoder.syllable_vectors(syllables_and_words(syllables, starts)) if syllables \
        else np.zeros((0, lyrics_encoder.dim), np.float32)
    unknown = np.isnan(vecs[:, :1]).astype(np.float32)
    vecs = np.nan_to_num(vecs, nan=0.0)
    return np.concatenate([vecs, unknown, syllable_features(syllables, starts)], axis=1).astype(np.float32)


def lyrics_token_dim(lyrics_dim: int) -> int:
    return lyrics_dim + 1 + N_PROSODY


# -- audio -----------------------------------------------------------------------

def audio_rows(patches: np.ndarray) -> np.ndarray:
    """Time-pooled patches ``(P, R, F)`` → the rows in time order ``(P·R, F)`` float32."""
    patches = np.asarray(patches, dtype=np.float32)
    return patches.reshape(-1, patches.shape[-1])


def onset_envelope(rows: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Spectral-flux onset strength per 40 ms row of a log-mel ``(T, F)``, ``(T,)``.

    ``config.onset_method``:

    * ``flux`` — ``librosa``'s spectral flux, the mean rise of the log-mel
      bands, marked one row after the rise (as in every feature file made
      before the other methods, kept so they stay reproducible; the probe
      scores onsets within ±80 ms, docs/features.md);
    * ``superflux`` — lag 2 and a 3-band maximum filter (Böck & Widmer's
      vibrato suppression), marked in the row the rise ends in.

    A struck or plucked note rises in loudness; a bowed, blown or sung one
    often does not, which is what ``learned`` (:mod:`model.features.learned.onset_net`)
    is for.
    """
    import librosa

    # A silent row in front, so a note that starts the item (row 0) has a rise to find.
    silent = np.full((1, rows.shape[1]), float(np.log(config.log_offset)), dtype=np.float32)
    lag, max_size, late = (2, 3, 0) if config.onset_method == "superflux" else (1, 1, 1)
    env = librosa.onset.onset_strength(S=np.vstack([silent, rows]).T, lag=lag, max_size=max_size, center=False,
                                       aggregate=np.mean)
    # without centring, librosa pads ``lag`` zeros in front: env[t] is the rise into padded row t, i.e. into
    # row t - 1 of ``rows``; ``flux`` keeps the padded index (one row late)
    env = env if late else env[1:]
    return np.pad(env, (0, max(0, len(rows) - len(env))))[: len(rows)]


def detect_onsets(rows: np.ndarray, config: FeatureConfig, onset_net: Any = None) -> np.ndarray:
    """Onset rows of a log-mel ``(T, F)`` (40 ms rows).

    ``flux`` and ``superflux``: :func:`onset_envelope` and ``librosa``'s peak
    picking at ``config.onset_delta`` over ``config.onset_window`` rows; ``learned``: ``onset_net``'s
    probabilities (:mod:`model.features.learned.onset_net`), which must be given.
    Returns at least one row index (0 when nothing rises: silence).
    """
    import librosa
    if len(rows) < 3:
        return np.zeros(1, dtype=np.int64)
    if config.onset_method == "learned":
        from ..learned.onset_net import onset_probabilities, pick_onsets
        if onset_net is None:
            raise ValueError("onset_method 'learned' needs the encoders' onset network (onset_net.pt); "
                             "extract features with `ugaar features extract DATASET --onset-method learned`")
        prob = onset_probabilities(onset_net, rows, config.log_offset)
        if prob.max() <= 1e-3:
            return np.zeros(1, dtype=np.int64)
        return pick_onsets(prob)
    env = onset_envelope(rows, config)
    peak = env.max()
    if peak <= 1e-6:
        return np.zeros(1, dtype=np.int64)
    env = env / peak
    w = config.onset_window
    onsets = librosa.util.peak_pick(env, pre_max=1, post_max=1, pre_avg=w, post_avg=w,
                                    delta=config.onset_delta, wait=1)
    return np.asarray(onsets if len(onsets) else [int(np.argmax(env))], dtype=np.int64)


def onset_spans(rows: np.ndarray, config: FeatureConfig, onsets: Optional[np.ndarray] = None,
                onset_net: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where each audio token's note is: its onset row and the row its span ends at (the next onset,
    or after the item's last sounding row), with each row's log energy and whether it sounds.

    Parameters
    ----------
    rows : (T, F) log-mel rows (:func:`audio_rows`)
    config : FeatureConfig
    onsets : sorted row indices, optional
        Instead of :func:`detect_onsets` (``onset_net`` is the ``learned`` method's detector).

    Returns
    -------
    onsets, ends : (K,) int64, K ≤ ``config.sequence_max_len``
    energy : (T,) float, the rows' log mean power
    sounding : (T,) bool, within ``config.sounding_db`` of the item's loudest row
    """
    rows = np.asarray(rows, dtype=np.float32)
    onsets = (detect_onsets(rows, config, onset_net) if onsets is None else np.asarray(onsets, dtype=np.int64))
    onsets = onsets[: config.sequence_max_len]
    energy = np.log(np.exp(rows).mean(axis=1) + 1e-9)  # the rows are log-mel magnitudes
    sounding = energy > energy.max() - config.sounding_db / 4.343  # dB → natural log units
    last = int(np.flatnonzero(sounding)[-1]) + 1 if sounding.any() else len(rows)
    ends = np.append(onsets[1:], max(last, int(onsets[-1]) + 1))
    return onsets, ends, energy, sounding


def audio_segments(rows: np.ndarray, config: FeatureConfig, onsets: Optional[np.ndarray] = None,
                   onset_net: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Patches at each onset ``(K, R, F)`` float32 and their scalars ``(K, len(AUDIO_SCALARS))``.

    ``onsets`` (sorted row indices) replace :func:`detect_onsets` when given
    (``benchmarks/onset_oracle.py`` cuts at the notes' own onsets);
    ``onset_net`` is the detector of ``onset_method="learned"``.
    """
    rows = np.asarray(rows, dtype=np.float32)
    r = config.patch_frames // config.audio_time_pool
    row_s = config.stft_hop_s * config.audio_time_pool
    pad = float(np.log(config.log_offset))
    onsets, ends, energy, sounding_rows = onset_spans(rows, config, onsets, onset_net)
    power = np.exp(rows)  # the rows are log-mel magnitudes
    centroid = (power * np.arange(rows.shape[1])).sum(1) / np.maximum(power.sum(1), 1e-9)
    patches = np.full((len(onsets), r, rows.shape[1]), pad, dtype=np.float32)
    scalars = np.zeros((len(onsets), len(AUDIO_SCALARS)), dtype=np.float32)
    for k, (a, b) in enumerate(zip(onsets, ends)):
        chunk = rows[a:a + r]
        patches[k, :len(chunk)] = chunk
        b = max(int(b), int(a) + 1)
        head = slice(int(a), min(int(a) + 3, len(rows)))
        scalars[k] = (np.log((b - a) * row_s), sounding_rows[a:b].mean(), energy[head].mean(),
                      centroid[head].mean())
    scalars[:, 2] -= scalars[:, 2].max()
    scalars[:, 3] = (scalars[:, 3] - scalars[:, 3].mean()) / rows.shape[1] * 4.0
    return patches, scalars


# -- sheet -----------------------------------------------------------------------

#: Seconds per beat assumed for a note whose source gives no quantised duration (120 bpm).
_FALLBACK_BEAT_S = 0.5


def note_structure(notes: Sequence[Any]) -> np.ndarray:
    """What an engraved staff states of each note, ``(K, 7)`` float32.

    Columns (the last seven of :data:`SHEET_SCALARS`): 1 (the notes are
    known), log written duration in beats, log(1 + rest before it in beats),
    pitch relative to the item's mean in octaves, interval from the previous
    note in octaves, a long-note flag (≥ 1 beat) and a short-note flag
    (≤ ½ beat).  Durations and gaps in seconds stand in at 120 bpm where a source has
    no quantised beats.
    """
    k = len(notes)
    out = np.zeros((k, 7), dtype=np.float32)
    if k == 0:
        return out
    pitch = np.array([float(n.pitch) for n in notes])
    beats = np.array([n.beats if getattr(n, "beats", None) else n.duration / _FALLBACK_BEAT_S for n in notes])
    rest = np.zeros(k)
    for i, n in enumerate(notes):
        if getattr(n, "rest_beats", None) is not None:
            rest[i] = float(n.rest_beats)
        elif i > 0:  # the gap after the previous note, at the same 120 bpm
            prev = notes[i - 1]
            rest[i] = max(0.0, n.onset - prev.onset - prev.duration) / _FALLBACK_BEAT_S
    out[:, 0] = 1.0
    out[:, 1] = np.log(np.maximum(beats, 1.0 / 64))
    out[:, 2] = np.log1p(np.maximum(rest, 0.0))
    out[:, 3] = (pitch - pitch.mean()) / 12.0
    out[1:, 4] = np.diff(pitch) / 12.0
    out[:, 5] = beats >= 1.0
    out[:, 6] = beats <= 0.5
    return out


def sheet_segments(ink: np.ndarray, note_x: Optional[Sequence[float]], config: FeatureConfig,
                   notes: Optional[Sequence[Any]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Windows centred on each note ``(K, H, W)`` float32 and their scalars ``(K, len(SHEET_SCALARS))``.

    ``note_x`` are x-positions in the image's pixels; without them, windows
    every half window width over the inked columns stand in.  ``notes`` (the
    engraved notes, in order, with ``pitch``, ``beats``/``duration`` and
    ``rest_beats``) fill the note columns (:func:`note_structure`) of the
    windows they sit under; without them those columns are zero, with
    ``notes_known`` = 0.
    """
    band, scale = staff_band_scaled(ink, config)
    h, w = config.sheet_height, config.sheet_window
    inked = np.flatnonzero(band.sum(axis=0) > 0)
    x_end = float(inked[-1] + 1) if len(inked) else float(band.shape[1])
    if note_x:
        centres = np.asarray(note_x, dtype=np.float64) * scale
    else:
        centres = np.arange(w / 2.0, max(x_end, w / 2.0 + 1), w / 2.0)
    centres = centres[: config.sequence_max_len]
    padded = np.pad(band, ((0, 0), (w, w)))
    windows = np.zeros((len(centres), h, w), dtype=np.float32)
    scalars = np.zeros((len(centres), len(SHEET_SCALARS)), dtype=np.float32)
    spacing = np.diff(np.append(centres, max(x_end, centres[-1] + 1.0))) if len(centres) else centres
    rows = np.arange(h, dtype=np.float32)
    for k, c in enumerate(centres):
        left = int(round(c - w / 2.0)) + w
        windows[k] = padded[:, left:left + w]
        core = windows[k][:, w // 2 - 3: w // 2 + 3].sum(axis=1)
        height = float((core * rows).sum() / core.sum()) if core.sum() > 0 else h / 2.0
        scalars[k, :2] = (np.log(max(spacing[k], 1.0) / config.sheet_staff_space), (h / 2.0 - height) / h * 4.0)
    if notes and note_x:
        known = note_structure(list(notes)[: len(centres)])
        scalars[: len(known), 2:] = known
    return windows, scalars


# -- embedding windows with the trained CNNs --------------------------------------

@torch.no_grad()
def embed_items(encoder: Callable[[torch.Tensor], torch.Tensor], items: np.ndarray, device: str = "cpu",
                chunk: int = 1024) -> np.ndarray:
    """Per-item CNN vectors ``(K, 128)`` of ``(K, H, W)`` windows (module in eval mode)."""
    out = []
    for start in range(0, len(items), chunk):
        x = torch.from_numpy(np.ascontiguousarray(items[start:start + chunk], dtype=np.float32)).to(device)
        out.append(encoder(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def tokens_from_segments(encoder: Callable[[torch.Tensor], torch.Tensor],
                         segments: list[tuple[np.ndarray, np.ndarray]], device: str = "cpu") -> list[np.ndarray]:
    """Embed every sample's windows in one batched pass; token = [CNN vector, scalars]."""
    counts = [len(w) for w, _ in segments]
    if not segments or sum(counts) == 0:
        return [np.zeros((0, 0), np.float32) for _ in segments]
    vecs = embed_items(encoder, np.concatenate([w for w, _ in segments]), device)
    out, start = [], 0
    for (_, scalars), k in zip(segments, counts):
        out.append(np.concatenate([vecs[start:start + k], scalars], axis=1))
        start += k
    return out


def dataset_sequences(dataset: Any, encoders: Any, audio_inputs: Any, config: FeatureConfig,
                      device: str = "cpu", workers: int = 2, progress: Optional[ProgressCallback] = None,
                      cancel: Optional[CancelToken] = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Padded token sequences and lengths of every sample of ``dataset`` (manifest order).

    ``audio_inputs`` is the cached front end (``Ragged`` of time-pooled
    patches): the audio is not decoded again.  Sheet images are read again
    (note-centred windows need the full staff band).
    """
    from model.feature_set import pad_sequences

    samples = dataset.samples
    n = len(samples)
    max_len = config.sequence_max_len
    model = encoders.model
    was_training = model.training
    model.eval()
    tokens: dict[str, list[np.ndarray]] = {"audio": [], "sheet": [], "lyrics": []}

    def sheet_one(sample: Any) -> tuple[np.ndarray, np.ndarray]:
        return sheet_segments(load_grey(dataset.sheet_path(sample.sample_id)),
                              dataset.note_x(sample.sample_id), config, sample.notes)

    chunk = 256
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, n, chunk):
                part = range(start, min(n, start + chunk))
                audio_seg = [audio_segments(audio_rows(audio_inputs.data[audio_inputs.offsets[i]:
                                                                         audio_inputs.offsets[i + 1]]), config,
                                            onset_net=encoders.onset_net)
                             for i in part]
                sheet_seg = list(pool.map(sheet_one, [samples[i] for i in part]))
                tokens["audio"] += tokens_from_segments(model.audio.forward_pooled, audio_seg, device)
                tokens["sheet"] += tokens_from_segments(model.sheet, sheet_seg, device)
                tokens["lyrics"] += [lyrics_tokens(encoders.lyrics, samples[i].syllables,
                                                   [nt.word_start for nt in samples[i].notes]) for i in part]
                report(progress, "sequences", part.stop, n, "per-syllable, per-onset and per-note tokens")
                if cancel is not None:
                    cancel.raise_if_set()
    finally:
        model.train(was_training)
    dims = {"audio": config.embed_dim + len(AUDIO_SCALARS), "sheet": config.embed_dim + len(SHEET_SCALARS),
            "lyrics": lyrics_token_dim(encoders.lyrics.dim)}
    padded, lengths = {}, {}
    for m, items in tokens.items():
        padded[m], lengths[m] = pad_sequences(items, max_len, dims[m])
    return padded, lengths
