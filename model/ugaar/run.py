"""A finished (or stopped, or failed) training run, read back from its folder."""
from __future__ import annotations

import json
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.events import TrainingEvent, event_from_json
from model.feature_set import FeatureSet, SequenceInput
from model.validate import load_checkpoint, load_npz, load_run_config, read_json_object

from .config import RunConfig
from .factory import Method, method_from_state

MODALITY_KEYS = ("audio", "sheet", "lyrics")


class Run:
    """A run folder written by :class:`model.ugaar.trainer.Trainer`.

    Attributes
    ----------
    run_dir : Path
    config : RunConfig
    status : str
        ``running``, ``finished``, ``stopped`` or ``failed``.
    message : str
        The status message (e.g. why a run failed).
    metrics : dict
        ``{"val": {direction: {...}}, "test": {...}, "selected_epoch": ...}``
        of the selected epoch (empty before the run ends).
    """

    def __init__(self, run_dir: Path, config: RunConfig, status: dict[str, Any], metrics: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.config = config
        self.status = str(status.get("status", "unknown"))
        self.message = str(status.get("message", ""))
        self.metrics = metrics
        self._loaded: Method | None = None
        self._loading = threading.Lock()

    @classmethod
    def open(cls, run_dir: str | Path) -> "Run":
        """Open a run folder; ``FileNotFoundError`` naming it if it is not one.

        A damaged ``config.json``, ``status.json`` or ``metrics.json`` raises
        :class:`model.errors.CorruptFileError` naming the file (and the field).
        """
        run_dir = Path(run_dir)
        # config.json checked field by field: a hand-edited or damaged file names the field
        config = load_run_config(run_dir)
        status_path = run_dir / "status.json"
        status = read_json_object(status_path) if status_path.is_file() else {}
        metrics_path = run_dir / "metrics.json"
        metrics = read_json_object(metrics_path) if metrics_path.is_file() else {}
        return cls(run_dir, config, status, metrics)

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r}, method={self.config.method!r}, seed={self.config.seed}, status={self.status!r})"

    @property
    def features_meta(self) -> dict[str, Any]:
        """``meta`` of the FeatureSet the run was trained on (dataset hash, encoders_dir, …)."""
        path = self.run_dir / "features_meta.json"
        return read_json_object(path) if path.is_file() else {}

    # ----------------------------------------------------------------- events
    def events(self) -> list[TrainingEvent]:
        """Every event of the run, in order (a resumed run continues the list)."""
        path = self.run_dir / "events.jsonl"
        if not path.is_file():
            return []
        return [event_from_json(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    # ------------------------------------------------------------------ model
    def method(self) -> Method:
        """The selected method (best validation epoch, else the last checkpoint)."""
        for name in ("best.pt", "checkpoint.pt"):
            path = self.run_dir / name
            if path.is_file():
                state = load_checkpoint(path)  # a truncated file: an error naming it
                return method_from_state(self.config.replace(device="cpu"), state["method"])
        raise FileNotFoundError(f"{self.run_dir} has no best.pt or checkpoint.pt")

    def loaded_method(self) -> Method:
        """:meth:`method`, loaded once per ``Run`` and kept in eval mode, for inference only.

        Queries, explanations and the window's worker threads share it
        read-only (eval mode: concurrent forwards never switch dropout on);
        training takes a fresh :meth:`method`.
        """
        with self._loading:
            if self._loaded is None:
                method = self.method()
                for name in ("generator", "discriminator"):
                    net = getattr(method, name, None)
                    if net is not None:
                        net.eval()
                self._loaded = method
            return self._loaded

    @cached_property
    def _saved(self) -> dict[str, np.ndarray]:
        path = self.run_dir / "embeddings.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{self.run_dir} has no embeddings.npz yet (run not finished)")
        return load_npz(path, ("sample_ids", "splits"), what="a run's embeddings (.npz)")

    def embeddings(self, features: FeatureSet | None = None) -> dict[str, np.ndarray]:
        """Retrieval-space vectors ``{"audio", "sheet", "lyrics"}`` (N, E).

        Without ``features``: those saved at the end of the run (its own feature
        set).  With ``features``: computed by the selected method.  CCA runs also
        return pair-specific views ``"A@B"`` (see model.search.evaluation).
        """
        if features is not None:
            return self.method().embed(features)
        return {k.replace("__", "@"): v for k, v in self._saved.items() if k not in ("sample_ids", "splits")}

    def open_dataset(self) -> Any:
        """The run's dataset (``features_meta.json: dataset_root``), or None when it is not recorded or
        cannot be read: a moved or partial dataset still leaves ids and the learned space to answer."""
        root = self.features_meta.get("dataset_root")
        if not root:
            return None
        try:
            from model.data.dataset import Dataset
            return Dataset.open(root)
        except Exception:  # noqa: BLE001 - moved or partial: the callers go on without it
            return None

    @property
    def sample_ids(self) -> np.ndarray:
        return self._saved["sample_ids"]

    @property
    def splits(self) -> np.ndarray:
        return self._saved["splits"]

    def embed_query(self, modality: str, features: "np.ndarray | SequenceInput",
                    target: str | None = None) -> np.ndarray:
        """Map raw features of one modality to the retrieval space of ``target``.

        ``features``: pooled ``(n, D)`` vectors for a run on the paper's
        inputs, a ``SequenceInput`` for a run on aligned inputs (a
        ``SequenceInput`` given to a paper run is reduced to its pooled part).
        """
        return self.loaded_method().embed_modality(modality, features, partner=target)
