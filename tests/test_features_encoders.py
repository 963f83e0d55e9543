"""Audio and sheet CNNs: shapes, dtypes, golden outputs (open_clip style), pooling, losses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.features.config import FeatureConfig
from model.features.learned.encoders import build_model, mean_by_sample
from model.features.learned.pretrain import Ragged, contrastive_loss, embed_ragged

# build_model(FeatureConfig(), seed=0) in train mode (batch-norm batch statistics) on
# torch.Generator().manual_seed(123): randn(3, 96, 64) then rand(2, 48, 48); first 4 outputs per row.
GOLDEN_AUDIO = [0.71458, -0.58854, 0.79451, 0.36076, -0.20821, -0.22946, 0.29367, -0.01839,
                -0.21624, -0.51144, 0.71819, 0.22483]
GOLDEN_SHEET = [0.00236, 0.57826, -1.25231, -0.4685, -0.43283, 0.49046, -0.96848, 0.29323]


def _golden_inputs():
    g = torch.Generator().manual_seed(123)
    return torch.randn(3, 96, 64, generator=g), torch.rand(2, 48, 48, generator=g)


def test_golden_outputs_of_each_encoder():
    model = build_model(FeatureConfig(), seed=0).train()
    xa, xs = _golden_inputs()
    with torch.no_grad():
        a, s = model.audio(xa), model.sheet(xs)
    assert a.shape == (3, 128) and s.shape == (2, 128) and a.dtype == torch.float32
    assert np.allclose(a[:, :4].flatten().numpy(), GOLDEN_AUDIO, atol=2e-4)
    assert np.allclose(s[:, :4].flatten().numpy(), GOLDEN_SHEET, atol=2e-4)


def test_seed_fixes_weights_and_leaves_global_rng_alone():
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    m1 = build_model(FeatureConfig(), seed=3)
    assert torch.equal(torch.rand(1), before)  # global RNG untouched
    m2 = build_model(FeatureConfig(), seed=3)
    m3 = build_model(FeatureConfig(), seed=4)
    w1, w2, w3 = (m.audio.cnn.head.weight for m in (m1, m2, m3))
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)


def test_pooled_path_equals_full_path():
    model = build_model(FeatureConfig(), seed=0).eval()
    xa, _ = _golden_inputs()
    pooled = xa.reshape(3, 24, 4, 64).mean(2)
    with torch.no_grad():
        assert torch.allclose(model.audio(xa), model.audio.forward_pooled(pooled), atol=1e-6)


def test_mean_by_sample_and_ragged_embedding():
    v = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    out = mean_by_sample(v, [1, 2, 3])
    assert torch.allclose(out, torch.tensor([[0.0, 1.0], [3.0, 4.0], [8.0, 9.0]]))
    rng = np.random.default_rng(0)
    items = [rng.normal(size=(k, 24, 64)).astype(np.float16) for k in (1, 5, 2, 7)]
    r = Ragged.from_list(items)
    assert r.counts.tolist() == [1, 5, 2, 7] and r.data.dtype == np.float16
    sub = r.subset([3, 0])
    assert sub.counts.tolist() == [7, 1] and np.array_equal(sub.data[:7], items[3])
    model = build_model(FeatureConfig(), seed=0).eval()
    whole = embed_ragged(model.audio.forward_pooled, r, max_items=1000)
    chunked = embed_ragged(model.audio.forward_pooled, r, max_items=3)  # chunking must not change results
    assert whole.shape == (4, 128) and whole.dtype == np.float32
    assert np.allclose(whole, chunked, atol=1e-5)


@pytest.mark.parametrize("loss", ["infonce", "ranking"])
def test_contrastive_losses_prefer_matched_pairs(loss):
    cfg = FeatureConfig(loss=loss)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 128, generator=g)
    matched = contrastive_loss(z, z + 0.01 * torch.randn(16, 128, generator=g), cfg)
    shuffled = contrastive_loss(z, z[torch.randperm(16, generator=g)], cfg)
    assert float(matched) < float(shuffled)
    if loss == "ranking":
        assert float(matched) == pytest.approx(0.0, abs=1e-6)


def test_config_json_roundtrip_and_digest(tmp_path):
    cfg = FeatureConfig(audio_widths=(4, 8), seed=5)
    path = tmp_path / "config.json"
    cfg.to_json(path)
    back = FeatureConfig.from_json(path)
    assert back == cfg and back.audio_widths == (4, 8)
    assert FeatureConfig.from_json(cfg.to_json()) == cfg
    assert back.digest() == cfg.digest()
    assert FeatureConfig(seed=6).digest() != FeatureConfig(seed=5).digest()
    assert FeatureConfig(extract_batch=7).digest() == FeatureConfig().digest()  # speed-only field
    with pytest.raises(ValueError):
        FeatureConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError):
        FeatureConfig(loss="bogus")


def test_item_pitch_labels():
    from model.features.learned.labels import audio_patch_labels, sheet_window_labels
    from model.data.song import Note
    cfg = FeatureConfig()
    notes = [Note(60, 10.0, 0.5, "a"), Note(62, 10.5, 1.0, "b"), Note(64, 11.9, 0.3, "c")]
    lab = audio_patch_labels(notes, 3, cfg)  # onsets shifted to 0: 0–0.5, 0.5–1.5, 1.9–2.2; patches 0.96 s
    assert lab.shape == (3, 88) and lab.dtype == np.uint8
    assert np.flatnonzero(lab[0]).tolist() == [60 - 21, 62 - 21]
    assert np.flatnonzero(lab[1]).tolist() == [62 - 21]  # c sounds only 0.02 s in patch 1
    assert np.flatnonzero(lab[2]).tolist() == [64 - 21]
    win = sheet_window_labels(notes, [20.0, 110.0, 230.0], None, 3, 0.5, cfg)  # band x: 10, 55, 115
    assert [np.flatnonzero(w).tolist() for w in win] == [[39], [41], [43]]
    # without positions notes are spread over the width; never an error
    assert sheet_window_labels(notes, None, 288.0, 3, 0.5, cfg).sum() == 3
