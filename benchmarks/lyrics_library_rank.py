"""Where a test lyrics line's own recording (or sheet) ranks among *every* item of the library.

The map's "both partners" (``benchmarks/map_alignment.py``) needs a lyrics point to sit
beside its own recording, i.e. lyrics retrieval that ranks that recording first among
all the library's items, not only among the test split's.  This prints that rank's
R@1, R@15 and median for the run alone and with the run's saved lyrics re-ranker
(``ugaar lyrics-scorer RUN`` writes it), every library item scored.

Usage::

    python benchmarks/lyrics_library_rank.py RUN [--side audio|sheet] [--split test]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished run on aligned inputs with RUN/lyrics_scorer.pt")
    parser.add_argument("--side", default="audio", choices=("audio", "sheet"))
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = parser.parse_args(argv)

    import torch

    from model.errors import UgaarError
    from model.feature_set import FeatureSet
    from model.search.evaluation import distance_matrix
    from model.search.lyrics_rerank import RERANKER_FILE, LyricsReranker, combined_scores
    from model.ugaar import Run

    torch.set_num_threads(2)
    try:
        run = Run.open(args.run)
        fs = FeatureSet.load(run.config.features_path)
        reranker = LyricsReranker.load(run.run_dir, fs)
    except (UgaarError, OSError, ValueError) as exc:
        parser.error(str(exc))
    if reranker is None or args.side not in reranker.scorers:
        parser.error(f"{args.run}: no {args.side} scorer in {RERANKER_FILE}; train one: ugaar lyrics-scorer {args.run}")
    method = run.method()
    lyrics = method.embed_modality("lyrics", fs.input_of("lyrics", "aligned"), partner=args.side)
    music = method.embed_modality(args.side, fs.input_of(args.side, "aligned"), partner="lyrics")
    rows = np.nonzero(np.asarray(fs.splits) == args.split)[0]
    if len(rows) == 0:
        parser.error(f"{args.run}: its features have no {args.split} samples")
    dist = distance_matrix(lyrics[rows], music, run.config.metric)
    alone, both = [], []
    t0 = time.perf_counter()
    for k, i in enumerate(rows):
        alone.append(int((dist[k] <= dist[k, i]).sum()))  # ties count against the partner
        pair = reranker.pair_scores("lyrics", args.side, reranker.library_query("lyrics", fs.sample_ids[i]))
        score = combined_scores(dist[k][None], pair[None], reranker.weights[args.side])[0]
        both.append(int((score <= score[i]).sum()))
    seconds = time.perf_counter() - t0
    n = len(fs.sample_ids)
    print(f"{len(rows)} {args.split} lyrics lines against all {n} {args.side} items ({seconds:.0f} s re-ranked):")
    for name, r in (("run alone", np.array(alone)), ("with the lyrics re-ranker", np.array(both))):
        print(f"  {name}: R@1 {100 * np.mean(r == 1):.1f} %, R@15 {100 * np.mean(r <= 15):.1f} %, "
              f"MedR {np.median(r):.0f} ({np.median(r) / n:.3f} N)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
