"""Timbre augmentation: seeded, length- and rate-keeping, held-out timbres kept out, cached renderings resume."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from model.features import FeatureConfig
from model.features.augmentation.augment import (OnlineAugment, TimbreAugmenter, add_chorus, add_noise, add_reverb,
                                                 apply_eq, apply_gain, item_rng, jitter_notes, spec_mask, time_stretch)
from model.features.augmentation.config import HELD_OUT_PROGRAMS, AugmentConfig, augment_preset
from model.features.learned.pretrain import Ragged
from model.render.audio import BuiltinRenderer, fluidsynth_available, held_out_soundfont
from model.data.song import Note

SR = 16000
NOTES = tuple(Note(60 + (i * 5) % 12, 0.25 * i, 0.22, "la") for i in range(12))


def _tone(seconds: float = 1.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t) * np.minimum(1.0, 20 * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / SR)[int(np.argmax(spec))])


OPS = {
    "gain": lambda w, rng: apply_gain(w, rng, 6.0),
    "eq": lambda w, rng: apply_eq(w, SR, rng, 6.0),
    "white noise": lambda w, rng: add_noise(w, 20.0, rng),
    "pink noise": lambda w, rng: add_noise(w, 20.0, rng, "pink"),
    "reverb": lambda w, rng: add_reverb(w, SR, rng),
    "chorus": lambda w, rng: add_chorus(w, SR, rng),
    "time stretch": lambda w, rng: time_stretch(w, float(rng.uniform(0.9, 1.1))),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_waveform_augmentations_are_seeded_and_keep_length_and_rate(name):
    op, wave = OPS[name], _tone()
    a, b = op(wave, np.random.default_rng(3)), op(wave, np.random.default_rng(3))
    assert np.array_equal(a, b), "same seed, same audio"
    assert a.dtype == np.float32 and a.shape == wave.shape and np.all(np.isfinite(a))
    # the rate is kept: a 440 Hz tone is still read as 440 Hz at 16 kHz (±1 FFT bin)
    assert abs(_peak_hz(a) - 440.0) <= SR / len(wave) + 1e-6
    if name not in ("gain",):  # a different seed gives a different result
        assert not np.array_equal(a, op(wave, np.random.default_rng(4)))


def test_add_noise_hits_the_requested_snr():
    wave = _tone(2.0)
    noisy = add_noise(wave, 20.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((noisy - wave).astype(np.float64) ** 2))
    assert abs(snr - 20.0) < 0.5


def test_spec_mask_and_note_jitter_are_seeded():
    patches = np.random.default_rng(0).normal(size=(3, 24, 64)).astype(np.float32)
    a = spec_mask(patches, np.random.default_rng(1), 2, 3, 2, 8, -4.6)
    assert a.shape == patches.shape and np.array_equal(a, spec_mask(patches, np.random.default_rng(1), 2, 3, 2, 8, -4.6))
    assert np.any(a == np.float32(-4.6)) and np.array_equal(patches, patches.copy())  # input untouched
    j1, j2 = jitter_notes(NOTES, np.random.default_rng(5), 0.1), jitter_notes(NOTES, np.random.default_rng(5), 0.1)
    assert j1 == j2 and [n.pitch for n in j1] == [n.pitch for n in NOTES]  # tempo only, never pitch
    ratio = j1[-1].onset / NOTES[-1].onset
    assert 0.9 <= ratio <= 1.1 and all(abs(n.duration / m.duration - ratio) < 1e-9 for n, m in zip(j1, NOTES))


def test_config_keeps_held_out_programs_out_and_old_digests():
    with pytest.raises(ValueError, match="held out"):
        AugmentConfig(renderings=2, programs=(0, 48))
    with pytest.raises(ValueError, match="held out"):
        AugmentConfig(renderings=2, programs=(40,))  # violin: too close to the held-out strings
    timbre = augment_preset("timbre")
    assert timbre.enabled and not set(timbre.programs) & set(HELD_OUT_PROGRAMS)
    assert not any(name in " ".join(timbre.timbres()) for name in ("strings", "flute", "choir"))
    # "none" is the neutral value: the digest of earlier encoders and caches is unchanged
    assert FeatureConfig(augment=augment_preset("none")).digest() == FeatureConfig().digest()
    assert FeatureConfig().encoders_digest() == "79a8b96f4035dc43"
    with_aug = FeatureConfig(augment=timbre)
    assert with_aug.digest() != FeatureConfig().digest()
    again = FeatureConfig.from_json(with_aug.to_json())
    assert again == with_aug and again.digest() == with_aug.digest()
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        augment_preset("violins")


def test_builtin_renderings_are_seeded_and_keep_rate_and_length():
    cfg = AugmentConfig(renderings=1, programs=(), tempo_jitter=0.0)  # no programs: the built-in synth only
    one, two = TimbreAugmenter(cfg, SR), TimbreAugmenter(cfg, SR)
    a, name = one.render(NOTES, item_rng(0, "s1", 0))
    b, _ = two.render(NOTES, item_rng(0, "s1", 0))
    assert name == "builtin" and np.array_equal(a, b)
    assert a.shape == BuiltinRenderer(SR).render(NOTES).shape  # no tempo jitter: the canonical length
    assert np.max(np.abs(a)) <= 1.0
    c, _ = one.render(NOTES, item_rng(0, "s1", 1))
    assert not np.allclose(a, c)  # another rendering index, another timbre
    assert one._builtin.profile is None  # the synth is left canonical


@pytest.mark.skipif(not fluidsynth_available()[0], reason="FluidSynth not available")
def test_fluidsynth_renderings_are_seeded_and_use_training_programs():
    cfg = augment_preset("timbre")
    names = set()
    first = TimbreAugmenter(cfg, SR)
    renders = [first.render(NOTES, item_rng(0, "s", k)) for k in range(6)]
    second = TimbreAugmenter(cfg, SR)
    for k, (wave, name) in enumerate(renders):
        again, again_name = second.render(NOTES, item_rng(0, "s", k))
        assert again_name == name and np.allclose(wave, again, atol=1e-6)
        names.add(name)
    assert names and not names & {"strings", "flute", "choir"}
    first.close()
    second.close()


def test_held_out_soundfont_renders_other_samples():
    sf2 = held_out_soundfont()
    if sf2 is None or not fluidsynth_available()[0]:
        pytest.skip("FluidR3_GM (apt-get install fluid-soundfont-gm) or FluidSynth absent")
    from model.render.audio import FluidSynthRenderer
    held, train = FluidSynthRenderer(SR, soundfont=sf2, program=48), FluidSynthRenderer(SR, program=48)
    assert "FluidR3_GM" in held.version and "program 48" in held.version
    a, b = held.render(NOTES), train.render(NOTES)
    assert a.shape == b.shape and not np.allclose(a, b, atol=0.05)


def _ragged(n: int, rng: np.random.Generator) -> Ragged:
    return Ragged.from_list([rng.normal(-2, 1, (int(rng.integers(2, 5)), 24, 64)) for _ in range(n)], (24, 64))


def test_online_augment_is_seeded_by_epoch_and_batch():
    rng = np.random.default_rng(0)
    canonical, variants = _ragged(8, rng), [_ragged(8, rng), _ragged(8, rng)]
    aug = OnlineAugment(canonical, variants, augment_preset("timbre"), log_offset=0.01, seed=0)
    index = np.array([0, 3, 5, 7])
    x1, c1 = aug(index, 2, 1)
    x2, c2 = aug(index, 2, 1)
    assert np.array_equal(x1, x2) and np.array_equal(c1, c2) and len(x1) == c1.sum()
    x3, _ = aug(index, 2, 2)
    assert x3.shape != x1.shape or not np.array_equal(x1, x3)
    # with per-item labels the canonical patches are kept (labels follow them)
    canonical.labels = np.zeros((len(canonical.data), 88), np.float32)
    _, counts = aug(index, 0, 0)
    assert np.array_equal(counts, canonical.counts[index])


def test_variant_cache_resumes_and_rebuilds_damaged_parts(tmp_path, monkeypatch):
    from model.features.augmentation import cache as augment_cache
    monkeypatch.setattr(augment_cache, "CHUNK", 2)
    samples = [SimpleNamespace(sample_id=f"s{i}", notes=NOTES[: 6 + i]) for i in range(5)]
    dataset = SimpleNamespace(root=tmp_path, content_hash="abc", samples=samples)
    cfg = FeatureConfig(augment=AugmentConfig(preset="test", renderings=2, programs=()))
    variants, info = augment_cache.load_or_render_variants(dataset, [0, 1, 2, 3, 4], cfg, workers=1)
    assert len(variants) == 2 and all(len(v) == 5 for v in variants)
    assert info["rendered_parts"] == 3 and info["timbres"] == {"builtin": 10}
    parts = sorted(augment_cache.variants_dir(dataset, cfg).glob("part-*.npz"))
    assert len(parts) == 3
    parts[1].unlink()                       # an interrupted run: one part missing
    parts[2].write_bytes(b"not a zip")      # and one damaged
    again, info2 = augment_cache.load_or_render_variants(dataset, [0, 1, 2, 3, 4], cfg, workers=2)
    assert info2["cached_parts"] == 1 and info2["rendered_parts"] == 2
    for v, w in zip(variants, again):
        assert np.array_equal(v.data, w.data) and np.array_equal(v.offsets, w.offsets)
    # other rendering settings: another folder
    other = FeatureConfig(augment=AugmentConfig(preset="test", renderings=2, programs=(), seed=1))
    assert augment_cache.variants_dir(dataset, other) != augment_cache.variants_dir(dataset, cfg)


def test_pretrain_takes_augmented_batches(tmp_path):
    import torch

    from model.features.augmentation.augment import audio_batch_fn
    from model.features.learned.pretrain import pretrain
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = FeatureConfig(audio_widths=(4, 4, 8, 8), sheet_widths=(4, 4, 8, 8), pretrain_epochs=1, pretrain_batch=4,
                        aux_pitch_weight=0.0, augment=AugmentConfig(preset="test", renderings=1, programs=()))
    audio = _ragged(8, rng)
    sheet = Ragged.from_list([rng.random((2, 48, 48)) for _ in range(8)], (48, 48))
    calls = []
    hook = audio_batch_fn(audio, [_ragged(8, rng)], cfg)

    def spy(index, epoch, batch):
        calls.append((epoch, batch))
        return hook(index, epoch, batch)

    result = pretrain(audio, sheet, audio.subset([]), sheet.subset([]), cfg, tmp_path, audio_batch=spy)
    assert calls == [(0, 0), (0, 1)] and np.isfinite(result.history[0]["loss"])
