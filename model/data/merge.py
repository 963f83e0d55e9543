"""Join the N shards of a dataset build into the dataset one whole build makes.

``ugaar dataset merge SHARD_DIRS… --out DIR``.  The shards must be disjoint and
complete (every ``K/N`` once, from the same source list and build settings,
rendered by the same renderers); anything else is a :class:`model.errors.UgaarError`
naming the folder and the problem.

The merged manifest is the whole build's: the same songs, samples, splits,
report and content hash.  Only what describes a run differs (``out``,
``workers``, ``timings_s``, ``rendered_this_run``), as between two whole builds.

* Duplicates.  A shard merges the duplicate songs it holds; two duplicates in
  different shards are each kept by their shard.  The merge groups the parse
  records of all shards again with the builder's own rule
  (``model.data.build.choose_songs``), keeps the canonical song (the
  smallest id in its group, which its own shard always kept) and leaves out
  the others' samples.  What it left out is listed in ``DIR/merge_report.json``
  and printed.
* Splits are a pure function of (seed, song id), so every shard already
  assigned the whole build's split.
* Files.  Each sample's files are hard-linked (copied across file systems)
  into ``DIR`` atomically (``model.atomic.link_or_copy``); the manifest is
  written last.  A merge killed midway, run again, places only what is
  missing.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from model.atomic import link_or_copy, write_json
from model.data.dataset import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, Dataset, DatasetError
from model.data.shards import SHARD_RECORD, format_shard, shard_of
from model.errors import UgaarError
from model.progress import CancelToken, ProgressCallback, report
from model.data.song import Sample

MERGE_REPORT_NAME = "merge_report.json"
# Settings that say where or how fast a shard ran; every other one must match.
RUN_SETTINGS = ("out", "workers", "sheet_batch_size", "shard")


# ---------------------------------------------------------------- reading and checks

def read_shard(folder: str | Path) -> dict[str, Any]:
    """A shard folder's manifest, checked to be a finished shard.

    Raises
    ------
    UgaarError
        Not a folder, not finished, not a dataset, or a whole build rather than a shard.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UgaarError(str(root), "no such shard folder")
    if not (root / MANIFEST_NAME).is_file():
        raise UgaarError(str(root), f"not a finished shard (no {MANIFEST_NAME})",
                         "run its `ugaar dataset build … --shard K/N` again to finish it")
    try:
        manifest = Dataset.open(root).manifest
    except DatasetError as exc:
        raise UgaarError(str(exc)) from None
    record = manifest.get(SHARD_RECORD)
    if not isinstance(record, dict) or not manifest.get("config", {}).get("shard"):
        raise UgaarError(str(root), "a whole build, not a shard (built without --shard)",
                         "pass only the folders of `ugaar dataset build … --shard K/N`")
    return manifest


def _settings(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest["config"].items() if k not in RUN_SETTINGS}


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"{key}={json.dumps(a.get(key))} vs {json.dumps(b.get(key))}"
    return ""


