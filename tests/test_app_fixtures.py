"""Shared, memoised real data for the app tests (no tests here).

A tiny music21-corpus dataset is built once per test session (the first
works of the embedded corpus); features and a toy run are made from it with
the real core once per session as well.
"""
from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_ROOT = Path(tempfile.mkdtemp(prefix="ugaar-app-tests-"))


@lru_cache(maxsize=None)
def tiny_dataset_path() -> str:
    from model.data.dataset import BuildConfig, build_dataset
    out = _ROOT / "music21-tiny"
    build_dataset(BuildConfig(source="music21-corpus", path=None, out=str(out), limit=10, workers=1))
    return str(out)


@lru_cache(maxsize=None)
def tiny_features_ready() -> bool:
    """Extract (small, real) features for the tiny dataset; False when the extractor is absent."""
    try:
        from model.features import extract_features  # noqa: F401
    except ImportError:
        return False
    from model.data.dataset import Dataset
    from ugaar_app.controller import find_cached_features
    ds = Dataset.open(tiny_dataset_path())
    if find_cached_features(ds) is not None:
        return True
    _extract_small(ds)
    return True


def _extract_small(ds):
    from model.features import extract_features
    try:
        from model.features.config import FeatureConfig
        cfg = FeatureConfig(pretrain_epochs=2)
    except Exception:  # noqa: BLE001
        cfg = None
    return extract_features(ds, cfg) if cfg is not None else extract_features(ds)


def needs_features():
    if not tiny_features_ready():
        pytest.skip("model.features not available yet")


def needs_trainer():
    needs_features()
    try:
        from model.ugaar.trainer import Trainer  # noqa: F401
        from model.ugaar.run import Run  # noqa: F401
        from model.search.retrieval import RetrievalIndex  # noqa: F401
    except ImportError:
        pytest.skip("model.ugaar trainer/run/retrieval not available yet")


@pytest.fixture
def app_home(tmp_path, monkeypatch):
    """Each test gets its own app home (settings, datasets)."""
    home = tmp_path / "home"
    monkeypatch.setenv("UGAAR_HOME", str(home))
    return home


@pytest.fixture
def window(qtbot, app_home):
    import gc

    from ugaar_app.main_window import MainWindow
    from ugaar_app.theme import apply_theme
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance()
    # Earlier tests' windows die here, at a fixed point, and not when the collector happens to run
    # inside a Qt call that walks every widget: once in CI it ran inside setStyle and crashed the
    # process (SIGSEGV in this fixture). The theme is app-wide, so it is applied once a session;
    # each setStyle replaced the style under every live widget.
    gc.collect()
    if not app.property("ugaar_test_theme"):
        apply_theme(app)
        app.setProperty("ugaar_test_theme", True)
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    w.training.stop()
    w.tasks.cancel_all()
    w.map_view.cancel()
    w.tasks.wait(20000)


def open_tiny(qtbot, window, run_dir=None):
    with qtbot.waitSignal(window.controller.dataset_opened, timeout=30000):
        window.controller.open_dataset(tiny_dataset_path(), run_dir=run_dir)
    return window.session.dataset


@lru_cache(maxsize=None)
def tiny_run_path() -> str:
    """A short real UGAAR run on the tiny dataset's features (aligned inputs: the product's default)."""
    from model.data.dataset import Dataset
    from model.ugaar.config import RunConfig
    from model.ugaar.trainer import Trainer
    from ugaar_app.controller import find_cached_features
    tiny_features_ready()
    ds = Dataset.open(tiny_dataset_path())
    fs = find_cached_features(ds)
    run_dir = Path(ds.root) / "runs" / "fixture-ugaar"
    Trainer(RunConfig.for_method("ugaar", inputs="aligned", epochs=6, seed=0), fs, run_dir).run()
    return str(run_dir)


@pytest.fixture
def trained(qtbot, window):
    """The window with the tiny dataset and its fixture run open."""
    needs_trainer()
    run = tiny_run_path()
    with qtbot.waitSignal(window.controller.run_opened, timeout=60000):
        open_tiny(qtbot, window, run_dir=run)
    return run


# ---- the retrieval panel, as the melody and lyrics re-ranking tests drive it ----------------------
def query_sample(window, sid: str, source: str) -> None:
    """Query the panel for library sample ``sid`` from ``source`` (sample mode)."""
    from model.map.layout import MODALITIES
    rp = window.retrieval
    rp.mode_sample.setChecked(True)
    rp._on_mode()
    rp.source.setCurrentIndex(MODALITIES.index(source))
    window.session.select(sid, origin="test")
    rp.query_selected()  # the selection may have been made already: query again
    assert rp.query_sample_id == sid and rp.query_source == source


def list_title(rp, target: str) -> str:
    """The title of ``target``'s result list."""
    return rp.list_titles[str(rp.targets.index(target))].text()


def list_scores(rp, target: str) -> list[str]:
    """The third column (dist or score) of ``target``'s result list, as shown."""
    tree = rp.lists[str(rp.targets.index(target))]
    return [tree.topLevelItem(i).text(2) for i in range(tree.topLevelItemCount())]


def list_column(rp, target: str) -> str:
    """The header of ``target``'s list's third column (``dist`` or ``score``)."""
    return rp.lists[str(rp.targets.index(target))].headerItem().text(2)


def write_lyric_midi(notes, path) -> str:
    """A MIDI file of ``notes`` with one lyric event per note (a dropped-file query); its path."""
    import pretty_midi
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for note in notes:
        inst.notes.append(pretty_midi.Note(90, note.pitch, note.onset, note.onset + note.duration))
        pm.lyrics.append(pretty_midi.Lyric(note.syllable, note.onset))
    pm.instruments.append(inst)
    pm.write(str(path))
    return str(path)


def write_flute_wav(notes, path) -> str:
    """``notes`` played by FluidSynth's flute (program 73, a timbre the runs never trained on) as a WAV;
    skips the test without FluidSynth."""
    import soundfile
    from model.render.audio import FluidSynthRenderer, fluidsynth_available
    ok, why = fluidsynth_available()
    if not ok:
        pytest.skip(why)
    soundfile.write(str(path), FluidSynthRenderer(16000, program=73).render(notes), 16000)
    return str(path)
