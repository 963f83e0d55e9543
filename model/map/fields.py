"""Per-sample fields the embedding map can be coloured by, and their legend bins.

Plain Python (no Qt), shared by the window's map and any script.  A *field*
is one value per sample: categorical (split, source) or numeric (pitch
range, tempo, words, stress regularity, partner rank).  Numeric fields are
binned at quantiles so every colour covers a similar share of the map;
:func:`legend_counts` says how many samples of each bin are in the current
selection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

#: name → (title, kind, unit); ``kind`` is ``categorical`` or ``numeric``.
FIELDS: dict[str, tuple[str, str, str]] = {
    "split": ("split", "categorical", ""),
    "source": ("source", "categorical", ""),
    "pitch_range": ("pitch range", "numeric", "semitones"),
    "tempo": ("tempo", "numeric", "BPM"),
    "n_words": ("number of words", "numeric", "words"),
    "stress_regularity": ("stress regularity", "numeric", "primary-stress share"),
    "partner_rank": ("partner rank", "numeric", "rank"),
}


def pitch_range(sample: Any) -> float:
    """Highest minus lowest MIDI pitch of the sample's notes, in semitones."""
    pitches = [n.pitch for n in sample.notes]
    return float(max(pitches) - min(pitches)) if pitches else float("nan")


def tempo(sample: Any) -> float:
    """Sung tempo in beats per minute: 60 × Σ beats / Σ seconds over the notes whose beat value is known.

    NaN when the source gives no beat values (e.g. the LMD ``.npy`` release):
    a tempo guessed from seconds alone would only echo the renderer's default.
    """
    beats = [(n.beats, n.duration) for n in sample.notes if n.beats is not None and n.duration > 0]
    seconds = sum(d for _b, d in beats)
    if not beats or seconds <= 0:
        return float("nan")
    return 60.0 * sum(b for b, _d in beats) / seconds


def n_words(sample: Any) -> float:
    return float(len(sample.words))


def stress_regularity(sample: Any) -> float:
    """Share of the sample's syllables carrying primary stress (CMU dictionary).

    Counted over the syllables whose word the dictionary knows, so a German
    or Latin text is not read as unstressed; NaN when it knows none.  Around
    0.5 is the alternating strong–weak pattern of most English verse; near 1
    means mostly one-syllable content words.
    """
    from model.features.tokens.prosody import PROSODY_FEATURES, syllable_features
    feats = syllable_features(sample.syllables, [n.word_start for n in sample.notes])
    if len(feats) == 0:
        return float("nan")
    known = feats[:, PROSODY_FEATURES.index("stress_unknown")] == 0
    if not known.any():
        return float("nan")
    return float(feats[known, PROSODY_FEATURES.index("stress_1")].mean())


_NUMERIC: dict[str, Callable[[Any], float]] = {
    "pitch_range": pitch_range, "tempo": tempo, "n_words": n_words, "stress_regularity": stress_regularity,
}


def field_values(name: str, samples: Sequence[Any], partner_ranks: Optional[Sequence[float]] = None) -> np.ndarray:
    """One value per sample of field ``name`` (unknown samples, given as None: NaN or "").

    Parameters
    ----------
    name : str
        A key of :data:`FIELDS`.
    samples : sequence of :class:`model.data.song.Sample` or None
    partner_ranks : (N,) sequence, optional
        Aligned with ``samples``; needed for ``partner_rank`` (else all NaN).
    """
    if name not in FIELDS:
        raise ValueError(f"unknown map field {name!r}; expected one of {tuple(FIELDS)}")
    if FIELDS[name][1] == "categorical":
        return np.array([getattr(s, name, "") if s is not None else "" for s in samples], dtype=object)
    if name == "partner_rank":
        if partner_ranks is None or len(partner_ranks) != len(samples):
            return np.full(len(samples), np.nan)
        return np.asarray(partner_ranks, dtype=float)
    fn = _NUMERIC[name]
    return np.array([fn(s) if s is not None else np.nan for s in samples], dtype=float)


@dataclass
class Bins:
    """Each sample's legend class: ``codes[i]`` indexes ``labels``; -1 = no value."""

    codes: np.ndarray
    labels: list[str]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


def bin_values(values: np.ndarray, kind: str, n_bins: int = 5) -> Bins:
    """Legend classes of ``values``.

    Categorical: one class per distinct non-empty value, sorted.  Numeric:
    up to ``n_bins`` quantile bins of the finite values (fewer when values
    repeat, e.g. small integers), labelled ``lo–hi``.
    """
    values = np.asarray(values)
    if kind == "categorical":
        labels = sorted({str(v) for v in values if str(v)})
        index = {v: i for i, v in enumerate(labels)}
        return Bins(np.array([index.get(str(v), -1) for v in values], dtype=np.int64), labels)
    x = np.asarray(values, dtype=float)
    finite = np.isfinite(x)
    codes = np.full(len(x), -1, dtype=np.int64)
    if not finite.any():
        return Bins(codes, [])
    edges = np.unique(np.quantile(x[finite], np.linspace(0, 1, n_bins + 1)))
    if len(edges) == 1:
        codes[finite] = 0
        return Bins(codes, [_fmt(edges[0])])
    # right-closed inner edges: bin k holds edges[k] < v <= edges[k+1] (the first also its lower edge)
    codes[finite] = np.clip(np.searchsorted(edges, x[finite], side="left") - 1, 0, len(edges) - 2)
    labels = [f"{_fmt(edges[k])}–{_fmt(edges[k + 1])}" for k in range(len(edges) - 1)]
    return Bins(codes, labels)


def legend_counts(codes: np.ndarray, n_classes: int, selected: Optional[np.ndarray] = None) -> list[int]:
    """Samples per class, among ``selected`` (a boolean mask) when given."""
    codes = np.asarray(codes)
    if selected is not None:
        codes = codes[np.asarray(selected, dtype=bool)]
    codes = codes[codes >= 0]
    return np.bincount(codes, minlength=n_classes)[:n_classes].astype(int).tolist()