def check_shards(dirs: Sequence[Path], manifests: Sequence[dict[str, Any]]) -> None:
    """Raise a :class:`UgaarError` unless the shards are disjoint, complete and alike."""
    seen: dict[Path, Path] = {}
    for d in dirs:
        key = d.resolve()
        if key in seen:
            also = f" (also as {seen[key]})" if str(seen[key]) != str(d) else ""
            raise UgaarError(str(d), f"given twice{also}", "pass each shard's folder once")
        seen[key] = d
    first, ref = dirs[0], manifests[0]
    count = ref[SHARD_RECORD]["count"]
    by_index: dict[int, Path] = {}
    for d, m in zip(dirs, manifests):
        rec = m[SHARD_RECORD]
        name = format_shard((rec["index"], rec["count"]))
        if rec["count"] != count:
            raise UgaarError(str(d), f"is shard {name}, but {first} is one of {count}",
                             "merge shards of one build (the same N)")
        if rec["index"] in by_index:
            raise UgaarError(str(d), f"overlaps {by_index[rec['index']]}: both are shard {name}",
                             "pass each shard's folder once")
        by_index[rec["index"]] = d
        diff = _first_difference(_settings(m), _settings(ref))
        if diff:
            raise UgaarError(str(d), f"built with other settings than {first} ({diff})",
                             "build every shard from the same source with the same options")
        if m.get("renderers") != ref.get("renderers"):
            diff = _first_difference(m.get("renderers", {}), ref.get("renderers", {}))
            raise UgaarError(str(d), f"rendered by other renderers than {first} ({diff})",
                             "build every shard with the same renderer versions")
        if (rec["items_total"], rec["items_digest"]) != (ref[SHARD_RECORD]["items_total"],
                                                         ref[SHARD_RECORD]["items_digest"]):
            raise UgaarError(str(d), f"listed other source items than {first} "
                             f"({rec['items_total']} vs {ref[SHARD_RECORD]['items_total']} items)",
                             "build every shard from the same files")
    missing = [format_shard((k, count)) for k in range(count) if k not in by_index]
    if missing:
        have = ", ".join(f"{format_shard((k, count))} ({by_index[k]})" for k in sorted(by_index))
        raise UgaarError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                         f"missing: the merge needs all {count} shards and got {have}",
                         "build the missing ones with `ugaar dataset build … --shard K/N`")
    owner: dict[int, Path] = {}
    for d, m in zip(dirs, manifests):
        rec = m[SHARD_RECORD]
        for r in rec["parsed"]:
            if shard_of(r["item"], count) != rec["index"]:
                raise UgaarError(str(d), f"holds {r['item']}, which belongs to shard "
                                 f"{format_shard((shard_of(r['item'], count), count))}",
                                 "build the shard again")
            if r["index"] in owner:
                raise UgaarError(str(d), f"overlaps {owner[r['index']]}: both built {r['item']}")
            owner[r["index"]] = d
    total = ref[SHARD_RECORD]["items_total"]
    if len(owner) != total:
        raise UgaarError(", ".join(str(d) for d in dirs),
                         f"incomplete: the shards hold {len(owner)} of the source's {total} items",
                         "build the shards again (a build resumes) and merge again")


# ---------------------------------------------------------------- the plan

