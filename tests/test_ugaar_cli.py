"""``ugaar train`` / ``evaluate`` / ``query`` end to end on a synthetic FeatureSet."""
from __future__ import annotations

import csv

import torch

from model.cli import main
from model.ugaar import Run
from model.ugaar.synthetic import synthetic_features

torch.set_num_threads(1)


def test_train_evaluate_query(tmp_path, capsys):
    npz = tmp_path / "fs.npz"
    synthetic_features(200, seed=4).save(npz)
    for method in ("baseline", "cca"):
        assert main(["train", str(npz), "--method", method, "--epochs", "2", "--seed", "1",
                     "--out", str(tmp_path / method), "--set", "g_hidden=[64]"]) == 0
    run = Run.open(tmp_path / "baseline")
    assert run.status == "finished" and run.config.seed == 1 and run.config.epochs == 2
    assert run.config.g_hidden == (64,) and run.config.features_path.endswith("fs.npz")

    out = tmp_path / "res"
    assert main(["evaluate", str(tmp_path / "baseline"), str(tmp_path / "cca"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Table I" in printed and "Baseline (n=1)" in printed and "CCA (n=1)" in printed
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert len(rows) == 12 and {r["method"] for r in rows} == {"baseline", "cca"}
    assert rows[0]["split"] == "test" and rows[0]["dataset_hash"] == "synthetic-200-4"

    sid = str(run.sample_ids[0])
    assert main(["query", str(tmp_path / "baseline"), "--sample", sid, "--k", "3", "--source", "audio"]) == 0
    printed = capsys.readouterr().out
    assert "audio → sheet" in printed and "audio → lyrics" in printed and f"rank of {sid}" in printed


def test_train_resume_and_errors(tmp_path, capsys):
    npz = tmp_path / "fs.npz"
    synthetic_features(120, seed=2).save(npz)
    assert main(["train", str(npz), "--method", "baseline", "--epochs", "1", "--out", str(tmp_path / "r")]) == 0
    # resuming a finished run is a no-op that keeps it finished
    assert main(["train", "--resume", str(tmp_path / "r")]) == 0
    assert Run.open(tmp_path / "r").status == "finished"
    assert main(["query", str(tmp_path / "nothing"), "--sample", "x"]) == 2
    assert "not a training run" in capsys.readouterr().err
