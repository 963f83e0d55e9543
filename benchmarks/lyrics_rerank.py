"""Lyrics re-ranking benchmark: lyrics ↔ sheet / audio retrieval with and without a position-wise pair scorer.

For each seed, a :class:`model.search.lyrics_rerank.PairScorer` is trained on the
run's features (training split; best epoch on validation), the weight that mixes
it with the run's learned distance is chosen on the validation split, and the
test split is reported three ways: the run alone, the pair scorer alone, and
both.  Every candidate of the split is scored (no top k: the first stage's
median rank is ~0.1 N, so a top-100 re-ranking would leave half the partners out).

Usage::

    python benchmarks/lyrics_rerank.py RUN [RUN ...] [--modality sheet audio] [--epochs 6]
                                       [--[no-]repetition] [--shifts N ...] [--context L] [--dropout P]
                                       [--batch B] [--[no-]phonetics] [--distill W] [--ema-epochs H]
                                       [--[no-]pitch] [--save] [--json OUT]

One RUN per seed (its seed seeds the scorer too).  ``--save`` also writes each
run's scorers as ``RUN/lyrics_scorer.pt``, as ``ugaar lyrics-scorer`` would (the
same scorers and weights), so the query path and the recordings benchmark can read
them without training them again.  For the audio side the test figures are also
given by how many onsets the item's audio has against its syllables: one missed or
extra onset shifts every later token (docs/features.md, "Onset picking").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: The scorer's options (PairScorerConfig fields): argparse keywords, what the option does, and the name of
#: its `ugaar lyrics-scorer` default in model.search.lyrics_rerank.
SCORER_OPTIONS = {
    "epochs": (dict(type=int), "epochs (the best validation epoch is kept)", "EPOCHS_DEFAULT"),
    "repetition": (dict(action=argparse.BooleanOptionalAction),
                   "the scorer also reads where the line and the melody repeat themselves", "REPETITION_DEFAULT"),
    "shifts": (dict(type=int, nargs="*"),
               "also train on windows shifted this many positions into the song's next window", "SHIFTS_DEFAULT"),
    "context": (dict(type=int), "dilated convolution layers over each side's positions", "CONTEXT_DEFAULT"),
    "dropout": (dict(type=float), "dropout on the scorer's hidden rows while training", "DROPOUT_DEFAULT"),
    "batch": (dict(type=int), "lines per training step, each the others' negatives", "BATCH_DEFAULT"),
    "phonetics": (dict(action=argparse.BooleanOptionalAction),
                  "the lyrics side also reads the syllables' phonetic columns", "PHONETICS_DEFAULT"),
    "distill": (dict(type=float), "weight of the sheet scorer's scores in the audio scorer's loss (the sheet side "
                                  "is trained first)", "DISTILL_DEFAULT"),
    "ema_epochs": (dict(type=float), "half-life in epochs of the moving average of the scorer's weights that is "
                                     "validated and kept, 0: none", "EMA_EPOCHS_DEFAULT"),
    "pitch": (dict(action=argparse.BooleanOptionalAction),
              "the audio side also reads each onset's pitch, measured in the recording", "PITCH_DEFAULT"),
}


def mean_std(values: list[float], metric: str, places: int | None = None) -> str:
    """A table cell: the mean over seeds, ± their standard deviation when there are several
    (``places`` decimals; by default 3 for MedR/N, 1 for percentages)."""
    fmt = "{:.%df}" % (places if places is not None else 3 if metric == "MedR/N" else 1)
    return fmt.format(np.mean(values)) + (" ± " + fmt.format(np.std(values, ddof=1)) if len(values) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished runs on aligned inputs, one per seed")
    parser.add_argument("--modality", nargs="+", default=["sheet", "audio"], choices=("sheet", "audio"))
    for name, (keywords, what, default) in SCORER_OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), default=None, **keywords,
                            help=f"{what} (default: as `ugaar lyrics-scorer`, lyrics_rerank.{default})")
    parser.add_argument("--save", action="store_true",
                        help="also write each run's scorers to RUN/lyrics_scorer.pt (all --modality sides)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    from model.errors import UgaarError
    from model.feature_set import FeatureSet
    from model.search.evaluation import distance_matrix, metrics_from_ranks, ranks
    from model.search import lyrics_rerank
    from model.search.lyrics_rerank import (LyricsReranker, PairScorerConfig, choose_weight, combined_scores,
                                            library_tokens, ranks_from_scores, score_matrix, structure_tokens,
                                            train_side_scorers)
    from model.ugaar import Run
    from onset_count_ranks import by_onset_count, onset_offsets

    torch.set_num_threads(2)
    # each option as given, else `ugaar lyrics-scorer`'s default
    options = {name: getattr(lyrics_rerank, default) if getattr(args, name) is None else getattr(args, name)
               for name, (_, _, default) in SCORER_OPTIONS.items()}
    options["shifts"] = tuple(options["shifts"])
    try:  # refuse a bad --shifts / --context / --dropout / --batch / ... before any run loads
        PairScorerConfig(**options)
    except ValueError as exc:
        parser.error(str(exc))
    records = []
    for run_dir in args.runs:
        try:
            run = Run.open(run_dir)
            fs = FeatureSet.load(run.config.features_path)
        except (UgaarError, OSError, ValueError) as exc:
            parser.error(str(exc))
        if run.config.inputs != "aligned" or not fs.has_sequences:
            parser.error(f"{run_dir}: a run on aligned inputs is needed (per-position tokens)")
        method, metric = run.method(), run.config.metric
        base = PairScorerConfig(seed=run.config.seed, **options)
        kept: dict = {}  # side → (scorer, weight, info): what --save writes
        # as `ugaar lyrics-scorer` trains them: the sheet scorer first, the audio scorer's teacher
        for modality, trained in train_side_scorers(fs, args.modality, base).items():
            cfg, train_s = trained.config, trained.seconds
            lx, lm = structure_tokens(fs, "lyrics", cfg.positions, cfg.repetition, cfg.phonetics)
            mx, mm = structure_tokens(fs, modality, cfg.positions, cfg.repetition, pitch=cfg.pitch)
            out = {"run": run_dir, "seed": run.config.seed, "modality": modality, "config": cfg.to_dict(),
                   "best_epoch": trained.best_epoch, "history": trained.history, "train_seconds": train_s}
            found = {}
            for split in ("val", "test"):
                rows = np.nonzero(np.asarray(fs.splits) == split)[0]
                part = fs.split(split)
                lyr = method.embed_modality("lyrics", part.input_of("lyrics", "aligned"), partner=modality)
                mus = method.embed_modality(modality, part.input_of(modality, "aligned"), partner="lyrics")
                dist = distance_matrix(lyr, mus, metric)  # lyrics rows × melody columns
                pair = score_matrix(trained.scorer, lx[rows], lm[rows], mx[rows], mm[rows])
                found[split] = (lyr, mus, dist, pair)
            # the weight: best mean MedR/N of both directions on validation (as `ugaar lyrics-scorer` chooses it)
            _l, _m, dist, pair = found["val"]
            weight, val_medr = choose_weight(dist, pair)

            def both(d, p, w):
                return (ranks_from_scores(combined_scores(d, p, w)), ranks_from_scores(combined_scores(d.T, p.T, w)))

            lyr, mus, dist, pair = found["test"]
            l2m, m2l = f"lyrics→{modality}", f"{modality}→lyrics"
            kept[modality] = (trained.scorer, weight, {
                "config": cfg.to_dict(), "best_epoch": trained.best_epoch, "history": trained.history,
                "val_medr_n_by_weight": {str(k): v for k, v in val_medr.items()}})
            out["val_medr_n_by_weight"] = val_medr
            out["weight"] = weight
            out["test"] = {
                "run alone": {l2m: metrics_from_ranks(ranks(lyr, mus, metric)), m2l: metrics_from_ranks(ranks(mus, lyr, metric))},
                "pair scorer alone": {l2m: metrics_from_ranks(ranks_from_scores(pair, lower_is_better=False)),
                                      m2l: metrics_from_ranks(ranks_from_scores(pair.T, lower_is_better=False))},
                "both": dict(zip((l2m, m2l), map(metrics_from_ranks, both(dist, pair, weight)))),
            }
            if modality == "audio":  # by onsets against syllables: a miss shifts every later token
                rows = np.nonzero(np.asarray(fs.splits) == "test")[0]
                out["test_by_onset_count"] = by_onset_count(ranks_from_scores(pair, lower_is_better=False),
                                                            onset_offsets(fs, rows))
            t = out["test"]
            best_val = trained.history[trained.best_epoch]
            print(f"{Path(run_dir).name} {modality}: best epoch {trained.best_epoch} (val MedR/N "
                  f"{best_val['val_medr_n']:.3f}, R@10 {best_val['val_r10']:.1f}), weight {weight:g} "
                  f"(val MedR/N {val_medr[weight]:.3f}); test "
                  f"{l2m} MedR/N run {t['run alone'][l2m]['MedR/N']:.3f} → pair {t['pair scorer alone'][l2m]['MedR/N']:.3f}"
                  f" → both {t['both'][l2m]['MedR/N']:.3f} (R@10 {t['both'][l2m]['R@10']:.1f}); "
                  f"train {train_s:.0f} s", file=sys.stderr, flush=True)
            records.append(out)
        if args.save:
            library = library_tokens(fs, tuple(kept), base.repetition, base.phonetics, base.pitch)
            LyricsReranker({m: k[0] for m, k in kept.items()}, {m: k[1] for m, k in kept.items()}, library,
                           fs.sample_ids, {m: k[2] for m, k in kept.items()}).save(run_dir)

    print("\n| melody side | seeds | way | lyrics→m MedR/N | m→lyrics MedR/N | lyrics→m R@10 | m→lyrics R@10 |")
    print("|---|---|---|---|---|---|---|")
    for modality in args.modality:
        mine = [r for r in records if r["modality"] == modality]
        l2m, m2l = f"lyrics→{modality}", f"{modality}→lyrics"
        for way in ("run alone", "pair scorer alone", "both"):
            def cell(direction, metric):
                return mean_std([r["test"][way][direction][metric] for r in mine], metric)
            print(f"| {modality} | {len(mine)} | {way} | {cell(l2m, 'MedR/N')} | {cell(m2l, 'MedR/N')} | "
                  f"{cell(l2m, 'R@10')} | {cell(m2l, 'R@10')} |")
    by_count = [r for r in records if "test_by_onset_count" in r]
    if by_count:
        print("\n| audio items (test) | share | lyrics→audio MedR/N, scorer alone | R@10 |")
        print("|---|---|---|---|")
        for name in by_count[0]["test_by_onset_count"]:
            cells = [r["test_by_onset_count"].get(name) for r in by_count]
            cells = [c for c in cells if c]
            print(f"| {name} | {100 * np.mean([c['share'] for c in cells]):.1f} % | "
                  f"{mean_std([c['MedR/N'] for c in cells], 'MedR/N')} | {mean_std([c['R@10'] for c in cells], 'R@10')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
