"""GUI benchmarks of UGAAR Explorer (``ugaar-app``).

Measures, on real data with the real core:

1. cold start to interactive with a cached dataset and run (goal ≤ 3 s):
   a fresh ``python -m ugaar_app.main`` process, wall time from launch to the
   window's "interactive" line (dataset, features, run and retrieval index
   loaded, library filled) and to the map drawn from the run's cache;
2. the largest GUI-thread stall while a real training runs and while UMAP
   computes (goal ≤ 100 ms): a 10 ms precise QTimer on the event loop records
   how late each tick fires;
3. click-to-results latency of retrieval (goal ≤ 50 ms): a real mouse click on
   a library row until both result lists are filled, on the LMD-full dataset;
4. first launch to a usable map (goal ≤ 3 min): a fresh app home, the app run
   with ``--first-launch auto`` (build the quick default, extract, train, map);
5. the largest GUI-thread stall while panning and zooming a synthetic
   300k-point map (goal ≤ 100 ms), with pyqtgraph's own scatter alone and with
   the map's draw budget (``--only mapscale``, no dataset needed, ~1 min);
6. time to the shared map of the LMD-full run, as the window computes it (a
   cold UMAP child process, no cached layout), and the largest GUI-thread stall
   meanwhile (``--lmd DIR --lmd-run RUN --only lmdmap``).

Usage::

    python benchmarks/gui.py --dataset DIR --run RUN [--lmd DIR --lmd-run RUN] [--first-launch]
    python benchmarks/gui.py --only mapscale [--map-points 300000]
    python benchmarks/gui.py --lmd DIR --lmd-run RUN --only lmdmap

Prints a Markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

RESULTS: list[tuple[str, str, str]] = []


def record(name: str, value: str, goal: str) -> None:
    RESULTS.append((name, value, goal))
    print(f"  {name}: {value}  (goal {goal})", flush=True)


# ---------------------------------------------------------------- cold start
def run_app(args: list[str], env_extra: dict[str, str], wait_for: str, timeout: float) -> dict[str, float]:
    env = dict(os.environ, **env_extra)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ugaar_app.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    marks: dict[str, float] = {}
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            parts = line.split()
            if parts and parts[0].startswith("UGAAR_"):
                marks[parts[0]] = time.perf_counter() - t0
                if len(parts) > 1:
                    try:
                        marks[parts[0] + "_internal"] = float(parts[1])
                    except ValueError:
                        pass
                print(f"    {line.strip()}  (wall {marks[parts[0]]:.2f} s)", flush=True)
                if parts[0] == wait_for:
                    break
            if time.perf_counter() - t0 > timeout:
                break
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return marks


def bench_cold_start(dataset: str, run: str, repeats: int = 3) -> None:
    print("cold start (cached dataset and run)")
    home = tempfile.mkdtemp(prefix="ugaar-bench-home-")
    # one warm-up launch computes the run's map cache if it is missing
    run_app(["--dataset", dataset, "--run", run], {"UGAAR_HOME": home}, "UGAAR_RUN_READY", 900)
    inter, maps, ready = [], [], []
    for _ in range(repeats):
        m = run_app(["--dataset", dataset, "--run", run], {"UGAAR_HOME": home}, "UGAAR_RUN_READY", 120)
        inter.append(m.get("UGAAR_INTERACTIVE", float("nan")))
        maps.append(m.get("UGAAR_MAP", float("nan")))
        ready.append(m.get("UGAAR_RUN_READY", float("nan")))
    record("cold start → interactive (median of %d)" % repeats, f"{statistics.median(inter):.2f} s "
           f"(max {max(inter):.2f})", "≤ 3 s")
    record("cold start → map drawn from the run's cache", f"{statistics.median(maps):.2f} s", "—")
    record("cold start → run ready (retrieval index; torch loaded)", f"{statistics.median(ready):.2f} s", "—")


# ---------------------------------------------------------------- stalls
class StallMeter:
    def __init__(self, interval_ms: int = 10) -> None:
        from PySide6.QtCore import Qt, QTimer
        self.interval = interval_ms / 1000
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.lates: list[float] = []
        self.last = 0.0

    def start(self) -> None:
        self.lates = []
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.lates.append(max(0.0, now - self.last - self.interval))
        self.last = now

    def summary(self) -> str:
        if not self.lates:
            return "no ticks"
        lat = sorted(self.lates)
        p99 = lat[int(0.99 * (len(lat) - 1))]
        return f"max {1000 * lat[-1]:.0f} ms, p99 {1000 * p99:.0f} ms ({len(lat)} ticks)"

    @property
    def max_ms(self) -> float:
        return 1000 * max(self.lates) if self.lates else float("nan")


def _wait(app, cond, timeout: float) -> bool:
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.002)
        if time.perf_counter() - t0 > timeout:
            return False
    return True


def bench_stalls(dataset: str, train_seconds: float, epochs: int) -> None:
    print("GUI-thread stalls")
    os.environ["UGAAR_HOME"] = tempfile.mkdtemp(prefix="ugaar-bench-home-")
    from PySide6.QtWidgets import QApplication
    from ugaar_app.main_window import MainWindow
    app = QApplication.instance() or QApplication([])
    w = MainWindow()
    w.resize(1500, 900)
    w.show()
    w.controller.open_dataset(dataset)
    assert _wait(app, lambda: w.session.dataset is not None, 120)
    assert w.session.features is not None, "the dataset needs extracted features"
    meter = StallMeter()
    meter.start()
    _wait(app, lambda: False, 3)
    meter.stop()
    record("stall, idle window (reference)", meter.summary(), "—")

    w.tabs.setCurrentWidget(w.training)
    _wait(app, lambda: False, 1.5)  # the tab's first paint is not part of training
    meter.start()
    task = w.training.start(method="ugaar", epochs=epochs)
    t0 = time.perf_counter()
    _wait(app, lambda: task.done or time.perf_counter() - t0 > train_seconds, train_seconds + 5)
    w.training.stop()
    _wait(app, lambda: task.done, 120)
    meter.stop()
    record(f"stall while UGAAR trains ({train_seconds:.0f} s, curves live)", meter.summary(), "≤ 100 ms")
    run_dir = str(w.training.run_dir)

    # UMAP: cold process (numba compile) + layout, map tab visible
    done = {"opened": False}
    w.controller.open_run(run_dir, then=lambda: done.__setitem__("opened", True))
    _wait(app, lambda: done["opened"], 120)
    w.tabs.setCurrentWidget(w.map_view)
    _wait(app, lambda: w.map_view.task is None or w.map_view.task.done, 900)
    _wait(app, lambda: False, 1.0)
    from model.map import layout as map_layout
    if map_layout._SERVER is not None:
        map_layout._SERVER.kill()  # measure the cold case
    w.map_view.cancel()
    _wait(app, lambda: w.map_view.task is None or w.map_view.task.done, 30)
    meter.start()
    t0 = time.perf_counter()
    w.map_view.compute(force=True)
    ok = _wait(app, lambda: w.map_view.task.done and w.map_view.coords is not None, 900)
    dt = time.perf_counter() - t0
    meter.stop()
    n = len(w.session.embedding_ids or [])
    record(f"stall while UMAP computes ({3 * n} points, {dt:.0f} s cold)" + ("" if ok else " [timeout]"),
           meter.summary(), "≤ 100 ms")
    w.close()


# ---------------------------------------------------------------- retrieval latency
def _window_with_run(dataset: str, run: str):
    """(app, window): a fresh app home, the window shown with ``dataset`` and ``run`` open and its
    retrieval index ready, the map's own computation cancelled."""
    os.environ["UGAAR_HOME"] = tempfile.mkdtemp(prefix="ugaar-bench-home-")
    from PySide6.QtWidgets import QApplication
    from ugaar_app.main_window import MainWindow
    app = QApplication.instance() or QApplication([])
    w = MainWindow()
    w.resize(1500, 900)
    w.show()
    w.controller.open_dataset(dataset, run_dir=run)
    assert _wait(app, lambda: w.session.index is not None, 300), "run did not open"
    w.map_view.cancel()
    return app, w


