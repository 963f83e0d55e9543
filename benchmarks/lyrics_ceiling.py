"""Where the lyrics scorers' R@10 stops: ensembles, alignment offsets, items with a rest inside a word, more data.

Issue 9's last bar is R@10 ≥ 40 % for the four lyrics directions; the pair scorers
reach 36–38 % on the LMD-full test split.  This script measures the levers left,
on runs whose scorers are saved (``ugaar lyrics-scorer`` or
``benchmarks/lyrics_rerank.py --save``), one run per seed:

* **by rests inside words**: the test ranks of the items whose melody has no rest
  before a syllable that continues a word, one, or more (:func:`rests_inside_words`);
* **seed ensembles**: the pair scores of 1, 2 or 3 seeds' scorers, standardised per
  line and summed, alone and mixed with one run's learned distance (weight chosen on
  validation, as ``ugaar lyrics-scorer`` chooses it);
* **global offsets at query time**: each pair also scored with the melody shifted one
  position either way (:func:`offset_scores`), the best of the three kept, a shift
  costing a penalty chosen on validation;
* ``--cca RUN``: the pair score mixed with a CCA run's distance instead.

With ``--train`` it also trains sheet scorers on changed training data and reports
their validation figures (the choice split; three seeds, those of the runs, except where
said):

* without the training items whose melody has a rest inside a word;
* on a random half, or three quarters, of the training songs;
* without the two engraving columns (note spacing and height in the image: every other
  sheet column comes from the notes);
* ``--release PATH``: the same, plus every further 20-note window of the training
  songs in the LMD-full release (the paper's dataset keeps a song's first two), whose
  notes and syllables need no rendering; ``--extra-epochs`` passes over them, on
  ``--extra-seeds`` (default: the first run's).

Usage::

    python benchmarks/lyrics_ceiling.py RUN [RUN ...] [--cca RUN] [--train] [--release PATH]
                                        [--extra-epochs 5] [--extra-seeds 0] [--json OUT]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

#: Shifts of the melody against the line tried at query time, and the penalties a shift may cost.
OFFSETS = (-1, 0, 1)
PENALTIES = (1.0, 2.0, 3.0, 5.0)
#: Items grouped by how many rests fall inside a word of their line.
REST_GROUPS = (("no rest inside a word", lambda n: n == 0), ("one", lambda n: n == 1),
               ("two or more", lambda n: n >= 2))
#: Fractions of the training songs kept in the data-size variants.
FRACTIONS = (0.5, 0.75)
#: The sheet tokens' first columns, measured in the engraved image (note spacing, height on the staff).
ENGRAVING_COLUMNS = 2


def rests_inside_words(notes: Sequence[Any]) -> int:
    """How many notes of a window follow a rest although their syllable continues a word.

    A rest between two syllables of one word is rare in sung English; in the LMD-full
    release about a quarter of the windows have one (where a melisma's further notes
    were left out, or the syllables sit one note off), and their lines rank far lower.
    """
    return sum(1 for note in list(notes)[1:] if not note.word_start and (note.rest_beats or 0) > 0)


def offset_scores(scorer: Any, lyrics: tuple[np.ndarray, np.ndarray], music: tuple[np.ndarray, np.ndarray],
                  offsets: Sequence[int] = OFFSETS, chunk: Optional[int] = None) -> dict[int, np.ndarray]:
    """(lines × melodies) pair scores with the melody's positions shifted by each offset.

    Offset *k* pairs syllable *i* with note (or onset) *i + k*; a syllable whose partner
    would lie outside the window adds nothing, and a padded melody position counts as the
    scorer counts it.  Offset 0 is :func:`model.search.lyrics_rerank.score_matrix`; ``chunk``
    lines at a time as there (None: as many as its memory bound allows).
    """
    import torch

    from model.search.lyrics_rerank import score_encoded_matrix

    def shifted(h: torch.Tensor, k: int) -> torch.Tensor:
        """Position i holds position i + k (zeros past either end)."""
        out = torch.zeros_like(h)
        if k > 0:
            out[:, :-k] = h[:, k:]
        elif k < 0:
            out[:, -k:] = h[:, :k]
        else:
            out = h
        return out

    scorer.eval()
    out = {}
    with torch.no_grad():
        lm = torch.as_tensor(lyrics[1])
        lh, lrep = scorer.encode("lyrics", torch.as_tensor(lyrics[0]), lm)
        mh, mrep = scorer.encode("music", torch.as_tensor(music[0]), torch.as_tensor(music[1]))
        for k in offsets:
            # a syllable whose partner would lie past the window is left out like a padded one
            has_partner = shifted(torch.ones(1, lm.shape[1], 1), k)[0, :, 0]
            out[k] = score_encoded_matrix(scorer, (lh, lrep), lm * has_partner, (shifted(mh, k), mrep),
                                          chunk).numpy()
    return out


def best_offset(scores: dict[int, np.ndarray], penalty: float) -> np.ndarray:
    """The unshifted score, or a shifted one less ``penalty`` where that is higher."""
    shifted = np.max([s for k, s in scores.items() if k != 0], axis=0)
    return np.maximum(scores[0], shifted - penalty)


def figures(scores: np.ndarray, transposed: Optional[np.ndarray] = None,
            higher_is_better: bool = True) -> dict[str, float]:
    """MedR/N and R@10 of both directions: lines → melodies from ``scores`` (lines × melodies), melodies →
    lines from ``transposed`` (melodies × lines; default ``scores.T``, for scores that are not
    standardised per query)."""
    from model.search.evaluation import metrics_from_ranks
    from model.search.lyrics_rerank import ranks_from_scores

    lower = not higher_is_better
    other = np.asarray(scores).T if transposed is None else transposed
    a = metrics_from_ranks(ranks_from_scores(scores, lower_is_better=lower))
    b = metrics_from_ranks(ranks_from_scores(other, lower_is_better=lower))
    return {"l2m MedR/N": a["MedR/N"], "m2l MedR/N": b["MedR/N"], "l2m R@10": a["R@10"], "m2l R@10": b["R@10"]}


def mixed_figures(distances: dict[str, np.ndarray], pair: dict[str, np.ndarray],
                  pair_transposed: Optional[np.ndarray] = None) -> dict[str, float]:
    """:func:`figures` on test of the learned distance and the pair score mixed with the weight chosen on
    validation (:func:`model.search.lyrics_rerank.choose_weight`), each direction standardised per query
    as ``ugaar lyrics-scorer`` mixes them.  ``pair_transposed``: the test pair scores with melodies as
    rows, where they are not ``pair["test"].T`` (a seed ensemble standardises per query)."""
    from model.search.lyrics_rerank import choose_weight, combined_scores

    weight, _ = choose_weight(distances["val"], pair["val"])
    d = distances["test"]
    other = pair["test"].T if pair_transposed is None else pair_transposed
    return {**figures(combined_scores(d, pair["test"], weight), combined_scores(d.T, other, weight),
                      higher_is_better=False), "weight": weight}


def table(rows: list[tuple[str, list[dict[str, float]]]], keys=("l2m MedR/N", "m2l MedR/N", "l2m R@10", "m2l R@10"),
          medr_places: int = 3) -> str:
    """A markdown table: one row per (name, cells of each seed), mean ± std of each key."""
    from lyrics_rerank import mean_std

    out = ["| " + " | ".join(("",) + tuple(keys)) + " |", "|" + "---|" * (len(keys) + 1)]
    for name, cells in rows:
        out.append(f"| {name} | " + " | ".join(mean_std([c[k] for c in cells], k.split()[-1],
                                                             medr_places if k.endswith("MedR/N") else None)
                                                    for k in keys) + " |")
    return "\n".join(out)


def query_time(runs: Sequence[str], cca: Optional[str]) -> dict[str, Any]:
    """Everything measured on the runs' saved scorers, without training."""
    from model.feature_set import FeatureSet
    from model.data.dataset import Dataset
    from model.search.evaluation import distance_matrix
    from model.search.lyrics_rerank import LyricsReranker, ranks_from_scores, standardise_rows
    from model.ugaar import Run
    from onset_count_ranks import rank_figures

    fs, per_seed = None, []
    for run_dir in runs:
        run = Run.open(run_dir)
        fs = fs or FeatureSet.load(run.config.features_path)
        reranker = LyricsReranker.load(run_dir, fs)
        if reranker is None:
            raise SystemExit(f"{run_dir}: no lyrics_scorer.pt (train it: ugaar lyrics-scorer {run_dir})")
        method, seed = run.method(), {}
        for side in reranker.scorers:
            for split in ("val", "test"):
                rows = np.nonzero(np.asarray(fs.splits) == split)[0]
                part = fs.split(split)
                lyr = method.embed_modality("lyrics", part.input_of("lyrics", "aligned"), partner=side)
                mus = method.embed_modality(side, part.input_of(side, "aligned"), partner="lyrics")
                lx, lm = reranker.library["lyrics"]
                mx, mm = reranker.library[side]
                seed[(side, split)] = {
                    "distance": np.asarray(distance_matrix(lyr, mus, run.config.metric)),
                    "offsets": offset_scores(reranker.scorers[side], (lx[rows], lm[rows]), (mx[rows], mm[rows]))}
        per_seed.append(seed)
        print(f"{Path(run_dir).name}: scored", file=sys.stderr, flush=True)
    samples = {s.sample_id: s for s in Dataset.open(fs.meta["dataset_root"]).samples}
    test_rows = np.nonzero(np.asarray(fs.splits) == "test")[0]
    inside = np.array([rests_inside_words(samples[str(fs.sample_ids[i])].notes) for i in test_rows])
    out: dict[str, Any] = {"test items": len(test_rows), "sides": {}}
    cca_run = Run.open(cca) if cca else None
    cca_method = cca_run.method() if cca_run is not None else None
    for side in sorted({side for seed in per_seed for side, _ in seed}):
        def pair(seed: dict, split: str) -> np.ndarray:
            return seed[(side, split)]["offsets"][0]

        res: dict[str, Any] = {}
        res["scorer alone"] = [figures(pair(s, "test")) for s in per_seed]
        res["both"] = [mixed_figures({sp: s[(side, sp)]["distance"] for sp in ("val", "test")},
                                     {sp: pair(s, sp) for sp in ("val", "test")}) for s in per_seed]
        # seed ensembles: every combination of k seeds, each with its first member's distance
        for k in range(2, len(per_seed) + 1):
            alone, both = [], []
            for combo in itertools.combinations(range(len(per_seed)), k):
                # each seed's scores standardised per query (lines; melodies for the other direction)
                summed = {sp: sum(standardise_rows(pair(per_seed[i], sp)) for i in combo) for sp in ("val", "test")}
                summed_t = sum(standardise_rows(pair(per_seed[i], "test").T) for i in combo)
                alone.append(figures(summed["test"], summed_t))
                both.append(mixed_figures({sp: per_seed[combo[0]][(side, sp)]["distance"] for sp in ("val", "test")},
                                          summed, summed_t))
            res[f"{k} seeds' scorers, alone"] = alone
            res[f"{k} seeds' scorers, both"] = both
        # global offsets: the penalty with the best mean MedR/N of both directions on validation, per seed
        chosen, shifted = [], []
        for s in per_seed:
            val = {p: figures(best_offset(s[(side, "val")]["offsets"], p)) for p in PENALTIES}
            p = min(PENALTIES, key=lambda q: (val[q]["l2m MedR/N"] + val[q]["m2l MedR/N"], -q))
            chosen.append(p)
            shifted.append(figures(best_offset(s[(side, "test")]["offsets"], p)))
        res["offsets −1, 0, +1, scorer alone"] = shifted
        res["offset penalties chosen"] = chosen
        # by rests inside words (scorer alone, lyrics→melody)
        groups = {}
        for name, rule in REST_GROUPS:
            sel = rule(inside)
            groups[name] = [{"share": float(sel.mean()),
                             **rank_figures(ranks_from_scores(pair(s, "test"), lower_is_better=False), sel)}
                            for s in per_seed]
        res["by rests inside words"] = groups
        if cca_method is not None:
            d = {}
            for split in ("val", "test"):
                part = fs.split(split)
                lyr = cca_method.embed_modality("lyrics", part.input_of("lyrics", "aligned"), partner=side)
                mus = cca_method.embed_modality(side, part.input_of(side, "aligned"), partner="lyrics")
                d[split] = np.asarray(distance_matrix(lyr, mus, cca_run.config.metric))
            res["CCA alone"] = [figures(d["test"], higher_is_better=False)]
            res["pair score and CCA distance"] = [mixed_figures(d, {sp: pair(s, sp) for sp in ("val", "test")})
                                                  for s in per_seed]
        out["sides"][side] = res
    return out


