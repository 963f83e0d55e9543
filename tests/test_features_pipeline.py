"""Feature extraction end to end on a tiny real dataset (built once per module).

The dataset: the first LMD-full songs when the shared archive is present (about
100 samples), otherwise works of the music21 corpus.  Encoders are tiny so the
whole module runs in well under a minute on 2 CPU cores.
"""
from __future__ import annotations

import dataclasses
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from model.features import FeatureConfig, extract_features, load_embedder
from model.features.config import ONSET_PICKING_CANDIDATES
from model.features.extract import (CONFIG_NAME, WEIGHTS_NAME, cache_key, default_encoders_dir,
                                    has_trained_encoders, load_encoders)
from model.progress import CancelToken, Cancelled
from model.data.song import Note

TINY = FeatureConfig(audio_widths=(4, 8, 16, 16), sheet_widths=(4, 8, 16, 16), pretrain_epochs=2,
                     pretrain_batch=16, pretrain_patience=3, pretrain_lr=3e-3, skipgram_dim=8,
                     skipgram_epochs=3, seed=0)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from model.data.dataset import BuildConfig, build_dataset
    from model.sources.lmd_archive import find_lmd_archive, unpack_lmd_archive

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("features") / "tiny"
    archive = find_lmd_archive()
    if archive is not None:
        release = unpack_lmd_archive(archive)
        cfg = BuildConfig(source="lmd-npy", path=str(release), out=str(out), limit=60, workers=1,
                          audio_renderer="builtin", display_sheets=False)
    else:
        cfg = BuildConfig(source="music21-corpus", path=None, out=str(out), limit=30, workers=1,
                          audio_renderer="builtin", display_sheets=False)
    ds = build_dataset(cfg)
    assert len(ds.split_ids("train")) >= 30 and len(ds.split_ids("val")) >= 2
    return ds


@pytest.fixture(scope="module")
def extracted(tiny_dataset, tmp_path_factory):
    """First extraction: trains tiny encoders into a folder of its own."""
    enc = tmp_path_factory.mktemp("enc") / "a"
    stages = []
    fs = extract_features(tiny_dataset, TINY, encoders_dir=enc, progress=lambda p: stages.append(p.stage))
    return fs, enc, stages


def test_shapes_dtypes_and_alignment(tiny_dataset, extracted):
    fs, enc, stages = extracted
    n = len(tiny_dataset)
    assert len(fs) == n and fs.audio.shape == (n, 128) and fs.sheet.shape == (n, 128)
    assert fs.lyrics.shape == (n, 16)
    for arr in (fs.audio, fs.sheet, fs.lyrics):
        assert arr.dtype == np.float32 and np.all(np.isfinite(arr))
    assert list(fs.sample_ids) == [s.sample_id for s in tiny_dataset.samples]
    assert list(fs.splits) == [s.split for s in tiny_dataset.samples]
    assert {"frontend", "skipgram", "pretrain", "extract"} <= set(stages)
    meta = fs.meta
    assert meta["dataset_hash"] == tiny_dataset.content_hash and meta["encoders_dir"] == str(enc)
    assert Path(meta["cache_path"]).is_file() and Path(meta["cache_path"]).parent.name == "features"
    # the onset picking was chosen on the training and validation items' notes (the test split is not read)
    picking = meta["onset_picking"]
    shares = picking["exact_share"]
    assert picking["items"] == sum(s.split in ("train", "val") for s in tiny_dataset.samples)
    assert set(shares) == {f"{d:g}/{w}" for d, w in ONSET_PICKING_CANDIDATES}
    assert shares[picking["chosen"]] == max(shares.values())
    delta, window = picking["chosen"].split("/")
    chosen = dataclasses.replace(TINY, onset_delta=float(delta), onset_window=int(window))
    assert FeatureConfig.from_dict(meta["config"]) == chosen and chosen.digest() == TINY.digest()
    assert "val" in meta["audio_sheet_figures"]
    # encoders folder layout: config, state dicts (weights_only loadable), skip-gram vectors
    assert has_trained_encoders(enc) and FeatureConfig.from_json(enc / CONFIG_NAME) == TINY
    state = torch.load(enc / WEIGHTS_NAME, weights_only=True)
    assert set(state) == {"audio", "sheet"}
    assert not (enc / "pretrain_resume.pt").exists()


