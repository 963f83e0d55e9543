"""Feature-extractor benchmark: front-end rate, pre-training time per epoch,
extraction rate (pooled and per-position sequences), end-to-end time, and
quality (audio↔sheet, plain CCA).

Usage::

    python benchmarks/features.py [DATASET] [--threads 2] [--device cpu] [--frontend-samples 400]
                                  [--train] [--renderer-shift N] [--json OUT.json]

``DATASET`` defaults to ``~/.cache/ugaar/bench/lmd-full``.  Without
``--train`` the dataset's trained default encoders (or ``--encoders DIR``) and
cached features are used (``ugaar features extract DATASET`` first) and the pre-training figures
come from their ``pretrain.json``; with ``--train`` the whole pipeline runs
from scratch into the dataset's default encoders folder (replacing what is
there, so the app and the CLI then use them) and its wall time is measured;
the front end is included in that time only when its input cache is not
on disk yet (it is also reported apart, from the subset).

``--renderer-shift N`` (default: the whole test split) re-renders the audio of
N test samples with the *other* synthesiser (the built-in one when the
dataset was rendered with FluidSynth, and the reverse), embeds it with the
same encoders and reports audio↔sheet retrieval against the dataset's sheet
features, beside the figures of the dataset's own audio on the same samples.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default=str(Path.home() / ".cache/ugaar/bench/lmd-full"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frontend-samples", type=int, default=400)
    parser.add_argument("--train", action="store_true", help="run pre-training from scratch (slow)")
    parser.add_argument("--encoders", default=None,
                        help="trained encoders folder to measure (default: the dataset's default ones)")
    parser.add_argument("--renderer-shift", type=int, default=-1,
                        help="test samples re-rendered with the other synthesiser (-1: all, 0: skip)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from model.data.dataset import Dataset
    from model.features import FeatureConfig, extract_features, load_encoders
    from model.features.extract import (compute_inputs, default_encoders_dir, inputs_cache_path,
                                        load_or_compute_inputs)
    from model.features.learned.metrics import cca_six_directions
    from model.features.learned.pretrain import embed_pairs

    ds = Dataset.open(args.dataset)
    n = len(ds)
    out: dict = {"dataset": str(ds.root), "samples": n, "threads": args.threads, "device": args.device,
                 "splits": {s: len(ds.split_ids(s)) for s in ("train", "val", "test")},
                 "audio_renderer": ds.renderers.get("audio", {}).get("name")}
    cfg = FeatureConfig()

    # 1. front end (log-mel patches + staff windows), uncached, on a subset
    ids = [s.sample_id for s in ds.samples[: args.frontend_samples]]
    t0 = time.perf_counter()
    compute_inputs(ds, ids, cfg, workers=args.threads)
    fe_s = time.perf_counter() - t0
    out["frontend_samples_per_s"] = len(ids) / fe_s

    # 2. encoders: trained now (timed) or the dataset's default ones
    wall = None
    if args.train:
        enc_dir = default_encoders_dir(ds, cfg)
        out["frontend_cached_before_run"] = inputs_cache_path(ds, cfg).exists()
        t0 = time.perf_counter()
        fs = extract_features(ds, cfg, encoders_dir=enc_dir, device=args.device, force=True,
                              log=lambda line: print(line, file=sys.stderr))
        wall = time.perf_counter() - t0
    else:
        fs = extract_features(ds, cfg, encoders_dir=args.encoders, device=args.device)
    enc = load_encoders(fs.meta["encoders_dir"], args.device)
    history = enc.report.get("history", [])
    out["pretrain_epochs_run"] = len(history)
    out["pretrain_best_epoch"] = enc.report.get("best_epoch")
    out["pretrain_s_per_epoch"] = float(np.mean([h["seconds"] for h in history])) if history else None
    out["pretrain_s_per_epoch_with_val"] = (float(np.mean([h["seconds_total"] for h in history]))
                                            if history else None)
    out["pretrain_s_total"] = enc.report.get("pretrain_seconds")
    out["skipgram_s"] = enc.report.get("skipgram_seconds")
    out["train_samples"] = enc.report.get("train_samples")

    # 3. extraction rate (CNN forward over cached inputs, all samples)
    audio_in, sheet_in = load_or_compute_inputs(ds, enc.config)
    t0 = time.perf_counter()
    embed_pairs(enc.model, audio_in, sheet_in, args.device, enc.config.extract_batch)
    ex_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in ds.samples:
        enc.lyrics.encode_sample(s.syllables, [nt.word_start for nt in s.notes])
    ly_s = time.perf_counter() - t0
    out["extract_samples_per_s"] = n / (ex_s + ly_s)
    # per-position sequences (onsets, note windows, syllables): PNGs read again, audio from the cache
    from model.features.tokens.sequences import dataset_sequences
    t0 = time.perf_counter()
    dataset_sequences(ds, enc, audio_in, enc.config, args.device, workers=args.threads)
    seq_s = time.perf_counter() - t0
    out["sequences_s"] = seq_s
    out["sequences_samples_per_s"] = n / seq_s
    out["audio_patches_per_sample"] = float(np.mean(audio_in.counts))
    out["sheet_windows_per_sample"] = float(np.mean(sheet_in.counts))

    # 4. end to end for this dataset (front end + skip-gram + pre-training + extraction)
    out["end_to_end_s_sum_of_parts"] = (n / out["frontend_samples_per_s"] + (out["skipgram_s"] or 0)
                                        + (out["pretrain_s_total"] or 0) + ex_s + ly_s + seq_s)
    out["end_to_end_s_measured"] = wall

    # 5. quality
    out["audio_sheet"] = fs.meta["audio_sheet_figures"]
    out["cca_test"] = cca_six_directions(fs)
    out["lyrics_dim"] = int(fs.lyrics.shape[1])

    # 6. the other synthesiser on the same test samples
    if args.renderer_shift:
        out["renderer_shift"] = renderer_shift(ds, fs, args.renderer_shift, args.device)

    print(json.dumps(out, indent=1, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


def renderer_shift(ds, fs, limit: int, device: str) -> dict:
    """Audio↔sheet figures of test samples whose audio is rendered by the other synthesiser."""
    from model.features import load_embedder
    from model.features.learned.metrics import audio_sheet_figures
    from model.render.audio import fluidsynth_available

    own = (ds.renderers.get("audio") or {}).get("name", "builtin")
    other = "builtin" if own == "fluidsynth" else "fluidsynth"
    if other == "fluidsynth" and not fluidsynth_available()[0]:
        return {"skipped": "FluidSynth is not available"}
    test = fs.split("test")
    n = len(test) if limit < 0 else min(limit, len(test))
    if n < 2:
        return {"skipped": f"{n} test samples"}
    by_id = {s.sample_id: s for s in ds.samples}
    emb = load_embedder(fs.meta["encoders_dir"], device, audio_renderer=other)
    t0 = time.perf_counter()
    audio = np.stack([emb.notes_audio(by_id[str(sid)].notes) for sid in test.sample_ids[:n]])
    per_sample = (time.perf_counter() - t0) / max(1, n)
    return {"dataset_renderer": own, "other_renderer": other, "N": n,
            "render_and_embed_ms_per_sample": 1000 * per_sample,
            "dataset_audio": audio_sheet_figures(test.audio[:n], test.sheet[:n]),
            "other_audio": audio_sheet_figures(audio, test.sheet[:n])}


if __name__ == "__main__":
    sys.exit(main())
