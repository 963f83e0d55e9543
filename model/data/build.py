"""Build a three-modality dataset folder from a source of lyric-aligned melodies.

Pipeline (``docs/dataset.md``): list items → parse + clean (worker
processes; a broken song is reported and skipped) → fingerprints → merge
duplicate songs (same notes or same lyrics) into their canonical song →
20-note windows → split by song → render audio and sheets (resumable) →
manifest (written last).

Resume: a small state file records the audio and sheet renderer versions.
A rendered file counts as done when it exists, is non-empty and the state
says the same renderer made it; every file is written atomically, so an
interrupted build run again finishes with the same result as an
uninterrupted one.

Shards: ``BuildConfig.shard = (K, N)`` builds only the items
``model.data.shards`` assigns to shard K and records in the manifest what
``model.data.merge`` needs to join N shards into the whole build.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from model.atomic import write_json
from model.data.dataset import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, BuildConfig, Dataset
from model.data.shards import SHARD_RECORD, shard_items, shard_record
from model.progress import CancelToken, ProgressCallback, report
from model.data.samples import assign_split, make_windows, sample_id_for
from model.data.song import Note, Sample, Song

STATE_NAME = ".build_state.json"
PARSE_CHUNK = 16       # .npy items per worker task: amortises process round trips
SLOW_PARSE_CHUNK = 2   # music21 parses a score in ~1 s: small tasks keep cancel prompt
AUDIO_CHUNK = 64       # samples per audio task


# --------------------------------------------------------------------- workers
# Worker-side functions are module level so a spawned process can import them.
# Each process keeps one renderer of each kind, created on first use:
# re-creating a FluidSynth synthesiser or loading the SoundFont per sample
# costs more than rendering.  In a pool worker the cache is this module's
# dict (the process ends with the pool); in-process, ``build_dataset`` passes
# its own dict so nothing outlives the build in the caller's process.

_WORKER_RENDERERS: dict[tuple, Any] = {}


def _audio_renderer(kind: str, sample_rate: int, cache: Optional[dict] = None,
                    soundfont: Optional[str] = None, program: int = 0) -> Any:
    cache = _WORKER_RENDERERS if cache is None else cache
    key = ("audio", kind, sample_rate, soundfont, program)
    if key not in cache:
        from model.render.audio import make_audio_renderer
        cache[key] = make_audio_renderer(kind, sample_rate, soundfont=soundfont, program=program)
    return cache[key]


def _sheet_renderer(resolution: Optional[int], batch_size: int,
                    cache: Optional[dict] = None) -> Any:
    cache = _WORKER_RENDERERS if cache is None else cache
    key = ("sheet", resolution, batch_size)
    if key not in cache:
        from model.render.sheet import SheetRenderer
        kwargs: dict[str, Any] = {"batch_size": batch_size}
        if resolution is not None:
            kwargs["resolution"] = resolution
        cache[key] = SheetRenderer(**kwargs)
    return cache[key]


def _close_renderers(cache: dict) -> None:
    for renderer in cache.values():
        if hasattr(renderer, "close"):
            renderer.close()
    cache.clear()


def _parse_chunk(kind: str, items: Sequence[str], cleaning_json: Any,
                 cache: Optional[dict] = None) -> list[dict[str, Any]]:
    """Parse and clean ``items``; one result dict per item, never raises for one item."""
    from model.data.cleaning import CleaningConfig, CleaningReport, clean_song, song_fingerprints
    from model.sources import SourceError, get_source

    source = get_source(kind)
    config = CleaningConfig.from_json(cleaning_json)
    results = []
    for item in items:
        try:
            song = source.read_song(item)
            counts = CleaningReport()
            song = clean_song(song, config, counts)
            fingerprints = song_fingerprints(song)
            results.append({"item": item, "song": song, "fingerprints": fingerprints,
                            "cleaning": counts.to_json()})
        except SourceError as exc:
            results.append({"item": item, "error": str(getattr(exc, "reason", exc))})
        except Exception as exc:  # noqa: BLE001 - one broken song must not stop the build
            results.append({"item": item, "error": f"{type(exc).__name__}: {exc}"})
    return results


def _render_audio_chunk(kind: str, sample_rate: int,
                        jobs: Sequence[tuple[str, tuple[Note, ...], str]],
                        soundfont: Optional[str] = None, program: int = 0,
                        cache: Optional[dict] = None) -> list[tuple[str, str]]:
    """Render and write audio for ``jobs``; return ``(sample_id, error)`` for failures."""
    from model.render.audio import write_audio
    renderer = _audio_renderer(kind, sample_rate, cache, soundfont, program)
    failures = []
    for sample_id, notes, out in jobs:
        try:
            write_audio(out, renderer.render(notes), renderer.sample_rate)
        except Exception as exc:  # noqa: BLE001 - report the sample and go on
            failures.append((sample_id, f"audio: {type(exc).__name__}: {exc}"))
    return failures


def _render_sheet_batch(resolution: Optional[int], batch_size: int,
                        jobs: Sequence[dict[str, Any]],
                        cache: Optional[dict] = None) -> list[tuple[str, str]]:
    """Engrave one batch of snippets; write ``sheet/<id>.json`` last as the done marker.

    Each job dict: ``sample_id``, ``notes``, ``tempo``, ``png`` (None when the
    feature sheet is already there), ``lyrics_png`` (None when no display
    sheet is wanted or it is already there), ``json``, and ``note_x`` /
    ``display`` from an existing marker.  The marker's ``display_sheet`` is
    true or false once a display sheet was attempted, null before.
    """
    from model.render.sheet import SheetJob
    renderer = _sheet_renderer(resolution, batch_size, cache)
    sheet_jobs = []
    for job in jobs:
        if job["png"] is not None:
            sheet_jobs.append(SheetJob(Path(job["png"]), job["notes"], with_lyrics=False,
                                       tempo_bpm=job["tempo"]))
        if job["lyrics_png"] is not None:
            sheet_jobs.append(SheetJob(Path(job["lyrics_png"]), job["notes"], with_lyrics=True,
                                       tempo_bpm=job["tempo"]))
    try:
        results = renderer.render_batch(sheet_jobs)
    except Exception as exc:  # noqa: BLE001 - a whole batch failing is reported per sample
        return [(job["sample_id"], f"sheet: {type(exc).__name__}: {exc}") for job in jobs]
    by_png = {str(r.job.out_png): r for r in results}
    failures = []
    for job in jobs:
        note_x = job["note_x"]
        if job["png"] is not None:
            plain = by_png.get(str(job["png"]))
            if plain is None or not plain.ok:
                reason = plain.error if plain is not None else "no result from the renderer"
                failures.append((job["sample_id"], f"sheet: {reason}"))
                continue
            xs = getattr(plain, "note_x", None)
            note_x = [float(x) for x in xs] if xs is not None else None
        display = job["display"]
        if job["lyrics_png"] is not None:
            lyr = by_png.get(str(job["lyrics_png"]))
            display = lyr is not None and lyr.ok
        write_json(job["json"], {"note_x": note_x, "display_sheet": display}, indent=None)
    return failures


# ---------------------------------------------------------------- scheduling

def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


def _run_tasks(func: Callable[..., Any], tasks: list[tuple], workers: int, stage: str,
               sizes: list[int], progress: Optional[ProgressCallback],
               cancel: Optional[CancelToken], cache: dict) -> list[Any]:
    """Run ``func(*task)`` for each task, in this process or a pool; results in task order.

    ``sizes[i]`` is the number of units in task i (for progress).  Cancel is
    checked between tasks: files already written are complete (atomic).
    ``cache`` holds the renderers when the tasks run in this process.
    """
    total = sum(sizes)
    done = 0
    report(progress, stage, 0, total)
    results: list[Any] = [None] * len(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            if cancel is not None:
                cancel.raise_if_set()
            results[i] = func(*task, cache=cache)
            done += sizes[i]
            report(progress, stage, done, total)
        return results
    # spawn, not fork: the GUI calls this from a thread, and forking a
    # multi-threaded process can deadlock the child.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending: dict[Future, int] = {}
        queue = iter(range(len(tasks)))
        try:
            # Keep a few tasks in flight per worker so cancel takes effect soon.
            for i in queue:
                pending[pool.submit(func, *tasks[i])] = i
                if len(pending) >= 2 * workers:
                    break
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = pending.pop(fut)
                    results[i] = fut.result()
                    done += sizes[i]
                    report(progress, stage, done, total)
                if cancel is not None:
                    cancel.raise_if_set()
                for i in queue:
                    pending[pool.submit(func, *tasks[i])] = i
                    if len(pending) >= 2 * workers:
                        break
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return results


# ---------------------------------------------------------------- stages

def _list_items(config: BuildConfig) -> list[str]:
    from model.sources import SourceError, get_source
    source = get_source(config.source)
    try:
        items = list(source.list_items(config.path))
    except SourceError as exc:
        # The whole source is unusable (not one song): the caller's error.
        raise ValueError(str(exc)) from exc
    if config.limit is not None:
        items = items[: max(0, int(config.limit))]
    return items


def _merge_cleaning(reports: Iterable[Any]) -> dict[str, Any]:
    from model.data.cleaning import CleaningReport
    total = CleaningReport()
    for data in reports:
        for rule, n in _report_counts(data).items():
            total.add(rule, n)
    return _as_dict(total.to_json())


def _report_counts(data: Any) -> dict[str, int]:
    data = _as_dict(data)
    counts = data.get("counts", data) if isinstance(data, dict) else {}
    return {str(k): int(v) for k, v in counts.items() if isinstance(v, (int, float))}


def _as_dict(data: Any) -> Any:
    return json.loads(data) if isinstance(data, str) else data


def _parse_all(config: BuildConfig, items: list[str], progress: Optional[ProgressCallback],
               cancel: Optional[CancelToken], cache: dict) -> list[dict[str, Any]]:
    cleaning_json = _as_dict(config.cleaning.to_json())
    # In-process there is no round trip to amortise: one item per task, so
    # cancel and progress follow every song.
    size = 1 if config.workers <= 1 else (PARSE_CHUNK if config.source == "lmd-npy"
                                          else SLOW_PARSE_CHUNK)
    chunks = list(_chunks(items, size))
    tasks = [(config.source, list(c), cleaning_json) for c in chunks]
    out = _run_tasks(_parse_chunk, tasks, config.workers, "parse",
                     [len(c) for c in chunks], progress, cancel, cache)
    return [r for chunk in out for r in chunk]


def parse_records(parsed: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plain JSON part of parse results: what :func:`choose_songs` reads.

    ``{"item", "error"}`` for a skipped item, else ``{"item", "song_id",
    "path", "fingerprints"}``; an ``index`` a result carries is kept.
    """
    records = []
    for r in parsed:
        rec: dict[str, Any] = {k: r[k] for k in ("index", "item") if k in r}
        if "error" in r:
            rec["error"] = r["error"]
        else:
            rec.update(song_id=r["song"].song_id, path=r["song"].path,
                       fingerprints=list(r["fingerprints"]))
        records.append(rec)
    return records