def test_pretraining_smoke_reduces_loss(extracted):
    fs, enc, _ = extracted
    history = load_encoders(enc).report["history"]
    assert len(history) == TINY.pretrain_epochs
    assert history[-1]["loss"] < 0.9 * history[0]["first_batch_loss"]
    assert history[-1]["contrastive"] < history[0]["contrastive"]


def test_deterministic_with_fixed_seed(tiny_dataset, extracted, tmp_path):
    fs, enc, _ = extracted
    again = extract_features(tiny_dataset, TINY, encoders_dir=tmp_path / "b")
    assert again.meta["checkpoint_hash"] == fs.meta["checkpoint_hash"]
    assert again.meta["cache_path"] == fs.meta["cache_path"]  # same key: same dataset, config, weights
    assert np.allclose(again.audio, fs.audio, atol=1e-5) and np.allclose(again.sheet, fs.sheet, atol=1e-5)
    assert np.array_equal(again.lyrics, fs.lyrics)


def test_cache_reused_and_invalidated(tiny_dataset, extracted, tmp_path):
    fs, enc, _ = extracted
    path = Path(fs.meta["cache_path"])
    mtime = path.stat().st_mtime_ns
    stages = []
    cached = extract_features(tiny_dataset, encoders_dir=enc, progress=lambda p: stages.append(p.stage))
    assert stages == ["cache"] and path.stat().st_mtime_ns == mtime
    assert np.array_equal(cached.audio, fs.audio) and cached.meta["checkpoint_hash"] == fs.meta["checkpoint_hash"]
    # force recomputes (same numbers, new file)
    stages.clear()
    forced = extract_features(tiny_dataset, encoders_dir=enc, force=True, progress=lambda p: stages.append(p.stage))
    assert "extract" in stages and "pretrain" not in stages and path.stat().st_mtime_ns != mtime
    assert np.allclose(forced.audio, fs.audio, atol=1e-6)
    # the key changes with each of its three parts
    key = cache_key(tiny_dataset.content_hash, TINY, fs.meta["checkpoint_hash"])
    assert path.stem == key
    assert cache_key("other", TINY, fs.meta["checkpoint_hash"]) != key
    assert cache_key(tiny_dataset.content_hash, TINY, "other") != key
    changed = FeatureConfig(**{**TINY.to_dict(), "seed": 1})
    assert cache_key(tiny_dataset.content_hash, changed, fs.meta["checkpoint_hash"]) != key
    # a changed config trains other encoders (default folder) and caches under another key;
    # here a warm start from the first encoders, which must start from a lower loss
    warm_cfg = FeatureConfig(**{**TINY.to_dict(), "pretrain_epochs": 1, "init_encoders": str(enc)})
    other = extract_features(tiny_dataset, warm_cfg)
    assert other.meta["cache_path"] != fs.meta["cache_path"]
    assert Path(other.meta["encoders_dir"]) == default_encoders_dir(tiny_dataset, warm_cfg)
    assert not np.allclose(other.audio, fs.audio)
    warm_history = load_encoders(other.meta["encoders_dir"]).report["history"]
    cold_history = load_encoders(enc).report["history"]
    assert warm_history[0]["first_batch_loss"] < cold_history[0]["first_batch_loss"]
    assert np.array_equal(other.lyrics, fs.lyrics)  # skip-gram models taken from the warm start


def test_interrupted_pretraining_resumes(tiny_dataset, extracted, tmp_path):
    cfg = TINY
    cancel = CancelToken()
    epochs = []

    def log(line):
        epochs.append(line)
        if line.startswith("epoch 1"):
            cancel.set()  # stop during epoch 2, after epoch 1's checkpoint

    with pytest.raises(Cancelled):
        extract_features(tiny_dataset, cfg, encoders_dir=tmp_path / "r", cancel=cancel, log=log)
    assert (tmp_path / "r" / "pretrain_resume.pt").is_file() and not has_trained_encoders(tmp_path / "r")
    lines = []
    resumed = extract_features(tiny_dataset, cfg, encoders_dir=tmp_path / "r", log=lines.append)
    assert lines[0].startswith("resuming pre-training after epoch 1") and len(lines) == TINY.pretrain_epochs
    assert load_encoders(tmp_path / "r").report["resumed_from_epoch"] == 1
    straight = extracted[0]  # the same configuration trained without interruption
    assert np.allclose(resumed.audio, straight.audio, atol=1e-4)
    assert np.allclose(resumed.sheet, straight.sheet, atol=1e-4)


