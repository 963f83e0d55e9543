"""Why this result (model.search.alignment_view): occlusion interaction of query and result positions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.search.alignment_view import (NO_ALIGNMENT_CCA, NO_ALIGNMENT_PAPER, NO_ALIGNMENT_RANDOM, alignment_status,
                                         note_name, occlusion_alignment, partner_alignment, position_labels,
                                         run_alignment, similarity_matrix)
from model.feature_set import FeatureSet
from model.ugaar import RunConfig
from model.ugaar.factory import build_method
from model.ugaar.synthetic import synthetic_stress_features
from model.ugaar.trainer import Trainer

torch.set_num_threads(1)


def _ragged_stress(n: int = 60, seed: int = 1) -> FeatureSet:
    """The stress set with items of 12, 9 and 5 positions (padding to check)."""
    fs = synthetic_stress_features(n, seed=seed, length=12)
    lengths = {}
    for k, m in enumerate(fs.tokens):
        lens = np.array([(12, 9, 5)[(i + k) % 3] for i in range(n)], dtype=np.int32)
        fs.tokens[m][np.arange(12)[None, :] >= lens[:, None]] = 0
        lengths[m] = lens
    return FeatureSet(fs.sample_ids, fs.song_ids, fs.splits, fs.audio, fs.sheet, fs.lyrics, fs.meta,
                      fs.tokens, lengths)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    fs = _ragged_stress()
    cfg = RunConfig.for_method("ugaar", inputs="aligned", epochs=1, batch_size=16, seq_width=16, seq_heads=2,
                               seq_layers=1, g_hidden=(32,), candidates=32)
    run = Trainer(cfg, fs, tmp_path_factory.mktemp("align") / "run").run()
    assert run.status == "finished"
    return run, run.method(), fs


def test_shapes_padding_and_the_retrieval_similarity(tiny_run):
    run, method, fs = tiny_run
    q = int(np.flatnonzero(fs.lengths["lyrics"] == 5)[0])
    r = int(np.flatnonzero(fs.lengths["sheet"] == 12)[0])
    a = run_alignment(run, method, fs, str(fs.sample_ids[q]), "lyrics", str(fs.sample_ids[r]), "sheet")
    lq, lr = int(fs.lengths["lyrics"][q]), int(fs.lengths["sheet"][r])
    assert a.available and (a.query_length, a.result_length) == (lq, lr) and lq != lr
    assert a.interaction.shape == (12, 12)
    assert a.query_importance.shape == (12,) and a.result_importance.shape == (12,)
    # padding rows, columns and importances are exactly zero; valid cells are not all zero
    assert not a.interaction[lq:].any() and not a.interaction[:, lr:].any()
    assert not a.query_importance[lq:].any() and not a.result_importance[lr:].any()
    assert np.abs(a.valid_interaction).max() > 0 and np.all(np.isfinite(a.interaction))
    # s is what the run retrieves with: minus the distance of the embeddings embed_modality gives
    eq = method.embed_modality("lyrics", fs.input_of("lyrics", "aligned")[[q]], partner="sheet")
    er = method.embed_modality("sheet", fs.input_of("sheet", "aligned")[[r]], partner="lyrics")
    assert a.similarity == pytest.approx(-float(np.linalg.norm(eq - er)), abs=1e-5)
    assert similarity_matrix(eq, er, "cosine")[0, 0] <= 0.0


def test_swapping_query_and_result_transposes_the_interaction(tiny_run):
    run, method, fs = tiny_run
    ids = [str(s) for s in fs.sample_ids]
    ab = run_alignment(run, method, fs, ids[4], "audio", ids[7], "lyrics")
    ba = run_alignment(run, method, fs, ids[7], "lyrics", ids[4], "audio")
    assert ab.interaction.shape == ba.interaction.T.shape
    assert np.allclose(ab.interaction, ba.interaction.T, atol=1e-6)
    assert np.allclose(ab.query_importance, ba.result_importance, atol=1e-6)
    assert ab.similarity == pytest.approx(ba.similarity)


def test_one_position_items_are_occluded_not_emptied(tiny_run):
    _run, method, fs = tiny_run
    one = fs.input_of("lyrics", "aligned")[[0]]
    one.lengths = np.array([1])
    one.tokens = one.tokens.copy()
    one.tokens[:, 1:] = 0
    a = occlusion_alignment(method, "lyrics", one, "audio", fs.input_of("audio", "aligned")[[0]])
    assert a.query_length == 1 and np.all(np.isfinite(a.interaction)) and not a.interaction[1:].any()


def test_models_without_positions_say_so(tmp_path):
    assert alignment_status(RunConfig.for_method("ugaar", inputs="paper")) == NO_ALIGNMENT_PAPER
    assert alignment_status(RunConfig.for_method("cca", inputs="aligned")) == NO_ALIGNMENT_CCA
    assert alignment_status(RunConfig.for_method("random", inputs="aligned")) == NO_ALIGNMENT_RANDOM
    assert alignment_status(RunConfig.for_method("baseline", inputs="aligned")) is None
    assert "paper features" in NO_ALIGNMENT_PAPER
    fs = synthetic_stress_features(40, seed=2)
    paper = build_method(RunConfig.for_method("baseline", inputs="paper", g_hidden=(16,)), fs)
    a = occlusion_alignment(paper, "lyrics", fs.input_of("lyrics", "aligned")[[0]], "sheet",
                            fs.input_of("sheet", "aligned")[[0]])
    assert not a.available and a.message == NO_ALIGNMENT_PAPER and a.interaction.size == 0


def test_labels_and_the_partner_path():
    class N:  # a Note's fields the labels read
        def __init__(self, pitch, syllable):
            self.pitch, self.syllable = pitch, syllable

    class S:
        notes = [N(60, "twin"), N(67, "kle"), N(69, "lit")]

    assert position_labels("lyrics", S, 3) == ["twin", "kle", "lit"]
    assert position_labels("sheet", S, 4) == ["C4", "G4", "A4", "s4"]
    assert position_labels("audio", None, 2, [0.0, 0.48]) == ["0.00 s", "0.48 s"]
    assert note_name(70) == "B♭4"
    diag = partner_alignment("lyrics", "sheet", 3, 2, (4, 4))
    assert diag.sum() == 2 and diag[0, 0] and diag[1, 1]
    # audio onsets at 0.0, 0.46 and 1.02 s over notes starting at 10.0, 10.5, 11.0 s (song time)
    path = partner_alignment("audio", "lyrics", 3, 3, (4, 4), query_onsets=[0.0, 0.46, 1.02],
                             note_onsets=[10.0, 10.5, 11.0])
    assert [tuple(x) for x in np.argwhere(path)] == [(0, 0), (1, 1), (2, 2)]


def _planted(n: int = 300, seed: int = 0, length: int = 16, extra: int = 8) -> tuple[FeatureSet, np.ndarray]:
    """The stress set with ``extra`` pure-noise positions spread between the informative ones."""
    fs = synthetic_stress_features(n, seed=seed, length=length)
    rng = np.random.default_rng(seed + 7)
    t = length + extra
    informative = np.array([p % 3 != 2 for p in range(t)])
    assert informative.sum() == length
    tokens = {}
    for m, tok in fs.tokens.items():
        out = (rng.standard_normal((n, t, tok.shape[2])) * 0.3).astype(np.float32)  # the set's noise level
        out[:, informative] = tok.astype(np.float32)
        tokens[m] = out.astype(np.float16)
    return (FeatureSet(fs.sample_ids, fs.song_ids, fs.splits, fs.audio, fs.sheet, fs.lyrics, dict(fs.meta),
                       tokens, {m: np.full(n, t, np.int32) for m in tokens}), informative)


def test_a_trained_sequence_model_points_at_the_informative_positions(tmp_path):
    """Stress decides note lengths at 16 of 24 positions; the other 8 are noise in every modality."""
    fs, informative = _planted()
    cfg = RunConfig.for_method("baseline", inputs="aligned", epochs=8, batch_size=16, lr_d=3e-3, seq_width=32,
                               seq_heads=2, seq_layers=1, seed=0)
    run = Trainer(cfg, fs, tmp_path / "planted").run()
    assert run.metrics["test"]["lyrics→audio"]["MedR/N"] < 0.2  # it learned the stress pattern
    method = run.method()
    imp, diag_inf, diag_noise, off = [], [], [], []
    for k in np.flatnonzero(fs.splits == "test")[:20]:  # true partners: lyrics query, audio result
        a = occlusion_alignment(method, "lyrics", fs.input_of("lyrics", "aligned")[[k]], "audio",
                                fs.input_of("audio", "aligned")[[k]])
        imp.append(np.abs(np.concatenate([a.query_importance, a.result_importance])))
        d = np.diag(a.interaction)
        diag_inf.append(d[informative].mean())
        diag_noise.append(np.abs(d[~informative]).mean())
        off.append(np.abs(a.interaction[~np.eye(len(d), dtype=bool)]).mean())
    both = np.concatenate([informative, informative])
    imp_mean = np.mean(imp, axis=0)
    # taking away an informative syllable or onset costs more similarity than taking away noise
    assert imp_mean[both].mean() > 1.4 * imp_mean[~both].mean()
    # and the pairs that match are syllable k with onset k: Δ concentrates on the informative diagonal
    assert np.mean(diag_inf) > 4 * np.mean(diag_noise)
    assert np.mean(diag_inf) > 3 * np.mean(off)
