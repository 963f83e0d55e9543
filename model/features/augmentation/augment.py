"""Timbre augmentation of the audio branch: other instruments, rooms, levels and noise.

Two levels, both deterministic under a seed:

* **Renderings** (:class:`TimbreAugmenter`): a sample's notes rendered again
  with a random General MIDI program of TimGM6mb (never a held-out one) or
  with the built-in synthesiser under a random harmonic profile and
  envelope, a random velocity and a small pitch-preserving tempo change on
  the note list, then a seeded synthetic room reverb, a chorus, gain, EQ and
  noise on the waveform.  Rendering costs ~15 ms a sample, too much for every
  step on 2 cores, so ``model.features.augmentation.cache`` makes a few per
  training sample once and caches their front-end inputs.
* **Per step** (:class:`OnlineAugment`): each item of a batch takes the
  canonical audio or one of the cached renderings, then random gain, EQ and
  noise in the (time-pooled) log-mel domain and SpecAugment masks.  Gain
  and EQ are exact there up to the log offset and the 4-row pooling; noise
  is an approximation (magnitudes added per mel band).

Every waveform function keeps the length and the sample rate of its input
(tests).  Random state is always an explicit ``numpy.random.Generator``.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Callable, Sequence

import numpy as np

from model.data.song import Note

from .config import GM_NAMES, AugmentConfig


def item_rng(seed: int, sample_id: str, index: int) -> np.random.Generator:
    """The generator of rendering ``index`` of one sample: independent of order and workers."""
    return np.random.default_rng([int(seed), zlib.crc32(sample_id.encode("utf-8")), int(index)])


# -- waveform ------------------------------------------------------------------

def apply_gain(wave: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """Multiply by a gain drawn uniformly in ``±max_db`` dB."""
    return (wave * np.float32(10.0 ** (rng.uniform(-max_db, max_db) / 20.0))).astype(np.float32)


def apply_eq(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, max_db: float,
             points: int = 6) -> np.ndarray:
    """A random smooth EQ: gains within ``±max_db`` dB at ``points`` log-spaced frequencies.

    The curve is interpolated over log frequency and applied in one real FFT
    of the whole wave (zero phase; padded to a fast FFT size, then cut), so
    the length is kept exactly.
    """
    from scipy import fft

    wave = np.asarray(wave, np.float32)
    if wave.size < 2:
        return wave.copy()
    n = fft.next_fast_len(wave.size, real=True)  # an odd length's FFT is 20x slower
    freqs = fft.rfftfreq(n, 1.0 / sample_rate)
    anchors = np.geomspace(60.0, sample_rate / 2, points)
    gains_db = rng.uniform(-max_db, max_db, points)
    curve = 10.0 ** (np.interp(np.log(np.maximum(freqs, 1.0)), np.log(anchors), gains_db) / 20.0)
    return fft.irfft(fft.rfft(wave, n=n) * curve, n=n)[:wave.size].astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white") -> np.ndarray:
    """Add white or pink Gaussian noise at ``snr_db`` dB below the wave's RMS.

    The RMS is that of the samples within 40 dB of the peak (the notes), so
    a melody with long rests gets the noise its notes would.
    """
    wave = np.asarray(wave, np.float32)
    if wave.size == 0:
        return wave.copy()
    noise = rng.standard_normal(wave.size)
    if colour == "pink":  # 1/f power: scale the spectrum by 1/sqrt(f)
        from scipy import fft
        n = fft.next_fast_len(wave.size, real=True)
        spec = fft.rfft(noise, n=n)
        spec[1:] /= np.sqrt(np.arange(1, spec.size))
        noise = fft.irfft(spec, n=n)[:wave.size]
    peak = float(np.max(np.abs(wave)))
    loud = np.abs(wave) > peak * 0.01
    signal_rms = float(np.sqrt(np.mean(wave[loud].astype(np.float64) ** 2))) if loud.any() else 0.0
    noise_rms = float(np.sqrt(np.mean(noise ** 2))) or 1.0
    scale = signal_rms / noise_rms * 10.0 ** (-snr_db / 20.0)
    return (wave + scale * noise).astype(np.float32)


def add_reverb(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
               wet: float | None = None, rt60: float | None = None) -> np.ndarray:
    """A seeded synthetic room: exponentially decaying noise as impulse response.

    ``rt60`` (0.2–1.2 s) and the wet share (0.1–0.5) are drawn when not
    given; the tail past the wave's end is cut (the length is kept).
    """
    from scipy.signal import fftconvolve

    wave = np.asarray(wave, np.float32)
    rt60 = float(rng.uniform(0.2, 1.2)) if rt60 is None else float(rt60)
    wet = float(rng.uniform(0.1, 0.5)) if wet is None else float(wet)
    n = max(1, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir /= np.sqrt(np.sum(ir ** 2)) or 1.0
    tail = fftconvolve(wave, ir)[:wave.size]
    return ((1.0 - wet) * wave + wet * tail).astype(np.float32)


def add_chorus(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, voices: int = 2) -> np.ndarray:
    """Chorus: copies delayed by 10–30 ms, the delay swept by a slow sine (0.2–1.5 Hz)."""
    wave = np.asarray(wave, np.float32)
    t = np.arange(wave.size, dtype=np.float64)
    out = wave.astype(np.float64).copy()
    for _ in range(voices):
        base = rng.uniform(0.010, 0.030) * sample_rate
        depth = rng.uniform(0.001, 0.004) * sample_rate
        rate = rng.uniform(0.2, 1.5) / sample_rate
        delay = base + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
        out += 0.5 * np.interp(t - delay, t, wave, left=0.0)
    return (out / (1.0 + 0.5 * voices)).astype(np.float32)


def time_stretch(wave: np.ndarray, rate: float) -> np.ndarray:
    """Pitch-preserving tempo change (``librosa.effects.time_stretch``), cut or padded to the input length."""
    import librosa

    wave = np.asarray(wave, np.float32)
    if wave.size < 2048 or rate == 1.0:
        return wave.copy()
    out = librosa.effects.time_stretch(wave, rate=float(rate))
    return fit_length(out, wave.size)


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """``wave`` cut or zero-padded at the end to ``n`` samples."""
    wave = np.asarray(wave, np.float32)
    if wave.size >= n:
        return wave[:n].copy()
    return np.pad(wave, (0, n - wave.size))


def jitter_notes(notes: Sequence[Note], rng: np.random.Generator, max_jitter: float) -> tuple[Note, ...]:
    """All onsets and durations scaled by one factor in ``[1 - j, 1 + j]`` (tempo, not pitch)."""
    factor = float(rng.uniform(1.0 - max_jitter, 1.0 + max_jitter)) if max_jitter > 0 else 1.0
    return tuple(dataclasses.replace(n, onset=n.onset * factor, duration=n.duration * factor) for n in notes)


def spec_mask(patches: np.ndarray, rng: np.random.Generator, time_masks: int, time_rows: int,
              freq_masks: int, freq_bands: int, floor: float) -> np.ndarray:
    """SpecAugment on ``(P, T, F)`` log-mel patches: masked rows/bands set to the log floor."""
    out = np.array(patches, dtype=np.float32, copy=True)
    if out.ndim != 3 or out.size == 0:
        return out
    p, t, f = out.shape
    for i in range(p):
        for _ in range(time_masks):
            w = int(rng.integers(0, time_rows + 1))
            s = int(rng.integers(0, max(1, t - w + 1)))
            out[i, s:s + w, :] = floor
        for _ in range(freq_masks):
            w = int(rng.integers(0, freq_bands + 1))
            s = int(rng.integers(0, max(1, f - w + 1)))
            out[i, :, s:s + w] = floor
    return out


# -- renderings ----------------------------------------------------------------

class TimbreAugmenter:
    """Renders a sample's notes in a random training timbre (see the module docstring).

    One FluidSynth synthesiser per program is created on first use and kept
    (creating one costs far more than a render).  Not thread-safe: one per
    worker.

    Parameters
    ----------
    config : AugmentConfig
    sample_rate : int
        Output rate in Hz (the front end's).
    attack_range_s : (float, float)
        Attack times the built-in synthesiser draws from (the onset
        detector's training draws slower ones, ``model.features.learned.onset_net``).
    vibrato_cents : float
        Largest vibrato depth of the built-in synthesiser (0: none, and no
        draw, so the default keeps every earlier rendering).
    """

    def __init__(self, config: AugmentConfig, sample_rate: int = 16000,
                 attack_range_s: tuple[float, float] = (0.005, 0.06), vibrato_cents: float = 0.0) -> None:
        from model.render.audio import BuiltinRenderer, fluidsynth_available
        self.config = config
        self.sample_rate = int(sample_rate)
        self.attack_range_s = (float(attack_range_s[0]), float(attack_range_s[1]))
        self.vibrato_cents = float(vibrato_cents)
        self._fluid: dict[int, Any] = {}
        self._builtin = BuiltinRenderer(self.sample_rate)
        self.have_fluidsynth = fluidsynth_available()[0] and bool(config.programs)

    def _fluidsynth(self, program: int) -> Any:
        if program not in self._fluid:
            from model.render.audio import FluidSynthRenderer
            self._fluid[program] = FluidSynthRenderer(self.sample_rate, program=program)
        return self._fluid[program]

    def render(self, notes: Sequence[Note], rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """One random rendering of ``notes`` and the name of its timbre.

        The same generator state gives the same audio.  Without FluidSynth
        every rendering comes from the built-in synthesiser.
        """
        wave, name, _ = self.render_with_notes(notes, rng)
        return wave, name

    def render_with_notes(self, notes: Sequence[Note], rng: np.random.Generator
                          ) -> tuple[np.ndarray, str, tuple[Note, ...]]:
        """:meth:`render`, and the notes as played (their timings after the tempo jitter)."""
        cfg = self.config
        notes = jitter_notes(notes, rng, cfg.tempo_jitter)
        velocity = int(rng.integers(cfg.velocity[0], cfg.velocity[1] + 1))
        use_builtin = not self.have_fluidsynth or rng.random() < cfg.builtin_share
        if use_builtin:
            synth = self._builtin
            synth.profile = rng.uniform(0.05, 1.0, int(rng.integers(2, 9))) ** 1.5
            synth.profile[0] = max(synth.profile[0], 0.5)  # keep a clear fundamental (the pitch)
            synth.decay = float(rng.uniform(0.2, 3.0))
            synth.attack_s = float(rng.uniform(*self.attack_range_s))
            if self.vibrato_cents:
                synth.vibrato_cents = float(rng.uniform(0.0, self.vibrato_cents))
            try:
                wave = synth.render(notes) * np.float32(velocity / 127.0)
            finally:
                synth.profile, synth.decay, synth.attack_s, synth.vibrato_cents = None, 1.5, synth.ATTACK_S, 0.0
            name = "builtin"
        else:
            program = int(rng.choice(cfg.programs))
            synth = self._fluidsynth(program)
            synth.set_voice(velocity=velocity)
            wave = synth.render(notes)
            name = GM_NAMES.get(program, f"program {program}")
        return self.finish(wave, rng), name, notes

    def finish(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Room, chorus, EQ and noise on a rendered wave, then the renderers' peak (length and rate kept).

        The result is peak-normalised like every dataset rendering (and every
        query window, ``model.search.audio_query``): measured on the music21 set,
        the unaugmented encoders fall from 52 % to 18 % train R@1 under a
        random ±6 dB gain alone, so level is taken out of the problem instead
        of being learnt; only a small gain is left to the per-step augmentation.
        """
        cfg, sr = self.config, self.sample_rate
        if rng.random() < cfg.reverb_prob:
            wave = add_reverb(wave, sr, rng)
        if rng.random() < cfg.chorus_prob:
            wave = add_chorus(wave, sr, rng)
        if cfg.eq_db > 0:
            wave = apply_eq(wave, sr, rng, cfg.eq_db)
        if rng.random() < cfg.noise_prob:
            wave = add_noise(wave, float(rng.uniform(*cfg.noise_snr_db)), rng,
                             "pink" if rng.random() < 0.5 else "white")
        from model.render.audio import peak_normalise
        return peak_normalise(wave)

    def close(self) -> None:
        for synth in self._fluid.values():
            synth.close()
        self._fluid.clear()


# -- per training step ---------------------------------------------------------

class OnlineAugment:
    """Draws each batch item's audio (canonical or a cached rendering) and augments its log-mel rows.

    Parameters
    ----------
    canonical : Ragged
        Time-pooled log-mel patches of the training samples (the dataset's audio).
    variants : sequence of Ragged
        Extra renderings, each with the same samples in the same order (their
        patch counts may differ: tempo jitter).
    config : AugmentConfig
    log_offset : float
        The front end's ``log(mel + log_offset)`` offset (the floor is its log).
    seed : int
        With the epoch and batch number, seeds every draw (a resumed
        pre-training draws the same).
    """

    def __init__(self, canonical: Any, variants: Sequence[Any], config: AugmentConfig, log_offset: float,
                 seed: int = 0) -> None:
        self.canonical = canonical
        self.variants = list(variants)
        self.config = config
        self.log_offset = float(log_offset)
        self.seed = int(seed)

    def __call__(self, index: np.ndarray, epoch: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """``(items, counts)`` for the training samples ``index``, as ``Ragged.gather`` gives them."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, cfg.seed, int(epoch), int(batch), 7])
        # per-item labels (aux_item_weight) follow the canonical patches: keep those then
        use_variants = self.variants and getattr(self.canonical, "labels", None) is None
        parts = []
        for i in index:
            source = self.canonical
            if use_variants and rng.random() < cfg.variant_prob:
                source = self.variants[int(rng.integers(len(self.variants)))]
            parts.append(self.augment_rows(source.data[source.offsets[i]:source.offsets[i + 1]], rng))
        return np.concatenate(parts), np.array([len(p) for p in parts], dtype=np.int64)

    def augment_rows(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Gain, EQ and noise on one sample's pooled log-mel patches ``(P, T, F)``, then masks."""
        cfg = self.config
        off = self.log_offset
        mel = np.maximum(np.exp(rows.astype(np.float32)) - off, 0.0)
        f = mel.shape[-1]
        gain = 10.0 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20.0)
        anchors = rng.uniform(-cfg.eq_db, cfg.eq_db, 6)
        eq = 10.0 ** (np.interp(np.arange(f), np.linspace(0, f - 1, 6), anchors) / 20.0)
        mel = mel * np.float32(gain) * eq.astype(np.float32)
        if rng.random() < cfg.noise_prob:
            level = float(mel.mean()) * 10.0 ** (-rng.uniform(*cfg.noise_snr_db) / 20.0)
            mel = mel + np.abs(rng.normal(level, 0.3 * level, mel.shape)).astype(np.float32)
        out = np.log(mel + off).astype(np.float32)
        return spec_mask(out, rng, cfg.time_masks, cfg.time_mask_rows, cfg.freq_masks, cfg.freq_mask_bands,
                         float(np.log(off)))


def audio_batch_fn(canonical: Any, variants: Sequence[Any], config: Any
                   ) -> Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]:
    """The ``audio_batch`` hook of ``pretrain`` for a ``FeatureConfig`` with augmentation on."""
    return OnlineAugment(canonical, variants, config.augment, config.log_offset, config.seed)
