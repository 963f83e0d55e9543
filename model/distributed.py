"""Process-group plumbing for training under ``torchrun`` (torch DDP).

``torchrun --nproc-per-node N`` (or ``srun … torchrun`` on a cluster) starts
N copies of a program with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` in their environment.  :func:`init_from_env`
reads them and joins the process group: gloo on CPU, NCCL on GPUs.  A program
started without them is a world of one, and every helper here is then the
identity (no process group is created), so the trainer runs one code path in
both cases.

The helpers read the world from ``torch.distributed`` (the process group is
torch's, created once per process); they keep no state of their own.
"""
from __future__ import annotations

import datetime
import os
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from model.errors import UgaarError

#: How long a rank waits at a collective for the others.  Rank 0 validates
#: and writes the checkpoint while the others wait at a barrier; on a large
#: validation split that can take longer than torch's 10 min NCCL default.
DEFAULT_TIMEOUT_S = 3600.0


class DistributedError(UgaarError, RuntimeError):
    """The process group cannot be set up as asked (a bad environment, a too small batch)."""


@dataclass(frozen=True)
class World:
    """Where this process stands in the job.

    Parameters
    ----------
    rank : int
        0 … size − 1; rank 0 writes files and runs validation.
    size : int
        Number of processes (1: not distributed).
    local_rank : int
        Rank on this machine (selects the GPU).
    backend : str
        ``gloo``, ``nccl``, or ``""`` when not distributed.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def env_world_size() -> int:
    """``WORLD_SIZE`` of the environment (1 when not started by torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        raise DistributedError("WORLD_SIZE", f"is {os.environ.get('WORLD_SIZE')!r}, not a number",
                               "start the job with torchrun, which sets it") from None


def _initialised() -> bool:
    """Whether this process has joined a process group (False in a torch build without one)."""
    return dist.is_available() and dist.is_initialized()


def _several_ranks() -> bool:
    """Whether collectives have other ranks to talk to (a process group of two or more)."""
    return _initialised() and dist.get_world_size() > 1


def current() -> World:
    """The world of an initialised process group, or a world of one."""
    if _initialised():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                     str(dist.get_backend()))
    return World()


def init_from_env(device: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S) -> World:
    """Join the process group that torchrun's environment describes.

    Parameters
    ----------
    device : str
        ``cpu`` (gloo) or ``cuda`` (NCCL; each process takes GPU ``LOCAL_RANK``).
    timeout_s : float
        Collective timeout.

    Returns
    -------
    World
        A world of one (and no process group) without torchrun's environment.
    """
    size = env_world_size()
    if size <= 1:
        return World()
    if _initialised():
        return current()
    if not dist.is_available():
        raise DistributedError("torch.distributed", "is not available in this torch build",
                               "install a torch wheel with distributed support")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError("environment", f"WORLD_SIZE={size} but {', '.join(missing)} not set",
                               "start the job with torchrun (see docs/scaling.md)")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DistributedError("--device cuda", "CUDA is not available on this machine",
                                   "use --device cpu (gloo)")
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return current()


def shutdown(together: bool = False) -> None:
    """Leave the process group (no-op when there is none).

    Parameters
    ----------
    together : bool
        Wait at a barrier until every rank leaves, then destroy the group on all
        of them at once: torch documents ``destroy_process_group`` as a call every
        rank makes when communication is over.  A rank that finished early (the
        feature-extraction ranks other than 0 leave after the pre-training while
        rank 0 embeds) and destroyed the group alone aborted once under load
        ("terminate called without an active exception", SIGABRT, in the
        two-process extraction test of the full suite).  Pass it on the paths
        where every rank reaches this call (success, a stop every rank saw); on
        an error leave it False, so a failing rank exits at once and torchrun
        ends the others.
    """
    if _initialised():
        if together and _several_ranks():
            dist.barrier()
        dist.destroy_process_group()


def device_of(device: str, world: World) -> str:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under a distributed NCCL job."""
    if world.distributed and device == "cuda":
        return f"cuda:{world.local_rank}"
    return device


# ------------------------------------------------------------------ sampling
def shard_bounds(n: int, world: World) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of an ``n``-row global batch that ``world.rank`` takes.

    The split is ``np.array_split``'s: contiguous, sizes differing by at most
    one, the larger ones first.  Every rank computes it from ``n`` alone, so
    no rank has to ask the others.
    """
    sizes = shard_sizes(n, world.size)
    lo = int(sum(sizes[:world.rank]))
    return lo, lo + sizes[world.rank]


