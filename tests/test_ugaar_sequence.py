"""Sequence inputs (inputs="aligned"): padding and masks, the sequence encoder, the synthetic stress set."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.feature_set import FeatureSet, SequenceInput, pad_sequences
from model.ugaar import RunConfig
from model.ugaar.factory import build_method, method_from_state
from model.ugaar.model import (Generator, SequenceBatch, SequenceEncoder, SequenceSpec, StructureEncoder,
                               StructureSpec, masked_mean)
from model.ugaar.synthetic import synthetic_stress_features
from model.ugaar.trainer import Trainer

torch.set_num_threads(1)

GOLDEN = [-0.33477, 0.07953, -0.07082, -0.43731, -0.21483, 0.19884, -0.02130, 0.29228, 0.24623, 0.16323, -0.11913, 0.14414]


def _golden_encoder() -> tuple[SequenceEncoder, SequenceBatch]:
    torch.manual_seed(0)
    enc = SequenceEncoder(6, SequenceSpec(5, 8, width=16, layers=1, heads=2, position_dim=4), 12, (32,), 0.0,
                          True).eval()
    g = torch.Generator().manual_seed(123)
    pooled, tokens = torch.randn(3, 6, generator=g), torch.randn(3, 8, 5, generator=g)
    mask = torch.arange(8)[None, :] < torch.tensor([[8], [5], [1]])
    return enc, SequenceBatch(pooled, tokens * mask[..., None], mask)


def test_golden_output_of_the_sequence_encoder():
    enc, batch = _golden_encoder()
    with torch.no_grad():
        out = enc(batch)
    assert out.shape == (3, 12) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)  # normalised like F, G, H
    assert np.allclose(out[:, :4].flatten().numpy(), GOLDEN, atol=2e-4)


# torch.manual_seed(0) StructureEncoder(columns 2, positions 6, dim 4, hidden 16) on _structure_batch():
# a regression value, taken when the encoder was written
STRUCTURE_GOLDEN = [0.68308, -0.50251, -0.35606, -0.39257, -0.57189, 0.51456, -0.37309, -0.51863,
                    -0.62485, 0.25151, -0.43650, -0.59646]


def _structure_batch() -> SequenceBatch:
    g = torch.Generator().manual_seed(7)
    pooled, tokens = torch.randn(3, 6, generator=g), torch.randn(3, 8, 5, generator=g)
    mask = torch.arange(8)[None, :] < torch.tensor([[8], [5], [1]])
    return SequenceBatch(pooled, tokens * mask[..., None], mask)


def test_golden_output_of_the_structure_encoder():
    torch.manual_seed(0)
    enc = StructureEncoder(StructureSpec(columns=2, positions=6, dim=4, hidden=16), dropout=0.0).eval()
    batch = _structure_batch()
    with torch.no_grad():
        out = enc(batch)
        assert out.shape == (3, 4)
        assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
        assert np.allclose(out.flatten().numpy(), STRUCTURE_GOLDEN, atol=2e-4)
        # it reads only the last two columns of the first six positions
        other = batch.tokens.clone()
        other[..., :3] = 5.0
        other[:, 6:] = -5.0
        assert torch.allclose(enc(SequenceBatch(batch.pooled * 0, other, batch.mask)), out, atol=1e-6)
        shorter = SequenceBatch(batch.pooled, batch.tokens[:, :4], batch.mask[:, :4])  # padded up to 6
        changed = batch.tokens.clone()
        changed[:, 4:] = 0.0
        assert torch.allclose(enc(shorter), enc(SequenceBatch(batch.pooled, changed, batch.mask)), atol=1e-6)


def test_structure_block_lyrics_rank_music_by_structure_alone():
    torch.manual_seed(0)
    specs = {m: SequenceSpec(5, 8, width=16, layers=1, heads=2, position_dim=4) for m in ("audio", "sheet", "lyrics")}
    structure = {m: StructureSpec(columns=2, positions=8, dim=6, weight=0.25, hidden=16) for m in specs}
    gen = Generator({"audio": 6, "sheet": 6, "lyrics": 6}, embed_dim=16, hidden=(32,), dropout=0.0,
                    specs=specs, structure=structure).eval()
    batch = _structure_batch()
    with torch.no_grad():
        audio, lyrics = gen("audio", batch), gen("lyrics", batch)
        assert audio.shape == lyrics.shape == (3, 16)
        assert torch.allclose(audio.norm(dim=1), torch.ones(3), atol=1e-5)
        assert torch.allclose(lyrics.norm(dim=1), torch.full((3,), 0.5), atol=1e-5)  # sqrt(0.25)
        assert torch.count_nonzero(lyrics[:, :10]) == 0  # H lives in the structure block only
        # new audio content (pooled vector, non-structure columns) moves F(x) but not its distance to lyrics
        content = batch.tokens.clone()
        content[..., :3] += 3.0
        moved = gen("audio", SequenceBatch(batch.pooled + 2.0, content, batch.mask))
        assert not torch.allclose(moved, audio, atol=1e-3)
        d = torch.cdist(lyrics, audio)
        assert torch.allclose(torch.cdist(lyrics, moved), d, atol=1e-5)
        # eq. 3 compares H with the pair's structure block
        pairs = gen.lyrics_view(0.5 * (audio + gen("sheet", batch)))
        assert torch.count_nonzero(pairs[:, :10]) == 0 and pairs.shape == (3, 16)
    assert "lyrics" not in gen.maps  # no content network for H


def test_padding_content_and_length_do_not_change_the_output():
    enc, batch = _golden_encoder()
    noisy = batch.tokens.clone()
    noisy[~batch.mask] = 99.0  # whatever sits in the padding is ignored
    shorter = SequenceBatch(batch.pooled, noisy[:, :6], batch.mask[:, :6])  # less padding is the same item…
    with torch.no_grad():
        ref = enc(batch)
        assert torch.allclose(enc(SequenceBatch(batch.pooled, noisy, batch.mask)), ref, atol=1e-5)
        # …for items that fit: rows 1 (5 tokens) and 2 (1 token)
        assert torch.allclose(enc(shorter)[1:], ref[1:], atol=1e-5)


def test_leading_dimensions_are_encoded_item_by_item():
    enc, batch = _golden_encoder()
    idx = torch.tensor([[0, 2], [1, 1]])
    with torch.no_grad():
        out = enc(batch[idx])
        assert out.shape == (2, 2, 12)
        assert torch.allclose(out[0, 1], enc(batch)[2], atol=1e-5)


def test_masked_mean_ignores_padding():
    h = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [5.0], [7.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert torch.allclose(masked_mean(h, mask), torch.tensor([[2.0], [14.0 / 3]]))


def test_pad_sequences_truncates_and_never_leaves_an_empty_mask():
    items = [np.ones((3, 2)), np.zeros((0, 2)), np.arange(10, dtype=float).reshape(5, 2)]
    tokens, lengths = pad_sequences(items, 4, 2)
    assert tokens.shape == (3, 4, 2) and tokens.dtype == np.float16
    assert lengths.tolist() == [3, 1, 4]
    assert tokens[0, 3].tolist() == [0, 0] and tokens[2, 3].tolist() == [6, 7]
    seq = SequenceInput(np.zeros((3, 1)), tokens, lengths)
    assert seq.mask.sum(1).tolist() == [3, 1, 4]
    assert seq[1:].mask.shape == (2, 4)


def test_feature_set_round_trip_with_sequences(tmp_path):
    fs = synthetic_stress_features(40, seed=3)
    fs.save(tmp_path / "fs.npz")
    back = FeatureSet.load(tmp_path / "fs.npz")
    assert back.has_sequences and set(back.tokens) == {"audio", "sheet", "lyrics"}
    for m in back.tokens:
        assert np.array_equal(back.tokens[m], fs.tokens[m]) and np.array_equal(back.lengths[m], fs.lengths[m])
    sub = back.split("train")
    assert len(sub.tokens["audio"]) == len(sub)
    with pytest.raises(ValueError, match="no per-position sequences"):
        FeatureSet(fs.sample_ids, fs.song_ids, fs.splits, fs.audio, fs.sheet, fs.lyrics).input_of("audio", "aligned")


@pytest.mark.parametrize("method", ["baseline", "ugaar", "cca", "ugaar-structure"])
def test_aligned_method_state_round_trip(method, tmp_path):
    fs = synthetic_stress_features(60, seed=1)
    extra = {"structure_dim": 8} if method == "ugaar-structure" else {}
    cfg = RunConfig.for_method(method.split("-structure")[0], inputs="aligned", epochs=1, batch_size=16,
                               seq_width=16, seq_heads=2, seq_layers=1, g_hidden=(32,), candidates=32, **extra)
    run = Trainer(cfg, fs, tmp_path / method).run()
    assert run.status == "finished"
    method_obj = run.method()
    again = method_from_state(cfg, {k: v for k, v in torch.load(tmp_path / method / "best.pt",
                                                                  weights_only=True)["method"].items()})
    x = fs.input_of("lyrics", "aligned")
    assert np.allclose(method_obj.embed_modality("lyrics", x), again.embed_modality("lyrics", x), atol=1e-5)
    assert np.allclose(run.embeddings()["lyrics"], method_obj.embed_modality("lyrics", x), atol=1e-4)
    with pytest.raises(ValueError, match="sequences"):
        build_method(cfg, fs).embed_modality("lyrics", fs.lyrics)  # pooled vectors alone are not enough


def test_sequence_model_sees_what_mean_pooling_cannot(tmp_path):
    """Lyric stress decides note lengths; every sample has the same share of stressed syllables."""
    fs = synthetic_stress_features(400, seed=0)
    medr = {}
    for inputs in ("paper", "aligned"):
        cfg = RunConfig.for_method("baseline", inputs=inputs, epochs=8, batch_size=16, lr_d=3e-3, seq_width=32,
                                   seq_heads=2, seq_layers=1, seed=0)
        trainer = Trainer(cfg, fs, tmp_path / inputs)
        run = trainer.run()
        medr[inputs] = run.metrics["test"]["lyrics→audio"]["MedR/N"]
    # the pooled inputs carry no lyrics↔music signal: chance is 0.5
    assert medr["paper"] > 0.25
    assert medr["aligned"] < 0.2 and medr["aligned"] < medr["paper"] / 2


def test_ugaar_structure_block_learns_the_lyrics_directions(tmp_path):
    """On the stress set, UGAAR whose H lives in the structure block ranks music by the lyrics' stress."""
    fs = synthetic_stress_features(400, seed=0)
    cfg = RunConfig.for_method("ugaar", inputs="aligned", epochs=10, batch_size=16, candidates=32, seq_width=32,
                               seq_heads=2, seq_layers=1, g_hidden=(64,), knn=1, structure_dim=8,
                               structure_weight=0.3, structure_hidden=64, seed=0)
    run = Trainer(cfg, fs, tmp_path / "run").run()
    test = run.metrics["test"]
    # chance is 0.5; the pooled lyrics features carry no signal (test above)
    assert test["lyrics→audio"]["MedR/N"] < 0.3 and test["audio→lyrics"]["MedR/N"] < 0.3, test
    emb = run.embeddings()
    assert np.count_nonzero(emb["lyrics"][:, : cfg.embed_dim - 8]) == 0