def sheet_variants(runs: Sequence[str], release: Optional[str], extra_epochs: int,
                   extra_seeds: Optional[Sequence[int]]) -> dict[str, Any]:
    """Validation figures of sheet scorers trained on changed data (the defaults of ``ugaar lyrics-scorer``)."""
    import torch

    from model.data.dataset import Dataset
    from model.feature_set import FeatureSet
    from lyrics_rerank import SCORER_OPTIONS
    from model.search import lyrics_rerank as L
    from model.ugaar import Run

    runs_open = [Run.open(r) for r in runs]
    seeds = [r.config.seed for r in runs_open]
    fs = FeatureSet.load(runs_open[0].config.features_path)
    splits = np.asarray(fs.splits).astype(object)
    songs = np.asarray(fs.song_ids)
    dataset = Dataset.open(fs.meta["dataset_root"])
    samples = {s.sample_id: s for s in dataset.samples}
    inside = np.array([rests_inside_words(samples[str(sid)].notes) for sid in fs.sample_ids])

    # `ugaar lyrics-scorer`'s defaults, as the lyrics re-ranking benchmark reads them; the sheet side has no teacher
    defaults = {name: getattr(L, default) for name, (_, _, default) in SCORER_OPTIONS.items()}

    def config(seed: int, epochs: int = L.EPOCHS_DEFAULT) -> Any:
        return L.PairScorerConfig(modality="sheet", seed=seed, **{**defaults, "epochs": epochs, "distill": 0.0})

    def best(trained: Any) -> dict[str, float]:
        h = trained.history[trained.best_epoch]
        return {"val MedR/N": h["val_medr_n"], "val R@10": h["val_r10"], "best epoch": trained.best_epoch,
                "training rows": trained.train_pairs, "seconds": trained.seconds}

    def with_splits(new: np.ndarray) -> Any:
        view = copy.copy(fs)
        view.splits = new
        return view

    out: dict[str, list[dict[str, float]]] = {"the default (saved scorers)": []}
    for run_dir in runs:
        state = torch.load(Path(run_dir) / L.RERANKER_FILE, map_location="cpu", weights_only=False)["info"]["sheet"]
        h = state["history"][state["best_epoch"]]
        out["the default (saved scorers)"].append({"val MedR/N": h["val_medr_n"], "val R@10": h["val_r10"]})
    name = "without the training items with a rest inside a word"
    for seed in seeds:
        dropped = splits.copy()
        dropped[(splits == "train") & (inside > 0)] = "dropped"
        out.setdefault(name, []).append(best(L.train_pair_scorer(with_splits(dropped), config(seed))))
        print(name, seed, out[name][-1], file=sys.stderr, flush=True)
    train_songs = np.unique(songs[splits == "train"])
    for fraction in FRACTIONS:
        name = f"{100 * fraction:.0f} % of the training songs"
        for seed in seeds:
            keep = np.random.default_rng(100 + seed).permutation(train_songs)[: int(round(fraction * len(train_songs)))]
            fewer = splits.copy()
            fewer[(splits == "train") & ~np.isin(songs, keep)] = "dropped"
            out.setdefault(name, []).append(best(L.train_pair_scorer(with_splits(fewer), config(seed))))
            print(name, seed, out[name][-1], file=sys.stderr, flush=True)

    # the engraving columns out, by hand: the rows train_pair_scorer reads, two columns zeroed
    train = np.nonzero(splits == "train")[0]
    val = np.nonzero(splits == "val")[0]

    def fit(cfg: Any, more: Optional[tuple[np.ndarray, ...]] = None) -> dict[str, float]:
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        lx, lm = L.training_rows(fs, "lyrics", cfg, train)
        mx, mm = L.training_rows(fs, "sheet", cfg, train)
        mx = mx.copy()
        mx[:, :, :ENGRAVING_COLUMNS] = 0.0
        rows = np.concatenate([train, np.arange(len(splits), len(lx))])
        if more is not None:
            first = len(lx)
            lx, lm = np.concatenate([lx, more[0]]), np.concatenate([lm, more[1]])
            mx, mm = np.concatenate([mx, more[2]]), np.concatenate([mm, more[3]])
            rows = np.concatenate([rows, np.arange(first, len(lx))])
        trained = L.fit_pair_scorer((lx, lm), (mx, mm), rows, val, cfg)
        trained.seconds = time.perf_counter() - t0
        return best(trained)

    name = "without the engraving columns"
    for seed in seeds:
        out.setdefault(name, []).append(fit(config(seed)))
        print(name, seed, out[name][-1], file=sys.stderr, flush=True)
    if release:
        more = further_windows(fs, dataset, release, config(seeds[0]))
        name = (f"without the engraving columns, with the training songs' {len(more[0]):,} further windows, "
                f"{extra_epochs} epochs")
        for seed in (extra_seeds if extra_seeds is not None else seeds[:1]):
            out.setdefault(name, []).append(fit(config(seed, epochs=extra_epochs), more))
            print(name, seed, out[name][-1], file=sys.stderr, flush=True)
    return out


