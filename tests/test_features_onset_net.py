"""The learned onset detector (``model.features.learned.onset_net``): targets, peak picking, a golden tensor,
and a real small training that finds the notes of soft-attack audio the spectral flux misses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.data.song import Note
from model.features.config import FeatureConfig
from model.features.extract import audio_input
from model.features.learned.onset_net import (THRESHOLD, OnsetNet, OnsetTraining, load, net_digest, network_input,
                                              onset_probabilities, onset_targets, pick_onsets, save, train_onset_net)
from model.features.tokens.sequences import audio_rows, detect_onsets
from model.render.audio import BuiltinRenderer

CONFIG = FeatureConfig()
ROW_S = CONFIG.stft_hop_s * CONFIG.audio_time_pool


def test_targets_mark_each_onset_row_after_the_silent_row():
    y = onset_targets([0.0, 0.2, 0.41, 9.0], n_rows=20, row_s=0.04)
    assert y.shape == (21,) and y.dtype == np.float32
    assert np.flatnonzero(y).tolist() == [1, 6, 11]  # 9 s is past the item's end: dropped


def test_peaks_above_the_threshold_first_of_a_plateau_and_never_none():
    prob = np.array([0.1, 0.9, 0.9, 0.2, 0.4, 0.6, 0.3, 0.55])
    assert pick_onsets(prob, 0.5).tolist() == [1, 5, 7]
    assert pick_onsets(np.array([0.1, 0.2, 0.1]), 0.5).tolist() == [1]  # nothing above: the likeliest row
    assert pick_onsets(np.zeros(0)).tolist() == [0]


def test_network_input_puts_a_silent_row_first_and_takes_loudness_out():
    rows = np.log(np.full((5, 64), 1e-2, np.float32) + CONFIG.log_offset)
    a, b = network_input(rows, CONFIG.log_offset), network_input(rows + 3.0, CONFIG.log_offset)
    assert a.shape == (6, 64) and np.allclose(a[1:], b[1:]) and np.all(a <= 1.0 + 1e-6) and np.all(a >= -1.0 - 1e-6)
    assert a[0].max() < a[1].min()


def test_onset_net_golden_tensor():
    torch.manual_seed(0)
    net = OnsetNet().eval()
    x = torch.linspace(-1, 1, 2 * 30 * 64).reshape(2, 30, 64)
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 30) and sum(p.numel() for p in net.parameters()) == 33985
    # regression values of this initialisation (seed 0): a change of the layers changes them
    assert out.sum().item() == pytest.approx(-2.6851, abs=1e-3)
    assert out[0, 0].item() == pytest.approx(-0.04711, abs=1e-4)
    assert out[1, -1].item() == pytest.approx(-0.05933, abs=1e-4)


def test_learned_onsets_need_the_network():
    rows = np.zeros((10, 64), np.float32)
    with pytest.raises(ValueError, match="--onset-method learned"):
        detect_onsets(rows, FeatureConfig(onset_method="learned"))


def _melody(rng: np.random.Generator, n: int = 12) -> list[Note]:
    notes, t = [], 0.0
    pitch = 64
    for _ in range(n):
        duration = float(rng.choice([0.2, 0.3, 0.45, 0.6]))
        pitch = int(np.clip(pitch + rng.integers(-4, 5), 55, 76))
        notes.append(Note(pitch, t, duration * 0.95, "la"))
        t += duration
    return notes


def _soft_item(notes: list[Note], attack_s: float, seed: int) -> np.ndarray:
    synth = BuiltinRenderer(CONFIG.sample_rate)
    rng = np.random.default_rng(seed)
    synth.profile = rng.uniform(0.2, 1.0, 5)
    synth.decay, synth.attack_s = 0.1, attack_s  # sustained, slowly rising: a bowed or sung note
    return audio_rows(audio_input(synth.render(notes), CONFIG.sample_rate, CONFIG))


def _f_measure(found_rows: np.ndarray, notes: list[Note]) -> float:
    truth = np.array([n.onset for n in notes])
    found = found_rows * ROW_S
    hits = sum(bool(np.any(np.abs(truth - t) <= 0.08)) for t in found)
    p, r = hits / max(len(found), 1), hits / len(truth)
    return 2 * p * r / max(p + r, 1e-9)


def test_a_small_trained_net_finds_soft_onsets_and_survives_save_and_load(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    items = []
    for i in range(48):
        notes = _melody(rng)
        rows = _soft_item(notes, float(rng.uniform(0.005, 0.25)), i)
        targets = onset_targets([n.onset for n in notes], len(rows), ROW_S)
        items.append((network_input(rows, CONFIG.log_offset), targets))
    net = train_onset_net(items, OnsetTraining(epochs=25, batch=8, lr=3e-3), seed=0)

    learned, flux = [], []
    for i in range(8):  # unseen melodies, a slow attack
        notes = _melody(rng)
        rows = _soft_item(notes, 0.15, 100 + i)
        learned.append(_f_measure(detect_onsets(rows, FeatureConfig(onset_method="learned"), net), notes))
        flux.append(_f_measure(detect_onsets(rows, FeatureConfig(onset_delta=0.02)), notes))
    assert np.mean(learned) >= 0.8, learned
    assert np.mean(learned) > np.mean(flux), (learned, flux)

    save(net, tmp_path, {"note": "test"})
    again = load(tmp_path)
    assert net_digest(again) == net_digest(net)
    assert np.array_equal(onset_probabilities(again, rows, CONFIG.log_offset),
                          onset_probabilities(net, rows, CONFIG.log_offset))
    assert load(tmp_path / "nowhere") is None
    assert 0.0 < THRESHOLD < 1.0


def test_a_damaged_onset_net_file_is_named(tmp_path):
    from model.errors import CorruptFileError
    from model.features.learned.onset_net import ONSET_NET_FILE

    torch.manual_seed(0)
    save(OnsetNet(), tmp_path, {})
    path = tmp_path / ONSET_NET_FILE
    path.write_bytes(path.read_bytes()[:200])  # an interrupted copy
    with pytest.raises(CorruptFileError, match=ONSET_NET_FILE):
        load(tmp_path)
    torch.save({"state": {"layers.0.weight": torch.zeros(1)}, "n_bands": 64, "width": 48}, path)
    with pytest.raises(CorruptFileError, match="trains it again"):
        load(tmp_path)
