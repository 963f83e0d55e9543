"""Synthetic FeatureSets with a known structure, for tests and quick experiments.

Each sample has a melodic latent m.  Audio and sheet features are m through
two different random non-linear maps plus noise (strongly paired, like the
jointly pre-trained CNN features); lyrics features are a weakly related
latent (only part of m, plus more noise) through a third map — like real
lyrics, which say little about the melody.
"""
from __future__ import annotations

import numpy as np

from model.feature_set import FeatureSet


def _random_map(rng: np.random.Generator, d_in: int, d_out: int) -> tuple[np.ndarray, np.ndarray]:
    return (rng.standard_normal((d_in, 256)) / np.sqrt(d_in), rng.standard_normal((256, d_out)) / 16.0)


def _apply(maps: tuple[np.ndarray, np.ndarray], v: np.ndarray) -> np.ndarray:
    return np.tanh(v @ maps[0]) @ maps[1]


def synthetic_features(n: int = 400, seed: int = 0, latent: int = 16, lyrics_dim: int = 64,
                       noise: float = 0.3, lyrics_share: float = 0.5, lyrics_noise: float = 0.8,
                       samples_per_song: int = 2, split_fractions: tuple[float, float] = (0.8, 0.1)) -> FeatureSet:
    """A FeatureSet of ``n`` samples with paired audio/sheet and weakly related lyrics.

    Parameters
    ----------
    n : int
        Samples.
    seed : int
    latent : int
        Dimension of the melodic latent.
    lyrics_dim : int
        Dimension of the lyrics features (audio and sheet are 128).
    noise : float
        Noise on the audio and sheet latents.
    lyrics_share : float
        Fraction of the latent dimensions lyrics see.
    lyrics_noise : float
        Noise on the lyrics latent.
    samples_per_song : int
        Consecutive samples sharing a song id (splits are by song).
    split_fractions : (train, val)
        Fractions of songs; the rest is test.
    """
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, latent))
    maps_a, maps_s = _random_map(rng, latent, 128), _random_map(rng, latent, 128)
    k = max(1, int(round(latent * lyrics_share)))
    maps_l = _random_map(rng, latent, lyrics_dim)
    lyr_latent = np.zeros_like(m)
    lyr_latent[:, :k] = m[:, :k]
    lyr_latent += lyrics_noise * rng.standard_normal(m.shape)
    audio = _apply(maps_a, m + noise * rng.standard_normal(m.shape))
    sheet = _apply(maps_s, m + noise * rng.standard_normal(m.shape))
    lyrics = _apply(maps_l, lyr_latent)
    song_index = np.arange(n) // samples_per_song
    n_songs = int(song_index.max()) + 1
    song_order = rng.permutation(n_songs)
    n_train = int(round(split_fractions[0] * n_songs))
    n_val = int(round(split_fractions[1] * n_songs))
    split_of_song = np.empty(n_songs, dtype=object)
    split_of_song[song_order[:n_train]] = "train"
    split_of_song[song_order[n_train:n_train + n_val]] = "val"
    split_of_song[song_order[n_train + n_val:]] = "test"
    splits = split_of_song[song_index].astype(str)
    return FeatureSet(sample_ids=np.array([f"s{i:05d}" for i in range(n)]),
                      song_ids=np.array([f"song{j:05d}" for j in song_index]),
                      splits=splits,
                      audio=(audio + 0.05 * rng.standard_normal(audio.shape)).astype(np.float32),
                      sheet=(sheet + 0.05 * rng.standard_normal(sheet.shape)).astype(np.float32),
                      lyrics=lyrics.astype(np.float32),
                      meta={"dataset_hash": f"synthetic-{n}-{seed}", "synthetic": True})


def synthetic_stress_features(n: int = 400, seed: int = 0, length: int = 20, noise: float = 0.3,
                              samples_per_song: int = 2,
                              split_fractions: tuple[float, float] = (0.8, 0.1)) -> FeatureSet:
    """Sequences where lyric stress decides note durations, invisible to mean pooling.

    Every sample has ``length`` syllables, exactly half of them stressed, in
    a random order.  A stressed syllable's note is long, in the audio tokens
    (inter-onset interval) and in the sheet tokens (spacing); the lyrics
    tokens carry the stress flag.  Since every sample has the same number of
    stressed syllables, the *mean* over positions is the same for all of
    them: the pooled features say nothing about which lyrics go with which
    music, while the order of long and short notes says everything.  Audio
    and sheet also share a melodic latent in their pooled features (as the
    real pre-trained CNN features do), so audio↔sheet works either way.

    Parameters
    ----------
    n, seed, samples_per_song, split_fractions
        As :func:`synthetic_features`.
    length : int
        Positions per sample.
    noise : float
        Gaussian noise on every token feature.
    """
    base = synthetic_features(n, seed, lyrics_dim=16, samples_per_song=samples_per_song,
                              split_fractions=split_fractions)
    rng = np.random.default_rng(seed + 1)
    stress = np.zeros((n, length), dtype=np.float32)
    for i in range(n):
        stress[i, rng.permutation(length)[: length // 2]] = 1.0

    def tokens(dim: int) -> np.ndarray:
        t = rng.standard_normal((n, length, dim)).astype(np.float32) * noise
        t[..., 0] += stress
        return t

    seq = {"audio": tokens(6), "sheet": tokens(5), "lyrics": tokens(4)}
    lyrics = seq["lyrics"].mean(axis=1) @ rng.standard_normal((4, 16)).astype(np.float32)
    lyrics += 0.1 * rng.standard_normal(lyrics.shape).astype(np.float32)
    return FeatureSet(base.sample_ids, base.song_ids, base.splits, base.audio, base.sheet, lyrics,
                      {"dataset_hash": f"synthetic-stress-{n}-{seed}", "synthetic": True,
                       "structure_dims": {m: v.shape[2] for m, v in seq.items()}},
                      {m: v.astype(np.float16) for m, v in seq.items()},
                      {m: np.full(n, length, dtype=np.int32) for m in seq})
