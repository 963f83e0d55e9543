"""Child process of the embedding map: ``python -m ugaar_app.umap_job IN.npz OUT.npz``.

No Qt here.  Reads the stacked embeddings, runs UMAP verbosely (the parent
parses the epoch lines for progress) and writes the 2-D coordinates.
"""
from __future__ import annotations

import json
import sys

import numpy as np


def main(argv: list[str]) -> int:
    src, dst = argv[1], argv[2]
    with np.load(src, allow_pickle=False) as data:
        x = data["x"]
        params = json.loads(str(data["params"]))
    print("PHASE loading UMAP (numba)", flush=True)
    from ugaar_app.embedding_map import _umap
    print("PHASE finding nearest neighbours", flush=True)
    coords = _umap(x, params, verbose=True)
    np.savez(dst, coords=coords)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
