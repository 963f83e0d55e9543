"""How much of the timbre gap is onset detection? A trained run's audio retrieval with the notes' own onsets.

``benchmarks/timbre_model.py`` found that a run ranks held-out strings, flute
and choir renderings far below piano, and that the onset detector finds other
onsets on them (median 16, 23 and 9 per 20-note item).  This script cuts the
audio tokens of each rendering twice — at the detected onsets, as the run's
features were cut, and at the notes' true onsets (the *oracle*: what a perfect
detector would give) — embeds them with the run's encoders and ranks them
with the run against the split's original sheets and lyrics.  The gap
between the two rows is what any onset detector could win; what stays is the
per-onset CNN vector's timbre dependence.

A measurement, not a product path: a user's recording has no note list.

Usage::

    python benchmarks/onset_oracle.py RUN RENDERED [RENDERED ...] [--split test] [--json OUT]

``RENDERED``: folders written by ``ugaar dataset render-audio`` and embedded by
``ugaar features extract --encoders <run's encoders>`` (``timbre_model.py``
leaves them under ``~/.cache/ugaar/timbre_model/<dataset>``).
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

from onset_probe import true_onsets  # noqa: E402
from timbre_model import rendered_features  # noqa: E402

DIRECTIONS = ("audio→sheet", "sheet→audio", "audio→lyrics", "lyrics→audio")


def oracle_rows(sample, row_s: float, n_rows: int, late_rows: int) -> np.ndarray:
    """The rows of the item's note onsets (first at 0), shifted as the run's detector marks them."""
    rows = np.round(true_onsets(sample) / row_s).astype(np.int64) + late_rows
    return np.unique(np.clip(rows, 0, max(n_rows - 1, 0)))


def audio_tokens(rows_per_item, onsets_per_item, encoders, config):
    """Padded audio tokens and lengths, cut at the given onset rows (``None``: the configured detector)."""
    from model.feature_set import pad_sequences
    from model.features.tokens.sequences import AUDIO_SCALARS, audio_segments, tokens_from_segments

    segments = [audio_segments(rows, config, onsets=on, onset_net=encoders.onset_net)
                for rows, on in zip(rows_per_item, onsets_per_item)]
    model = encoders.model.eval()
    tokens = tokens_from_segments(model.audio.forward_pooled, segments)
    return pad_sequences(tokens, config.sequence_max_len, config.embed_dim + len(AUDIO_SCALARS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("rendered", nargs="+")
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from model.errors import UgaarError

    try:
        return _oracle(args, parser)
    except (UgaarError, OSError) as exc:  # a missing or damaged run, dataset or feature file: its message
        parser.exit(1, f"{parser.prog}: error: {exc}\n")


def _oracle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import torch

    from model.data.dataset import Dataset
    from model.feature_set import FeatureSet, SequenceInput
    from model.features.config import FeatureConfig
    from model.features.extract import inputs_cache_path, load_cached_inputs, load_encoders
    from model.features.tokens.sequences import audio_rows, detect_onsets
    from model.search.evaluation import retrieval_metrics
    from model.ugaar import Run

    torch.set_num_threads(2)
    run = Run.open(args.run)
    if run.config.inputs != "aligned":
        parser.error(f"{args.run} trains on {run.config.inputs} inputs; the oracle cuts aligned tokens")
    base = FeatureSet.load(run.config.features_path)
    encoders_dir = run.features_meta.get("encoders_dir")
    if not encoders_dir:
        parser.error(f"{args.run} does not record its encoders_dir")
    encoders = load_encoders(encoders_dir)
    config = FeatureConfig.from_json(Path(encoders_dir) / "config.json").with_sequence_settings(base.meta["config"])
    row_s = config.stft_hop_s * config.audio_time_pool
    # the detector marks a rise one row late (``onset_envelope``'s ``flux``): the oracle is shifted the same way
    late = 1 if config.onset_method == "flux" else 0
    part = base.split(args.split)
    method = run.method()
    fixed = {m: method.embed_modality(m, part.input_of(m, "aligned")) for m in ("sheet", "lyrics")}

    results = []
    for folder in map(Path, args.rendered):
        data = Dataset.open(folder)
        cached = load_cached_inputs(inputs_cache_path(data, config), part.sample_ids)
        if cached is None:
            parser.error(f"{folder}: no cached front end for these samples; run `ugaar features extract "
                         f"{folder} --encoders {encoders_dir}` first")
        audio_inputs = cached[0]
        # the sequence encoder also reads the item's pooled CNN vector: the rendering's own
        rendered = rendered_features(folder, encoders_dir)
        if rendered is None:
            parser.error(f"{folder}: no features made with {encoders_dir}")
        where = {s: i for i, s in enumerate(rendered.sample_ids)}
        pooled = rendered.modality("audio")[[where[s] for s in part.sample_ids]]
        rows = [audio_rows(audio_inputs.data[audio_inputs.offsets[i]:audio_inputs.offsets[i + 1]])
                for i in range(len(part.sample_ids))]
        row = {"rendering": folder.name}
        for name, onsets in (("detected", [None] * len(rows)),
                             ("oracle", [oracle_rows(data.sample(s), row_s, len(r), late)
                                         for s, r in zip(part.sample_ids, rows)])):
            tokens, lengths = audio_tokens(rows, onsets, encoders, config)
            audio = method.embed_modality("audio", SequenceInput(pooled, tokens, lengths))
            metrics = retrieval_metrics({"audio": audio, **fixed}, run.config.metric)
            row[name] = {d: metrics[d] for d in DIRECTIONS}
            counts = [len(detect_onsets(r, config, encoders.onset_net)[: config.sequence_max_len]) if o is None
                      else len(o) for r, o in zip(rows, onsets)]
            row[name]["median_onsets"] = float(np.median(counts))
        results.append(row)
        d, o = row["detected"], row["oracle"]
        print(f"{folder.name}: a→s R@1 {d['audio→sheet']['R@1']:.1f} → {o['audio→sheet']['R@1']:.1f} %, "
              f"s→a {d['sheet→audio']['R@1']:.1f} → {o['sheet→audio']['R@1']:.1f} %",
              file=sys.stderr, flush=True)

    print(f"\n**Onset oracle through run {Path(args.run).name}: {args.split} split, onsets "
          f"{config.onset_method} (threshold {config.onset_delta:g} for flux)**\n")
    print("| rendering | onsets per item (median): detected / oracle | a→s R@1: detected / oracle | "
          "s→a R@1: detected / oracle | l→a MedR/N: detected / oracle |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        d, o = row["detected"], row["oracle"]
        print(f"| {row['rendering']} | {d['median_onsets']:g} / {o['median_onsets']:g} | "
              f"{d['audio→sheet']['R@1']:.1f} / {o['audio→sheet']['R@1']:.1f} | "
              f"{d['sheet→audio']['R@1']:.1f} / {o['sheet→audio']['R@1']:.1f} | "
              f"{d['lyrics→audio']['MedR/N']:.3f} / {o['lyrics→audio']['MedR/N']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