def shard_sizes(n: int, size: int) -> list[int]:
    """Rows of an ``n``-row global batch on each of ``size`` ranks (``np.array_split``'s)."""
    base, extra = divmod(int(n), int(size))
    return [base + (1 if r < extra else 0) for r in range(size)]


def epoch_batches(n: int, steps: int, seed: Sequence[int]) -> list[np.ndarray]:
    """The global batches of one epoch: a seeded permutation of ``n`` rows cut into ``steps`` parts.

    Every rank draws the same permutation and the same cuts, so every rank
    runs the same number of steps (what ``DistributedSampler``'s ``drop_last``
    buys) without dropping a sample: a global batch whose size is not a
    multiple of the world size gives ranks row counts that differ by one,
    and the gathers pad them (:func:`gather_rows`).
    """
    order = np.random.default_rng(list(seed)).permutation(n)
    return np.array_split(order, steps)


@dataclass(frozen=True)
class Shard:
    """This rank's rows ``[lo, hi)`` of an ``n``-row global batch.

    A world of one owns every row, and then every method is the identity
    (no collective), so a single process computes exactly what it always did.
    """

    n: int
    lo: int
    hi: int
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, n: int, world: World) -> "Shard":
        lo, hi = shard_bounds(n, world)
        return cls(n, lo, hi, tuple(shard_sizes(n, world.size)))

    @property
    def distributed(self) -> bool:
        return len(self.sizes) > 1

    @property
    def rows(self) -> slice:
        return slice(self.lo, self.hi)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """Every rank's rows (this shard's layout), with the gradient flowing back to their owners."""
        return gather_rows(local, self.sizes)

    def share(self, local_mean: torch.Tensor) -> torch.Tensor:
        """A mean over this rank's rows turned into its share of the global mean.

        mean_own · n_own / n = Σ_own / n; the ranks' shares sum to the global
        mean, and the summed gradients to its gradient.
        """
        if not self.distributed:
            return local_mean
        return local_mean * ((self.hi - self.lo) / self.n)

    def mean(self, local: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor whose first dimension is this rank's rows, over the global batch."""
        if not self.distributed:
            return local.mean()
        return all_sum(local.detach().sum().reshape(1))[0] / (self.n * local[0].numel())


# --------------------------------------------------------------- collectives
def gather_rows(local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Concatenate every rank's rows in rank order, with the gradient flowing back.

    Uses ``torch.distributed.nn.functional.all_gather``, whose backward
    sums each rank's gradient with respect to the gathered rows and returns
    the sum to the rank that owns them (the plain ``all_gather`` returns
    none).  Rank ``r`` holds ``sizes[r]`` rows; shorter blocks are padded to
    the longest for the collective and the padding is cut off again.

    Parameters
    ----------
    local : (sizes[rank], ...) tensor
    sizes : row count of every rank

    Returns
    -------
    (sum(sizes), ...) tensor
    """
    if len(sizes) <= 1:
        return local
    from torch.distributed.nn.functional import all_gather

    longest = max(sizes)
    pad = longest - local.shape[0]
    if pad:
        local = torch.cat([local, local.new_zeros((pad, *local.shape[1:]))])
    with warnings.catch_warnings():
        # torch 2.13 marks it deprecated in favour of the experimental functional collectives; it is
        # still the documented all-gather with a backward, and what the gloo backend supports
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(local.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over all ranks (no gradient), on every rank."""
    if not _several_ranks():
        return values
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``flag`` is set on any rank (every rank gets the same answer)."""
    if not _several_ranks():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sum_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace every parameter's gradient with its sum over the ranks.

    Each rank's loss is its share of the global loss (the global mean's
    terms of its rows, divided by the global batch size), so the sum of the
    ranks' gradients is the gradient of the global loss.  This is the
    all-reduce ``DistributedDataParallel`` runs, done once per optimiser
    step over one flat buffer: G and D are called several times per step on
    different sub-networks, which DDP's per-forward hooks do not fit.  A
    parameter without a gradient on this rank counts as zero.
    """
    if not _several_ranks():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def average_buffers(module: torch.nn.Module) -> None:
    """Average every floating-point buffer (batch norm's running statistics) over the ranks.

    Each rank's batch norm sees only its own rows, so its running mean and
    variance drift apart from the others'; their average is the estimate
    of the global batch's, and every rank keeps the same model.
    """
    if not _several_ranks():
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1) for b in buffers])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for b in buffers:
        b.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if _several_ranks():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects only)."""
    if not _several_ranks():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank (``[obj]`` when not distributed)."""
    if not _several_ranks():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
