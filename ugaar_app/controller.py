"""The app's operations: open/build datasets, extract features, open runs.

Each operation runs the ``model/`` API on a worker thread (``TaskManager``)
and, back on the GUI thread, updates the plain-Python session.  Panels and
the first-launch flow call these; nothing here draws.
"""
from __future__ import annotations

import time
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, Signal

from model.progress import report

from .session import Session, app_home
from .workers import Task, TaskManager


def datasets_dir() -> Path:
    return app_home() / "datasets"


def default_dataset_dir() -> Path:
    return datasets_dir() / "music21-default"


def quick_dataset_dir() -> Path:
    return datasets_dir() / "music21-quick"


def runs_dir_for(dataset: Any) -> Path:
    """Runs of a dataset live inside it (as the CLI writes them)."""
    return Path(dataset.root) / "runs"


def find_cached_features(dataset: Any) -> Any:
    """The newest cached FeatureSet of ``dataset`` without computing anything (or None).

    Reads ``DATASET/features/<key>.npz`` with plain numpy: importing the
    extractors (torch) here would put seconds on the start-up path.
    """
    from model.feature_set import FeatureSet, cached_feature_files
    for path in reversed(cached_feature_files(dataset.root)):
        try:
            fs = FeatureSet.load(path)
        except Exception:  # noqa: BLE001 - partial or foreign file
            continue
        h = fs.meta.get("dataset_hash") or fs.meta.get("dataset_content_hash")
        if (h is None or h == dataset.content_hash) and len(fs) > 0:
            fs.meta.setdefault("cache_path", str(path))
            return fs
    return None


def list_runs(dataset: Any) -> list[dict[str, Any]]:
    """Run folders of ``dataset`` (newest first) with method, seed, status, validation R@1.

    A run whose ``config.json``, ``status.json`` or ``metrics.json`` is damaged
    is listed with status ``corrupt`` and the reason in ``problem`` (the message
    ``Run.open`` would raise), so one bad folder never hides the others.
    """
    from model.errors import UgaarError

    root = runs_dir_for(dataset)
    runs: list[dict[str, Any]] = []
    if not root.is_dir():
        return runs
    for d in root.iterdir():
        cfg = d / "config.json"
        if not d.is_dir() or not cfg.is_file():
            continue
        info: dict[str, Any] = {"run_dir": str(d), "name": d.name, "mtime": d.stat().st_mtime}
        try:
            info.update(_run_summary(d))
        except UgaarError as exc:
            info.update(method="?", seed="", status="corrupt", problem=str(exc))
        runs.append(info)
    runs.sort(key=lambda r: r["mtime"], reverse=True)
    return runs


def _run_summary(run_dir: Path) -> dict[str, Any]:
    """Method, seed, epochs, status and mean validation R@1 of a run folder.

    Reads the JSON files with ``model.validate`` (plain json: no torch on the
    GUI thread); raises :class:`model.errors.CorruptFileError` naming a damaged one.
    """
    from model.errors import CorruptFileError
    from model.validate import read_json_object

    config_path = run_dir / "config.json"
    data = read_json_object(config_path)
    data = data.get("config", data)
    if not isinstance(data, dict) or not isinstance(data.get("method", ""), str):
        raise CorruptFileError(str(config_path), "is not a run configuration (no method name)")
    info: dict[str, Any] = {"method": data.get("method", "?"), "seed": data.get("seed", "?"),
                            "epochs": data.get("epochs", "?")}
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        val = read_json_object(metrics_path).get("val") or {}
        r1 = [v["R@1"] for v in val.values() if isinstance(v, dict) and isinstance(v.get("R@1"), (int, float))] \
            if isinstance(val, dict) else []
        if r1:
            info["val_r1"] = sum(r1) / len(r1)  # percent
    for name in ("status.json", "state.json"):
        path = run_dir / name
        if path.is_file():
            status = read_json_object(path).get("status")
            info["status"] = status if isinstance(status, str) else "unknown"
    return info


def melody_reranker(dataset: Any, metric: str) -> tuple[Any, bool]:
    """The window's melody re-ranker of ``dataset`` for a run with ``metric``, and whether
    some of the dataset's pitch tracks are not cached yet.

    Reads the dataset's track cache and compiles the contour DTW, so call it
    on a worker: the first query then costs milliseconds on the GUI thread.
    The reranker never computes a track itself (``compute_missing=False``);
    :meth:`AppController.compute_pitch_tracks` hands it the missing ones.

    Returns
    -------
    (MelodyReranker or None, bool)
        None when the dataset's notes or cache cannot be read (results are
        then ranked by the learned space alone).
    """
    import numpy as np

    from model.search.melody_rerank import MelodyReranker, contour_distance
    try:
        reranker = MelodyReranker.from_dataset(dataset, metric, compute_missing=False)
        missing = reranker.missing_tracks([s.sample_id for s in dataset.samples])
    except Exception as exc:  # noqa: BLE001 - an optional refinement must not stop the run from opening
        print(f"melody re-ranking unavailable: {exc}")
        return None, False
    contour_distance(np.zeros(1), np.zeros(1))  # numba compiles the DTW on first use: here, not at a click
    return reranker, missing


