"""``ugaar lyrics-scorer RUN``: train the run's lyrics re-ranker (``model.search.lyrics_rerank``)."""
from __future__ import annotations

import argparse
import time


def run(args: argparse.Namespace) -> int:
    from model.cli.progress_bar import StageBar
    from model.errors import BadInputError
    from model.feature_set import FeatureSet
    from model.search.lyrics_rerank import RERANKER_FILE, LyricsReranker, cannot_train
    from model.ugaar import Run

    if args.epochs < 1:
        raise BadInputError(f"--epochs {args.epochs}", "train for at least one epoch")
    r = Run.open(args.run)
    features = FeatureSet.load(r.config.features_path)
    if r.config.inputs != "aligned":
        raise BadInputError(str(r.run_dir), "the lyrics scorer reads per-position tokens; this run is on the "
                            "paper's pooled inputs", "give a run trained on aligned inputs")
    why = cannot_train(features)
    if why is not None:  # a one-line message, before any training
        raise BadInputError(str(r.run_dir), why)
    bar = None if args.quiet else StageBar()
    t0 = time.perf_counter()
    try:
        reranker = LyricsReranker.train(r, features, tuple(args.side), args.epochs, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    reranker.save(r.run_dir)
    print(f"wrote {r.run_dir / RERANKER_FILE} in {time.perf_counter() - t0:.0f} s")
    for side, info in reranker.info.items():
        by_weight = info["val_medr_n_by_weight"]
        plain, chosen = by_weight[str(0.0)], by_weight[str(reranker.weights[side])]
        print(f"  lyrics ↔ {side}: best epoch {info['best_epoch'] + 1}, weight {reranker.weights[side]:g}; "
              f"validation MedR/N (both ways) {plain:.3f} with the run alone → {chosen:.3f} re-ranked")
    return 0


def add_parser(subparsers, name: str = "lyrics-scorer", help_text: str = "") -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help_text, description=help_text + ". `ugaar query` and the window "
                              "then re-rank lyrics ↔ sheet / audio results with it (about 2 min per side on "
                              "LMD-full, 2 CPU cores).")
    p.add_argument("run", metavar="RUN", help="a finished run on aligned inputs")
    p.add_argument("--side", nargs="+", default=["sheet", "audio"], choices=("sheet", "audio"),
                   help="melody sides to train a scorer for")
    from model.search.lyrics_rerank import EPOCHS_DEFAULT

    p.add_argument("--epochs", type=int, default=EPOCHS_DEFAULT, help="epochs (the best validation epoch is kept)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p