def plan_merge(dirs: Sequence[Path], manifests: Sequence[dict[str, Any]], out: Path
               ) -> tuple[dict[str, Any], list[tuple[int, str]], list[dict[str, Any]]]:
    """The merged manifest (without timings), which shard gives each sample, what was dropped.

    A pure function of checked shard manifests (:func:`check_shards`).

    Returns
    -------
    manifest : dict
        The whole build's manifest; ``report["timings_s"]`` still to fill.
    sources : list of (shard position, sample id)
        Where each merged sample's files are, in manifest order.
    dropped : list of dict
        Songs a shard kept that the whole set merges into a song of
        another shard: ``song_id``, ``dir``, ``canonical``, ``canonical_dir``.
    """
    from model.data.build import _merge_cleaning, choose_songs, content_hash

    records = sorted(((r, pos) for pos, m in enumerate(manifests)
                      for r in m[SHARD_RECORD]["parsed"]), key=lambda rp: rp[0]["index"])
    kept, merged, skipped = choose_songs([r for r, _ in records])
    owner: dict[str, int] = {}
    for r, pos in records:
        if "error" not in r:
            owner.setdefault(r["song_id"], pos)
    canonical_of = {sid: canon for canon, ids in merged.items() for sid in ids}

    rows = [{row["song_id"]: row for row in m["songs"]} for m in manifests]
    failures_of: list[dict[str, list[dict[str, str]]]] = []
    for m in manifests:
        per_song_failures: dict[str, list[dict[str, str]]] = {}
        for f in m[SHARD_RECORD]["render_failures"]:
            per_song_failures.setdefault(f["song_id"], []).append(
                {"sample_id": f["sample_id"], "reason": f["reason"]})
        failures_of.append(per_song_failures)
    samples_of: list[dict[str, list[dict[str, Any]]]] = []
    for m in manifests:
        per_song: dict[str, list[dict[str, Any]]] = {}
        for s in m["samples"]:
            per_song.setdefault(s["song_id"], []).append(s)
        samples_of.append(per_song)

    song_rows, samples, sources = [], [], []
    windows = {"kept": 0, "dropped_silence": 0, "songs_too_short": 0}
    failures: list[dict[str, str]] = []
    for sid in kept:
        pos = owner[sid]
        row = rows[pos].get(sid)
        if row is None:
            # Only when two songs that are not sharded together share an id.
            raise UgaarError(str(dirs[pos]), f"merged song {sid} into another song of this "
                             "shard, but over all shards it is the one to keep",
                             "build this source without --shard")
        song_rows.append({**row, "merged": merged.get(sid, [])})
        for s in samples_of[pos].get(sid, []):
            samples.append(s)
            sources.append((pos, s["sample_id"]))
        rec = manifests[pos][SHARD_RECORD]
        w = rec["windows"][sid]
        windows["kept"] += int(w["windows"])
        windows["dropped_silence"] += int(w["dropped_silence"])
        windows["songs_too_short"] += int(bool(w["too_short"]))
        failures.extend(failures_of[pos].get(sid, []))
    kept_set = set(kept)
    dropped = []
    for pos, m in enumerate(manifests):
        for row in m["songs"]:
            sid = row["song_id"]
            if sid not in kept_set:
                canon = canonical_of.get(sid)
                dropped.append({"song_id": sid, "dir": str(dirs[pos]), "canonical": canon,
                                "canonical_dir": str(dirs[owner[canon]]) if canon else None})

    ref = manifests[0]
    config = {k: (str(out) if k == "out" else v) for k, v in ref["config"].items()
              if k != "shard"}
    n_merged = sum(len(v) for v in merged.values())
    report_data = {
        "items": ref[SHARD_RECORD]["items_total"],
        "parsed_songs": len(kept) + n_merged,
        "songs": len(kept),
        "skipped": skipped,
        "cleaning": _merge_cleaning(m["report"].get("cleaning", {}) for m in manifests),
        "duplicates": {"merged_songs": n_merged, "groups": len(merged)},
        "windows": windows,
        "render_failures": sorted(failures, key=lambda f: f["sample_id"]),
        # Nothing is rendered by a merge: the shards did it.
        "rendered_this_run": {"audio": 0, "sheet": 0},
        "timings_s": {},
    }
    renderers = ref["renderers"]
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config,
        "renderers": renderers,
        "content_hash": content_hash([Sample.from_json(s) for s in samples], renderers),
        "report": report_data,
        "songs": song_rows,
        "samples": samples,
    }
    return manifest, sources, dropped


# ---------------------------------------------------------------- files

def _sample_files(shard: Path, sample_id: str) -> list[str]:
    """A sample's files relative to its folder; the sheet marker last, as the builder writes it."""
    files = [f"audio/{sample_id}.flac", f"sheet/{sample_id}.png"]
    if (shard / "sheet_lyrics" / f"{sample_id}.png").is_file():
        files.append(f"sheet_lyrics/{sample_id}.png")
    files.append(f"sheet/{sample_id}.json")
    return files


