"""UGAAR and its baselines: networks, losses, the trainer and runs.

* ``config``  — :class:`RunConfig`, one typed configuration per run
* ``model``   — mapping networks F, G, H and the discriminator Θ
* ``loss``    — the paper's equations, one named function each
* ``cca``     — closed-form CCA (ground truth and CCA baseline)
* ``factory`` — build a method (Random, CCA, Baseline, Baseline-GAN, UGAAR) from a config
* ``trainer`` — :class:`Trainer`, :func:`train`
* ``run``     — :class:`Run`, a run folder read back
"""
from importlib import import_module
from typing import Any

# Names resolved on first use (PEP 562): importing ``model.ugaar.config`` to
# read a run's configuration must not pull in torch (~2 s here), which the
# trainer and the run reader need.
_LAZY = {"METHODS": "config", "RunConfig": "config", "Run": "run",
         "Trainer": "trainer", "train": "trainer"}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_LAZY[name]}", __name__), name)
