"""Smoke test: ``ugaar-app`` in a real X window under Xvfb (skipped without Xvfb)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_app_fixtures import tiny_dataset_path


def _start_xvfb():
    for display in range(97, 120):
        if Path(f"/tmp/.X11-unix/X{display}").exists() or Path(f"/tmp/.X{display}-lock").exists():
            continue
        proc = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{display}").exists():
                return proc, f":{display}"
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.kill()
        proc.wait()
    pytest.skip("could not start Xvfb")


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb not installed")
def test_app_starts_in_x_window_and_saves_screenshot(tmp_path):
    ds = tiny_dataset_path()
    xvfb, display = _start_xvfb()
    try:
        env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", UGAAR_HOME=str(tmp_path / "home"))
        shot = tmp_path / "window.png"
        exe = shutil.which("ugaar-app", path=str(Path(sys.executable).parent)) or shutil.which("ugaar-app")
        cmd = [exe] if exe else [sys.executable, "-m", "ugaar_app.main"]
        proc = subprocess.run(cmd + ["--dataset", ds, "--screenshot", str(shot), "--quit-after", "1.0",
                                     "--size", "1400x860"], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = [l for l in proc.stdout.splitlines() if l.startswith("UGAAR_INTERACTIVE")]
        assert lines, proc.stdout + proc.stderr[-2000:]
        assert float(lines[0].split()[1]) < 30
        assert shot.is_file()
        from PIL import Image
        import numpy as np
        img = np.asarray(Image.open(shot).convert("RGB"))
        assert img.shape[0] > 500 and img.shape[1] > 1000
        assert img.std() > 10  # not a blank frame
    finally:
        xvfb.terminate()
        xvfb.wait()