def bench_click_to_results(dataset: str, run: str, clicks: int = 40) -> None:
    print("click-to-results (retrieval)")
    import numpy as np
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest
    app, w = _window_with_run(dataset, run)
    lib = w.library
    n = lib.proxy.rowCount()
    rng = np.random.default_rng(0)
    times = []
    for _ in range(clicks):
        row = int(rng.integers(0, n))
        idx = lib.proxy.index(row, 0)
        lib.table.scrollTo(idx)
        app.processEvents()
        rect = lib.table.visualRect(idx)
        before = w.retrieval.header.text()
        t0 = time.perf_counter()
        QTest.mouseClick(lib.table.viewport(), Qt.LeftButton, Qt.NoModifier, rect.center() + QPoint(0, 0))
        app.processEvents()
        dt = time.perf_counter() - t0
        sid = lib.proxy.data(idx, Qt.UserRole + 1)
        if w.session.selected == sid and w.retrieval.result_ids(w.retrieval.targets[0]):
            times.append(dt * 1000)
        _ = before
    times.sort()
    record(f"click → results in both lists, N = {len(w.session.embedding_ids)} (median of {len(times)})",
           f"{statistics.median(times):.1f} ms (max {times[-1]:.1f}; index query alone "
           f"{w.retrieval.last_latency_ms:.1f} ms)", "≤ 50 ms")
    w.close()


