"""Static assets of UGAAR Explorer, shipped with the package (see pyproject ``package-data``).

- ``icon.svg``: the application icon (window and task bar).
- ``example_queries.json``: lyrics lines offered in the retrieval panel's
  typed-lyrics box (public-domain songs, so anyone may reuse them).

Read them with :func:`resource_path` / :func:`example_queries`; both work
from a checkout and from an installed wheel.
"""
from __future__ import annotations

import json
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """Path of the asset ``name`` (``FileNotFoundError`` naming it when missing)."""
    path = _HERE / name
    if not path.is_file():
        raise FileNotFoundError(f"resource {name!r} is missing from {_HERE}")
    return path


def example_queries() -> list[str]:
    """The example lyrics lines, in file order (empty when the file is unreadable)."""
    try:
        data = json.loads(resource_path("example_queries.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(q["lyrics"]).strip() for q in data.get("queries", []) if str(q.get("lyrics", "")).strip()]
