"""UGAAR and its baselines: networks, losses, the trainer and runs.

* ``config``  — :class:`RunConfig`, one typed configuration per run
* ``model``   — mapping networks F, G, H and the discriminator Θ
* ``loss``    — the paper's equations, one named function each
* ``cca``     — closed-form CCA (ground truth and CCA baseline)
* ``factory`` — build a method (Random, CCA, Baseline, Baseline-GAN, UGAAR) from a config
* ``trainer`` — :class:`Trainer`, :func:`train`
* ``run``     — :class:`Run`, a run folder read back
"""
from .config import METHODS, RunConfig
from .run import Run
from .trainer import Trainer, train

__all__ = ["METHODS", "RunConfig", "Run", "Trainer", "train"]
