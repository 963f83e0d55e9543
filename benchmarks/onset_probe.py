"""Onset detectors against the notes' onsets, per rendering: which one finds a melody's notes whatever plays it.

The aligned inputs cut the audio into one token per onset found in the audio
(``model.features.tokens.sequences.detect_onsets``).  Bowed strings, a flute or a
choir start their notes softly, and their new notes often rise from the last
one's release, so the spectral flux of a loudness rise misses them.  This
probe scores each detector of ``model.features.config.ONSET_METHODS`` (the
flux ones at a few peak-picking thresholds; ``learned`` from ``--encoders``) on renderings of the **validation** split
made with ``ugaar dataset render-audio`` in the *training* SoundFont
(TimGM6mb: piano, the built-in synth, piano with noise; and strings, choir
and flute, programs the learned detector's training never renders), so the
choice never sees the test split or the held-out SoundFont.

Scores per rendering: the onset F-measure against the notes' onsets (±80 ms,
two 40 ms rows), and the share of items whose onset count is within ±2 of
their notes.

Usage::

    python benchmarks/onset_probe.py BASE_DATASET RENDERED [RENDERED ...] [--items 300] [--encoders DIR] [--json OUT]

``RENDERED`` is a folder written by ``ugaar dataset render-audio … --split val``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TOLERANCE_S = 0.08
DELTAS = (0.02, 0.05, 0.1)


def match_count(found_s: np.ndarray, true_s: np.ndarray, tolerance_s: float = TOLERANCE_S) -> int:
    """Greedy one-to-one matches of found onsets to true ones within ``tolerance_s`` (both sorted)."""
    used = np.zeros(len(true_s), dtype=bool)
    hits = 0
    for t in found_s:
        d = np.abs(true_s - t)
        d[used] = np.inf
        j = int(np.argmin(d)) if len(d) else -1
        if j >= 0 and d[j] <= tolerance_s:
            used[j] = True
            hits += 1
    return hits


def true_onsets(sample) -> np.ndarray:
    """The item's note onsets in seconds from its first (the renderers put that one at 0)."""
    onsets = np.array(sorted({round(n.onset, 4) for n in sample.notes}), dtype=np.float64)
    return onsets - onsets[0]


def score(rendered: Path, base, ids: list[str], methods: list[str], onset_net=None) -> dict:
    from model.data.dataset import Dataset
    from model.features.config import FeatureConfig
    from model.features.extract import audio_input
    from model.features.tokens.sequences import audio_rows, detect_onsets

    data = Dataset.open(rendered)
    have = {s.sample_id for s in data.samples}
    missing = [sid for sid in ids if sid not in have]
    if missing:
        from model.data.dataset import DatasetError
        raise DatasetError(f"{rendered}: no rendering of validation item {missing[0]} ({len(missing)} of "
                           f"{len(ids)} missing); write it with `ugaar dataset render-audio BASE --split val "
                           f"--out {rendered}`")
    config = FeatureConfig()
    row_s = config.stft_hop_s * config.audio_time_pool
    rows_of = {}
    for sid in ids:
        wave, sr = data.load_audio(sid)
        rows_of[sid] = audio_rows(audio_input(wave, sr, config))
    out = {}
    for method in methods:
        for delta in (DELTAS if method != "learned" else (None,)):
            cfg = FeatureConfig(onset_method=method, **({"onset_delta": delta} if delta is not None else {}))
            hits = found = wanted = near = 0
            for sid in ids:
                truth = true_onsets(base.sample(sid))
                got = detect_onsets(rows_of[sid], cfg, onset_net).astype(np.float64) * row_s
                hits += match_count(got, truth)
                found += len(got)
                wanted += len(truth)
                near += abs(len(got) - len(truth)) <= 2
            p, r = hits / max(found, 1), hits / max(wanted, 1)
            name = method if delta is None else f"{method}@{delta:g}"
            out[name] = {"F": 2 * p * r / max(p + r, 1e-9), "P": p, "R": r, "count_within_2": near / len(ids)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base")
    ap.add_argument("rendered", nargs="+")
    ap.add_argument("--items", type=int, default=300, help="first this many validation items")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every ONSET_METHODS entry)")
    ap.add_argument("--encoders", default=None, help="an encoders folder with onset_net.pt (for learned)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from model.errors import UgaarError

    try:
        return _probe(args, ap)
    except (UgaarError, OSError) as exc:  # a missing or damaged dataset or rendering: its message
        ap.exit(1, f"{ap.prog}: error: {exc}\n")


def _probe(args: argparse.Namespace, ap: argparse.ArgumentParser) -> int:
    from model.data.dataset import Dataset
    from model.features.config import ONSET_METHODS

    methods = args.methods.split(",") if args.methods else list(ONSET_METHODS)
    unknown = [m for m in methods if m not in ONSET_METHODS]
    if unknown:
        ap.error(f"--methods: unknown {', '.join(unknown)} (choose from {', '.join(ONSET_METHODS)})")
    base = Dataset.open(args.base)
    ids = base.split_ids("val")[: args.items]
    if not ids:
        ap.error(f"{args.base}: no validation items to score")
    onset_net = None
    if "learned" in methods:
        from model.features.learned.onset_net import load
        onset_net = load(args.encoders) if args.encoders else None
        if onset_net is None:
            methods.remove("learned")
            print("learned: skipped (give --encoders FOLDER holding onset_net.pt)", file=sys.stderr)
    results = {}
    for folder in args.rendered:
        t0 = time.perf_counter()
        results[Path(folder).name] = score(Path(folder), base, ids, methods, onset_net)
        print(f"{Path(folder).name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    keys = list(next(iter(results.values())))
    names = list(results)
    print("| detector | " + " | ".join(names) + " | mean F |")
    print("|---|" + "---:|" * (len(names) + 1))
    for k in keys:
        cells = [f"{results[n][k]['F']:.3f} ({100 * results[n][k]['count_within_2']:.0f} %)" for n in names]
        mean = np.mean([results[n][k]["F"] for n in names])
        print(f"| {k} | " + " | ".join(cells) + f" | {mean:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"items": len(ids), "results": results}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