def choose_songs(records: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, list[str]],
                                                              list[dict[str, str]]]:
    """Keep one song per id and per duplicate group.

    A plain function of the parse records (see :func:`parse_records`), in
    item order, so a merge of shards (``model.data.merge``) decides from
    all shards' records exactly as one whole build decides.

    Returns the kept (canonical) song ids, sorted, ``{canonical: [merged
    ids]}`` and the skipped items.
    """
    from model.data.cleaning import group_duplicates
    skipped: list[dict[str, str]] = []
    paths: dict[str, str] = {}
    fingerprints: dict[str, Any] = {}
    for r in records:
        if "error" in r:
            skipped.append({"path": str(r["item"]), "reason": r["error"]})
            continue
        song_id = r["song_id"]
        if song_id in paths:
            skipped.append({"path": str(r["item"]),
                            "reason": f"same song id as {paths[song_id]}"})
            continue
        paths[song_id] = r["path"]
        fingerprints[song_id] = tuple(r["fingerprints"])
    canonical = group_duplicates(fingerprints)
    merged: dict[str, list[str]] = {}
    for song_id, canon in canonical.items():
        if song_id != canon:
            merged.setdefault(canon, []).append(song_id)
    kept = [sid for sid in sorted(paths) if canonical.get(sid, sid) == sid]
    return kept, {k: sorted(v) for k, v in merged.items()}, skipped


