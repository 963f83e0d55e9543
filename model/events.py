"""Training events: the stream the CLI and the GUI both consume.

The trainer calls ``on_event(event)`` from the thread it runs on; the CLI
prints them, the GUI forwards them through a Qt signal to the plots.  Events
are plain dataclasses so runs can also be replayed from ``events.jsonl``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class StepEvent:
    """After each optimisation step.

    ``g_losses`` / ``d_losses`` map each loss term's name to its value
    (e.g. ``{"total": .., "kl": .., "policy": ..}``); an empty dict when that
    network did not step.
    """

    epoch: int
    step: int
    total_steps: int
    g_losses: dict[str, float] = field(default_factory=dict)
    d_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    kind: str = "step"


@dataclass(frozen=True)
class EpochEvent:
    """After each epoch: validation metrics per direction (``"audio→sheet"`` …)."""

    epoch: int
    epochs: int
    metrics: dict[str, dict[str, float]]
    seconds: float = 0.0
    eta_seconds: float = 0.0
    kind: str = "epoch"


@dataclass(frozen=True)
class RunEvent:
    """Start/end of a run: ``status`` in started, finished, stopped, failed."""

    status: str
    run_dir: str
    message: str = ""
    kind: str = "run"


TrainingEvent = StepEvent | EpochEvent | RunEvent
EventCallback = Callable[[TrainingEvent], None]


def event_to_json(event: TrainingEvent) -> dict[str, Any]:
    return asdict(event)


def event_from_json(data: dict[str, Any]) -> TrainingEvent:
    kind = data.get("kind")
    cls = {"step": StepEvent, "epoch": EpochEvent, "run": RunEvent}[kind]
    return cls(**data)
