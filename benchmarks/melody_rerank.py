"""Melody re-ranking benchmark: audio ↔ sheet R@1 of a run with and without the pitch-contour re-ranker.

For each rendering of the split (the run's own audio, and the folders written
by ``benchmarks/timbre_model.py`` or ``ugaar dataset render-audio``), the
run embeds the rendered audio against the split's sheets, as
``timbre_model.py`` does, and :mod:`model.search.melody_rerank` re-ranks each
query's top k by the recording's pitch track against the sheet's notes.

Usage::

    python benchmarks/melody_rerank.py DATASET RUN --split val --rendered FOLDER ... --grid
    python benchmarks/melody_rerank.py DATASET RUN --split test --rendered FOLDER ... [--k 50 --weight 2]

``--grid`` prints every (k, weight) setting: choose them on ``--split val``
renderings, then report the chosen one on test.  Pitch tracks are cached in
each folder (``features/pitch-tracks/v1.npz``); the first call on a split
takes about 25 ms per item.
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

GRID_K = (100, 50, 20)  # largest first: its DTWs serve the smaller k
GRID_WEIGHT = (2.0, 5.0, 10.0, 20.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="the run's dataset folder")
    parser.add_argument("run", help="a finished run folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rendered", nargs="*", metavar="FOLDER", default=[],
                        help="rendered copies of the split (ugaar dataset render-audio --split SPLIT)")
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--weight", type=float, default=None)
    parser.add_argument("--any-key", action="store_true", help="compare melodies after removing their median pitch")
    parser.add_argument("--tempo", type=float, default=1.0,
                        help="build the sheets' contours as if played this many times faster than their notes say "
                             "(a probe of the DTW's tolerance: the recordings keep their tempo)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME",
                        help="evaluate only these renderings (folder names; 'own' for the run's own audio)")
    parser.add_argument("--grid", action="store_true", help="every k in %s × weight in %s" % (GRID_K, GRID_WEIGHT))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from timbre_model import rendered_features

    from model.data.dataset import Dataset
    from model.errors import UgaarError
    from model.feature_set import FeatureSet
    from model.features.tokens.pitch_track import TRACK_FRAME_S, dataset_pitch_tracks
    from model.search.evaluation import distance_matrix, metrics_from_ranks, ranks
    from model.search.melody_rerank import MelodyRerankConfig, note_contour, rerank_ranks
    from model.ugaar import Run

    try:
        dataset = Dataset.open(args.dataset)
        run = Run.open(args.run)
        base = FeatureSet.load(run.config.features_path)
        folders = [(f, Dataset.open(f)) for f in args.rendered]
    except (UgaarError, OSError, ValueError) as exc:
        parser.error(str(exc))
    defaults = MelodyRerankConfig()
    settings = ([MelodyRerankConfig(k, w, any_key=args.any_key) for k in GRID_K for w in GRID_WEIGHT] if args.grid
                else [MelodyRerankConfig(args.k or defaults.k, defaults.weight if args.weight is None else args.weight,
                                         any_key=args.any_key)])
    part = base.split(args.split)
    ids = list(part.sample_ids)
    method, kind, metric = run.method(), run.config.inputs, run.config.metric
    sheet = method.embed_modality("sheet", part.input_of("sheet", kind))
    contours = [note_contour(dataset.sample(s).notes, TRACK_FRAME_S * args.tempo) for s in ids]
    encoders = run.features_meta.get("encoders_dir")
    from model.features.config import FeatureConfig

    made = FeatureConfig.from_dict(base.meta["config"])  # a config saved before onset_window: 3 rows
    wanted = {"onset_delta": made.onset_delta, "onset_window": made.onset_window, "onset_method": made.onset_method}

    rows = []
    chosen = [("the run's own " + args.split + " audio", dataset, base)] + [(Path(f).name, d, None) for f, d in folders]
    if args.only is not None:
        chosen = [c for c in chosen if (c[2] is base and "own" in args.only) or c[0] in args.only]
    for label, ds, features in chosen:
        if features is None:
            features = rendered_features(Path(ds.root), encoders, wanted)
            if features is None:
                parser.exit(1, f"{ds.root}: no features made with {encoders} and these onsets; run "
                               f"benchmarks/timbre_model.py --rendered {ds.root} first\n")
        where = {s: i for i, s in enumerate(features.sample_ids)}
        order = np.array([where[s] for s in ids])
        audio = method.embed_modality("audio", features.input_of("audio", kind)[order])
        t0 = time.perf_counter()
        tracks_by_id = dataset_pitch_tracks(ds, ids)
        track_s = time.perf_counter() - t0
        tracks = [tracks_by_id[s] for s in ids]
        d_as = distance_matrix(audio, sheet, metric)
        plain = {"audio→sheet": metrics_from_ranks(ranks(audio, sheet, metric)),  # as retrieval_metrics ranks them
                 "sheet→audio": metrics_from_ranks(ranks(sheet, audio, metric))}
        row = {"rendering": label, "without": plain, "with": [], "track_seconds": track_s}
        costs_as: dict = {}
        costs_sa: dict = {}
        for cfg in settings:
            t0 = time.perf_counter()
            a_s = metrics_from_ranks(rerank_ranks(d_as, tracks, contours, metric, cfg, costs_as))
            s_a = metrics_from_ranks(rerank_ranks(d_as.T, contours, tracks, metric, cfg, costs_sa))
            row["with"].append({"config": cfg.to_dict(), "audio→sheet": a_s, "sheet→audio": s_a,
                                "seconds": time.perf_counter() - t0})
        rows.append(row)
        best = row["with"][0]
        print(f"{label}: a→s {plain['audio→sheet']['R@1']:.1f} → {best['audio→sheet']['R@1']:.1f}, "
              f"s→a {plain['sheet→audio']['R@1']:.1f} → {best['sheet→audio']['R@1']:.1f}", file=sys.stderr, flush=True)

    print(f"\n**Melody re-ranking through run {Path(args.run).name}: {Path(args.dataset).name}, {args.split} split "
          f"(N = {len(ids)}), {run.config.method} on {kind} inputs{', any key' if args.any_key else ''}"
          f"{f', sheets at tempo × {args.tempo:g}' if args.tempo != 1 else ''}**\n")
    if args.grid:
        print("| k | weight | " + " | ".join(r["rendering"] for r in rows) + " | mean |")
        print("|---:|---:|" + "---|" * (len(rows) + 1))
        for i, cfg in enumerate(settings):
            cells = [f"{r['with'][i]['audio→sheet']['R@1']:.1f} / {r['with'][i]['sheet→audio']['R@1']:.1f}" for r in rows]
            mean = np.mean([(r["with"][i]["audio→sheet"]["R@1"] + r["with"][i]["sheet→audio"]["R@1"]) / 2 for r in rows])
            print(f"| {cfg.k} | {cfg.weight:g} | " + " | ".join(cells) + f" | {mean:.1f} |")
        base_cells = [f"{r['without']['audio→sheet']['R@1']:.1f} / {r['without']['sheet→audio']['R@1']:.1f}" for r in rows]
        print("| – | without | " + " | ".join(base_cells) + " | |")
    else:
        cfg = settings[0]
        print(f"k = {cfg.k}, weight {cfg.weight:g}\n")
        print("| rendering | a→s R@1 without | a→s R@1 with | s→a R@1 without | s→a R@1 with | a→s R@10 with | "
              "pitch tracks | re-ranking |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            w = r["with"][0]
            print(f"| {r['rendering']} | {r['without']['audio→sheet']['R@1']:.1f} | {w['audio→sheet']['R@1']:.1f} | "
                  f"{r['without']['sheet→audio']['R@1']:.1f} | {w['sheet→audio']['R@1']:.1f} | "
                  f"{w['audio→sheet']['R@10']:.1f} | {r['track_seconds']:.0f} s | {w['seconds']:.1f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps({"run": args.run, "split": args.split, "rows": rows}, indent=1,
                                              ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