def _select_songs(parsed: list[dict[str, Any]]) -> tuple[list[Song], dict[str, list[str]],
                                                         list[dict[str, str]]]:
    """Keep one song per id and per duplicate group (see :func:`choose_songs`).

    Returns the canonical songs (sorted by id), ``{canonical: [merged ids]}``
    and the skipped items.
    """
    songs: dict[str, Song] = {}
    for r in parsed:
        if "error" not in r:
            songs.setdefault(r["song"].song_id, r["song"])
    kept, merged, skipped = choose_songs(parse_records(parsed))
    return [songs[sid] for sid in kept], merged, skipped


def _make_samples(config: BuildConfig, songs: list[Song]
                  ) -> tuple[list[Sample], dict[str, int], dict[str, dict[str, Any]]]:
    """Windows of every song; the window counts in total and per song (a shard records those)."""
    samples: list[Sample] = []
    dropped_silence = 0
    too_short = 0
    per_song: dict[str, dict[str, Any]] = {}
    for song in songs:
        windows, dropped = make_windows(song, config.window, config.all_windows,
                                        config.max_silence)
        dropped_silence += dropped
        if len(song.notes) < config.window:
            too_short += 1
        split = assign_split(song.song_id, config.split_seed, config.split_fractions)
        per_song[song.song_id] = {"windows": len(windows), "dropped_silence": dropped,
                                  "too_short": len(song.notes) < config.window}
        for start, notes in windows:
            samples.append(Sample(sample_id=sample_id_for(song.song_id, start),
                                  song_id=song.song_id, start=start, notes=notes, split=split,
                                  title=song.title, source=song.source))
    stats = {"kept": len(samples), "dropped_silence": dropped_silence,
             "songs_too_short": too_short}
    return samples, stats, per_song