def test_embedder_new_items(tiny_dataset, extracted, tmp_path):
    fs, enc, _ = extracted
    emb = load_embedder(enc)
    sample = tiny_dataset.samples[0]
    # a typed line, including nonsense and empty text
    line = emb.lyrics(sample.lyrics_text)
    assert line.shape == (16,) and np.abs(line).sum() > 0
    assert np.array_equal(emb.lyrics(""), np.zeros(16, np.float32))
    assert emb.lyrics("qqqzzz xxyyww").shape == (16,)
    # the sample's own syllables give its cached lyrics row
    assert np.allclose(emb.lyrics_syllables(sample.syllables, [n.word_start for n in sample.notes]),
                       fs.lyrics[0], atol=1e-6)
    # a WAV file (16-bit PCM at 16 kHz) of a dataset item gives its cached audio row
    audio, sr = tiny_dataset.load_audio(sample.sample_id)
    wav = tmp_path / "q.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    a = emb.audio_file(wav)
    assert a.shape == (128,) and a.dtype == np.float32
    cos = float(a @ fs.audio[0] / np.linalg.norm(a) / np.linalg.norm(fs.audio[0]))
    assert cos > 0.999
    assert np.allclose(emb.audio(audio, sr), fs.audio[0], atol=1e-4)
    # resampled input still works
    assert emb.audio(np.repeat(audio, 2), 2 * sr).shape == (128,)
    # a PNG
    s = emb.sheet_png(tiny_dataset.sheet_path(sample.sample_id))
    assert np.allclose(s, fs.sheet[0], atol=1e-4)
    # notes rendered on the fly, and a MIDI file with lyrics
    notes = [Note(60 + (i % 5), 0.5 * i, 0.45, syl, True) for i, syl in enumerate("la li lo le lu".split() * 2)]
    out = emb.notes(notes)
    assert set(out) == {"audio", "sheet", "lyrics"}
    assert out["audio"].shape == (128,) and out["sheet"].shape == (128,) and out["lyrics"].shape == (16,)
    import pretty_midi
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for i, syl in enumerate(["hel", "lo", "my", "dear", "friend", "how", "are", "you"]):
        inst.notes.append(pretty_midi.Note(90, 60 + 2 * (i % 4), 0.5 * i, 0.5 * i + 0.4))
        pm.lyrics.append(pretty_midi.Lyric(syl, 0.5 * i))
    pm.instruments.append(inst)
    mid = tmp_path / "q.mid"
    pm.write(str(mid))
    out = emb.midi_file(mid)
    assert out["audio"].shape == (128,) and np.all(np.isfinite(out["sheet"]))


def test_cli_extract_prints_cache_path_and_figures(tiny_dataset, extracted, capsys):
    from model.cli import main
    fs, enc, _ = extracted
    assert main(["features", "extract", str(tiny_dataset.root), "--encoders", str(enc), "--quiet", "--cca"]) == 0
    out = capsys.readouterr().out
    assert fs.meta["cache_path"] in out and "val  audio→sheet" in out and "lyrics→audio" in out
    assert main(["features", "extract", str(tiny_dataset.root / "missing"), "--quiet"]) == 2