# ---------------------------------------------------------------- the LMD-full shared map
def bench_lmd_map(dataset: str, run: str, view: str = "shared") -> None:
    """Time from "compute the map" to the drawn map of a large run, cold (no cached layout, a fresh
    UMAP process: numba compiles on first use), with the stall meter running."""
    print(f"time to the {view} map")
    from model.map import layout as map_layout
    app, w = _window_with_run(dataset, run)
    _wait(app, lambda: w.map_view.task is None or w.map_view.task.done, 30)
    w.tabs.setCurrentWidget(w.map_view)
    w.map_view.view_box.setCurrentIndex(w.map_view.view_box.findData(view))
    w.map_view.cancel()
    _wait(app, lambda: w.map_view.task is None or w.map_view.task.done, 30)
    if map_layout._SERVER is not None:
        map_layout._SERVER.kill()  # the cold case: a new process compiles UMAP
    _wait(app, lambda: False, 1.0)
    meter = StallMeter()
    meter.start()
    t0 = time.perf_counter()
    w.map_view.compute(force=True)  # force: the run's cached layouts are deleted first
    ok = _wait(app, lambda: w.map_view.task is not None and w.map_view.task.done
               and w.map_view.coords is not None, 900)
    dt = time.perf_counter() - t0
    meter.stop()
    n = len(w.session.embedding_ids or [])
    record(f"time to the {view} map, {n:,} samples ({3 * n:,} points), cold UMAP process"
           + ("" if ok else " [timeout]"), f"{dt:.1f} s", "—")
    record(f"stall while the {view} map computes", meter.summary(), "≤ 100 ms")
    w.close()


