"""Which whole-line signals tie a lyrics line to its melody, each scored alone (no training).

Before a signal went into the lyrics pair scorer (``model/search/lyrics_rerank.py``)
it was measured here on its own, on the validation split: every line against every
melody, ranked by the signal, MedR/N and R@10 of the true partner (chance: 0.5 N,
10 / N).  Ties count against the partner, so a signal that says nothing for most
pairs shows MedR/N 1.0 even when its R@10 is above chance.

* ``repetition``: agreement of the line's and the melody's self-similarity
  (:func:`model.search.lyrics_rerank.self_similarity`: the same syllable of the
  same word; the same written length and pitch, or for audio an onset that
  sounds the same), shared repeated pairs over the root of each side's count.
* ``metre``: whether the line's stressed syllables (word starts, line starts)
  fall on one phase of the beat: the length of the mean of exp(2πi·onset/period)
  over those syllables' notes, onsets in beats from the notes' written lengths
  and rests, periods of 1, 2 and 4 beats (sheet only: audio has no beats).

Usage::

    python benchmarks/lyrics_signals.py FEATURES.npz [--split val] [--modality sheet audio]

Figures: docs/training.md, "Syllable-level alignment".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def partner_metrics(score: np.ndarray) -> tuple[float, float]:
    """MedR/N and R@10 (%) of each row's partner (the diagonal) under ``score`` (higher is better)."""
    ranks = (score >= np.diag(score)[:, None]).sum(1)
    return float(np.median(ranks)) / len(score), 100.0 * float(np.mean(ranks <= 10))


def repetition_agreement(lyrics_rep: np.ndarray, music_rep: np.ndarray) -> np.ndarray:
    """(N, N) agreement of (N, P, P) self-similarity matrices, lines × melodies."""
    shared = np.einsum("bij,cij->bc", lyrics_rep, music_rep)
    return shared / np.sqrt(lyrics_rep.sum((1, 2)) + 1)[:, None] / np.sqrt(music_rep.sum((1, 2)) + 1)[None, :]


def metre_coherence(weights: np.ndarray, onsets: np.ndarray, mask: np.ndarray, period: float) -> np.ndarray:
    """(N, N): for each line's weighted syllables placed on each melody's onsets, the length of their
    mean phase vector at ``period`` beats (1: all on one phase)."""
    phase = np.exp(2j * np.pi * onsets / period) * mask
    return np.abs(weights @ phase.T) / (weights.sum(1)[:, None] + 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="a FeatureSet with per-position tokens (aligned inputs)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--modality", nargs="+", default=["sheet", "audio"], choices=("sheet", "audio"))
    args = parser.parse_args(argv)

    from model.feature_set import FeatureSet
    from model.features.tokens.prosody import PROSODY_FEATURES
    from model.search.lyrics_rerank import structure_tokens

    from model.errors import UgaarError

    try:
        fs = FeatureSet.load(args.features)
    except (UgaarError, OSError, ValueError, KeyError) as exc:
        parser.error(f"{args.features}: not a readable feature set ({exc})")
    rows = np.nonzero(np.asarray(fs.splits) == args.split)[0]
    if len(rows) < 2 or not fs.has_sequences:
        parser.error(f"{args.features}: no per-position tokens, or fewer than two {args.split} samples")
    p = 20
    lx, lm = (a[rows] for a in structure_tokens(fs, "lyrics", p, repetition=True))
    print(f"{args.features}, split {args.split} (N = {len(rows)})\n")
    print("| signal | melody side | MedR/N | R@10 (%) |")
    print("|---|---|---|---|")
    for modality in args.modality:
        mx, mm = (a[rows] for a in structure_tokens(fs, modality, p, repetition=True))
        medr, r10 = partner_metrics(repetition_agreement(lx[:, :, -p:], mx[:, :, -p:]))
        print(f"| repetition | {modality} | {medr:.3f} | {r10:.1f} |")
        if modality != "sheet":
            continue
        beats, rest = np.exp(mx[:, :, 3]) * mm, np.expm1(mx[:, :, 4]) * mm
        onsets = np.cumsum(rest, 1) + np.concatenate([np.zeros((len(rows), 1)), np.cumsum(beats, 1)[:, :-1]], 1)
        column = {name: i for i, name in enumerate(PROSODY_FEATURES)}
        for name in ("stress_1", "word_start", "line_start"):
            weights = lx[:, :, column[name]] * lm
            for period in (1.0, 2.0, 4.0):
                medr, r10 = partner_metrics(metre_coherence(weights, onsets, mm, period))
                print(f"| metre: {name} on one phase of {period:g} beats | sheet | {medr:.3f} | {r10:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