def lyrics_reranker(run: Any, features: Any) -> tuple[Any, Optional[str]]:
    """The run's lyrics re-ranker (``RUN/lyrics_scorer.pt``, ``ugaar lyrics-scorer``) over ``features``' items.

    Builds every library item's structure tokens, so call it on a worker.

    Parameters
    ----------
    run : model.ugaar.Run
    features : FeatureSet or None
        The session's features (the library the scorer reads).

    Returns
    -------
    (LyricsReranker or None, str or None)
        None without a scorer file, features or aligned inputs; with a damaged
        or unusable file, None and a message naming it and how to mend it
        (an optional refinement must not stop the run from opening).
    """
    if features is None or getattr(run.config, "inputs", "paper") != "aligned":
        return None, None  # the scorer reads per-position tokens: only aligned runs can have one
    from model.errors import CorruptFileError, UgaarError
    from model.search.lyrics_rerank import RERANKER_FILE, LyricsReranker
    path = Path(run.run_dir) / RERANKER_FILE
    if not path.is_file():
        return None, None
    try:
        return LyricsReranker.load(run.run_dir, features), None
    except CorruptFileError as exc:
        return None, str(exc)
    except UgaarError as exc:  # e.g. the dataset its phonetic columns are read from is gone: say so as it is
        return None, f"{path}: not used: {exc}"
    except Exception as exc:  # noqa: BLE001 - e.g. features without the scorer's columns
        return None, (f"{path}: cannot be used with these features ({exc}); "
                      f"train it again: ugaar lyrics-scorer {run.run_dir}")


def load_run(run_dir: str | Path, features: Any = None, progress: Any = None, cancel: Any = None,
             dataset: Any = None) -> dict[str, Any]:
    """Open a run and build what the window needs: embeddings, ids, retrieval index,
    and with ``dataset`` its melody re-ranker (``melody``, ``pitch_tracks_missing``:
    :func:`melody_reranker`), and with ``features`` its lyrics re-ranker (``lyrics_rr``,
    ``lyrics_rr_error``: :func:`lyrics_reranker`).

    Uses the embeddings the run saved at its end (no model to load) and the
    approximate index stored next to them, built and stored on first open
    (minutes at a million items: call this on a worker, it reports
    ``progress`` and honours ``cancel``); a run without them (still running
    elsewhere) is embedded from ``features``.
    """
    from model.search.retrieval import RetrievalIndex
    from model.ugaar.run import Run
    run = Run.open(run_dir)
    try:
        emb = run.embeddings()
        ids = [str(i) for i in run.sample_ids]
        index = RetrievalIndex.from_run(run, progress=progress, cancel=cancel)
    except FileNotFoundError:
        if features is None:
            raise
        emb = run.embeddings(features)
        ids = [str(i) for i in features.sample_ids]
        index = RetrievalIndex(emb, ids, metric=run.config.metric, progress=progress, cancel=cancel)
    if index.cache_error:
        print(f"retrieval index not stored: {index.cache_error}")
    melody, missing = melody_reranker(dataset, run.config.metric) if dataset is not None else (None, False)
    lyrics_rr, lyrics_error = lyrics_reranker(run, features)
    return {"run": run, "embeddings": emb, "sample_ids": ids, "index": index,
            "melody": melody, "pitch_tracks_missing": missing,
            "lyrics_rr": lyrics_rr, "lyrics_rr_error": lyrics_error}


def map_preview(run_dir: str | Path, view: str = "shared") -> Optional[dict[str, Any]]:
    """The run's cached map layout for ``view`` and its ids, read with numpy only (None when not cached)."""
    import numpy as np

    from model.map.layout import DEFAULT_PARAMS, MODALITIES, load_cached, map_key, run_dir_metric
    path = Path(run_dir) / "embeddings.npz"
    if not path.is_file() or not any(Path(run_dir).glob("umap-*.npz")):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            emb = {m: data[m] for m in MODALITIES}
            ids = [str(i) for i in data["sample_ids"]]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # a damaged file: opening the run reports it
    coords = load_cached(Path(run_dir), map_key(emb, dict(DEFAULT_PARAMS), view, run_dir_metric(run_dir)))
    if coords is None or len(coords) != 3 * len(ids):
        return None
    return {"run_dir": str(run_dir), "coords": coords, "ids": ids, "view": view}