# ---------------------------------------------------------------- map at scale
def bench_map_scale(points: int = 300_000, seconds: float = 8.0) -> None:
    """Largest stall while a timer pans and zooms a ``points``-point map (all three modalities).

    Two passes over the same synthetic layout: pyqtgraph's ScatterPlotItem
    painting as configured for large maps (pxMode, ``useCache``, no
    antialiasing: every point scanned and every point in view drawn), then the
    map's :class:`~ugaar_app.map_view.LodScatter` (only the view's x-band
    scanned, at most ``DRAW_BUDGET`` points drawn).  A 30 ms timer alternates a pan
    step and a zoom step (in, then back out), each followed by the repaint
    it causes; the stall meter's 10 ms timer records how late it fires.
    """
    print(f"map at scale ({points:,} points)")
    import numpy as np
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication
    from ugaar_app.bridge import SessionBridge
    from ugaar_app.map_view import DRAW_BUDGET, MapView
    from ugaar_app.session import Session
    from ugaar_app.workers import TaskManager
    app = QApplication.instance() or QApplication([])
    session = Session()
    mv = MapView(SessionBridge(session), TaskManager())
    mv.resize(1300, 850)
    mv.show()
    n = points // 3
    rng = np.random.default_rng(0)
    # clusters of different spread, like a UMAP layout
    centres = rng.uniform(-20, 20, size=(60, 2))
    coords = (centres[rng.integers(0, 60, 3 * n)] + rng.normal(scale=rng.uniform(0.3, 2.0, (3 * n, 1)),
                                                                  size=(3 * n, 2))).astype(np.float32)
    t0 = time.perf_counter()
    mv.set_coords(coords, [f"s{i}" for i in range(n)])
    mv.plot.viewport().repaint()
    record(f"map: draw a {3 * n:,}-point layout (set_coords + first paint, one-off)",
           f"{time.perf_counter() - t0:.2f} s", "—")
    _wait(app, lambda: False, 1.0)
    vb = mv.vb
    for label, lod in (("pyqtgraph's ScatterPlotItem alone (pxMode, useCache, no antialiasing)", False),
                       (f"the map's LodScatter (view's x-band, ≤ {DRAW_BUDGET:,} points a frame)", True)):
        mv.scatter.lod = lod
        mv.plot.autoRange()
        _wait(app, lambda: False, 0.5)
        step = {"k": 0}

        def move() -> None:
            k = step["k"]
            step["k"] += 1
            phase = (k // 20) % 2  # 20 steps zooming in (and panning), 20 back out
            if k % 2:
                vb.translateBy(x=0.4 * (1 if phase == 0 else -1), y=0.2)
            else:
                vb.scaleBy((0.93, 0.93) if phase == 0 else (1 / 0.93, 1 / 0.93))

        timer = QTimer()
        timer.setTimerType(Qt.PreciseTimer)
        timer.setInterval(30)
        timer.timeout.connect(move)
        meter = StallMeter()
        meter.start()
        timer.start()
        _wait(app, lambda: False, seconds)
        timer.stop()
        meter.stop()
        record(f"stall panning/zooming {3 * n:,} points: {label} ({step['k']} steps)", meter.summary(),
               "≤ 100 ms")
    mv.close()


# ---------------------------------------------------------------- first launch
def bench_first_launch(timeout: float) -> None:
    print("first launch (fresh home, --first-launch auto)")
    home = tempfile.mkdtemp(prefix="ugaar-bench-first-")
    m = run_app(["--first-launch", "auto", "--tab", "start"], {"UGAAR_HOME": home},
                "UGAAR_FIRST_LAUNCH_MAP", timeout)
    if "UGAAR_FIRST_LAUNCH_MAP" in m:
        record("first launch → usable map (quick default)", f"{m['UGAAR_FIRST_LAUNCH_MAP']:.0f} s", "≤ 180 s")
    else:
        record("first launch → usable map (quick default)", f"not reached in {timeout:.0f} s", "≤ 180 s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", help="dataset with features (cold start, stalls)")
    p.add_argument("--run", help="a finished run of --dataset (cold start)")
    p.add_argument("--lmd", help="the LMD-full dataset with features")
    p.add_argument("--lmd-run", help="a finished run of --lmd")
    p.add_argument("--first-launch", action="store_true")
    p.add_argument("--first-launch-timeout", type=float, default=900)
    p.add_argument("--train-seconds", type=float, default=30)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--only", choices=["cold", "stalls", "click", "first", "mapscale", "lmdmap"], action="append")
    p.add_argument("--map-points", type=int, default=300_000)
    a = p.parse_args()
    for flag in ("dataset", "run", "lmd", "lmd_run"):
        folder = getattr(a, flag)
        if folder and not Path(folder).is_dir():  # else the window would wait minutes for it, then assert
            p.error(f"--{flag.replace('_', '-')} {folder}: no such folder")
    only = set(a.only or ["cold", "stalls", "click", "first", "mapscale", "lmdmap"])
    if a.dataset and a.run and "cold" in only:
        bench_cold_start(a.dataset, a.run)
    if a.dataset and "stalls" in only:
        bench_stalls(a.dataset, a.train_seconds, a.epochs)
    if a.lmd and a.lmd_run and "click" in only:
        bench_click_to_results(a.lmd, a.lmd_run)
    elif a.dataset and a.run and "click" in only:
        bench_click_to_results(a.dataset, a.run)
    if a.lmd and a.lmd_run and "lmdmap" in only:
        bench_lmd_map(a.lmd, a.lmd_run)
    if a.first_launch and "first" in only:
        bench_first_launch(a.first_launch_timeout)
    if "mapscale" in only:
        bench_map_scale(a.map_points)
    print("\n| measure | result | goal |\n|---|---|---|")
    for name, value, goal in RESULTS:
        print(f"| {name} | {value} | {goal} |")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip interpreter teardown of several Qt windows (PySide finaliser crashes)
