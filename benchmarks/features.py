"""Feature-extractor benchmark: front-end rate, pre-training time per epoch,
extraction rate, end-to-end time, and quality (audio↔sheet, plain CCA).

Usage::

    python benchmarks/features.py [DATASET] [--threads 2] [--device cpu] [--frontend-samples 400]
                                  [--train] [--json OUT.json]

``DATASET`` defaults to ``~/.cache/ugaar/bench/lmd-full``.  Without
``--train`` the dataset's trained default encoders (or ``--encoders DIR``) and
cached features are used (``ugaar features extract DATASET`` first) and the pre-training figures
come from their ``pretrain.json``; with ``--train`` the whole pipeline runs
from scratch into a temporary encoders folder and its wall time is measured
(front-end cache included only if already on disk — it is reported apart).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
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
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    from model.dataset import Dataset
    from model.features import FeatureConfig, extract_features, load_encoders
    from model.features.extract import compute_inputs, load_or_compute_inputs
    from model.features.metrics import cca_six_directions
    from model.features.pretrain import embed_pairs

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
        enc_dir = Path(tempfile.mkdtemp(prefix="ugaar-bench-enc-"))
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
    out["audio_patches_per_sample"] = float(np.mean(audio_in.counts))
    out["sheet_windows_per_sample"] = float(np.mean(sheet_in.counts))

    # 4. end to end for this dataset (front end + skip-gram + pre-training + extraction)
    out["end_to_end_s_sum_of_parts"] = (n / out["frontend_samples_per_s"] + (out["skipgram_s"] or 0)
                                        + (out["pretrain_s_total"] or 0) + ex_s + ly_s)
    out["end_to_end_s_measured"] = wall

    # 5. quality
    out["audio_sheet"] = fs.meta["audio_sheet_figures"]
    out["cca_test"] = cca_six_directions(fs)
    out["lyrics_dim"] = int(fs.lyrics.shape[1])

    print(json.dumps(out, indent=1, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