def _place_files(dirs: Sequence[Path], sources: Sequence[tuple[int, str]], out: Path,
                 progress: Optional[ProgressCallback], cancel: Optional[CancelToken]
                 ) -> dict[str, int]:
    from model.data.build import _done
    counts = {"linked": 0, "copied": 0, "present": 0}
    for folder in ("audio", "sheet", "sheet_lyrics"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    report(progress, "merge", 0, len(sources))
    for i, (pos, sample_id) in enumerate(sources):
        if cancel is not None:
            cancel.raise_if_set()
        for rel in _sample_files(dirs[pos], sample_id):
            if _done(out / rel):  # placed by a merge that was stopped
                counts["present"] += 1
                continue
            try:
                counts[link_or_copy(dirs[pos] / rel, out / rel)] += 1
            except FileNotFoundError:
                raise UgaarError(str(dirs[pos]), f"lists sample {sample_id} but has no {rel}",
                                 "build this shard again (it resumes) and merge again") from None
        report(progress, "merge", i + 1, len(sources))
    return counts


# ---------------------------------------------------------------- entry point

def merge_shards(shard_dirs: Sequence[str | Path], out: str | Path,
                 progress: Optional[ProgressCallback] = None,
                 cancel: Optional[CancelToken] = None) -> tuple[Dataset, dict[str, Any]]:
    """Merge finished shard folders into the dataset folder ``out``.

    Parameters
    ----------
    shard_dirs : sequence of path
        The folders of all N shards of one build, in any order.
    out : path
        Dataset folder to write (created; a merge interrupted there resumes).
    progress : callable, optional
        Receives ``model.progress.Progress`` for the stages ``merge`` and ``manifest``.
    cancel : CancelToken, optional
        Checked between samples; files placed so far are complete.

    Returns
    -------
    dataset : Dataset
        The merged dataset, opened.
    merge_report : dict
        The shards, the songs left out as duplicates of another shard's song
        and how the files were placed (also written to ``out/merge_report.json``).

    Raises
    ------
    UgaarError
        No folders, a folder that is not a finished shard, shards that
        overlap, are missing or differ in source or settings, ``out`` is a
        shard or holds another dataset; a file that cannot be written.
    """
    t0 = time.perf_counter()
    if not shard_dirs:
        raise UgaarError("SHARD_DIRS", "no shard folders given")
    dirs = [Path(d) for d in shard_dirs]
    root = Path(out)
    manifests = [read_shard(d) for d in dirs]
    check_shards(dirs, manifests)
    if root.exists() and any(root.resolve() == d.resolve() for d in dirs):
        raise UgaarError(str(root), "is one of the shards", "merge into another folder")
    manifest, sources, dropped = plan_merge(dirs, manifests, root)
    if not manifest["samples"]:
        raise UgaarError(", ".join(str(d) for d in dirs), "the shards hold no samples at all")

    from model.data.build import _old_manifest, _prepare_state, _sample_settings
    root.mkdir(parents=True, exist_ok=True)
    old = _old_manifest(root)
    if old is not None and _sample_settings(old.get("config", {})) != _sample_settings(
            manifest["config"]):
        raise UgaarError(str(root), "holds a dataset of other settings",
                         "merge into an empty folder")
    # Like a build: a folder without a manifest is unfinished until the end.
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    _prepare_state(root, manifest["renderers"])
    files = _place_files(dirs, sources, root, progress, cancel)

    merge_report = {
        "shards": [{"dir": str(d), "shard": format_shard((m[SHARD_RECORD]["index"],
                                                          m[SHARD_RECORD]["count"])),
                    "items": len(m[SHARD_RECORD]["parsed"]), "songs": len(m["songs"]),
                    "samples": len(m["samples"])} for d, m in zip(dirs, manifests)],
        "dropped_duplicates": dropped,
        "files": files,
        "content_hash": manifest["content_hash"],
    }
    elapsed = time.perf_counter() - t0
    shard_total = sum(float(m["report"].get("timings_s", {}).get("total_s", 0.0))
                      for m in manifests)
    manifest["report"]["timings_s"] = {"merge_s": round(elapsed, 3),
                                       "shards_total_s": round(shard_total, 3),
                                       "total_s": round(elapsed, 3)}
    report(progress, "manifest", 0, 1)
    write_json(root / MERGE_REPORT_NAME, merge_report)
    write_json(root / MANIFEST_NAME, manifest, indent=None)
    report(progress, "manifest", 1, 1)
    return Dataset(root, manifest), merge_report