def _renderer_identities(config: BuildConfig, cache: dict) -> dict[str, dict[str, Any]]:
    audio = _audio_renderer(config.audio_renderer, config.sample_rate, cache, config.soundfont, config.program)
    sheet = _sheet_renderer(config.sheet_resolution, config.sheet_batch_size, cache)
    identities = {
        "audio": {"name": audio.name, "version": audio.version,
                  "sample_rate": int(audio.sample_rate)},
        "sheet": {"name": sheet.name, "version": sheet.version,
                  "resolution": getattr(sheet, "resolution", config.sheet_resolution)},
    }
    # a chosen timbre is part of what the audio is (only when chosen: older identities unchanged)
    if config.soundfont:
        identities["audio"]["soundfont"] = str(config.soundfont)
    if config.program:
        identities["audio"]["program"] = int(config.program)
    return identities


def _prepare_state(root: Path, renderers: dict[str, dict[str, Any]]) -> None:
    """Record the renderers; forget files made by a different renderer version."""
    path = root / STATE_NAME
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        old = {}
    for kind, folders in (("audio", ["audio"]), ("sheet", ["sheet", "sheet_lyrics"])):
        if old.get(kind) != renderers[kind]:
            # Files from another renderer (or from before any state was
            # recorded) cannot be trusted: render them again.
            for folder in folders:
                if (root / folder).is_dir():
                    shutil.rmtree(root / folder)
    # Temporary files of writes a kill interrupted (see model.atomic).
    for folder in ("audio", "sheet", "sheet_lyrics"):
        if (root / folder).is_dir():
            for tmp in (root / folder).glob(".*.tmp*"):
                tmp.unlink(missing_ok=True)
    write_json(path, renderers)


