"""End-to-end training on synthetic features: every method, events, stop/resume, NaN, golden tensors."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from model.search.evaluation import random_expectation, retrieval_metrics
from model.events import EpochEvent, RunEvent, StepEvent
from model.ugaar import Run, RunConfig, Trainer, train
from model.ugaar.factory import build_method
from model.ugaar.synthetic import synthetic_features

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def features():
    return synthetic_features(300, seed=0)


def _train_metrics(run: Run) -> dict:
    emb = run.embeddings()
    mask = run.splits == "train"
    return retrieval_metrics({k: v[mask] for k, v in emb.items()})


def _epoch_means(events, who: str, term: str) -> list[float]:
    by_epoch: dict[int, list[float]] = {}
    for e in events:
        if isinstance(e, StepEvent):
            losses = e.g_losses if who == "G" else e.d_losses
            if term in losses:
                by_epoch.setdefault(e.epoch, []).append(losses[term])
    return [float(np.mean(v)) for _, v in sorted(by_epoch.items())]


@pytest.mark.parametrize("method,who,term", [("baseline", "D", "triplet"), ("baseline-gan", "D", "triplet"),
                                             ("ugaar", "G", "gen_nll"), ("ugaar", "G", "align")])
def test_learned_methods_loss_falls_and_beat_random(features, tmp_path, method, who, term):
    cfg = RunConfig.for_method(method, epochs=6, seed=0)
    events = []
    run = train(cfg, features, tmp_path / method, on_event=events.append)
    assert run.status == "finished"
    curve = _epoch_means(events, who, term)
    assert len(curve) == 6
    assert curve[-1] < 0.8 * curve[0], curve
    m = _train_metrics(run)
    n = m["audio→sheet"]["N"]
    chance = random_expectation(int(n))
    assert np.mean([v["R@10"] for v in m.values()]) > 3 * chance["R@10"]
    assert all(v["MedR"] < 0.5 * chance["MedR"] for v in m.values()), {k: v["MedR"] for k, v in m.items()}
    # events: started … epochs … finished; EpochEvent carries six directions of validation metrics
    assert isinstance(events[0], RunEvent) and events[0].status == "started"
    assert isinstance(events[-1], RunEvent) and events[-1].status == "finished"
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    assert len(epochs) == 6 and set(epochs[0].metrics) >= {"audio→lyrics", "sheet→audio"}
    assert {"R@1", "MedR"} <= set(epochs[0].metrics["lyrics→sheet"])
    assert run.events() == events  # events.jsonl replays the stream
    saved = json.loads((tmp_path / method / "config.json").read_text())
    assert saved["method"] == method and RunConfig.from_dict(saved) == cfg


def test_random_and_cca(features, tmp_path):
    rnd = train(RunConfig.for_method("random", seed=1), features, tmp_path / "random")
    test = rnd.metrics["test"]
    n = int(test["audio→sheet"]["N"])
    # random MedR is uniform-rank median: within a generous band around N/2
    assert all(0.25 * n < v["MedR"] < 0.75 * n for v in test.values())
    cca = train(RunConfig.for_method("cca"), features, tmp_path / "cca")
    m = _train_metrics(cca)
    assert m["audio→sheet"]["R@1"] > 50 and m["lyrics→audio"]["MedR"] < 0.25 * m["lyrics→audio"]["N"]
    emb = cca.embeddings()
    assert {"audio", "sheet", "lyrics", "audio@lyrics", "lyrics@sheet"} <= set(emb)
    assert emb["audio"].shape == (len(features), 128)
    again = cca.embeddings(features)  # recomputed from the saved CCAs = the saved vectors
    assert np.allclose(again["lyrics@sheet"], emb["lyrics@sheet"], atol=1e-5)


def test_stop_and_resume_continue_the_same_curve(features, tmp_path):
    cfg = RunConfig.for_method("ugaar", epochs=3, seed=2)
    full = train(cfg, features, tmp_path / "full")

    box: dict[str, Trainer] = {}

    def stop_at_step_5(event):
        if isinstance(event, StepEvent) and event.step == 5:
            box["t"].stop()

    box["t"] = Trainer(cfg, features, tmp_path / "split", on_event=stop_at_step_5)
    stopped = box["t"].run()
    assert stopped.status == "stopped"
    assert (tmp_path / "split" / "checkpoint.pt").exists()
    steps_before = [e for e in stopped.events() if isinstance(e, StepEvent)]
    assert len(steps_before) == 5 and stopped.events()[-1].status == "stopped"
    resumed = Trainer.resume(tmp_path / "split", features).run()
    assert resumed.status == "finished"
    a = [(e.step, e.g_losses, e.d_losses) for e in full.events() if isinstance(e, StepEvent)]
    b = [(e.step, e.g_losses, e.d_losses) for e in resumed.events() if isinstance(e, StepEvent)]
    assert [s for s, _, _ in a] == [s for s, _, _ in b]
    for (_, ga, da), (_, gb, db) in zip(a, b):
        assert ga.keys() == gb.keys()
        assert np.allclose(list(ga.values()), list(gb.values()), rtol=1e-5, atol=1e-6)
        assert np.allclose(list(da.values()), list(db.values()), rtol=1e-5, atol=1e-6)
    ea, eb = full.embeddings(), resumed.embeddings()
    assert np.allclose(ea["lyrics"], eb["lyrics"], atol=1e-5)
    recomputed = resumed.embeddings(features)  # from best.pt, the same vectors as saved
    assert np.allclose(recomputed["audio"], eb["audio"], atol=1e-5)


def test_stop_from_another_thread(features, tmp_path):
    cfg = RunConfig.for_method("baseline", epochs=50, seed=0)
    trainer = Trainer(cfg, features, tmp_path / "t")
    seen = threading.Event()
    trainer.on_event = lambda e: seen.set() if isinstance(e, StepEvent) else None
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("run", trainer.run()))
    thread.start()
    assert seen.wait(30)
    trainer.stop()
    thread.join(30)
    assert not thread.is_alive() and result["run"].status == "stopped"


def test_nan_loss_stops_with_message_and_keeps_checkpoint(features, tmp_path):
    cfg = RunConfig.for_method("ugaar", epochs=3, seed=0, lr_g=1e30, lr_d=1e30, grad_clip=0.0)
    events = []
    run = train(cfg, features, tmp_path / "nan", on_event=events.append)
    assert run.status == "failed"
    assert ("nan" in run.message or "inf" in run.message) and "last good checkpoint" in run.message
    assert events[-1].status == "failed" and events[-1].message == run.message
    ckpt = torch.load(tmp_path / "nan" / "checkpoint.pt", weights_only=True)
    for net in ("generator", "discriminator"):
        assert all(torch.isfinite(v).all() for v in ckpt["method"][net].values())
    assert Run.open(tmp_path / "nan").status == "failed"


def test_run_open_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        Run.open(tmp_path)


def test_config_round_trip_and_validation():
    cfg = RunConfig.for_method("baseline-gan", seed=3, g_hidden=(64, 32))
    assert RunConfig.from_json(cfg.to_json()) == cfg
    assert cfg.use_triplet and cfg.adversarial and not cfg.use_kl and cfg.retrieval_space == "discriminator"
    with pytest.raises(ValueError, match="method"):
        RunConfig(method="svm")
    with pytest.raises(ValueError, match="unknown fields"):
        RunConfig.from_dict({"method": "ugaar", "colour": 1})


def test_golden_embeddings():
    """Regression: a fixed seed and fixed features give these exact vectors."""
    fs = synthetic_features(40, seed=5)
    method = build_method(RunConfig.for_method("ugaar", seed=0), fs)
    emb = method.embed(fs)
    got = np.round(emb["lyrics"][0, :4].astype(np.float64), 5).tolist()
    got_a = np.round(emb["audio"][3, :4].astype(np.float64), 5).tolist()
    assert got == pytest.approx(GOLDEN_LYRICS, abs=2e-5), got
    assert got_a == pytest.approx(GOLDEN_AUDIO, abs=2e-5), got_a


GOLDEN_LYRICS = [0.0504, 0.09452, 0.08798, -0.14738]
GOLDEN_AUDIO = [0.03646, 0.15451, 0.13261, -0.0116]


def test_golden_first_steps(tmp_path):
    """Regression: the first two steps' losses of a fixed UGAAR run."""
    fs = synthetic_features(60, seed=5)
    events = []
    train(RunConfig.for_method("ugaar", epochs=1, batch_size=16, candidates=32, seed=0), fs, tmp_path / "g",
          on_event=events.append)
    steps = [e for e in events if isinstance(e, StepEvent)][:2]
    got = [round(steps[i].g_losses[k], 4) for i in range(2) for k in ("kl", "gen_nll", "align")]
    got += [round(steps[i].d_losses[k], 4) for i in range(2) for k in ("bce", "margin")]
    assert got == pytest.approx(GOLDEN_STEPS, abs=2e-4), got


GOLDEN_STEPS = [0.0151, 3.8984, 7.0961, 0.0157, 4.1261, 2.9203, 5.0703, 2.6704, 4.2705, 2.0156]