def further_windows(fs: Any, dataset: Any, release: str, cfg: Any) -> tuple[np.ndarray, ...]:
    """Structure tokens (lyrics, sheet; each (tokens, mask)) of every 20-note window of the training songs
    beyond the two the dataset keeps, read from the release and cleaned as a build cleans it; the sheet's
    engraving columns zero (nothing is engraved)."""
    from model.data import build
    from model.data.dataset import BuildConfig
    from model.data.samples import make_windows
    from model.features.learned.lyrics import LyricsEncoder
    from model.features.tokens.phonetics import N_PHONETIC, syllable_phonetics
    from model.features.tokens.sequences import STRUCTURE_DIMS, lyrics_tokens, note_structure
    from model.search.lyrics_rerank import tokens_of

    t0 = time.perf_counter()
    # the dataset's own build settings (window, silence rule, cleaning), read from the release
    bc = dataclasses.replace(BuildConfig.from_json(dataset.config), path=release, workers=2, limit=None,
                             shard=None)
    parsed = build._parse_all(bc, build._list_items(bc), None, None, {})
    songs, _, _ = build._select_songs(parsed)
    train_songs = {s.song_id for s in dataset.samples if s.split == "train"}
    kept = {(s.song_id, s.start) for s in dataset.samples}
    encoder = LyricsEncoder.load(fs.meta["encoders_dir"])
    lyr, mus = [], []
    for song in songs:
        if song.song_id not in train_songs:
            continue
        for start, notes in make_windows(song, bc.window, True, bc.max_silence)[0]:
            if (song.song_id, start) in kept:
                continue
            syllables, starts = [n.syllable for n in notes], [n.word_start for n in notes]
            lyr.append(np.concatenate([lyrics_tokens(encoder, syllables, starts),
                                       syllable_phonetics(syllables, starts)], 1))
            mus.append(np.concatenate([np.zeros((len(notes), ENGRAVING_COLUMNS), np.float32),
                                       note_structure(notes)], 1))
    lengths = np.array([len(x) for x in lyr])
    lx, lm = tokens_of(np.stack(lyr), lengths, "lyrics", STRUCTURE_DIMS["lyrics"] + N_PHONETIC, cfg.positions,
                       cfg.repetition)
    mx, mm = tokens_of(np.stack(mus), lengths, "sheet", STRUCTURE_DIMS["sheet"], cfg.positions, cfg.repetition)
    print(f"{len(lyr):,} further windows of {len(train_songs):,} training songs in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr, flush=True)
    return lx, lm, mx, mm


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="aligned runs with a lyrics_scorer.pt, one per seed")
    parser.add_argument("--cca", default=None, help="a CCA run on the same features, to mix with instead")
    parser.add_argument("--train", action="store_true", help="also train sheet scorers on changed training data")
    parser.add_argument("--release", default=None, help="with --train: the LMD-full release folder, for the "
                                                        "training songs' further windows")
    parser.add_argument("--extra-epochs", type=int, default=5)
    parser.add_argument("--extra-seeds", type=int, nargs="*", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    from model.errors import UgaarError
    from model.search.lyrics_rerank import RERANKER_FILE
    from model.ugaar import Run

    # refuse what cannot be read before minutes of scoring: one line each, naming it
    for run_dir in [*args.runs, *([args.cca] if args.cca else [])]:
        try:
            Run.open(run_dir)
        except (UgaarError, OSError, ValueError) as exc:
            parser.error(str(exc))
    for run_dir in args.runs:
        if not (Path(run_dir) / RERANKER_FILE).is_file():
            parser.error(f"{run_dir}: no {RERANKER_FILE} (train it: ugaar lyrics-scorer {run_dir})")
    if args.release is not None and not Path(args.release).exists():
        parser.error(f"{args.release}: no such release folder or archive")
    torch.set_num_threads(2)
    record: dict[str, Any] = {"query time": query_time(args.runs, args.cca)}

    def write() -> None:  # after each part: a later part's failure keeps what was measured
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=1, ensure_ascii=False, default=float),
                                       encoding="utf-8")

    write()
    for side, res in record["query time"]["sides"].items():
        print(f"\n{side}, test (N = {record['query time']['test items']}), mean ± std over seeds\n")
        print(table([(k, v) for k, v in res.items() if isinstance(v, list) and v and isinstance(v[0], dict)]))
        print(f"\noffset penalties chosen on validation: {res['offset penalties chosen']}\n")
        print(table([(f"{k} ({100 * np.mean([c['share'] for c in v]):.1f} %)", v)
                     for k, v in res["by rests inside words"].items()], keys=("MedR/N", "R@10")))
    if args.train:
        record["sheet variants"] = sheet_variants(args.runs, args.release, args.extra_epochs, args.extra_seeds)
        print("\nsheet scorer, validation, lyrics→sheet, scorer alone\n")
        print(table(list(record["sheet variants"].items()), keys=("val MedR/N", "val R@10"), medr_places=4))
        write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