class AppController(QObject):
    """Long operations for the window, each a :class:`Task` with progress and cancel."""

    dataset_opened = Signal(object)
    run_opened = Signal(object)
    run_loading = Signal(str)
    map_preview = Signal(object)   # {"run_dir", "coords", "ids"} from the run's cache, before the run opens

    def __init__(self, session: Session, tasks: TaskManager, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.tasks = tasks
        self.last_open_seconds = 0.0
        #: The running "Pitch tracks" task and its dataset (:meth:`compute_pitch_tracks`).
        self._pitch_task: Optional[Task] = None
        self._pitch_dataset: Any = None
        self.remember: Callable[[str, Optional[str]], None] = lambda key, value: None

    # ---- datasets ------------------------------------------------------------------
    def open_dataset(self, path: str | Path, *, then: Optional[Callable[[], None]] = None,
                     run_dir: Optional[str] = None) -> Task:
        """Open a dataset (and its cached features, and optionally a run) off the GUI thread."""
        t0 = time.perf_counter()

        def work(progress, cancel):
            from model.data.dataset import Dataset
            report(progress, "open", 0, 2, f"reading {path}")
            ds = Dataset.open(path)
            report(progress, "open", 1, 2, "looking for cached features")
            fs = None
            try:
                fs = find_cached_features(ds)
            except Exception as exc:  # noqa: BLE001
                print(f"feature cache unreadable: {exc}")
            run = None
            if run_dir and fs is not None and Path(run_dir).is_dir():
                try:
                    run = load_run(run_dir, fs, progress, cancel, dataset=ds)
                except Exception as exc:  # noqa: BLE001
                    run = exc
            report(progress, "open", 2, 2)
            return ds, fs, run

        def done(result):
            ds, fs, run = result
            self.session.set_dataset(ds)
            if fs is not None:
                self.session.set_features(fs)
            self.remember("last_dataset", str(ds.root))
            if isinstance(run, Exception):
                self.session.notify("warning", f"Could not reopen the last run: {run}")
            elif run is not None:
                self._activate(run)
            n = len(ds.samples)
            self.last_open_seconds = time.perf_counter() - t0
            self.session.notify("info", f"Opened dataset {Path(ds.root).name}: {n} samples"
                                + ("" if fs is not None else " (no features yet — extract them in the Datasets tab)"))
            self.dataset_opened.emit(ds)
            if then is not None:
                then()

        return self.tasks.start("Open dataset", work, on_done=done,
                                on_error=lambda msg: self.session.notify("error", msg))

    def build_dataset(self, config: Any, *, then: Optional[Callable[[], None]] = None) -> Task:
        def work(progress, cancel):
            from model.data.dataset import build_dataset
            return build_dataset(config, progress=progress, cancel=cancel)

        def done(ds):
            self.session.set_dataset(ds)
            self.remember("last_dataset", str(ds.root))
            s = ds.summary()
            skipped = len(s.get("skipped", []))
            self.session.notify("info", f"Built {Path(ds.root).name}: {s['samples']} samples from "
                                f"{s['songs']} songs" + (f", {skipped} files skipped (see the report)" if skipped else ""))
            try:
                fs = find_cached_features(ds)
                if fs is not None:
                    self.session.set_features(fs)
            except Exception:  # noqa: BLE001
                pass
            self.dataset_opened.emit(ds)
            if then is not None:
                then()

        return self.tasks.start("Build dataset", work, on_done=done,
                                on_error=lambda msg: self.session.notify("error", msg),
                                on_cancel=lambda: self.session.notify(
                                    "info", "Build cancelled; what was rendered is kept and a new build resumes."))

    # ---- features ---------------------------------------------------------------------
    def extract_features(self, *, device: str = "cpu", then: Optional[Callable[[], None]] = None) -> Optional[Task]:
        ds = self.session.dataset
        if ds is None:
            self.session.notify("warning", "Open or build a dataset first.")
            return None

        def work(progress, cancel):
            from model.features import extract_features
            return extract_features(ds, device=device, progress=progress, cancel=cancel)

        def done(fs):
            if self.session.dataset is ds:
                self.session.set_features(fs)
                self.session.notify("info", f"Features ready: {len(fs)} samples × 3 modalities")
            if then is not None:
                then()

        return self.tasks.start("Extract features", work, on_done=done,
                                on_error=lambda msg: self.session.notify("error", msg),
                                on_cancel=lambda: self.session.notify(
                                    "info", "Feature extraction cancelled; checkpoints so far are kept."))

    # ---- runs ------------------------------------------------------------------------------
    def open_run(self, run_dir: str | Path, *, then: Optional[Callable[[], None]] = None) -> Optional[Task]:
        fs, ds = self.session.features, self.session.dataset
        if fs is None:
            self.session.notify("warning", "This dataset has no features yet; extract them before opening a run.")
            return None

        def work(progress, cancel):
            report(progress, "open run", 0, 1, str(run_dir))
            return load_run(run_dir, fs, progress, cancel, dataset=ds)

        def done(result):
            self._activate(result)
            if then is not None:
                then()

        # The map's cached layout needs only numpy: show it while torch loads the index.
        view = self.session.map_view
        self.tasks.start("Map preview", lambda _p, _c: map_preview(run_dir, view),
                         on_done=lambda res: res is not None and self.map_preview.emit(res))
        task = self.tasks.start("Open run", work, on_done=done,
                                on_error=lambda msg: self.session.notify("error", msg))
        self.run_loading.emit(str(run_dir))
        return task

    def _activate(self, result: dict[str, Any]) -> None:
        run = result["run"]
        if not hasattr(run, "run_dir"):
            try:
                run.run_dir = str(result.get("run_dir", ""))
            except Exception:  # noqa: BLE001
                pass
        self.session.set_run(run, result["embeddings"], result["sample_ids"], result["index"],
                             melody=result.get("melody"), lyrics_rr=result.get("lyrics_rr"))
        if result.get("lyrics_rr_error"):
            self.session.notify("warning", f"Lyrics re-ranking is off for this run: {result['lyrics_rr_error']}")
        self.remember("last_run", str(getattr(run, "run_dir", "")))
        self.run_opened.emit(run)
        self.compute_partner_ranks()
        if result.get("pitch_tracks_missing"):
            self.compute_pitch_tracks()

    def compute_pitch_tracks(self) -> Optional[Task]:
        """The dataset's missing pitch tracks on a worker (about 25 ms an item), cached in its folder
        and handed to the active run's melody re-ranker when done; the retrieval panel then re-queries.

        Until then, items without a track rank by the learned space alone.  A
        cancelled computation keeps what the core saved so far; the next run
        opened on this dataset resumes it.  Tracks belong to the dataset, not
        to a run: another run of it made active meanwhile gets them too, and
        shares the task already running instead of starting a second one.
        """
        ds = self.session.dataset
        if ds is None or self.session.melody is None:
            return None
        running = self._pitch_task is not None and not self._pitch_task.done
        if running and self._pitch_dataset is ds:
            return self._pitch_task
        if running:  # tracks of a dataset no longer shown: its partial cache resumes when it is
            self._pitch_task.cancel()

        def work(progress, cancel):
            from model.features.tokens.pitch_track import dataset_pitch_tracks
            return dataset_pitch_tracks(ds, progress=progress, cancel=cancel)

        def done(tracks):
            if self.session.dataset is ds and self.session.melody is not None:  # still this dataset's runs
                self.session.add_pitch_tracks(tracks)

        self._pitch_dataset = ds
        self._pitch_task = self.tasks.start(
            "Pitch tracks", work, on_done=done,
            on_error=lambda msg: self.session.notify(
                "warning", f"{msg}; audio \u2194 sheet results are ranked without the melody for items with no track"),
            on_cancel=lambda: self.session.notify(
                "info", "Pitch tracks cancelled: items without one are ranked without the melody; opening a run "
                        "of this dataset again resumes from the last saved part."))
        return self._pitch_task

    def compute_partner_ranks(self) -> Optional[Task]:
        """Each sample's partner ranks in the six directions (library column, map colour), on a worker."""
        run, index = self.session.run, self.session.index
        if index is None:
            return None

        def work(progress, cancel):
            from model.search.partner_rank import median_partner_ranks, partner_rank_table, rank_cap
            report(progress, "partner ranks", 0, 1)
            table = partner_rank_table(index, progress, cancel)
            return median_partner_ranks(table), table, rank_cap(index)

        def done(result):
            if self.session.run is run:  # not a run made active meanwhile
                ranks, table, cap = result
                self.session.set_partner_ranks(ranks, table, cap)
                if cap is not None:  # N × N distances would take too long: say what the column holds
                    self.session.notify("info", f"Partner ranks of this run's {len(index):,} samples come from the "
                                        f"retrieval index's top {cap - 1}; partners further away show as "
                                        f"\u201c> {cap - 1}\u201d.")

        # CCA runs rank in their pair-specific spaces ("A@B"), as the retrieval panel does
        return self.tasks.start("Partner ranks", work, on_done=done,
                                on_error=lambda msg: self.session.notify("warning", f"No partner ranks: {msg}"))
