"""The top-level ``resources`` package: app icon and example queries, packaged and used by the window."""
from __future__ import annotations

import tomllib
from pathlib import Path

from resources import example_queries, resource_path

from test_app_fixtures import app_home, window  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[1]


def test_assets_exist_and_are_packaged():
    assert resource_path("icon.svg").read_text().lstrip().startswith("<svg")
    queries = example_queries()
    assert len(queries) >= 5 and all(len(q.split()) >= 4 for q in queries)
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setup = cfg["tool"]["setuptools"]
    assert "resources" in setup["packages"]["find"]["include"]
    assert {"*.svg", "*.json"} <= set(setup["package-data"]["resources"])


def test_icon_renders_and_examples_fill_the_lyrics_box(qtbot, window):
    from PySide6.QtGui import QIcon
    icon = QIcon(str(resource_path("icon.svg")))
    assert not icon.isNull() and not icon.pixmap(64, 64).isNull()
    ret = window.retrieval
    ret.mode_lyrics.click()
    assert ret.examples.isVisible()
    assert [ret.examples.itemData(i) for i in range(1, ret.examples.count())] == example_queries()
    ret.examples.activated.emit(2)
    assert ret.lyrics.text() == example_queries()[1]
    assert ret.examples.currentIndex() == 0
