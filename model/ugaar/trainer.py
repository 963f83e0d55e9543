"""The training entry: one trainer for Random, CCA, Baseline, Baseline-GAN and UGAAR.

A run lives in a folder::

    RUN/config.json      the RunConfig
    RUN/status.json      running | finished | stopped | failed, with a message
    RUN/events.jsonl     every StepEvent / EpochEvent / RunEvent, one JSON per line
    RUN/checkpoint.pt    last state (networks, optimisers, position, counters)
    RUN/best.pt          the method at the epoch with the best validation score
    RUN/embeddings.npz   retrieval-space vectors of every sample (at the end)
    RUN/metrics.json     validation and test metrics of the selected epoch

Every file is written atomically (``model.atomic``).  Randomness is derived
from ``(seed, epoch, step)``, so :meth:`Trainer.resume` after a
:meth:`Trainer.stop` continues exactly the curve an uninterrupted run draws.

Under ``torchrun`` (``model.distributed``) the same trainer runs on every
rank.  Each rank draws the same global batch, candidate pool and samples,
computes the terms of its own rows of the batch (``model.distributed.Shard``), and gathers
the embeddings that serve as negatives from all ranks with the gradient
(``torch.distributed.nn.functional.all_gather``); the ranks' gradients are
summed before each optimiser step.  The losses are the single-process
losses of the global batch, up to float rounding (docs/scaling.md).  Rank 0
alone writes files, emits events and validates.
"""
from __future__ import annotations

import json
import math
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import distributed as dist_
from model.atomic import atomic_path, write_error, write_json, write_torch
from model.errors import WriteError
from model.search.evaluation import retrieval_metrics, validation_score
from model.events import EpochEvent, EventCallback, RunEvent, StepEvent, TrainingEvent, event_to_json
from model.feature_set import FeatureSet

from . import loss as L
from .cca import ground_truth_pairs
from .config import RunConfig
from .factory import Method, build_method, method_from_state
from .onset_noise import perturb_onsets

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite."""


def _derive_seed(*parts: int) -> int:
    """A 32-bit seed that is a pure function of ``parts``."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def _seed_everything(*parts: int) -> int:
    """Seed torch, numpy and Python's ``random`` from ``parts``; return the seed."""
    seed = _derive_seed(*parts)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    return seed


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = "nan" if bool(torch.isnan(t).any()) else "inf"
        raise NonFiniteLoss(f"{what} is {bad}")


def _jsonable(obj: Any) -> Any:
    """``obj`` with everything JSON cannot hold turned into strings."""
    return json.loads(json.dumps(obj, default=str))


