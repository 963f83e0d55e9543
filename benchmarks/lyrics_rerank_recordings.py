"""Recordings → lyrics through the lyrics scorer: the split's melodies played by other instruments.

A user's recording reaches the lyrics through the run's audio vector; the
lyrics scorer's audio side could re-rank those results too, since it reads
the recording's own onsets (their timing, loudness and, with ``pitch``, each
note's pitch) against every library line's syllables.  This script asks
whether it helps when the instrument is not the dataset's: each item of the
split is rendered again in each timbre of ``benchmarks/timbre.py``
(``model.data.render_split.render_waves``), cut into tokens by the run's
encoders as a dropped file is (``Embedder.audio_sequence``), and ranked
against the split's lyrics three ways: the run alone, the scorer alone, and
both with the weight the scorer chose on validation (``RUN/lyrics_scorer.pt``,
trained by ``ugaar lyrics-scorer``).

Usage::

    python benchmarks/lyrics_rerank_recordings.py RUN [RUN ...] [--split test] [--limit N] [--json OUT]
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


def stack(sequences: list) -> object:
    """One SequenceInput of many single-item ones (tokens, lengths and onset pitch columns)."""
    from model.feature_set import SequenceInput
    return SequenceInput(np.concatenate([s.pooled for s in sequences]), np.concatenate([s.tokens for s in sequences]),
                         np.concatenate([s.lengths for s in sequences]),
                         onset_pitch=np.concatenate([s.onset_pitch for s in sequences]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="runs on aligned inputs with a lyrics scorer (ugaar lyrics-scorer), "
                                                "one per seed, on one FeatureSet")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of the split")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    from model.data.dataset import Dataset
    from model.data.render_split import render_waves
    from model.feature_set import FeatureSet
    from model.features import load_embedder
    from model.search.evaluation import distance_matrix, metrics_from_ranks
    from model.search.lyrics_rerank import LyricsReranker, combined_scores, ranks_from_scores, score_matrix
    from model.ugaar import Run
    from lyrics_rerank import mean_std
    from timbre import renderings

    from model.errors import UgaarError

    torch.set_num_threads(2)
    try:  # a missing run, features file or dataset: one line, as benchmarks/lyrics_rerank.py says it
        runs = [Run.open(d) for d in args.runs]
        paths = {str(r.config.features_path) for r in runs}
        if len(paths) != 1:
            parser.error("the runs must share one FeatureSet (seeds of one extraction): their recordings are cut once")
        fs = FeatureSet.load(paths.pop())
        dataset = Dataset.open(fs.meta["dataset_root"])
    except (UgaarError, OSError, ValueError) as exc:
        parser.error(str(exc))
    embedder = load_embedder(fs.meta["encoders_dir"], sequence_settings=fs.meta.get("config"))
    rows = np.nonzero(np.asarray(fs.splits) == args.split)[0][: args.limit]
    ids = [str(fs.sample_ids[i]) for i in rows]
    samples = {s.sample_id: s for s in dataset.samples}
    lines = fs.input_of("lyrics", "aligned")[rows]
    scorers = []
    for run_dir, run in zip(args.runs, runs):
        try:
            rr = LyricsReranker.load(run_dir, fs)
        except UgaarError as exc:  # a damaged lyrics_scorer.pt
            parser.error(str(exc))
        if rr is None or "audio" not in rr.scorers:
            parser.error(f"{run_dir}: no lyrics scorer with an audio side; run `ugaar lyrics-scorer {run_dir}`")
        lx, lm = (a[rows] for a in rr.library["lyrics"])
        scorers.append((rr, lx, lm, run.method().embed_modality("lyrics", lines, partner="audio")))
    records = [{"run": d, "seed": r.config.seed, "weight": rr.weights["audio"], "split": args.split, "n": len(ids),
                "timbres": {}} for d, r, (rr, *_rest) in zip(args.runs, runs, scorers)]
    # the dataset's own audio first (the training font's piano: its first rendering), then the others
    timbres = [("the dataset's audio (FluidSynth piano, TimGM6mb)", None)] + [
        (label, r) for label, r in renderings()[1:] if not isinstance(r, str)]
    for label, rendering in timbres:
        t0 = time.perf_counter()
        if rendering is None:
            waves = ((sid, dataset.load_audio(sid)[0]) for sid in ids)
        else:
            waves = render_waves([samples[s] for s in ids], rendering)
        # cut and embedded once: every seed's run reads the same encoders' tokens
        seqs = [embedder.audio_sequence(w, embedder.config.sample_rate) for _sid, w in waves]
        audio = stack(seqs)
        pitched = float(np.mean([(s.onset_pitch[0, :int(s.lengths[0]), 2] > 0).mean() for s in seqs]))
        cut_s = time.perf_counter() - t0
        for out, run, (rr, lx, lm, lyr) in zip(records, runs, scorers):
            vec = run.method().embed_modality("audio", audio, partner="lyrics")
            dist = distance_matrix(vec, lyr, run.config.metric)  # recordings × lines
            tokens = [rr.query_tokens("audio", s) for s in seqs]
            ax, am = np.stack([t for t, _ in tokens]), np.stack([m for _, m in tokens])
            pair = score_matrix(rr.scorers["audio"], lx, lm, ax, am).T  # recordings × lines
            ways = {"run alone": ranks_from_scores(dist), "pair scorer alone": ranks_from_scores(pair, False),
                    "both": ranks_from_scores(combined_scores(dist, pair, rr.weights["audio"]))}
            fig = out["timbres"][label] = {way: metrics_from_ranks(r) for way, r in ways.items()}
            fig["pitched share"] = pitched
            print(f"{Path(out['run']).name} {label}: audio→lyrics MedR/N run {fig['run alone']['MedR/N']:.3f} → pair "
                  f"{fig['pair scorer alone']['MedR/N']:.3f} → both {fig['both']['MedR/N']:.3f} (R@10 "
                  f"{fig['run alone']['R@10']:.1f} → {fig['both']['R@10']:.1f}); pitched {100 * pitched:.0f} %; "
                  f"cut and embedded in {cut_s:.0f} s", file=sys.stderr, flush=True)

    print(f"\n| timbre | seeds | audio→lyrics MedR/N: run alone | pair scorer alone | both | R@10: run alone | both |")
    print("|---|---|---|---|---|---|---|")
    for label in records[0]["timbres"]:
        def cell(way, metric):
            return mean_std([r["timbres"][label][way][metric] for r in records], metric)
        print(f"| {label} | {len(records)} | {cell('run alone', 'MedR/N')} | {cell('pair scorer alone', 'MedR/N')} | "
              f"{cell('both', 'MedR/N')} | {cell('run alone', 'R@10')} | {cell('both', 'R@10')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