def test_sequences_are_extracted_for_every_modality(tiny_dataset, extracted):
    from model.features.tokens.sequences import AUDIO_SCALARS, SHEET_SCALARS, lyrics_token_dim
    fs, _enc, stages = extracted
    n = len(tiny_dataset)
    assert "sequences" in stages and fs.has_sequences
    assert fs.tokens["audio"].shape == (n, TINY.sequence_max_len, 128 + len(AUDIO_SCALARS))
    assert fs.tokens["sheet"].shape == (n, TINY.sequence_max_len, 128 + len(SHEET_SCALARS))
    assert fs.tokens["lyrics"].shape == (n, TINY.sequence_max_len, lyrics_token_dim(16))
    notes = np.array([len(s.notes) for s in tiny_dataset.samples])
    # one token per syllable, per engraved note (x-positions known), and about one per audio onset
    assert np.array_equal(fs.lengths["lyrics"], notes)
    with_x = np.array([tiny_dataset.note_x(s.sample_id) is not None for s in tiny_dataset.samples])
    assert with_x.mean() > 0.9 and np.array_equal(fs.lengths["sheet"][with_x], notes[with_x])
    assert np.median(np.abs(fs.lengths["audio"] - notes)) <= 3
    for m in fs.tokens:  # padding is zero
        mask = np.arange(fs.tokens[m].shape[1])[None, :] < fs.lengths[m][:, None]
        assert np.all(fs.tokens[m][~mask] == 0) and np.isfinite(fs.tokens[m].astype(np.float32)).all()


def test_embedder_sequences_match_the_dataset_rows(tiny_dataset, extracted):
    fs, enc, _ = extracted
    emb = load_embedder(enc)
    sample = tiny_dataset.samples[1]
    i = 1

    def same(seq, m, atol):
        k = int(seq.lengths[0])
        assert k == int(fs.lengths[m][i]), m
        assert np.allclose(seq.tokens[0, :k].astype(np.float32), fs.tokens[m][i, :k].astype(np.float32), atol=atol)

    same(emb.lyrics_syllables_sequence(sample.syllables, [n.word_start for n in sample.notes]), "lyrics", 1e-3)
    wave_, sr = tiny_dataset.load_audio(sample.sample_id)
    same(emb.audio_sequence(wave_, sr), "audio", 2e-2)
    same(emb.sheet_sequence(tiny_dataset.sheet_path(sample.sample_id), tiny_dataset.note_x(sample.sample_id),
                            sample.notes), "sheet", 2e-2)
    # a typed line goes through the syllabifier; a line without letters gives one zero token
    typed = emb.lyrics_sequence("Yesterday, all my troubles seemed so far away")
    assert typed.lengths.tolist() == [12] and typed.tokens.shape == (1, TINY.sequence_max_len, fs.tokens["lyrics"].shape[2])
    assert emb.lyrics_sequence("...").lengths.tolist() == [1]
    # a sheet image without note positions still gives windows
    assert emb.sheet_sequence(tiny_dataset.sheet_path(sample.sample_id)).lengths[0] >= 2


def test_onset_threshold_is_an_extraction_setting(tiny_dataset, extracted):
    """--onset-delta re-cuts the audio tokens with the same encoders; queries cut theirs alike."""
    fs, enc, _ = extracted
    stages = []
    other = extract_features(tiny_dataset, encoders_dir=enc, sequence_settings={"onset_delta": 0.3, "seed": 9},
                             progress=lambda p: stages.append(p.stage))
    assert "pretrain" not in stages and other.meta["checkpoint_hash"] == fs.meta["checkpoint_hash"]
    assert other.meta["cache_path"] != fs.meta["cache_path"]
    assert other.meta["config"]["onset_delta"] == 0.3 and other.meta["config"]["seed"] == fs.meta["config"]["seed"]
    assert np.array_equal(other.audio, fs.audio) and np.array_equal(other.tokens["sheet"], fs.tokens["sheet"])
    # a higher threshold finds fewer onsets
    assert other.lengths["audio"].sum() < fs.lengths["audio"].sum()
    emb = load_embedder(enc, sequence_settings=other.meta["config"])
    assert emb.config.onset_delta == 0.3 and load_embedder(enc).config.onset_delta == TINY.onset_delta
    i = int(np.argmax(fs.lengths["audio"] - other.lengths["audio"]))
    wave_, sr = tiny_dataset.load_audio(tiny_dataset.samples[i].sample_id)
    assert int(emb.audio_sequence(wave_, sr).lengths[0]) == int(other.lengths["audio"][i])