def _load_torch(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


class Trainer:
    """Train one method on one FeatureSet into ``run_dir``.

    Parameters
    ----------
    config : RunConfig
    features : FeatureSet
        Splits ``train`` (fitting), ``val`` (per-epoch metrics, selection),
        ``test`` (reported only).
    run_dir : str or Path
    on_event : callable, optional
        Called with every event, on the thread that runs :meth:`run`.
    """

    def __init__(self, config: RunConfig, features: FeatureSet, run_dir: str | Path,
                 on_event: EventCallback | None = None) -> None:
        config.validate()
        if config.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {config.device!r} requested but CUDA is not available")
        self.config = config
        self.features = features
        self.run_dir = Path(run_dir)
        self.on_event = on_event
        self._stop = threading.Event()
        self.device = torch.device(config.device)
        self.world = dist_.current()
        self.run_dir.mkdir(parents=True, exist_ok=True)

        train_mask = features.splits == "train"
        if not np.any(train_mask):
            raise ValueError("the feature set has no 'train' split")
        self.train = features.split("train")
        val = features.split("val")
        self.val = val if len(val) >= 2 else self.train
        self.val_name = "val" if len(val) >= 2 else "train"

        _seed_everything(config.seed)
        self.method: Method = build_method(config, features)
        self.opt_g: torch.optim.Optimizer | None = None
        self.opt_d: torch.optim.Optimizer | None = None
        if config.trains:
            assert self.method.generator is not None and self.method.discriminator is not None
            self.opt_g = torch.optim.Adam(self.method.generator.parameters(), lr=config.lr_g,
                                          weight_decay=config.weight_decay)
            self.opt_d = torch.optim.Adam(self.method.discriminator.parameters(), lr=config.lr_d,
                                          weight_decay=config.weight_decay)
            self.gt = torch.from_numpy(ground_truth_pairs(self.train.audio, self.train.sheet, config.knn,
                                                          config.cca_components)).to(self.device)
            self.x = {m: self.method.tensor(m, self.train.input_of(m, config.inputs))
                      for m in ("audio", "sheet", "lyrics")}
            self._clean_audio = self.x["audio"]  # what onset noise (audio_onset_noise) perturbs each epoch
            self._init_d_bias()
        n_train = len(self.train)
        self.steps_per_epoch = max(1, math.ceil(n_train / config.batch_size)) if config.trains else 1
        if config.trains and n_train // self.steps_per_epoch < self.world.size:
            raise dist_.DistributedError(
                "--batch-size", f"batches of {n_train // self.steps_per_epoch} samples cannot be split over "
                f"{self.world.size} processes", "use a larger batch or fewer processes")
        self.epoch = 0            # completed epochs
        self.step_in_epoch = 0    # completed steps of the current epoch
        self.global_step = 0
        self.n_events = 0
        self.best_score = -math.inf
        self.best_epoch = 0
        self.history: list[dict[str, Any]] = []

    @torch.no_grad()
    def _init_d_bias(self) -> None:
        """Start b0 at the mean squared distance of true pairs, so D(p | q) starts near ½.

        With b0 = 0, r = −‖Θ_l(q) − Θ(p)‖² is ≈ −40 for 128-d Θ at initialisation,
        σ(r) ≈ 0 for every pair, and D's BCE spends thousands of steps moving b0
        (measured: BCE ≈ 27 after an epoch) instead of ranking.
        """
        D = self.method.discriminator
        idx = torch.arange(min(1024, len(self.train)), device=self.device)
        d = -L.relevance_score(D("lyrics", self.x["lyrics"][idx]),
                               D.pair(self.x["audio"][idx], self.x["sheet"][self.gt[idx, 0]]))
        D.b0.fill_(float(d.mean()))

    # ------------------------------------------------------------- control
    def stop(self) -> None:
        """Ask the run to end after the current step (thread-safe)."""
        self._stop.set()

    @property
    def total_epochs(self) -> int:
        return max(1, self.config.epochs) if self.config.trains else 1

    # -------------------------------------------------------------- events
    def _emit(self, event: TrainingEvent) -> None:
        if not self.world.is_main:  # one event stream per run: rank 0's
            return
        path = self.run_dir / "events.jsonl"
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event_to_json(event), ensure_ascii=False) + "\n")
        except OSError as exc:  # a full disk raises without a file name; say which file
            raise write_error(path, exc) from exc
        self.n_events += 1
        if self.on_event is not None:
            self.on_event(event)

    def _status(self, status: str, message: str = "") -> None:
        if not self.world.is_main:
            return
        write_json(self.run_dir / "status.json", {"status": status, "message": message, "epoch": self.epoch,
                                                  "step_in_epoch": self.step_in_epoch,
                                                  "global_step": self.global_step,
                                                  "best_epoch": self.best_epoch})

    # --------------------------------------------------------- checkpoints
    def _checkpoint_state(self) -> dict[str, Any]:
        st: dict[str, Any] = {"config": self.config.to_dict(), "method": self.method.state(),
                              "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                              "global_step": self.global_step, "n_events": self.n_events,
                              "best_score": self.best_score, "best_epoch": self.best_epoch,
                              "history": json.dumps(self.history)}
        if self.opt_g is not None and self.opt_d is not None:
            st["opt_g"] = self.opt_g.state_dict()
            st["opt_d"] = self.opt_d.state_dict()
        return st

    def _save(self, name: str, state: dict[str, Any]) -> None:
        if not self.world.is_main:  # the ranks hold the same networks; one writes them
            return
        write_torch(self.run_dir / name, state)

    def _save_checkpoint(self) -> None:
        self._save(CHECKPOINT, self._checkpoint_state())

    def _save_best(self) -> None:
        self._save(BEST, {"config": self.config.to_dict(), "method": self.method.state(),
                          "epoch": self.epoch, "score": self.best_score})

    @classmethod
    def resume(cls, run_dir: str | Path, features: FeatureSet | None = None,
               on_event: EventCallback | None = None) -> "Trainer":
        """Continue a stopped or interrupted run from its last checkpoint.

        ``features`` defaults to ``config.features_path``.  Events written after
        the checkpoint (a crash between checkpoints) are dropped, so the curve
        continues from the checkpointed step.
        """
        run_dir = Path(run_dir)
        ckpt_path = run_dir / CHECKPOINT
        if not ckpt_path.exists():
            raise FileNotFoundError(f"{run_dir} has no {CHECKPOINT}: not a run folder or nothing to resume")
        state = _load_torch(ckpt_path)
        config = RunConfig.from_dict(state["config"])
        if features is None:
            if not config.features_path:
                raise ValueError(f"run {run_dir} records no features_path; pass the FeatureSet to resume")
            features = FeatureSet.load(config.features_path)
        trainer = cls(config, features, run_dir, on_event)
        trainer.method.load_state(state["method"])
        if trainer.opt_g is not None and "opt_g" in state:
            trainer.opt_g.load_state_dict(state["opt_g"])
            trainer.opt_d.load_state_dict(state["opt_d"])
        trainer.epoch = int(state["epoch"])
        trainer.step_in_epoch = int(state["step_in_epoch"])
        trainer.global_step = int(state["global_step"])
        trainer.best_score = float(state["best_score"])
        trainer.best_epoch = int(state["best_epoch"])
        trainer.history = json.loads(state["history"])
        n_events = int(state["n_events"])
        events_path = run_dir / "events.jsonl"
        if trainer.world.is_main:
            lines = events_path.read_text(encoding="utf-8").splitlines(keepends=True) if events_path.exists() else []
            with atomic_path(events_path) as tmp:
                tmp.write_text("".join(lines[:n_events]), encoding="utf-8")
        trainer.n_events = n_events
        return trainer

    # ------------------------------------------------------------ training
    def _sample_pairs(self, gen: torch.Generator, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate pool of p_θ: the batch's own ground-truth pairs, then random training pairs.

        Returns audio and sheet row indices (C,); candidate b < B is a true pair of query b.
        Drawn from ``gen``, the same on every rank: the pool is the global batch's.
        """
        n = len(self.train)
        extra = max(0, self.config.candidates - len(queries))
        audio = torch.cat([queries, torch.randint(n, (extra,), generator=gen).to(self.device)])
        col = torch.randint(self.gt.shape[1], (len(audio),), generator=gen).to(self.device)
        return audio, self.gt[audio, col]

    def _embed_pool(self, modality: str, rows: torch.Tensor, shard: dist_.Shard) -> torch.Tensor:
        """G's embedding of the whole candidate pool, each rank embedding its share.

        The pool is the global batch's B true pairs, then C − B random pairs.
        A rank embeds the true pairs of its own queries and its slice of the
        random ones; the gather (with gradient) puts them back in pool order,
        so every rank's queries are scored against every rank's candidates.
        """
        net, x = self.method.generator, self.x[modality]
        if not shard.distributed:
            return net(modality, x[rows])
        b, world = shard.n, len(shard.sizes)
        extra_sizes = dist_.shard_sizes(len(rows) - b, world)
        rank = self.world.rank
        e_lo = b + sum(extra_sizes[:rank])
        own = torch.cat([rows[shard.lo:shard.hi], rows[e_lo:e_lo + extra_sizes[rank]]])
        gathered = dist_.gather_rows(net(modality, x[own]), [s + e for s, e in zip(shard.sizes, extra_sizes)])
        # gathered: rank 0's (true, random), rank 1's (true, random), …  →  all true, then all random
        starts = np.cumsum([0] + [s + e for s, e in zip(shard.sizes, extra_sizes)])
        order = [np.arange(starts[r], starts[r] + shard.sizes[r]) for r in range(world)]
        order += [np.arange(starts[r] + shard.sizes[r], starts[r + 1]) for r in range(world)]
        return gathered[torch.from_numpy(np.concatenate(order)).to(gathered.device)]

    def _g_forward(self, batch: torch.Tensor, pool: tuple[torch.Tensor, torch.Tensor],
                   shard: dist_.Shard) -> dict[str, torch.Tensor]:
        """H(z) of this rank's queries, F(x)/G(y) of the whole candidate pool, p_θ's logits (eq. 3–4).

        ``logits`` are this rank's query rows against every candidate.
        """
        cfg, Gn, x = self.config, self.method.generator, self.x
        own = batch[shard.rows]
        out = {"h": Gn("lyrics", x["lyrics"][own]), "f": self._embed_pool("audio", pool[0], shard),
               "g_pool": self._embed_pool("sheet", pool[1], shard)}
        pairs = Gn.lyrics_view(L.pair_embedding(out["f"], out["g_pool"]))
        out["logits"] = L.generative_logits(out["h"], pairs, cfg.temperature_g)
        if cfg.use_kl or cfg.use_align:
            out["g_own"] = Gn("sheet", x["sheet"][own])
        return out

    @staticmethod
    def _all_logits(fwd: dict[str, torch.Tensor], shard: dist_.Shard) -> torch.Tensor:
        """Every query's p_θ logits (B, C), detached: what the samplers draw from on every rank.

        Gathered once per forward (D's and G's steps of a training step share it); each caller
        gets its own copy to change.
        """
        if "all_logits" not in fwd:
            fwd["all_logits"] = shard.gather(fwd["logits"].detach())
        return fwd["all_logits"].clone()

    def _d_step(self, batch: torch.Tensor, true_sheet: torch.Tensor, pool: tuple[torch.Tensor, torch.Tensor] | None,
                fwd: dict[str, torch.Tensor] | None, gen: torch.Generator, shard: dist_.Shard) -> dict[str, float]:
        cfg, D, x = self.config, self.method.discriminator, self.x
        terms: dict[str, torch.Tensor] = {}
        own, rows = batch[shard.rows], shard.rows
        theta_q = D("lyrics", x["lyrics"][own])
        theta_true = D.pair(x["audio"][own], x["sheet"][true_sheet[rows]])
        if pool is not None and fwd is not None and (cfg.use_bce or cfg.use_margin):
            logits = self._all_logits(fwd, shard)
            _check_finite(logits, "G's p_θ logits (sampling D's negatives)")
            b = shard.n
            if cfg.d_exclude_true:  # a generated pair that is the query's own true pair is no negative
                logits[torch.arange(b), torch.arange(b)] = -torch.inf
            # every rank draws the global batch's samples from the same generator and keeps its rows
            idx = torch.multinomial(torch.softmax(logits, -1).cpu(), cfg.n_samples, replacement=True,
                                    generator=gen).to(self.device)[rows]
            theta_gen = D.pair(x["audio"][pool[0][idx]], x["sheet"][pool[1][idx]])  # (B, S, E)
            if cfg.use_bce:
                terms["bce"] = shard.share(L.discriminator_bce(D.score(theta_q, theta_true),
                                                               D.score(theta_q.unsqueeze(1), theta_gen)))
            if cfg.use_margin:
                terms["margin"] = shard.share(L.margin_loss(theta_q, theta_true, theta_gen, cfg.margin_alpha))
        if cfg.use_triplet:
            theta_a = D("audio", x["audio"][own])
            theta_s = D("sheet", x["sheet"][own])
            a = cfg.margin_alpha
            terms["triplet"] = shard.share(L.in_batch_triplet(theta_q, shard.gather(theta_true), a, shard.lo)
                                           + 0.5 * L.in_batch_triplet(theta_a, shard.gather(theta_s), a, shard.lo)
                                           + 0.5 * L.in_batch_triplet(theta_s, shard.gather(theta_a), a, shard.lo))
        if not terms:
            return {}
        weights = {"bce": cfg.w_bce, "margin": cfg.w_margin, "triplet": cfg.w_triplet}
        total = sum(weights[k] * v for k, v in terms.items())
        return self._optimise(self.opt_d, D, total, terms, "D")

    def _g_step(self, batch: torch.Tensor, pool: tuple[torch.Tensor, torch.Tensor], fwd: dict[str, torch.Tensor],
                gen: torch.Generator, shard: dist_.Shard) -> dict[str, float]:
        cfg, D, Gn, x = self.config, self.method.discriminator, self.method.generator, self.x
        b, rows = shard.n, shard.rows
        own = batch[rows]
        terms: dict[str, torch.Tensor] = {}
        h, f, logits = fwd["h"], fwd["f"], fwd["logits"]
        g_own = fwd.get("g_own")
        if cfg.use_kl:
            terms["kl"] = shard.share(L.teacher_student_kl(h, f[rows], cfg.temperature_kl, cfg.kl_detach_teacher)
                                      + L.teacher_student_kl(h, g_own, cfg.temperature_kl, cfg.kl_detach_teacher))
        if cfg.use_gen_nll:
            target = torch.arange(b, device=self.device)[rows]
            terms["gen_nll"] = L.generative_nll(logits, target)
            if cfg.gen_nll_symmetric:  # each true pair picks its lyrics among the batch's
                if shard.distributed:  # this rank's true pairs against every rank's lyrics
                    own_pairs = Gn.lyrics_view(L.pair_embedding(f[rows], fwd["g_pool"][rows]))
                    reverse = L.generative_logits(shard.gather(h), own_pairs, cfg.temperature_g).t()
                else:
                    reverse = logits[:, :b].t()
                terms["gen_nll"] = 0.5 * (terms["gen_nll"] + L.generative_nll(reverse, target))
            terms["gen_nll"] = shard.share(terms["gen_nll"])
        if cfg.use_align:
            terms["align"] = shard.share(L.info_nce(f[:b], shard.gather(g_own), cfg.temperature_align,
                                                    rows if shard.distributed else None))
        if cfg.use_policy and cfg.adversarial:
            all_logits = self._all_logits(fwd, shard)
            _check_finite(all_logits, "G loss 'policy' (p_θ logits)")
            log_p = torch.log_softmax(logits, -1)
            p = torch.log_softmax(all_logits, -1).exp()
            lam = cfg.importance_mix
            q = (1.0 - lam) * p
            q[torch.arange(b), torch.arange(b)] += lam
            idx = torch.multinomial(q.cpu(), cfg.n_samples, replacement=True, generator=gen).to(self.device)
            weight = (p.gather(1, idx) / q.gather(1, idx))[rows]
            idx = idx[rows]
            with torch.no_grad():
                theta_q = D("lyrics", x["lyrics"][own]).unsqueeze(1)
                theta_gen = D.pair(x["audio"][pool[0][idx]], x["sheet"][pool[1][idx]])
                rel = L.relevance_score(theta_q, theta_gen)
                reward = L.irgan_reward(rel + D.b0) if cfg.reward == "irgan" else L.softplus_reward(rel)
            if cfg.reward_baseline:  # the global batch's mean reward, as one process would subtract
                reward = reward - shard.mean(reward)
            terms["policy"] = shard.share(L.policy_gradient_loss(log_p.gather(1, idx), reward, weight,
                                                                 baseline=False))
        if not terms:
            return {}
        weights = {"kl": cfg.w_kl, "policy": cfg.w_policy, "gen_nll": cfg.w_gen_nll, "align": cfg.w_align}
        total = sum(weights[k] * v for k, v in terms.items())
        return self._optimise(self.opt_g, Gn, total, terms, "G")

    def _optimise(self, opt: torch.optim.Optimizer, net: torch.nn.Module, total: torch.Tensor,
                  terms: dict[str, torch.Tensor], who: str) -> dict[str, float]:
        """Report the global batch's losses, back-propagate, sum the ranks' gradients, step.

        Under DDP each term is this rank's share of the global term, so the
        sum over the ranks is the value one process would report; every rank
        gets it, so a non-finite loss stops every rank at the same step.
        """
        names = list(terms) + ["total"]
        local = torch.stack([v.detach().reshape(()) for v in terms.values()] + [total.detach().reshape(())])
        values = dict(zip(names, dist_.all_sum(local).tolist()))
        for name, value in values.items():
            if not math.isfinite(value):
                raise NonFiniteLoss(f"{who} loss '{name}' is {value}")
        opt.zero_grad(set_to_none=True)
        total.backward()
        dist_.sum_gradients(net.parameters())
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.config.grad_clip)
        opt.step()
        return values

    def _train_step(self, batch_np: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        """One round on one global batch: ``d_steps`` D updates, then ``g_steps`` G updates.

        G's forward pass (H, F, G on the candidate pool) is computed once and
        serves both D's negative sampling and G's first update.  Under DDP
        every rank draws the same global batch, pool and samples (``gen`` is
        seeded alike everywhere) and keeps its own rows; only dropout's masks
        (the global torch seed) differ per rank.
        """
        cfg = self.config
        rank = (self.world.rank,) if self.world.distributed else ()
        _seed_everything(cfg.seed, self.epoch, self.step_in_epoch, 1, *rank)
        gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, self.epoch, self.step_in_epoch, 2))
        batch = torch.from_numpy(batch_np).to(self.device)
        shard = dist_.Shard.of(len(batch), self.world)
        true_sheet = self.gt[batch, torch.randint(self.gt.shape[1], (len(batch),), generator=gen).to(self.device)]
        d_any = cfg.use_triplet or (cfg.adversarial and (cfg.use_bce or cfg.use_margin))
        g_any = cfg.use_kl or cfg.use_gen_nll or cfg.use_align or (cfg.adversarial and cfg.use_policy)
        pool = self._sample_pairs(gen, batch) if (cfg.adversarial or g_any) else None
        fwd = self._g_forward(batch, pool, shard) if pool is not None else None
        d_losses: dict[str, float] = {}
        g_losses: dict[str, float] = {}
        if d_any:
            for i in range(cfg.d_steps):
                if i > 0 and fwd is not None:
                    with torch.no_grad():
                        fwd = self._g_forward(batch, pool, shard)
                d_losses = self._d_step(batch, true_sheet, pool if cfg.adversarial else None, fwd, gen, shard)
        if g_any and pool is not None:
            for i in range(cfg.g_steps):
                if i > 0 or not fwd["logits"].requires_grad:
                    fwd = self._g_forward(batch, pool, shard)
                g_losses = self._g_step(batch, pool, fwd, gen, shard)
        return g_losses, d_losses

    def _validate(self) -> dict[str, dict[str, float]]:
        return retrieval_metrics(self.method.embed(self.val), self.config.metric)

    def _end_epoch(self, seconds: float, started: float) -> None:
        if not self.world.is_main:  # validation and selection are rank 0's (the networks are the same)
            return
        metrics = self._validate()
        score = validation_score(metrics)
        self.history.append({"epoch": self.epoch, "score": score, "seconds": seconds})
        remaining = self.total_epochs - self.epoch
        eta = float(np.mean([h["seconds"] for h in self.history])) * remaining if remaining > 0 else 0.0
        if score > self.best_score or not self.config.select_on_val:
            self.best_score = score
            self.best_epoch = self.epoch
            self._save_best()
        self._emit(EpochEvent(self.epoch, self.total_epochs, metrics, seconds, eta))
        self._save_checkpoint()

    def run(self) -> "Run":
        """Train until the last epoch, a :meth:`stop`, or a non-finite loss; return the Run."""
        from .run import Run

        cfg = self.config
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if self.world.is_main:
            write_json(self.run_dir / "config.json", cfg.to_dict())
            write_json(self.run_dir / "features_meta.json", _jsonable(self.features.meta))
        self._status("running")
        resumed = self.global_step > 0 or self.epoch > 0
        self._emit(RunEvent("started", str(self.run_dir), "resumed" if resumed else ""))
        if not resumed:
            self._save_checkpoint()  # the last good state exists from the start
        started = time.perf_counter()
        try:
            if not cfg.trains:
                t0 = time.perf_counter()
                self.epoch = 1
                self._end_epoch(time.perf_counter() - t0, started)
            while cfg.trains and self.epoch < self.total_epochs:
                t0 = time.perf_counter()
                # the same global batches on every rank (each rank takes its rows of each)
                batches = dist_.epoch_batches(len(self.train), self.steps_per_epoch, (cfg.seed, self.epoch, 7))
                if cfg.audio_onset_noise > 0 and cfg.inputs == "aligned":
                    # one draw per epoch, the same on every rank and again on resume
                    self.x["audio"] = perturb_onsets(self._clean_audio, cfg.audio_onset_noise,
                                                     _derive_seed(cfg.seed, self.epoch, 0, 11))
                stopping = False
                while self.step_in_epoch < self.steps_per_epoch:
                    ts = time.perf_counter()
                    g_losses, d_losses = self._train_step(batches[self.step_in_epoch])
                    self.step_in_epoch += 1
                    self.global_step += 1
                    if self.global_step % cfg.log_every == 0 or self.step_in_epoch == self.steps_per_epoch:
                        self._emit(StepEvent(self.epoch + 1, self.global_step,
                                             self.total_epochs * self.steps_per_epoch, g_losses, d_losses,
                                             time.perf_counter() - ts))
                    # one decision for all ranks: a stop on any rank (rank 0's Trainer.stop, a
                    # signal) ends every rank after the same step
                    stopping = dist_.any_rank(self._stop.is_set(), self.device)
                    if stopping:
                        break
                if stopping and self.step_in_epoch < self.steps_per_epoch:
                    return self._finish("stopped", f"stopped at epoch {self.epoch + 1}, step {self.global_step}; "
                                                   f"resume with `ugaar train --resume {self.run_dir}`")
                self.epoch += 1
                self.step_in_epoch = 0
                self._end_epoch(time.perf_counter() - t0, started)
                # the other ranks wait here while rank 0 validates and writes the checkpoint
                stopping = dist_.any_rank(stopping or self._stop.is_set(), self.device)
                if stopping and self.epoch < self.total_epochs:
                    return self._finish("stopped", f"stopped after epoch {self.epoch}; resume with "
                                                   f"`ugaar train --resume {self.run_dir}`")
        except WriteError as exc:  # disk full, read-only folder: the last checkpoint is intact
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            failure = write_error(exc.filename, cause, then=f"resume with `ugaar train --resume {self.run_dir}` "
                                                            "(the last checkpoint is kept)")
            try:
                self._status("failed", str(failure))
            except OSError:
                pass  # the same full disk: status.json keeps its last state
            raise failure from exc
        except NonFiniteLoss as exc:  # every rank sees the same global loss and gets here together
            message = ""
            if self.world.is_main:
                ckpt = _load_torch(self.run_dir / CHECKPOINT)
                message = (f"{exc} at epoch {self.epoch + 1}, step {self.global_step + 1}: training stopped; "
                           f"the last good checkpoint (epoch {ckpt['epoch']}, step {ckpt['global_step']}) "
                           f"is kept in {self.run_dir}")
                self.method.load_state(ckpt["method"])
            return self._finish("failed", message, save=False)
        return self._finish("finished", f"{self.epoch} epochs; best validation epoch {self.best_epoch}")

    def _finish(self, status: str, message: str, save: bool = True) -> "Run":
        from .run import Run

        if not self.world.is_main:  # rank 0 writes the results; the Run is read once they are there
            dist_.barrier()
            return Run.open(self.run_dir)
        best_path = self.run_dir / BEST
        if best_path.exists() and self.config.select_on_val:
            method = method_from_state(self.config, _load_torch(best_path)["method"])
        else:
            method = self.method
        embeddings = method.embed(self.features)
        with atomic_path(self.run_dir / "embeddings.npz", suffix=".npz") as tmp:
            np.savez(tmp, sample_ids=self.features.sample_ids.astype(str), splits=self.features.splits.astype(str),
                     **{k.replace("@", "__"): v for k, v in embeddings.items()})
        metrics: dict[str, Any] = {"selected_epoch": self.best_epoch, "validation_split": self.val_name}
        for split in ("val", "test"):
            mask = self.features.splits == split
            if mask.sum() >= 2:
                metrics[split] = retrieval_metrics({k: v[mask] for k, v in embeddings.items()}, self.config.metric)
        metrics["config"] = self.config.to_dict()
        metrics["dataset_hash"] = str(self.features.meta.get("dataset_hash", ""))
        write_json(self.run_dir / "metrics.json", metrics)
        self._status(status, message)
        self._emit(RunEvent(status, str(self.run_dir), message))
        if save:  # after the final event, so a resumed run keeps it in its history
            self._save_checkpoint()
        dist_.barrier()
        return Run.open(self.run_dir)


def train(config: RunConfig, features: FeatureSet, run_dir: str | Path,
          on_event: EventCallback | None = None) -> "Run":
    """Train ``config`` on ``features`` into ``run_dir`` and return the finished Run."""
    return Trainer(config, features, run_dir, on_event).run()
