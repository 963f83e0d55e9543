"""Child process of the embedding map (no Qt).

``python -m model.map.umap_job --serve`` reads commands on stdin, one a line:

- ``WARM``: run a tiny UMAP so numba compiles everything once;
- ``JOB<TAB>in.npz<TAB>out.npz``: UMAP of ``x`` with ``params`` → ``coords``;
  prints UMAP's verbose lines (the parent turns them into progress) and then
  ``DONE<TAB>out.npz`` or ``ERROR<TAB>message``;
- ``QUIT``.
"""
from __future__ import annotations

import json
import sys
import traceback

import numpy as np


def _job(src: str, dst: str) -> None:
    from model.map.layout import _umap
    with np.load(src, allow_pickle=False) as data:
        x = data["x"]
        params = json.loads(str(data["params"]))
    print("PHASE finding nearest neighbours", flush=True)
    coords = _umap(x, params, verbose=True)
    np.savez(dst, coords=coords)


def _warm() -> None:
    from model.map.layout import DEFAULT_PARAMS, _umap
    rng = np.random.default_rng(0)
    _umap(rng.normal(size=(60, 16)).astype(np.float32), {**DEFAULT_PARAMS, "n_neighbors": 10})
    print("WARMED", flush=True)


def serve() -> int:
    try:
        import os
        os.nice(10)  # background work: the window's event loop keeps the CPU
    except (AttributeError, OSError):
        pass
    print("PHASE loading UMAP (numba)", flush=True)
    import umap  # noqa: F401 - import once, up front
    for line in sys.stdin:
        parts = line.rstrip("\n").split("\t")
        cmd = parts[0]
        if cmd == "QUIT":
            break
        try:
            if cmd == "WARM":
                _warm()
            elif cmd == "JOB":
                _job(parts[1], parts[2])
                print(f"DONE\t{parts[2]}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            traceback.print_exc(file=sys.stdout)
            print(f"ERROR\t{exc!r}".replace("\n", " "), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve())