def _done(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _render_audio(config: BuildConfig, root: Path, samples: list[Sample],
                  progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
                  cache: dict) -> tuple[list[tuple[str, str]], int]:
    todo = [(s.sample_id, s.notes, str(root / "audio" / f"{s.sample_id}.flac"))
            for s in samples if not _done(root / "audio" / f"{s.sample_id}.flac")]
    (root / "audio").mkdir(parents=True, exist_ok=True)
    chunks = list(_chunks(todo, AUDIO_CHUNK))
    tasks = [(config.audio_renderer, config.sample_rate, list(c), config.soundfont, config.program)
             for c in chunks]
    out = _run_tasks(_render_audio_chunk, tasks, config.workers, "audio",
                     [len(c) for c in chunks], progress, cancel, cache)
    return [f for chunk in out for f in chunk], len(todo)


def _sheet_todo(config: BuildConfig, root: Path, sample: Sample,
                tempo: float) -> Optional[dict[str, Any]]:
    """The sheet work one sample still needs, or None when it is done."""
    sid = sample.sample_id
    marker = root / "sheet" / f"{sid}.json"
    png = root / "sheet" / f"{sid}.png"
    lyrics_png = root / "sheet_lyrics" / f"{sid}.png"
    state: dict[str, Any] = {}
    if _done(marker) and _done(png):
        try:
            state = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            state = {}
    plain_done = bool(state)
    display = state.get("display_sheet") if plain_done else None
    # A display sheet is (re)tried when wanted and never attempted, or when
    # it was made but its file is gone; a rejected one is not retried.
    want_display = config.display_sheets and (
        not plain_done or display is None or (display is True and not _done(lyrics_png)))
    if plain_done and not want_display:
        return None
    return {"sample_id": sid, "notes": sample.notes, "tempo": tempo,
            "png": None if plain_done else str(png),
            "lyrics_png": str(lyrics_png) if want_display else None,
            "json": str(marker), "note_x": state.get("note_x"), "display": display}


def _render_sheets(config: BuildConfig, root: Path, samples: list[Sample],
                   tempos: dict[str, float], progress: Optional[ProgressCallback],
                   cancel: Optional[CancelToken], cache: dict
                   ) -> tuple[list[tuple[str, str]], int]:
    todo = [job for job in (_sheet_todo(config, root, s, tempos.get(s.song_id, 120.0))
                            for s in samples) if job is not None]
    for folder in ("sheet", "sheet_lyrics"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    chunks = list(_chunks(todo, max(1, config.sheet_batch_size)))
    tasks = [(config.sheet_resolution, config.sheet_batch_size, list(c)) for c in chunks]
    out = _run_tasks(_render_sheet_batch, tasks, config.workers, "sheet",
                     [len(c) for c in chunks], progress, cancel, cache)
    return [f for chunk in out for f in chunk], len(todo)


def _old_manifest(root: Path) -> Optional[dict[str, Any]]:
    try:
        data = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _sample_settings(config_json: dict[str, Any]) -> dict[str, Any]:
    """The build settings that decide the samples and their feature files."""
    return {k: v for k, v in config_json.items()
            if k not in ("out", "workers", "sheet_batch_size", "display_sheets")}


def content_hash(samples: Sequence[Sample], renderers: dict[str, Any]) -> str:
    """SHA-256 over sample ids, songs, starts, splits, notes and renderer identities."""
    h = hashlib.sha256()
    h.update(json.dumps(renderers, sort_keys=True).encode("utf-8"))
    for s in samples:
        row = [s.sample_id, s.song_id, s.start, s.split, [n.to_json() for n in s.notes]]
        h.update(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------- entry point

def build_dataset(config: BuildConfig, progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> Dataset:
    """Build (or resume) a dataset folder and return it opened.

    Parameters
    ----------
    config : BuildConfig
        What to build and where.
    progress : callable, optional
        Receives ``model.progress.Progress`` for stages ``list``, ``parse``,
        ``audio``, ``sheet``, ``manifest``.
    cancel : CancelToken, optional
        Checked between units of work; raises ``model.progress.Cancelled``.
        Everything written so far is complete and a later build resumes.

    Raises
    ------
    ValueError
        Unknown source kind, unreadable source path, or no samples at all.
    """
    cache: dict = {}  # this build's renderers when work runs in this process
    try:
        return _build(config, progress, cancel, cache)
    finally:
        _close_renderers(cache)


def _build(config: BuildConfig, progress: Optional[ProgressCallback],
           cancel: Optional[CancelToken], cache: dict) -> Dataset:
    t0 = time.perf_counter()
    root = Path(config.out)
    root.mkdir(parents=True, exist_ok=True)
    # An old manifest stays readable (e.g. by a feature extraction running
    # meanwhile) only while this run cannot invalidate it: same samples, same
    # renderers.  Otherwise the folder is an unfinished build until the new
    # manifest is written.
    old = _old_manifest(root)
    if old is not None and _sample_settings(old.get("config", {})) != _sample_settings(
            config.to_json()):
        old = None
    if old is None:
        (root / MANIFEST_NAME).unlink(missing_ok=True)
    timings: dict[str, float] = {}

    report(progress, "list", 0, 0)
    all_items = _list_items(config)
    # A shard builds its slice of the list; each item keeps its index in the
    # whole list so a merge reports skipped items in a whole build's order.
    indexed = (list(enumerate(all_items)) if config.shard is None
               else shard_items(all_items, config.shard))
    items = [item for _, item in indexed]
    report(progress, "list", len(items), len(items))
    if cancel is not None:
        cancel.raise_if_set()

    t = time.perf_counter()
    parsed = _parse_all(config, items, progress, cancel, cache)
    for (index, _), result in zip(indexed, parsed):
        result["index"] = index
    timings["parse_s"] = time.perf_counter() - t
    songs, merged, skipped = _select_songs(parsed)
    cleaning = _merge_cleaning(r["cleaning"] for r in parsed if "cleaning" in r)
    samples, window_stats, per_song = _make_samples(config, songs)
    # One shard of a small source may hold no song at all; the merge checks the whole.
    if not samples and config.shard is None:
        reasons = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5])
        raise ValueError(f"no samples from {config.source} {config.path or ''}: "
                         f"{len(items)} items, {len(songs)} usable songs"
                         + (f" (skipped: {reasons})" if reasons else ""))

    renderers = _renderer_identities(config, cache)
    if old is not None and old.get("renderers") != renderers:
        (root / MANIFEST_NAME).unlink(missing_ok=True)
    _prepare_state(root, renderers)
    if cancel is not None:
        cancel.raise_if_set()

    t = time.perf_counter()
    audio_failures, audio_rendered = _render_audio(config, root, samples, progress, cancel,
                                                   cache)
    timings["audio_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tempos = {s.song_id: float(s.tempo_bpm) for s in songs}
    sheet_failures, sheets_rendered = _render_sheets(config, root, samples, tempos,
                                                     progress, cancel, cache)
    timings["sheet_s"] = time.perf_counter() - t

    # A sample without audio or feature sheet is not a three-modality sample.
    failures: dict[str, str] = {}
    for sample_id, reason in audio_failures + sheet_failures:
        failures.setdefault(sample_id, reason)
    final = [s for s in samples if s.sample_id not in failures]
    per_song_final: dict[str, int] = {}
    for s in final:
        per_song_final[s.song_id] = per_song_final.get(s.song_id, 0) + 1

    song_rows = [{
        "song_id": s.song_id, "title": s.title, "source": s.source, "path": s.path,
        "n_notes": len(s.notes), "tempo_bpm": s.tempo_bpm,
        "split": assign_split(s.song_id, config.split_seed, config.split_fractions),
        "n_samples": per_song_final.get(s.song_id, 0),
        "merged": merged.get(s.song_id, []),
    } for s in songs]
    n_merged = sum(len(v) for v in merged.values())
    report_data = {
        "items": len(items),
        "parsed_songs": len(songs) + n_merged,
        "songs": len(songs),
        "skipped": skipped,
        "cleaning": cleaning,
        "duplicates": {"merged_songs": n_merged, "groups": len(merged)},
        "windows": window_stats,
        "render_failures": [{"sample_id": k, "reason": v} for k, v in sorted(failures.items())],
        "rendered_this_run": {"audio": audio_rendered, "sheet": sheets_rendered},
        "timings_s": {k: round(v, 3) for k, v in {**timings,
                                                  "total_s": time.perf_counter() - t0}.items()},
    }
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_json(),
        "renderers": renderers,
        "content_hash": content_hash(final, renderers),
        "report": report_data,
        "songs": song_rows,
        "samples": [{**s.to_json(), "lyrics": s.lyrics_text} for s in final],
    }
    if config.shard is not None:
        song_of = {s.sample_id: s.song_id for s in samples}
        manifest[SHARD_RECORD] = shard_record(
            config.shard, all_items, parse_records(parsed), per_song,
            [{"sample_id": k, "song_id": song_of[k], "reason": v}
             for k, v in sorted(failures.items())])
    report(progress, "manifest", 0, 1)
    write_json(root / MANIFEST_NAME, manifest, indent=None)
    report(progress, "manifest", 1, 1)
    return Dataset(root, manifest)
