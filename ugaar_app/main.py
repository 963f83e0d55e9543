"""Entry point of ``ugaar-app``: the UGAAR Explorer window.

Options (also useful for scripting, screenshots and benchmarks)::

    ugaar-app [--dataset DIR] [--run DIR] [--tab map|training|datasets|start]
              [--select SAMPLE_ID] [--first-launch offer|auto]
              [--screenshot PNG] [--quit-after SECONDS] [--size WxH]

``--screenshot`` grabs the window once it is interactive (plus
``--screenshot-delay`` seconds) and ``--quit-after`` exits that many seconds
after it became interactive.  On stdout the app prints
``UGAAR_INTERACTIVE <seconds>`` when it is ready (the benchmark reads it).
"""
from __future__ import annotations

import argparse
import sys
import time

T_START = time.perf_counter()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ugaar-app", description="UGAAR Explorer")
    p.add_argument("--dataset", help="open this dataset folder instead of the last one")
    p.add_argument("--run", help="make this run folder active")
    p.add_argument("--tab", choices=["map", "training", "datasets", "start"])
    p.add_argument("--select", help="select this sample id once open")
    p.add_argument("--first-launch", choices=["offer", "auto"], default="offer",
                   help="with nothing on disk: offer the one-click setup, or start it at once")
    p.add_argument("--screenshot", help="save a PNG of the window once interactive")
    p.add_argument("--screenshot-delay", type=float, default=0.5)
    p.add_argument("--quit-after", type=float, default=None)
    p.add_argument("--size", default=None, help="window size WxH")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from . import refcount_guard
    refcount_guard.install()
    app.setApplicationName("UGAAR Explorer")
    app.setOrganizationName("ugaar")
    try:
        from PySide6.QtGui import QIcon

        from resources import resource_path
        app.setWindowIcon(QIcon(str(resource_path("icon.svg"))))
    except (ImportError, FileNotFoundError):
        pass  # no icon is no reason not to start
    apply_theme(app)
    window = MainWindow()
    if args.size:
        w, h = (int(v) for v in args.size.lower().split("x"))
        window.resize(w, h)
        QTimer.singleShot(120, window.default_layout)
    window.show()

    tabs = {"map": window.map_view, "training": window.training, "datasets": window.datasets,
            "start": window.start_panel}

    def on_interactive(_seconds: float) -> None:
        total = time.perf_counter() - T_START
        print(f"UGAAR_INTERACTIVE {total:.3f}", flush=True)
        if args.select:
            window.session.select(args.select, origin="cli")
        if args.tab:
            window.tabs.setCurrentWidget(tabs[args.tab])
        if args.screenshot:
            QTimer.singleShot(int(args.screenshot_delay * 1000), lambda: save_screenshot(window, args.screenshot))
        if args.quit_after is not None:
            QTimer.singleShot(int(args.quit_after * 1000), window.close)

    window.interactive.connect(on_interactive)
    first_map: list[float] = []

    def on_map() -> None:
        if not first_map:
            first_map.append(time.perf_counter() - T_START)
            print(f"UGAAR_MAP {first_map[0]:.3f}", flush=True)

    window.map_view.computed.connect(on_map)
    window.run_ready.connect(lambda _s: print(f"UGAAR_RUN_READY {time.perf_counter() - T_START:.3f}", flush=True))
    QTimer.singleShot(0, lambda: window.restore_session(args.dataset, args.run, args.first_launch))
    return app.exec()


def save_screenshot(window, path: str) -> None:
    """Grab the window as rendered (works under Xvfb and offscreen)."""
    pix = window.grab()
    pix.save(path)
    print(f"UGAAR_SCREENSHOT {path}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
