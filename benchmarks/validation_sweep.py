"""Compare run configurations on the **validation** split (never test), one run each.

    python benchmarks/validation_sweep.py --features FS.npz --method ugaar --inputs aligned \\
        --try epochs=10 --try epochs=10,candidates=64 --try epochs=10,seq_layers=1 [--threads 2]

Each ``--try`` is a comma-separated list of RunConfig overrides (values parsed
as JSON, else strings).  Prints, per configuration, the mean validation
MedR/N of the four lyrics directions, audio↔sheet R@1, seconds per epoch and
the selected epoch; ``--json`` also writes them.  This is how the presets of
``RunConfig.for_method`` and ``benchmarks/paper_tables.py`` were chosen
(docs/training.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LYRICS = ("audio→lyrics", "lyrics→audio", "sheet→lyrics", "lyrics→sheet")


def parse_try(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True)
    parser.add_argument("--method", default="ugaar")
    parser.add_argument("--inputs", default="aligned")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--try", dest="tries", action="append", default=[], metavar="K=V,K=V")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from model.feature_set import FeatureSet
    from model.ugaar import RunConfig, train

    fs = FeatureSet.load(args.features)
    rows = []
    for text in args.tries or [""]:
        overrides = parse_try(text)
        cfg = RunConfig.for_method(args.method, inputs=args.inputs, seed=args.seed, log_every=50, **overrides)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ugaar-sweep-") as tmp:
            run = train(cfg, fs, tmp)
            history = [e for e in run.events() if type(e).__name__ == "EpochEvent"]
        seconds = time.perf_counter() - t0
        val = run.metrics["val"]
        row = {"method": args.method, "inputs": args.inputs, "overrides": overrides,
               "lyrics_medr_n": float(np.mean([val[d]["MedR/N"] for d in LYRICS])),
               "lyrics_r10": float(np.mean([val[d]["R@10"] for d in LYRICS])),
               "audio_sheet_r1": float(np.mean([val[d]["R@1"] for d in ("audio→sheet", "sheet→audio")])),
               "selected_epoch": run.metrics.get("selected_epoch"),
               "seconds_per_epoch": float(np.mean([e.seconds for e in history])) if history else 0.0,
               "seconds": seconds,
               "val_curve": [round(float(np.mean([e.metrics[d]["MedR/N"] for d in LYRICS])), 4) for e in history]}
        rows.append(row)
        print(f"{args.method:>12} {args.inputs:>7} {text or '(preset)':<40} val lyrics MedR/N "
              f"{row['lyrics_medr_n']:.4f}  R@10 {row['lyrics_r10']:5.1f} %  a↔s R@1 {row['audio_sheet_r1']:5.1f} %  "
              f"epoch {row['selected_epoch']}  {row['seconds_per_epoch']:.0f} s/epoch", flush=True)
        print(f"{'':>21} curve {row['val_curve']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