def test_onset_threshold_does_not_change_which_encoders_a_dataset_has(tiny_dataset, extracted):
    """Encoders first trained by an extraction with --onset-delta are the same encoders for a plain one."""
    fs, enc, _ = extracted
    cfg = FeatureConfig(**{**TINY.to_dict(), "pretrain_epochs": 1, "init_encoders": str(enc), "seed": 5})
    first = extract_features(tiny_dataset, cfg, sequence_settings={"onset_delta": 0.3})
    assert first.meta["config"]["onset_delta"] == 0.3
    assert load_encoders(first.meta["encoders_dir"]).config.onset_delta == cfg.onset_delta  # not the override
    stages = []
    plain = extract_features(tiny_dataset, cfg, progress=lambda p: stages.append(p.stage))
    assert "pretrain" not in stages and plain.meta["encoders_dir"] == first.meta["encoders_dir"]
    assert plain.meta["config"]["onset_picking"] == "auto" and plain.meta["cache_path"] != first.meta["cache_path"]
    assert plain.meta["onset_picking"]["chosen"] == (f"{plain.meta['config']['onset_delta']:g}/"
                                                     f"{plain.meta['config']['onset_window']}")
    # the onset picking is not part of the encoders' name: a config of the first picking (0.05 over 3 rows)
    # finds the same encoders and cuts with its own picking
    first_picking = FeatureConfig(**{**cfg.to_dict(), "onset_delta": 0.05, "onset_window": 3,
                                     "onset_picking": "fixed"})
    stages.clear()
    before = extract_features(tiny_dataset, first_picking, progress=lambda p: stages.append(p.stage))
    assert "pretrain" not in stages and before.meta["encoders_dir"] == plain.meta["encoders_dir"]
    assert before.meta["config"]["onset_window"] == 3 and before.meta["onset_picking"] is None
    assert before.meta["cache_path"] not in (plain.meta["cache_path"], first.meta["cache_path"])


def test_learned_onsets_are_trained_once_into_the_encoders_folder_and_cut_queries(tiny_dataset, extracted,
                                                                                   tmp_path):
    """--onset-method learned: the onset network is trained on first use, kept with the encoders, part of
    the cache key, and queries cut their audio with it; without it a query says what to run."""
    import shutil

    from model.features.learned.onset_net import ONSET_NET_FILE

    fs, enc, _ = extracted
    mine = tmp_path / "enc"
    shutil.copytree(enc, mine)  # the module's encoders stay without a network
    stages = []
    learned = extract_features(tiny_dataset, encoders_dir=mine, sequence_settings={"onset_method": "learned"},
                               progress=lambda p: stages.append(p.stage))
    net_file = mine / ONSET_NET_FILE
    assert net_file.is_file() and "onsets" in stages and "pretrain" not in stages
    assert learned.meta["config"]["onset_method"] == "learned"
    assert learned.meta["checkpoint_hash"] == fs.meta["checkpoint_hash"]
    assert learned.meta["cache_key"] != fs.meta["cache_key"]
    assert np.array_equal(learned.tokens["sheet"], fs.tokens["sheet"]) and np.array_equal(learned.audio, fs.audio)
    assert learned.lengths["audio"].min() >= 1
    # again: from the cache, the network not trained a second time
    written = net_file.stat().st_mtime_ns
    again = extract_features(tiny_dataset, encoders_dir=mine, sequence_settings={"onset_method": "learned"})
    assert again.meta["cache_key"] == learned.meta["cache_key"] and net_file.stat().st_mtime_ns == written
    # a query cuts its audio as the dataset item was cut
    emb = load_embedder(mine, sequence_settings=learned.meta["config"])
    i = int(np.argmax(learned.lengths["audio"]))
    wave_, sr = tiny_dataset.load_audio(tiny_dataset.samples[i].sample_id)
    assert int(emb.audio_sequence(wave_, sr).lengths[0]) == int(learned.lengths["audio"][i])
    net_file.unlink()
    with pytest.raises(FileNotFoundError, match="onset-method learned"):
        load_embedder(mine, sequence_settings=learned.meta["config"])


def test_query_lyrics_through_an_aligned_run(tiny_dataset, extracted, tmp_path, capsys):
    from model.cli import main
    from model.ugaar import Run
    fs, _enc, _ = extracted
    path = fs.meta["cache_path"]
    assert main(["train", path, "--method", "baseline", "--epochs", "1", "--out", str(tmp_path / "run"),
                 "--set", "seq_width=16", "--set", "seq_heads=2", "--set", "seq_layers=1"]) == 0
    run = Run.open(tmp_path / "run")
    assert run.config.inputs == "aligned"  # the default when the features have sequences
    capsys.readouterr()
    assert main(["query", str(tmp_path / "run"), "--lyrics", "yesterday all my troubles", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "lyrics → audio" in out and "lyrics → sheet" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("1.", "2.", "3."))]) == 6


