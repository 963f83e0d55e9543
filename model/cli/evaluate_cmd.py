"""``ugaar evaluate``: the paper's Tables I and II for one or more runs."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def evaluate_runs(run_dirs: list[str], dataset: str | None = None, split: str = "test",
                  device: str = "cpu") -> list[dict]:
    """One record per run (``method``, ``seed``, ``split``, ``metrics``, provenance).

    With ``dataset`` the run's models embed another dataset, whose features are
    computed with the run's own encoders (``features_meta.json: encoders_dir``).
    """
    from model.search.evaluation import code_version, retrieval_metrics
    from model.ugaar import Run

    if dataset:  # checked before any run loads, so a wrong path fails at once
        from model.validate import check_dataset_folder
        check_dataset_folder(dataset, f"--dataset {dataset}")
    version = code_version()
    records = []
    cache: dict[str, object] = {}
    for rd in run_dirs:
        run = Run.open(rd)
        if dataset:
            encoders = run.features_meta.get("encoders_dir")
            if not encoders:
                raise ValueError(f"{rd}: the run does not record its encoders_dir; cannot embed {dataset}")
            if encoders not in cache:
                from model.features import extract_features
                cache[encoders] = extract_features(dataset, encoders_dir=encoders, device=device)
            fs = cache[encoders]
            emb = run.embeddings(fs)
            splits = fs.splits
            dataset_hash = str(fs.meta.get("dataset_hash", ""))
        else:
            emb = run.embeddings()
            splits = run.splits
            dataset_hash = str(run.features_meta.get("dataset_hash", run.metrics.get("dataset_hash", "")))
        mask = np.ones(len(splits), bool) if split == "all" else (splits == split)
        if mask.sum() < 2:
            raise ValueError(f"{rd}: split {split!r} has {int(mask.sum())} samples; try --split all")
        metrics = retrieval_metrics({k: v[mask] for k, v in emb.items()}, run.config.metric)
        records.append({"method": run.config.method, "seed": run.config.seed, "split": split, "metrics": metrics,
                        "config": run.config.to_dict(), "dataset_hash": dataset_hash, "code_version": version,
                        "run_dir": str(run.run_dir)})
    return records


def run(args: argparse.Namespace) -> int:
    from model.search.evaluation import table_normalised, table_one, table_two, write_results

    records = evaluate_runs(args.runs, args.dataset, args.split, args.device)
    by_method: dict[str, list] = {}
    for rec in records:
        by_method.setdefault(rec["method"], []).append(rec["metrics"])
    print("Table I (R@1 %, MedR)\n")
    print(table_one(by_method))
    print("\nMedR / N (paper's pool ≈ 14,600)\n")
    print(table_normalised(by_method))
    print("\nTable II\n")
    print(table_two(by_method))
    out = Path(args.out)
    write_results(out.with_suffix(".csv"), out.with_suffix(".md"), records)
    print(f"\nwritten: {out.with_suffix('.csv')}, {out.with_suffix('.md')}")
    return 0


def add_parser(subparsers, name: str = "evaluate", help_text: str = "print the paper's Tables I and II for runs"):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (several seeds of a method are averaged)")
    p.add_argument("--dataset", metavar="DIR", help="evaluate on another dataset (features from the run's encoders)")
    p.add_argument("--split", choices=["test", "val", "train", "all"], default="test")
    p.add_argument("--out", default="ugaar-results", help="writes OUT.csv and OUT.md (default ./ugaar-results)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.set_defaults(func=run)
    return p
