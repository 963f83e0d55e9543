"""Feature extraction under ``torchrun``: rank 0 runs the pipeline, every rank joins the pre-training.

Only the encoders' pre-training (:func:`model.features.learned.pretrain.pretrain`)
gains from more processes; the front end, the skip-gram models, the
embeddings, the per-position sequences and every file are rank 0's.  The
other ranks wait for one message from rank 0 (:class:`PretrainCall`):

* ``None``: no pre-training in this job (the features or the encoders were
  cached, or rank 0 stopped before it); they return at once;
* a :class:`PretrainJob`: they read the front-end inputs (and ``--augment``'s
  renderings) from rank 0's caches, join the pre-training, compare their
  encoders' digest with everyone's (:meth:`PretrainCall.agree`) and return
  while rank 0 embeds the dataset and writes the FeatureSet.

Either way they then wait for rank 0, and every rank leaves the process group
together (``ugaar features extract``'s rank entry calls
:func:`model.distributed.shutdown` with ``together``).

Nothing here keeps state between calls: the call object lives for one
extraction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from model import distributed as dist_
from model.feature_set import FeatureSet
from model.progress import CancelToken, ProgressCallback

from .config import FeatureConfig

#: Collective timeout of a feature-extraction job.  The other ranks wait at
#: one broadcast while rank 0 computes the front end, the extra renderings
#: and the skip-gram models of the whole dataset, hours on a large one;
#: torch's and ``model.distributed``'s defaults would end the job there.  A
#: rank that dies is still noticed at once: torchrun ends the others.
EXTRACT_TIMEOUT_S = 7 * 24 * 3600.0


def init_world(device: str = "cpu") -> dist_.World:
    """Join torchrun's process group with :data:`EXTRACT_TIMEOUT_S` (a world of one without torchrun)."""
    return dist_.init_from_env(device, timeout_s=EXTRACT_TIMEOUT_S)


@dataclass(frozen=True)
class PretrainJob:
    """What a rank needs to join rank 0's pre-training (all of it read from rank 0's files).

    Parameters
    ----------
    config : FeatureConfig
        The configuration rank 0 trains with (``--config``, ``--augment``…).
    encoders_dir : str
        The folder of the resume checkpoint (read once at the start).
    inputs_path : str
        Rank 0's front-end inputs cache.
    device : str
    """

    config: FeatureConfig
    encoders_dir: str
    inputs_path: str
    device: str


class PretrainCall:
    """Rank 0's side: one message to the other ranks, then the check that all ended alike.

    Parameters
    ----------
    world : World
        Rank 0's world (with one process every method is a no-op but
        :meth:`agree`, which reports one digest).
    """

    def __init__(self, world: dist_.World) -> None:
        self.world = world
        self.sent = False

    def announce(self, config: FeatureConfig, encoders_dir: str | Path, inputs_path: str | Path,
                 device: str) -> None:
        """Tell the other ranks to join the pre-training now."""
        self._send(PretrainJob(config, str(encoders_dir), str(inputs_path), device))

    def release(self) -> None:
        """Tell the other ranks there is nothing (more) to join (no-op after :meth:`announce`)."""
        self._send(None)

    def _send(self, job: Optional[PretrainJob]) -> None:
        if self.sent or not self.world.distributed:
            return
        self.sent = True
        dist_.broadcast_object(job)

    def agree(self, model: torch.nn.Module) -> dict[str, Any]:
        """Every rank's encoder digest; raises when they differ.  Called by every rank alike."""
        return ranks_agree(model)


def ranks_agree(model: torch.nn.Module) -> dict[str, Any]:
    """``{"count": N, "encoder_digests": [...]}`` of every rank's ``model``, checked to be one model.

    Gradients summed and batch-norm statistics averaged after every step
    keep the ranks' copies equal bit for bit (``model.features.learned.pretrain``);
    a difference means a rank trained on something else (another cache, a
    stale resume file), and its encoders must not be trusted.
    """
    from .extract import state_dict_digest

    digests = dist_.gather_objects(state_dict_digest(model.state_dict()))
    if len(set(digests)) > 1:
        raise dist_.DistributedError("pre-training", "the ranks ended with different encoders "
                                     f"({', '.join(d[:12] for d in digests)})",
                                     "delete the encoders folder's pretrain_resume.pt and run again")
    return {"count": len(digests), "encoder_digests": digests}


def join_pretraining(dataset: Any, cancel: Optional[CancelToken] = None) -> Optional[PretrainJob]:
    """A rank other than 0: wait for rank 0's message, join its pre-training, return the job.

    Reads rank 0's caches and writes nothing.  Returns ``None`` when rank 0
    had no pre-training to share.
    """
    from .extract import load_cached_inputs, pretrain_inputs, run_pretrain

    job: Optional[PretrainJob] = dist_.broadcast_object(None)
    if job is None:
        return None
    ids = [s.sample_id for s in dataset.samples]
    inputs = load_cached_inputs(job.inputs_path, ids)
    if inputs is None:
        raise dist_.DistributedError(job.inputs_path, "rank 0's front-end inputs cannot be read on this rank",
                                     "run every rank on one file system (torchrun --standalone, or a shared "
                                     "dataset folder on a cluster)")
    config = job.config
    # rank 0 names its own GPU (cuda:0); each rank takes its LOCAL_RANK's
    device = dist_.device_of(job.device.split(":")[0], dist_.current())
    result = run_pretrain(pretrain_inputs(dataset, config, inputs, None, cancel), config, job.encoders_dir,
                          device, None, cancel, None)
    ranks_agree(result.model)
    return job


def extract_on_rank(dataset: Any, config: FeatureConfig | None, world: dist_.World, *,
                    encoders_dir: str | Path | None = None, device: str = "cpu",
                    progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                    force: bool = False, workers: int = 2,
                    log: Optional[Callable[[str], None]] = None,
                    sequence_settings: Optional[dict] = None) -> Optional[FeatureSet]:
    """:func:`extract_features` on rank 0, :func:`join_pretraining` on the others.

    Returns
    -------
    FeatureSet or None
        Rank 0's FeatureSet; ``None`` on the other ranks.
    """
    from .extract import _open, extract_features

    dataset = _open(dataset)
    if not world.is_main:
        join_pretraining(dataset, cancel)
        return None
    call = PretrainCall(world)
    try:
        return extract_features(dataset, config, encoders_dir=encoders_dir, device=dist_.device_of(device, world),
                                progress=progress, cancel=cancel, force=force, workers=workers, log=log,
                                pretrain_call=call, sequence_settings=sequence_settings)
    finally:
        call.release()  # cached, already trained, or stopped early: nobody is left waiting


__all__ = ["EXTRACT_TIMEOUT_S", "PretrainCall", "PretrainJob", "extract_on_rank", "init_world",
           "join_pretraining", "ranks_agree"]