def test_query_reranks_audio_and_sheet_by_melody(tiny_dataset, extracted, tmp_path, capsys):
    """A sample's audio finds its own sheet first once re-ranked by pitch, and a recording of its notes by
    another instrument (flute, never trained on) does too; --no-melody leaves the learned order."""
    import soundfile
    from model.cli import main
    from model.render.audio import FluidSynthRenderer, fluidsynth_available
    fs, _enc, _ = extracted
    run_dir = tmp_path / "run"
    assert main(["train", fs.meta["cache_path"], "--method", "baseline", "--epochs", "1", "--out", str(run_dir),
                 "--set", "seq_width=16", "--set", "seq_heads=2", "--set", "seq_layers=1"]) == 0
    sid = tiny_dataset.split_ids("test")[0] if tiny_dataset.split_ids("test") else tiny_dataset.samples[0].sample_id
    capsys.readouterr()
    assert main(["query", str(run_dir), "--sample", sid, "--source", "audio", "--k", "3"]) == 0
    out = capsys.readouterr().out
    sheet_block = out.split("audio → sheet")[1].split("audio → lyrics")[0]
    assert "re-ranked by melody" in sheet_block
    assert sheet_block.splitlines()[1].split()[1] == sid  # its own sheet first
    assert "re-ranked" not in out.split("audio → lyrics")[1]  # lyrics have no pitch
    assert main(["query", str(run_dir), "--sample", sid, "--source", "audio", "--k", "3", "--no-melody"]) == 0
    assert "re-ranked" not in capsys.readouterr().out
    if not fluidsynth_available()[0]:
        return
    wav = tmp_path / "flute.wav"
    soundfile.write(str(wav), FluidSynthRenderer(16000, program=73).render(tiny_dataset.sample(sid).notes), 16000)
    assert main(["query", str(run_dir), "--audio", str(wav), "--target", "sheet", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "re-ranked by melody" in out
    first = [line for line in out.splitlines() if line.strip().startswith("1.")][0]
    assert first.split()[1] == sid


def test_lyrics_scorer_trains_saves_and_reranks_queries(tiny_dataset, extracted, tmp_path, capsys):
    """ugaar lyrics-scorer RUN writes the run's pair scorers; ugaar query then re-ranks lyrics ↔ sheet / audio
    with them (typed lines and samples), says so, and a damaged file is named."""
    from model.cli import main
    from model.search.lyrics_rerank import BATCH_DEFAULT, RERANKER_FILE, LyricsReranker
    from model.feature_set import FeatureSet
    fs, _enc, _ = extracted
    run_dir = tmp_path / "run"
    assert main(["train", fs.meta["cache_path"], "--method", "baseline", "--epochs", "1", "--out", str(run_dir),
                 "--set", "seq_width=16", "--set", "seq_heads=2", "--set", "seq_layers=1"]) == 0
    capsys.readouterr()
    assert main(["lyrics-scorer", str(run_dir), "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (run_dir / RERANKER_FILE).is_file() and "lyrics ↔ sheet: best epoch" in out and "lyrics ↔ audio" in out
    loaded = LyricsReranker.load(run_dir, FeatureSet.load(fs.meta["cache_path"]))
    assert set(loaded.scorers) == {"sheet", "audio"} and set(loaded.weights) == {"sheet", "audio"}
    assert len(loaded.info["sheet"]["history"]) == 2
    # the product trains with the batch chosen on validation, not the dataclass's first-version 128
    assert {loaded.scorers[s].config.batch for s in ("sheet", "audio")} == {BATCH_DEFAULT} != {128}
    # ... and reads the syllables' phonetic columns: the library's come from the dataset's syllables, a
    # query's from its own, and the two agree for the same line
    assert loaded.phonetics and all(loaded.scorers[s].config.phonetics for s in ("sheet", "audio"))
    from model.features import load_embedder
    from model.features.tokens.phonetics import N_PHONETIC
    from model.features.tokens.prosody import N_PROSODY
    sample = tiny_dataset.samples[0]
    embedder = load_embedder(fs.meta["encoders_dir"], sequence_settings=fs.meta.get("config"))
    line = embedder.lyrics_syllables_sequence(sample.syllables, [n.word_start for n in sample.notes])
    query, query_mask = loaded.query_tokens("lyrics", line)
    library, library_mask = loaded.library_query("lyrics", sample.sample_id)
    phonetic = slice(N_PROSODY, N_PROSODY + N_PHONETIC)
    assert np.array_equal(query_mask, library_mask) and library[:, phonetic].any()
    assert np.array_equal(query[:, phonetic], library[:, phonetic])
    # ... and its audio side reads each onset's pitch: the library's measured in the dataset's audio (and kept
    # in its folder), a query's in its own recording, the same for the same item
    from model.features.tokens.onset_pitch import N_ONSET_PITCH
    from model.features.tokens.sequences import AUDIO_SCALARS
    assert loaded.pitch and loaded.scorers["audio"].config.pitch
    assert list((Path(tiny_dataset.root) / "features" / "onset-pitch").glob("v1-*.npz"))
    wave_, sr = tiny_dataset.load_audio(sample.sample_id)
    query, query_mask = loaded.query_tokens("audio", embedder.audio_sequence(wave_, sr))
    library, library_mask = loaded.library_query("audio", sample.sample_id)
    pitch = slice(len(AUDIO_SCALARS), len(AUDIO_SCALARS) + N_ONSET_PITCH)
    assert np.array_equal(query_mask, library_mask) and library[:, pitch][:, 2].sum() >= 0.8 * library_mask.sum()
    assert np.allclose(query[:, pitch], library[:, pitch], atol=2e-3)  # float16 in the cache

    assert main(["query", str(run_dir), "--lyrics", "yesterday all my troubles seemed so far away", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("re-ranked by syllable-by-note pair score") == 2  # lyrics → audio and → sheet
    sid = tiny_dataset.samples[0].sample_id
    assert main(["query", str(run_dir), "--sample", sid, "--source", "sheet", "--k", "3"]) == 0
    out = capsys.readouterr().out
    lyrics_block = out.split("sheet → lyrics")[1]
    assert "re-ranked by syllable-by-note" in lyrics_block.splitlines()[0]
    assert len([l for l in lyrics_block.splitlines() if l.strip()[:2] in ("1.", "2.", "3.")]) == 3
    assert main(["query", str(run_dir), "--sample", sid, "--source", "sheet", "--k", "3", "--no-lyrics-scorer"]) == 0
    assert "syllable-by-note" not in capsys.readouterr().out
    # a MIDI file with lyrics: its syllables and its notes (rendered and engraved) are scored too
    from test_app_fixtures import write_lyric_midi
    midi = write_lyric_midi(tiny_dataset.sample(sid).notes, tmp_path / "query.mid")
    assert main(["query", str(run_dir), "--midi", str(midi), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("re-ranked by syllable-by-note pair score") == 4  # lyrics ↔ audio, lyrics ↔ sheet
    assert "sheet → lyrics  (re-ranked by syllable-by-note" in out
    # a recording: its best window's onsets and their pitch are scored against every line's syllables
    import soundfile
    wav = tmp_path / "sung.wav"
    soundfile.write(str(wav), tiny_dataset.load_audio(sid)[0], 16000)
    assert main(["query", str(run_dir), "--audio", str(wav), "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "audio → lyrics  (re-ranked by syllable-by-note pair score" in out
    assert "audio → sheet  (re-ranked by syllable" not in out
    assert main(["query", str(run_dir), "--audio", str(wav), "--k", "3", "--no-lyrics-scorer"]) == 0
    assert "syllable-by-note" not in capsys.readouterr().out

    (run_dir / RERANKER_FILE).write_bytes(b"not a checkpoint")
    assert main(["query", str(run_dir), "--lyrics", "yesterday", "--k", "3"]) == 2
    err = capsys.readouterr().err
    assert f"{RERANKER_FILE}: not a lyrics scorer" in err and "ugaar lyrics-scorer" in err
