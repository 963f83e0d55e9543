"""The paper's Tables I and II on the LMD-full benchmark features → docs/results.md.

Runs Random, CCA, Baseline, Baseline-GAN and UGAAR (3 seeds each; CCA is
deterministic and runs once) on cached features, evaluates every run on the
test split, and writes Table I, Table II and MedR/N next to the paper's
figures, with the configurations, seeds, dataset hash and code version.
Hyper-parameters are the ones selected on the validation split
(docs/training.md); the test split is only read here.

    python benchmarks/paper_tables.py [--features PATH.npz | --dataset DIR]
        [--inputs aligned paper] [--seeds 0 1 2] [--methods random cca baseline baseline-gan ugaar]
        [--workers 2] [--runs-dir ~/.cache/ugaar/paper_runs] [--md docs/results.md]

``--inputs`` names the input kinds to tabulate (RunConfig.inputs): ``aligned``
(per-position sequences, sequence encoders) and ``paper`` (the paper's
mean-pooled features); the Markdown file gets one part per kind.  Each run
uses one torch thread; ``--workers`` runs that many in parallel.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model.feature_set import cached_feature_files  # noqa: E402
from model.search.evaluation import (DIRECTION_NAMES, PAPER_POOL, PAPER_TABLE_ONE, code_version, write_results)  # noqa: E402

DEFAULT_DATASET = Path.home() / ".cache" / "ugaar" / "bench" / "lmd-full"
METHODS = ["random", "cca", "baseline", "baseline-gan", "ugaar"]

# Selected on the validation split (docs/training.md, "Hyper-parameters" and
# "Syllable-level alignment"); the presets of RunConfig.for_method hold the rest.
TUNED: dict[str, dict[str, dict]] = {
    "paper": {
        "random": {},
        "cca": {},
        "baseline": {"epochs": 80, "margin_alpha": 16.0},
        "baseline-gan": {"epochs": 80, "margin_alpha": 16.0, "w_bce": 0.1, "w_margin": 0.1},
        "ugaar": {"epochs": 80, "temperature_align": 0.05, "w_align": 2.0, "w_kl": 0.1, "w_policy": 0.1},
    },
    "aligned": {m: {} for m in METHODS},  # RunConfig's ALIGNED_PRESET holds the selected values
}


def _one(job: tuple[str, str, int, str, str, bool]) -> dict:
    inputs, method, seed, features_path, runs_dir, reuse = job
    import torch

    torch.set_num_threads(1)
    from model.feature_set import FeatureSet
    from model.ugaar import RunConfig, train

    fs = FeatureSet.load(features_path)
    cfg = RunConfig.for_method(method, seed=seed, threads=1, features_path=features_path, log_every=10,
                               inputs=inputs, **TUNED[inputs][method])
    run_dir = Path(runs_dir) / inputs / f"{method}-s{seed}"
    earlier = _finished_run(run_dir, cfg) if reuse else None
    if earlier is not None:
        run, seconds = earlier
    else:
        t0 = time.perf_counter()
        run = train(cfg, fs, run_dir)
        seconds = time.perf_counter() - t0
    if run.status != "finished":
        raise RuntimeError(f"{method} seed {seed}: {run.status}: {run.message}")
    return {"inputs": inputs, "method": method, "seed": seed, "split": "test", "metrics": run.metrics["test"],
            "val": run.metrics.get("val"), "config": cfg.to_dict(), "run_dir": str(run.run_dir),
            "dataset_hash": str(fs.meta.get("dataset_hash", "")), "seconds": seconds,
            "selected_epoch": run.metrics.get("selected_epoch"), "reused": earlier is not None}


def _finished_run(run_dir: Path, cfg) -> "tuple[object, float] | None":
    """A finished run of exactly this configuration in ``run_dir``, with its training seconds, or None."""
    from model.ugaar.run import Run

    try:
        run = Run.open(run_dir)
    except (OSError, ValueError):
        return None
    if run.status != "finished" or "test" not in run.metrics or run.config.to_dict() != cfg.to_dict():
        return None
    records = run_dir.parent / "records.json"
    try:
        seconds = next(r["seconds"] for r in json.loads(records.read_text()) if r["run_dir"] == str(run_dir))
    except (OSError, ValueError, StopIteration, KeyError):
        return None  # no timing to report: train again
    return run, float(seconds)


def _targets(records: list[dict], inputs: str) -> str:
    by: dict[str, list] = {}
    for r in records:
        by.setdefault(r["method"], []).append(r["metrics"])

    def mean(method: str, d: str, k: str) -> float:
        return float(np.mean([m[d][k] for m in by[method]]))

    lines = [f"## Targets ({'issue 9' if inputs == 'aligned' else 'issue 4'})", "",
             "| target | measured (UGAAR, test, mean over seeds) | met |", "|---|---|---|"]
    if "ugaar" in by:
        for d in ("audio→sheet", "sheet→audio"):
            v = mean("ugaar", d, "R@1")
            lines.append(f"| {d} R@1 ≥ 95 % | {v:.2f} % | {'yes' if v >= 95 else f'no (short by {95 - v:.2f} points)'} |")
        for d in ("audio→lyrics", "lyrics→audio", "sheet→lyrics", "lyrics→sheet"):
            paper = PAPER_TABLE_ONE["ugaar"][d][1] / PAPER_POOL
            v = mean("ugaar", d, "MedR/N")
            ok = v < paper
            lines.append(f"| {d} MedR/N < paper's {paper:.3f} | {v:.3f} | "
                         f"{'yes' if ok else f'no ({v / paper:.1f}× the paper)'} |")
            if inputs == "aligned":  # issue 9's bars: MedR ≤ 0.03 N and R@10 ≥ 40 %
                r10 = mean("ugaar", d, "R@10")
                lines.append(f"| {d} MedR/N ≤ 0.03 and R@10 ≥ 40 % | {v:.3f}, {r10:.1f} % | "
                             f"{'yes' if v <= 0.03 and r10 >= 40 else 'no'} |")
    order = [m for m in ("baseline", "baseline-gan", "ugaar") if m in by]
    if len(order) == 3:
        score = {m: float(np.mean([np.mean([r[d]["MedR/N"] for d in DIRECTION_NAMES]) for r in by[m]]))
                 for m in order}
        ok = score["ugaar"] <= score["baseline-gan"] <= score["baseline"]
        spread = {m: float(np.std([np.mean([r[d]["MedR/N"] for d in DIRECTION_NAMES]) for r in by[m]], ddof=1))
                  if len(by[m]) > 1 else 0.0 for m in order}
        lines.append("| UGAAR ≥ Baseline-GAN ≥ Baseline (mean MedR/N over six directions, lower is better; "
                     "± std over seeds) | "
                     + ", ".join(f"{m}: {score[m]:.4f} ± {spread[m]:.4f}" for m in order)
                     + f" | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", help="FeatureSet .npz (default: newest cache of --dataset)")
    parser.add_argument("--dataset", default=str(DEFAULT_DATASET))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--inputs", nargs="+", default=["aligned", "paper"], choices=list(TUNED))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs-dir", default=str(Path.home() / ".cache" / "ugaar" / "paper_runs"))
    parser.add_argument("--md", default=str(REPO / "docs" / "results.md"))
    parser.add_argument("--reuse", action="store_true",
                        help="keep finished runs of --runs-dir whose configuration is unchanged (their test "
                             "figures and training seconds come from that run); train the others")
    args = parser.parse_args()

    if args.features:
        features_path = Path(args.features)
    else:
        caches = cached_feature_files(args.dataset)
        if not caches:
            raise SystemExit(f"no cached features under {args.dataset}/features; run `ugaar features extract` first")
        features_path = caches[-1]
    from model.feature_set import FeatureSet

    fs = FeatureSet.load(features_path)
    meta = fs.meta
    n = {s: int((fs.splits == s).sum()) for s in ("train", "val", "test")}
    version = code_version(REPO)
    parts = []
    for inputs in args.inputs:
        parts.append(_tables_for(inputs, args, features_path, fs, meta, n, version))
    dataset = Path(str(meta.get("dataset_root", features_path))).name
    header = (f"# UGAAR and baselines on `{dataset}` (test split)\n\n"
              "One part per input kind (RunConfig.inputs): **aligned** — per-position sequences "
              "(syllables, audio onsets, sheet notes) read by sequence encoders, the default since issue 9 — "
              "and **paper** — the paper's mean-pooled features, kept for the replication. "
              "Produced by `python benchmarks/paper_tables.py`.\n")
    from model.atomic import write_text
    write_text(args.md, header + "\n".join(_merge_parts(Path(args.md), args.inputs, parts)))
    print(f"wrote {args.md}")


def _merge_parts(md: Path, inputs: list[str], parts: list[str]) -> list[str]:
    """The new parts, in the file's order, beside the parts of input kinds not run this time.

    ``--inputs aligned`` then replaces only the aligned part of an existing results file.
    """
    new = dict(zip(inputs, parts))
    old: dict[str, str] = {}
    if md.is_file():
        chunks = md.read_text(encoding="utf-8").split("\n## Part: ")[1:]
        for chunk in chunks:
            kind = chunk.split(" ", 1)[0]
            old[kind] = "## Part: " + chunk.rstrip("\n") + "\n"
    order = list(old) + [k for k in inputs if k not in old]  # the file's order, new kinds last
    return [new.get(k, old.get(k, "")) for k in order]


def _tables_for(inputs: str, args, features_path: Path, fs, meta: dict, n: dict, version: str) -> str:
    """Run every method and seed on one input kind; the Markdown part for it."""
    jobs = [(inputs, m, s if m != "cca" else 0, str(features_path), args.runs_dir, args.reuse)
            for m in args.methods for s in (args.seeds if m != "cca" else [0])]
    # longest first, so the two workers finish together
    weight = {"ugaar": 4, "baseline-gan": 3, "baseline": 2, "cca": 1, "random": 0}
    jobs.sort(key=lambda j: -weight[j[1]])
    t0 = time.perf_counter()
    print(f"{inputs}: {len(jobs)} runs on {features_path} with {args.workers} workers", flush=True)
    records = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for rec in pool.imap_unordered(_one, jobs):
            print(f"  {inputs} {rec['method']:>12} seed {rec['seed']}: {rec['seconds']:.0f}s, "
                  f"a→s R@1 {rec['metrics']['audio→sheet']['R@1']:.1f}, "
                  f"l→a MedR/N {rec['metrics']['lyrics→audio']['MedR/N']:.3f}", flush=True)
            records.append(rec)
    total = time.perf_counter() - t0
    records.sort(key=lambda r: (METHODS.index(r["method"]), r["seed"]))
    for r in records:
        r["code_version"] = version
    timing = "\n".join(f"| {m} | {len([r for r in records if r['method'] == m])} | "
                       f"{np.mean([r['seconds'] for r in records if r['method'] == m]):.0f} |"
                       for m in args.methods)
    notes = "\n".join([
        f"Input kind: **{inputs}**. Every figure is on the **test** split "
        f"(N = {n['test']}; train {n['train']}, val {n['val']}), hyper-parameters and epochs selected on "
        "validation only (docs/training.md). The paper's pool was ≈ 14,600 items, so raw MedR/MeanR are not "
        "comparable: use MedR/N. CCA is deterministic (one run).",
        "", f"- features: `{features_path.name}` (encoders {meta.get('checkpoint_hash', '?')}, "
        f"lyrics dim {fs.lyrics.shape[1]})",
        f"- wall time: {total / 60:.1f} min for {len(records)} runs, {args.workers} workers × 1 thread"
        + (f" ({sum(r['reused'] for r in records)} runs reused from an earlier invocation with the same "
           "configuration: their seconds are from that invocation)" if any(r["reused"] for r in records) else ""),
        "", "| method | runs | seconds per run |", "|---|---:|---:|", timing, "", _targets(records, inputs)])
    runs_dir = Path(args.runs_dir) / inputs
    csv_path = runs_dir / "results.csv"
    part_md = runs_dir / "results.md"
    write_results(csv_path, part_md, records, title=f"Part: {inputs} inputs", notes=notes)
    (runs_dir / "records.json").write_text(json.dumps(records, indent=1, default=str))
    print(f"{inputs}: {csv_path} in {total / 60:.1f} min", flush=True)
    # one level down, so each part's sections sit under its title
    return "\n".join("#" + line if line.startswith("#") else line
                     for line in part_md.read_text(encoding="utf-8").splitlines()) + "\n"


if __name__ == "__main__":
    main()
