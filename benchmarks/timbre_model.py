"""Timbre benchmark through a trained run: what a user's retrieval gives when other instruments play.

``benchmarks/timbre.py`` measures the encoders' pooled CNN vectors.  This
script asks the same question of a trained run, as the window and
``ugaar query`` would answer it: the split is written again in each timbre of
``timbre.renderings()`` with ``ugaar dataset render-audio``, embedded with the
run's encoders by ``ugaar features extract`` (per-onset tokens included), and
the run ranks those audio items against the split's original sheets and
lyrics.  For a run on aligned inputs, the audio tokens' structure columns
(onset timing) do not depend on the instrument, which the pooled CNN vector
does.

Usage::

    python benchmarks/timbre_model.py DATASET RUN [--split test] [--work DIR] [--label L] [--json OUT]
    python benchmarks/timbre_model.py DATASET RUN --split val --rendered FOLDER [FOLDER ...]

The rendered folders are kept under ``--work`` (default
``~/.cache/ugaar/timbre_model/<dataset>``), so a second call re-uses them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from timbre import renderings  # noqa: E402

DIRECTIONS = ("audio→sheet", "sheet→audio", "audio→lyrics", "lyrics→audio")


def render_args(rendering) -> list[str]:
    """``ugaar dataset render-audio`` options for a :class:`Rendering`."""
    out = ["--audio-renderer", rendering.renderer]
    if rendering.soundfont:
        out += ["--soundfont", str(rendering.soundfont)]
    if rendering.renderer == "fluidsynth":
        out += ["--program", str(rendering.program)]
    if rendering.noise_snr_db is not None:
        out += ["--noise-snr", str(rendering.noise_snr_db), "--seed", str(rendering.seed)]
    return out


def folder_name(rendering) -> str:
    """A readable folder name per rendering: ``fluidsynth-FluidR3_GM-48``, ``builtin``, ``fluidsynth-0-snr20``."""
    parts = [rendering.renderer]
    if rendering.soundfont:
        parts.append(Path(rendering.soundfont).stem)
    if rendering.renderer == "fluidsynth":
        parts.append(str(rendering.program))
    if rendering.noise_snr_db is not None:
        parts.append(f"snr{rendering.noise_snr_db:g}-seed{rendering.seed}")
    return "-".join(parts)


def _ugaar(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "model", *args], check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def rendered_features(folder: Path, encoders_dir: str, settings: dict[str, Any] | None = None):
    """The newest FeatureSet of ``folder`` made with ``encoders_dir`` and, when given, these
    ``FeatureConfig`` ``settings`` (such as ``onset_method``); None when it has none."""
    from model.feature_set import FeatureSet, cached_feature_files
    from model.features.config import FeatureConfig

    for fs in map(FeatureSet.load, reversed(cached_feature_files(folder))):
        if fs.meta.get("encoders_dir") != str(encoders_dir):
            continue
        made = FeatureConfig.from_dict(fs.meta.get("config", {}))  # fields it predates: their defaults
        if all(getattr(made, k) == v for k, v in (settings or {}).items()):
            return fs
    return None


def split_evaluator(run, base, split: str) -> Callable[[Any], dict]:
    """``evaluate(rendered)``: the run's figures with ``rendered``'s audio against ``base``'s sheets and lyrics.

    The method is built and the split's sheets and lyrics embedded once; each
    rendering embeds only its audio.
    """
    from model.search.evaluation import retrieval_metrics

    part = base.split(split)
    method, kind = run.method(), run.config.inputs
    fixed = {m: method.embed_modality(m, part.input_of(m, kind)) for m in ("sheet", "lyrics")}

    def evaluate(rendered) -> dict:
        where = {s: i for i, s in enumerate(rendered.sample_ids)}
        order = np.array([where[s] for s in part.sample_ids])
        audio = method.embed_modality("audio", rendered.input_of("audio", kind)[order])
        metrics = retrieval_metrics({"audio": audio, **fixed}, run.config.metric)
        return {d: metrics[d] for d in DIRECTIONS}

    return evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="the run's dataset folder")
    parser.add_argument("run", help="a finished run folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--work", default=None, help="where the rendered folders are kept")
    parser.add_argument("--rendered", nargs="+", metavar="FOLDER", default=None,
                        help="rank these folders, written by `ugaar dataset render-audio --split SPLIT`, instead "
                             "of the standard renderings (validation renderings for choosing settings)")
    parser.add_argument("--label", default="")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    from model.feature_set import FeatureSet
    from model.ugaar import Run

    from model.errors import UgaarError

    if not (Path(args.dataset) / "manifest.json").is_file():
        parser.error(f"{args.dataset}: not a dataset folder (no manifest.json)")
    try:
        run = Run.open(args.run)
        base = FeatureSet.load(run.config.features_path)
    except (UgaarError, OSError, ValueError) as exc:
        parser.error(str(exc))
    if run.config.method in ("cca", "random"):
        parser.error(f"{args.run} is a {run.config.method} run; give a trained run with one common space")
    encoders = run.features_meta.get("encoders_dir")
    if not encoders:
        parser.error(f"{args.run} does not record its encoders_dir")
    from model.features.config import FeatureConfig

    made = FeatureConfig.from_dict(base.meta["config"])  # a config saved before onset_window: 3 rows
    onset_delta, onset_window, onset_method = made.onset_delta, made.onset_window, made.onset_method
    work = Path(args.work or Path.home() / ".cache" / "ugaar" / "timbre_model" / Path(args.dataset).name)
    evaluate = split_evaluator(run, base, args.split)
    rows = [{"rendering": f"the run's own {args.split} features (training timbre, from the dataset)",
             "figures": evaluate(base), "seconds": 0.0}]
    if args.rendered:
        missing = [f for f in args.rendered if not (Path(f) / "manifest.json").is_file()]
        if missing:
            parser.error(f"{missing[0]}: not a rendered dataset folder (no manifest.json)")
        chosen = [(Path(f).name, None, Path(f)) for f in args.rendered]
    else:
        chosen = [(label, rendering, None if isinstance(rendering, str) else work / folder_name(rendering))
                  for label, rendering in renderings()]
    for label, rendering, folder in chosen:
        if isinstance(rendering, str):
            rows.append({"rendering": label, "skipped": rendering})
            continue
        t0 = time.perf_counter()
        try:
            if rendering is not None and not (folder / "manifest.json").is_file():
                _ugaar("dataset", "render-audio", args.dataset, "--split", args.split, "--out", str(folder),
                       "--quiet", *render_args(rendering))
            # cut into tokens as the run's features were; features extract re-uses its own cache
            _ugaar("features", "extract", str(folder), "--encoders", str(encoders), "--threads", "2", "--quiet",
                   "--onset-delta", str(onset_delta), "--onset-window", str(onset_window),
                   "--onset-method", onset_method)
        except subprocess.CalledProcessError as exc:  # ugaar printed its one-line reason above
            parser.exit(1, f"{label}: `ugaar {' '.join(exc.cmd[3:5])}` failed; the renderings before it are kept "
                           f"in {work}\n")
        rendered = rendered_features(folder, encoders, {"onset_delta": onset_delta, "onset_window": onset_window,
                                                        "onset_method": onset_method})
        if rendered is None:
            parser.exit(1, f"{label}: {folder} has no features made with {encoders} and these onsets\n")
        figures = evaluate(rendered)
        rows.append({"rendering": label, "figures": figures, "seconds": time.perf_counter() - t0})
        print(f"{label}: a→s R@1 {figures['audio→sheet']['R@1']:.1f} %, s→a {figures['sheet→audio']['R@1']:.1f} %, "
              f"l→a MedR/N {figures['lyrics→audio']['MedR/N']:.3f}", file=sys.stderr, flush=True)

    title = (f"Timbre through run {Path(args.run).name}{' — ' + args.label if args.label else ''}: "
             f"{Path(args.dataset).name}, {args.split} split, encoders {Path(encoders).name}, "
             f"{run.config.method} on {run.config.inputs} inputs, onsets {onset_method}"
             + (f" (threshold {onset_delta:g} over {onset_window} rows)" if onset_method != "learned" else ""))
    print(f"\n**{title}**\n")
    print(f"| {args.split} rendering | audio→sheet R@1 | sheet→audio R@1 | audio→lyrics MedR/N | lyrics→audio MedR/N | "
          "render + extract |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        if "skipped" in row:
            print(f"| {row['rendering']} | – | – | – | – | skipped: {row['skipped']} |")
            continue
        f = row["figures"]
        print(f"| {row['rendering']} | {f['audio→sheet']['R@1']:.1f} | {f['sheet→audio']['R@1']:.1f} | "
              f"{f['audio→lyrics']['MedR/N']:.3f} | {f['lyrics→audio']['MedR/N']:.3f} | {row['seconds']:.0f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps({"title": title, "rows": rows}, indent=1, ensure_ascii=False),
                                   encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
