"""An interrupted build, run again, ends with the same dataset as an uninterrupted one."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model.data.dataset import BuildConfig, Dataset, build_dataset
from model.progress import CancelToken, Cancelled

pytestmark = pytest.mark.slow

LIMIT = 10
REPO = Path(__file__).resolve().parents[1]


def _config(release: Path, out: Path, **kw) -> BuildConfig:
    # builtin audio: deterministic bytes whatever the rendering order
    base = dict(source="lmd-npy", path=str(release), out=str(out), limit=LIMIT,
                audio_renderer="builtin", display_sheets=False, sheet_batch_size=4)
    base.update(kw)
    return BuildConfig(**base)


def _files(root: Path) -> dict[str, str]:
    """Relative path → SHA-1 of every rendered file (the manifest aside)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "manifest.json" and not path.name.startswith("."):
            out[str(path.relative_to(root))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def _comparable(manifest: dict) -> dict:
    """The manifest without what legitimately differs between runs (timings, paths)."""
    m = dict(manifest)
    m["report"] = {k: v for k, v in m["report"].items()
                   if k not in ("timings_s", "rendered_this_run")}
    m["config"] = {k: v for k, v in m["config"].items() if k not in ("out", "workers")}
    return m


@pytest.fixture(scope="module")
def reference(lmd_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return build_dataset(_config(lmd_release, out))


def test_cancel_then_resume(lmd_release, reference, tmp_path):
    token = CancelToken()

    def cancel_in_sheets(p):
        if p.stage == "sheet" and p.done > 0:
            token.set()

    config = _config(lmd_release, tmp_path)
    with pytest.raises(Cancelled):
        build_dataset(config, progress=cancel_in_sheets, cancel=token)
    assert not (tmp_path / "manifest.json").exists()
    n_before = len(list((tmp_path / "sheet").glob("*.json")))
    assert 0 < n_before < len(reference)

    resumed = build_dataset(config)
    assert resumed.content_hash == reference.content_hash
    assert _comparable(resumed.manifest) == _comparable(reference.manifest)
    assert _files(tmp_path) == _files(reference.root)
    # nothing was rendered twice
    assert resumed.report["rendered_this_run"] == {"audio": 0,
                                                   "sheet": len(reference) - n_before}


def test_killed_subprocess_then_resume(lmd_release, reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "model", "dataset", "build", "--source", "lmd-npy",
           str(lmd_release), "--out", str(out), "--limit", str(LIMIT), "--quiet",
           "--audio-renderer", "builtin", "--no-display-sheets", "--sheet-batch", "4"]
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list((out / "sheet").glob("*.json")) if (out / "sheet").is_dir() else []:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        # SIGKILL: no cleanup handlers run, as with a power cut or OOM kill
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not (out / "manifest.json").exists()
    assert 0 < len(list((out / "sheet").glob("*.json"))) < len(reference)

    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = Dataset.open(out)
    assert resumed.content_hash == reference.content_hash
    assert _comparable(resumed.manifest) == _comparable(reference.manifest)
    assert _files(out) == _files(reference.root)
    # no temporary files left behind by the kill
    assert not [p for p in out.rglob(".*.tmp*")]
    assert resumed.report["rendered_this_run"]["audio"] == 0


def test_display_sheets_added_later_keep_everything_else(lmd_release, reference, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(reference.root, out)
    before = _files(out)
    seen_manifest = []

    def watch(p):
        seen_manifest.append((out / "manifest.json").exists())

    ds = build_dataset(_config(lmd_release, out, display_sheets=True), progress=watch)
    # readers (feature extraction) keep a valid manifest while images are added
    assert all(seen_manifest)
    # the feature inputs and the content hash do not change
    assert ds.content_hash == reference.content_hash
    after = _files(out)
    assert {k: v for k, v in after.items() if k.startswith(("audio/", "sheet/")) and
            not k.endswith(".json")} == {k: v for k, v in before.items()
                                         if not k.endswith(".json")}
    assert ds.report["rendered_this_run"] == {"audio": 0, "sheet": len(ds)}
    for sample in ds.samples:
        assert ds.display_sheet_path(sample.sample_id) is not None
        assert ds.note_x(sample.sample_id) == reference.note_x(sample.sample_id)
    # a second run has nothing left to do
    again = build_dataset(_config(lmd_release, out, display_sheets=True))
    assert again.report["rendered_this_run"] == {"audio": 0, "sheet": 0}


def test_changed_settings_unfinish_the_folder_until_rebuilt(lmd_release, reference, tmp_path):
    import shutil
    out = tmp_path / "copy"
    shutil.copytree(reference.root, out)
    seen_manifest = []

    def watch(p):
        if p.stage in ("audio", "sheet"):
            seen_manifest.append((out / "manifest.json").exists())

    ds = build_dataset(_config(lmd_release, out, split_seed=5), progress=watch)
    assert seen_manifest and not any(seen_manifest)  # the old manifest's splits are wrong now
    assert ds.content_hash != reference.content_hash
    assert [s.sample_id for s in ds.samples] == [s.sample_id for s in reference.samples]
    assert ds.report["rendered_this_run"] == {"audio": 0, "sheet": 0}
