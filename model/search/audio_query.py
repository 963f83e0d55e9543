"""Audio queries from real files: decode, check, resample, and find the segment that matches.

A user's recording is rarely one 20-note sample: it is longer, at another
rate, in another format.  This module

1. decodes WAV, FLAC, OGG/Vorbis and MP3 with soundfile (libsndfile ≥ 1.1
   reads MP3) and resamples to the front end's rate with soxr;
2. refuses what cannot give results with one message naming the file
   (:class:`model.errors.BadInputError`): no samples, silence, shorter than
   :data:`MIN_QUERY_S`; a clipped recording is a warning, not an error;
3. slides windows as long as the dataset's samples (their median length in
   seconds) over the recording, embeds each with the caller's functions
   (the ``Embedder`` and the run, unchanged) and keeps the window whose
   nearest results are nearest.  The matched span is returned with the
   results so the CLI and the window can say which segment matched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from model.errors import BadInputError

#: Shortest query: three 0.96 s patches, a few notes.  A one-second file has
#: one patch and retrieves noise.
MIN_QUERY_S = 2.0
#: Full-scale level counted as clipped, and the share of such samples that earns a warning.
CLIP_LEVEL = 0.999
CLIP_SHARE = 0.001
#: Window length when the dataset's samples are unknown (median of the LMD-full samples ≈ 8 s).
DEFAULT_WINDOW_S = 8.0
#: Hop between windows as a share of the window.
HOP_SHARE = 0.25
#: A window this many dB below the loudest window is silence and is not embedded.
QUIET_DB = 30.0


@dataclass
class QueryAudio:
    """A decoded, checked query recording.

    Attributes
    ----------
    wave : np.ndarray
        Mono float32 at ``sample_rate``.
    sample_rate : int
    path : str
    source_rate : int
        The file's own rate before resampling.
    warnings : list of str
        Problems that do not stop the query (clipping), one sentence each.
    """

    wave: np.ndarray
    sample_rate: int
    path: str
    source_rate: int
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.wave) / float(self.sample_rate)


@dataclass
class AudioMatch:
    """The best-matching window of a query recording.

    Attributes
    ----------
    start_s, end_s : float
        The matched segment in the recording (seconds).
    window : int
        Its index among ``windows`` windows.
    windows : int
    duration_s : float
        Length of the whole recording.
    features : Any
        The matched window's audio features as the embedder gave them.
    vectors : dict
        ``{target: vector in the run's retrieval space}`` of that window.
    results : dict
        ``{target: [(sample_id, distance), ...]}`` of that window.
    scores : list of float
        Each window's score (lower is a better match; inf: silent, skipped).
    """

    start_s: float
    end_s: float
    window: int
    windows: int
    duration_s: float
    features: Any
    vectors: dict[str, np.ndarray]
    results: dict[str, list[tuple[str, float]]]
    scores: list[float]

    def describe(self) -> str:
        """``matched 12.0–20.0 s of 45.3 s (window 5 of 17)``, or the whole file when it is one window."""
        if self.windows == 1:
            return f"matched the whole recording (0.0–{self.duration_s:.1f} s)"
        return (f"matched {self.start_s:.1f}–{self.end_s:.1f} s of {self.duration_s:.1f} s "
                f"(window {self.window + 1} of {self.windows})")


def load_query_audio(path: str | Path, sample_rate: int = 16000, subject: str = "--audio",
                     min_seconds: float = MIN_QUERY_S) -> QueryAudio:
    """Decode, check and resample a query recording.

    Parameters
    ----------
    path : path
        WAV, FLAC, OGG/Vorbis or MP3 (anything libsndfile reads).
    sample_rate : int
        Rate to resample to (the front end's, 16 kHz).
    subject : str
        How messages name the file (``--audio``, ``dropped file``, ``recording``).
    min_seconds : float
        Shorter recordings are refused.

    Raises
    ------
    BadInputError
        Not audio, no samples, NaN/inf, silence (``model.validate.check_audio_query``),
        or shorter than ``min_seconds``.
    """
    import soundfile

    from model.validate import check_audio_query

    p = check_audio_query(path, subject)
    data, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
    name = f"{subject} {path}"
    duration = data.shape[0] / float(rate)
    if duration < min_seconds:
        raise BadInputError(name, f"is only {duration:.1f} s long; a query needs at least {min_seconds:g} s "
                                  "(a few notes)", "record or cut a longer excerpt")
    warnings = []
    clipped = float(np.mean(np.abs(data) >= CLIP_LEVEL))
    if clipped > CLIP_SHARE:
        warnings.append(f"{name} is clipped ({100 * clipped:.1f} % of its samples at full scale); "
                        "results may be worse, record it a little quieter")
    from model.features.frontend import resample
    mono = resample(data.mean(axis=1), int(rate), int(sample_rate))
    return QueryAudio(np.ascontiguousarray(mono, dtype=np.float32), int(sample_rate), str(path), int(rate), warnings)


def sample_seconds(samples: Sequence[Any], default: float = DEFAULT_WINDOW_S) -> float:
    """Median length in seconds of a dataset's samples as rendered (first onset to last end + release)."""
    from model.render.audio import RELEASE_S
    lengths = [max(n.onset + n.duration for n in s.notes) - min(n.onset for n in s.notes) + RELEASE_S
               for s in samples if getattr(s, "notes", None)]
    return float(np.median(lengths)) if lengths else float(default)


def onset_times(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Note onsets in seconds (librosa's spectral-flux peak picking, backtracked to the energy minimum)."""
    import librosa
    frames = librosa.onset.onset_detect(y=np.asarray(wave, np.float32), sr=sample_rate, hop_length=160,
                                        backtrack=True, units="frames")
    return librosa.frames_to_time(frames, sr=sample_rate, hop_length=160)


def window_spans(n_samples: int, sample_rate: int, window_s: float, hop_share: float = HOP_SHARE,
                 onsets_s: Sequence[float] = (), max_windows: int = 200) -> list[tuple[int, int]]:
    """``(start, stop)`` sample spans of the windows to embed.

    A recording up to a quarter longer than a window is one window (the
    whole of it).  Otherwise windows of ``window_s`` start every
    ``hop_share`` of a window and at every onset in ``onsets_s`` (a
    dataset sample starts on its first note, so a window starting on a
    note lines up with it); the last window ends at the recording's end.
    Starts closer than 50 ms to an earlier one are dropped; at most
    ``max_windows`` are kept (evenly thinned).
    """
    win = max(1, int(round(window_s * sample_rate)))
    if n_samples <= win * 1.25:
        return [(0, n_samples)]
    hop = max(1, int(round(win * hop_share)))
    last = n_samples - win
    starts = set(range(0, last + 1, hop)) | {last}
    starts |= {int(round(t * sample_rate)) for t in onsets_s if 0 <= t * sample_rate <= last}
    kept: list[int] = []
    for start in sorted(starts):
        if not kept or start - kept[-1] >= 0.05 * sample_rate or start == last:
            kept.append(start)
    if len(kept) > max_windows:
        kept = [kept[int(i)] for i in np.linspace(0, len(kept) - 1, max_windows)]
    return [(s, s + win) for s in kept]


def best_window(audio: QueryAudio, window_s: float, embed: Callable[[np.ndarray, int], Any],
                to_space: Callable[[Any, str], np.ndarray],
                search: Callable[[np.ndarray, str], list[tuple[str, float]]],
                targets: Sequence[str], k: int | None = None, hop_share: float = HOP_SHARE) -> AudioMatch:
    """Embed every window and keep the one whose nearest result is nearest.

    Parameters
    ----------
    audio : QueryAudio
    window_s : float
        Window length (the dataset's sample length, :func:`sample_seconds`).
    embed : callable
        ``embed(wave, sample_rate)`` → the audio features of one window
        (``Embedder.audio`` or ``Embedder.audio_sequence``).
    to_space : callable
        ``to_space(features, target)`` → the window's vector in the run's
        retrieval space for ``target`` (``Run.embed_query``).
    search : callable
        ``search(vector, target)`` → ``[(sample_id, distance), ...]`` nearest first.
    targets : sequence of str
        Target modalities; a window's score is the mean over them of the
        distance to its nearest result.  (Tried on a music21 run with a
        test melody planted in 30 s of near-silence: the window starting on
        its first note had the smallest such distance; the nearest distance
        relative to the mean of the next ones picked windows of silence.)
    k : int, optional
        Results kept per target (default: all ``search`` returns).
    """
    from model.render.audio import peak_normalise
    long = len(audio.wave) > 1.25 * window_s * audio.sample_rate
    onsets = onset_times(audio.wave, audio.sample_rate) if long else ()
    spans = window_spans(len(audio.wave), audio.sample_rate, window_s, hop_share, onsets)
    rms = np.array([float(np.sqrt(np.mean(audio.wave[a:b].astype(np.float64) ** 2))) for a, b in spans])
    loud = rms >= rms.max() * 10.0 ** (-QUIET_DB / 20.0)
    best: tuple[float, int, Any, dict, dict] | None = None
    scores: list[float] = []
    for i, (a, b) in enumerate(spans):
        if not loud[i]:
            scores.append(math.inf)
            continue
        # scaled to the renderers' peak, as every dataset sample is: the audio CNN reads absolute
        # log-mel levels (measured: ±6 dB of gain costs the music21 encoders two thirds of their R@1)
        feats = embed(peak_normalise(audio.wave[a:b]), audio.sample_rate)
        vectors, results, parts = {}, {}, []
        for target in targets:
            vec = np.asarray(to_space(feats, target), np.float32).reshape(-1)
            hits = list(search(vec, target))
            vectors[target], results[target] = vec, hits[:k] if k is not None else hits
            if hits:
                parts.append(float(hits[0][1]))
        score = float(np.mean(parts)) if parts else math.inf
        scores.append(score)
        if best is None or score < best[0]:
            best = (score, i, feats, vectors, results)
    assert best is not None  # the loudest window is always embedded
    _score, i, feats, vectors, results = best
    a, b = spans[i]
    sr = float(audio.sample_rate)
    return AudioMatch(a / sr, b / sr, i, len(spans), audio.duration_s, feats, vectors, results, scores)
