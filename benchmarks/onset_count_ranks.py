"""Lyrics ↔ audio ranks by how many onsets an item's audio has against its syllables.

The lyrics scorer pairs syllable *i* with audio token *i* (one token per detected
onset), so one missed or extra onset shifts every later token against its
syllable.  This script reads each run's saved scorer (``ugaar lyrics-scorer`` or
``benchmarks/lyrics_rerank.py --save``), scores the split's lines against its
audio and its sheets (scorer alone), and reports the ranks of the true partners
for the items whose onset count equals their syllable count, is one off, or two or
more off.  The sheet side, whose tokens are the engraved notes, is the reference:
its items are the same, and its count always matches.

Usage::

    python benchmarks/onset_count_ranks.py RUN [RUN ...] [--split val] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

GROUPS = (("as many as syllables", lambda off: off == 0), ("one off", lambda off: off == 1),
          ("two or more off", lambda off: off >= 2))


def onset_offsets(features, rows: np.ndarray) -> np.ndarray:
    """How many onsets each of ``rows``' audio items has more or fewer than its syllables."""
    return np.abs(np.asarray(features.input_of("audio", "aligned").lengths)[rows]
                  - np.asarray(features.input_of("lyrics", "aligned").lengths)[rows])


def rank_figures(ranks: np.ndarray, sel: np.ndarray) -> dict[str, float]:
    """MedR/N and R@10 of the selected items' ranks, which are ranks among the whole split (so over its N)."""
    return {"MedR/N": float(np.median(ranks[sel])) / len(ranks), "R@10": float((ranks[sel] <= 10).mean() * 100)}


def by_onset_count(ranks: np.ndarray, off: np.ndarray, groups=GROUPS) -> dict[str, dict[str, float]]:
    """Each group of items (as many onsets as syllables, one off, two or more off) that has any: its share
    and :func:`rank_figures`."""
    return {name: {"share": float(rule(off).mean()), **rank_figures(ranks, rule(off))}
            for name, rule in groups if rule(off).any()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="aligned runs with a lyrics_scorer.pt (one per seed)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    from lyrics_rerank import mean_std
    from model.errors import UgaarError
    from model.feature_set import FeatureSet
    from model.search.lyrics_rerank import LyricsReranker, ranks_from_scores, score_matrix
    from model.ugaar import Run

    torch.set_num_threads(2)
    records = []
    for run_dir in args.runs:
        try:
            run = Run.open(run_dir)
            fs = FeatureSet.load(run.config.features_path)
            reranker = LyricsReranker.load(run_dir, fs)
        except (UgaarError, OSError, ValueError) as exc:
            parser.error(str(exc))
        if reranker is None or set(reranker.scorers) != {"sheet", "audio"}:
            parser.error(f"{run_dir}: no lyrics scorer with both sides; run `ugaar lyrics-scorer {run_dir}`")
        rows = np.nonzero(np.asarray(fs.splits) == args.split)[0]
        lx, lm = reranker.library["lyrics"]
        ranks = {}
        for side in ("sheet", "audio"):
            mx, mm = reranker.library[side]
            pair = score_matrix(reranker.scorers[side], lx[rows], lm[rows], mx[rows], mm[rows])
            ranks[side] = ranks_from_scores(pair, lower_is_better=False)  # lyrics → melody
        off = onset_offsets(fs, rows)
        n = len(rows)
        out = {"run": str(run_dir), "seed": run.config.seed, "split": args.split, "n": n,
               "onset_picking": {k: fs.meta.get("config", {}).get(k) for k in ("onset_delta", "onset_window")},
               "groups": {}}
        for name, rule in (("all", lambda o: o >= 0),) + GROUPS:
            sel = rule(off)
            if sel.any():
                out["groups"][name] = {"share": float(sel.mean()),
                                       **{side: rank_figures(r, sel) for side, r in ranks.items()}}
        records.append(out)
        print(f"{Path(run_dir).name}: " + "; ".join(
            f"{name} ({100 * g['share']:.1f} %) audio {g['audio']['MedR/N']:.4f} / sheet {g['sheet']['MedR/N']:.4f}"
            for name, g in out["groups"].items()), file=sys.stderr, flush=True)

    print(f"\n| {args.split} items | share | lyrics→audio MedR/N (R@10) | lyrics→sheet MedR/N (R@10), same items |")
    print("|---|---|---|---|")
    for name in records[0]["groups"]:
        groups = [r["groups"][name] for r in records if name in r["groups"]]

        def cell(side: str) -> str:  # four places: these groups differ by single ranks
            return (f"{mean_std([g[side]['MedR/N'] for g in groups], 'MedR/N', places=4)} "
                    f"({mean_std([g[side]['R@10'] for g in groups], 'R@10')} %)")
        print(f"| {name} | {100 * np.mean([g['share'] for g in groups]):.1f} % | {cell('audio')} | {cell('sheet')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
