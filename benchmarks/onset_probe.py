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
two 40 ms rows), the share of items whose onset count is within ±2 of
their notes, and the share whose count is exactly their notes' (one missed or
extra onset shifts every later token: docs/features.md, "Onset picking").

Usage::

    python benchmarks/onset_probe.py BASE_DATASET [RENDERED ...] [--timbres] [--items 300] [--methods flux]
                                     [--encoders DIR] [--json OUT]

``RENDERED`` is a folder written by ``ugaar dataset render-audio … --split val``, or
``BASE_DATASET`` itself for its own audio; ``--timbres`` renders the items in memory
in each timbre of ``benchmarks/timbre.py`` instead.
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
sys.path.insert(0, str(REPO / "benchmarks"))

TOLERANCE_S = 0.08
#: Flux peak pickings probed: (threshold, rows each side of the mean it must exceed).  The first three are
#: the first default's window; (0.015, 1) is the default since the onsets were chosen on exact counts.
PICKINGS = ((0.02, 3), (0.05, 3), (0.1, 3), (0.015, 1), (0.02, 1))


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


def folder_rows(rendered: Path, ids: list[str], config) -> dict[str, np.ndarray]:
    """Each item's 40 ms log-mel rows from a rendered dataset folder (or the base dataset itself)."""
    from model.data.dataset import Dataset
    from model.features.extract import audio_input
    from model.features.tokens.sequences import audio_rows

    data = Dataset.open(rendered)
    have = {s.sample_id for s in data.samples}
    missing = [sid for sid in ids if sid not in have]
    if missing:
        from model.data.dataset import DatasetError
        raise DatasetError(f"{rendered}: no rendering of validation item {missing[0]} ({len(missing)} of "
                           f"{len(ids)} missing); write it with `ugaar dataset render-audio BASE --split val "
                           f"--out {rendered}`")
    rows_of = {}
    for sid in ids:
        wave, sr = data.load_audio(sid)
        rows_of[sid] = audio_rows(audio_input(wave, sr, config))
    return rows_of


def timbre_rows(base, ids: list[str], rendering, config) -> dict[str, np.ndarray]:
    """Each item's rows, its notes rendered in memory in one of ``benchmarks/timbre.py``'s timbres."""
    from model.data.render_split import render_waves
    from model.features.extract import audio_input
    from model.features.tokens.sequences import audio_rows

    samples = [base.sample(sid) for sid in ids]
    return {sid: audio_rows(audio_input(np.asarray(wave, np.float32), config.sample_rate, config))
            for sid, wave in render_waves(samples, rendering)}


def score(rows_of: dict[str, np.ndarray], base, ids: list[str], methods: list[str], onset_net=None) -> dict:
    from model.features.config import FeatureConfig
    from model.features.tokens.sequences import detect_onsets

    config = FeatureConfig()
    row_s = config.stft_hop_s * config.audio_time_pool
    out = {}
    for method in methods:
        for delta, window in (PICKINGS if method != "learned" else ((None, None),)):
            cfg = FeatureConfig(onset_method=method,
                                **({"onset_delta": delta, "onset_window": window} if delta is not None else {}))
            hits = found = wanted = near = exact = 0
            for sid in ids:
                truth = true_onsets(base.sample(sid))
                got = detect_onsets(rows_of[sid], cfg, onset_net).astype(np.float64) * row_s
                hits += match_count(got, truth)
                found += len(got)
                wanted += len(truth)
                near += abs(len(got) - len(truth)) <= 2
                exact += len(got) == len(truth)  # one token per note: no position shifted
            p, r = hits / max(found, 1), hits / max(wanted, 1)
            name = method if delta is None else f"{method}@{delta:g}/{window}"
            out[name] = {"F": 2 * p * r / max(p + r, 1e-9), "P": p, "R": r, "count_within_2": near / len(ids),
                         "count_exact": exact / len(ids)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base")
    ap.add_argument("rendered", nargs="*", help="rendered validation folders; BASE itself scores its own audio")
    ap.add_argument("--timbres", action="store_true",
                    help="also render the items in memory in each timbre of benchmarks/timbre.py")
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
    if not args.rendered and not args.timbres:
        ap.error("give RENDERED folders (BASE itself for its own audio), --timbres, or both")
    from model.features.config import FeatureConfig

    config = FeatureConfig()
    sources = [(Path(folder).name, lambda f=folder: folder_rows(Path(f), ids, config)) for folder in args.rendered]
    if args.timbres:
        from timbre import renderings
        sources += [(label, lambda r=r: timbre_rows(base, ids, r, config))
                    for label, r in renderings() if not isinstance(r, str)]
    results = {}
    for name, rows in sources:
        t0 = time.perf_counter()
        results[name] = score(rows(), base, ids, methods, onset_net)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    keys = list(next(iter(results.values())))
    names = list(results)
    print("| detector | " + " | ".join(names) + " | mean F |")
    print("|---|" + "---:|" * (len(names) + 1))
    for k in keys:
        cells = [f"{results[n][k]['F']:.3f} ({100 * results[n][k]['count_within_2']:.0f} % / "
                 f"{100 * results[n][k]['count_exact']:.0f} %)" for n in names]
        mean = np.mean([results[n][k]["F"] for n in names])
        print(f"| {k} | " + " | ".join(cells) + f" | {mean:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"items": len(ids), "results": results}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
