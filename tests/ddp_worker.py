"""One rank of the DDP tests, started by torchrun from ``tests/test_ugaar_ddp.py``.

Usage: ``torchrun --nproc-per-node 2 tests/ddp_worker.py FEATURES.npz CONFIG.json RUN_DIR [--resume]
[--stop-at STEP]``, or ``… tests/ddp_worker.py --pretrain WORK_DIR`` for the feature pre-training.  Each rank writes ``RUN_DIR/rank<r>.json``: its final
status, step, and a digest of its networks (every rank must end with the
same networks).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import distributed as dist_  # noqa: E402
from model.events import StepEvent  # noqa: E402
from model.feature_set import FeatureSet  # noqa: E402
from model.ugaar import RunConfig, Trainer  # noqa: E402


def pretrain_main(work_dir: str) -> int:
    """Pre-train the audio and sheet CNNs on 24 random pairs (``--pretrain WORK_DIR``)."""
    import numpy as np

    from model.features.config import FeatureConfig
    from model.features.learned.pretrain import Ragged, pretrain

    torch.set_num_threads(1)
    world = dist_.init_from_env("cpu")
    try:
        rng = np.random.default_rng(0)

        def ragged(n: int, shape: tuple[int, int]) -> Ragged:
            return Ragged.from_list([rng.normal(size=(int(k), *shape)) for k in rng.integers(1, 3, n)])

        config = FeatureConfig(pretrain_epochs=2, pretrain_batch=12)
        result = pretrain(ragged(24, (24, 64)), ragged(24, (48, 48)), ragged(6, (24, 64)), ragged(6, (48, 48)),
                          config, work_dir)
        digest = float(sum(v.double().sum() for v in result.model.state_dict().values()))
        (Path(work_dir) / f"rank{world.rank}.json").write_text(json.dumps(
            {"rank": world.rank, "digest": digest, "best_epoch": result.best_epoch,
             "losses": [h["loss"] for h in result.history], "val": [h.get("val_score") for h in result.history]}))
    finally:
        dist_.shutdown()
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--pretrain"]:
        return pretrain_main(sys.argv[2])
    p = argparse.ArgumentParser()
    p.add_argument("features")
    p.add_argument("config")
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-at", type=int, default=0, help="rank 0 calls Trainer.stop() after this step")
    args = p.parse_args()
    torch.set_num_threads(1)
    world = dist_.init_from_env("cpu")
    try:
        features = FeatureSet.load(args.features)
        if args.resume:
            trainer = Trainer.resume(args.run_dir, features)
        else:
            trainer = Trainer(RunConfig.load(args.config), features, args.run_dir)
        if args.stop_at and world.is_main:  # only rank 0 is told; the others must follow
            trainer.on_event = lambda e: trainer.stop() if isinstance(e, StepEvent) and e.step >= args.stop_at else None
        run = trainer.run()
        nets = [trainer.method.generator, trainer.method.discriminator]
        digest = [float(sum(p.detach().double().sum() for p in n.parameters())) for n in nets if n is not None]
        (Path(args.run_dir) / f"rank{world.rank}.json").write_text(json.dumps(
            {"rank": world.rank, "world": world.size, "backend": world.backend, "status": run.status,
             "global_step": trainer.global_step, "digest": digest}))
    finally:
        dist_.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
