"""``ugaar query``: retrieve the nearest items of the other modalities."""
from __future__ import annotations

import argparse
import sys

import numpy as np

MODALITIES = ("audio", "sheet", "lyrics")


def _lyrics_lookup(dataset) -> dict:
    """sample id → lyrics text of the run's dataset (empty without one)."""
    return {s.sample_id: " ".join(s.syllables) for s in dataset.samples} if dataset is not None else {}


def query_inputs(embedder, args, aligned: bool) -> dict:
    """A typed line's or a MIDI file's inputs per modality: sequences for an aligned run, pooled vectors otherwise.

    (``--audio`` slides windows over the recording instead: :func:`audio_query`.)
    """
    if aligned:
        if args.lyrics is not None:
            return {"lyrics": embedder.lyrics_sequence(args.lyrics)}
        return embedder.midi_file_sequence(args.midi)
    if args.lyrics is not None:
        raw = {"lyrics": embedder.lyrics(args.lyrics)}
    else:
        raw = embedder.midi_file(args.midi)
    return {s: np.asarray(v, np.float32)[None, :] for s, v in raw.items()}


def window_seconds(dataset) -> float:
    """Length of the dataset's samples in seconds (the sliding window of audio queries); the usual
    sample length without a dataset."""
    from model.search.audio_query import DEFAULT_WINDOW_S, sample_seconds
    return sample_seconds(dataset.samples) if dataset is not None else DEFAULT_WINDOW_S


def melody_reranker(run, args, dataset):
    """The run's ``MelodyReranker`` (audio ↔ sheet results re-ranked by pitch) over its ``dataset``, or
    None with ``--no-melody`` or without a readable dataset."""
    if getattr(args, "no_melody", False) or dataset is None:
        return None
    from model.search.melody_rerank import MelodyReranker, MelodyRerankConfig
    return MelodyReranker.from_dataset(dataset, run.config.metric,
                                       MelodyRerankConfig.choose(bool(getattr(args, "any_key", False))))


def lyrics_reranker(run, args):
    """The run's lyrics re-ranker (``ugaar lyrics-scorer``), or None without one, with
    ``--no-lyrics-scorer``, or for a query it would not re-rank (a recording asked for sheets only; samples
    between audio and sheet): it reads the run's whole FeatureSet, which a query without lyrics need not load."""
    if getattr(args, "no_lyrics_scorer", False):
        return None
    # a sample query lists lyrics unless --source and --target both name audio and sheet
    audio_sheet_only = bool(args.source and args.target) and "lyrics" not in (args.source, args.target)
    recording = getattr(args, "audio", None) is not None and args.target in (None, "lyrics")
    if args.lyrics is None and args.midi is None and not recording and (args.sample is None or audio_sheet_only):
        return None
    from model.search.lyrics_rerank import RERANKER_FILE, LyricsReranker
    if not (run.run_dir / RERANKER_FILE).is_file():
        return None
    from model.feature_set import FeatureSet
    return LyricsReranker.load(run.run_dir, FeatureSet.load(run.config.features_path))


def audio_query(run, index, embedder, audio, targets, k: int, reranker=None, window_s: float | None = None,
                lyrics=None):
    """Slide sample-long windows (``window_s``: :func:`window_seconds`) over a checked recording
    (``QueryAudio`` at the embedder's rate); the best window's ``AudioMatch`` (results per target), its
    sheet results re-ranked by ``reranker`` with the recording's pitch track and, for a run on aligned
    inputs, its lyrics results by the ``lyrics`` re-ranker's audio side (the window's onsets and their pitch
    against every line's syllables)."""
    from model.search.audio_query import best_window

    for warning in audio.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if run.config.inputs == "aligned":
        embed = embedder.audio_sequence
    else:
        def embed(wave, sr):
            return np.asarray(embedder.audio(wave, sr), np.float32)[None, :]
    method = run.method()  # Run.embed_query loads the checkpoint on every call: once for all windows
    fetch = reranker.config.fetch(k, len(index)) if reranker is not None else k
    match = best_window(audio, window_s if window_s is not None else window_seconds(None), embed,
                        lambda feats, target: method.embed_modality("audio", feats, partner=target)[0],
                        lambda vec, target: index.query(vec, target, fetch, source="audio"),
                        targets, k=fetch)
    if reranker is not None:
        from model.features.tokens.pitch_track import pitch_track
        # the whole recording's pitch, searched for each sheet's melody: the sliding window rarely starts
        # on the melody's first note or ends on its last
        track = pitch_track(audio.wave, audio.sample_rate)
        match.results = {t: reranker.rerank("audio", t, hits, track, within=True) for t, hits in match.results.items()}
    if (lyrics is not None and "lyrics" in match.results and lyrics.covers("audio", "lyrics")
            and getattr(match.features, "onset_pitch", None) is not None):
        match.results["lyrics"] = lyrics.query_index(index, match.vectors["lyrics"], "audio", "lyrics", k,
                                                     lyrics.query_tokens("audio", match.features))
    match.results = {t: hits[:k] for t, hits in match.results.items()}
    return match


def query_results(run, index, args, info: dict | None = None, audio=None,
                  reranker=None, lyrics=None, dataset=None) -> list[tuple[str, str, list[tuple[str, float]]]]:
    """[(source, target, hits)] for the query described by ``args``.

    For ``--audio``, ``audio`` is the recording :func:`check_query_args` already
    decoded (None: decoded here), and ``info["match"]`` receives the
    ``AudioMatch`` (which segment matched).  With a ``reranker``
    (:func:`melody_reranker`), audio ↔ sheet results are re-ranked by pitch and
    their scores are the combined ones.  With a ``lyrics`` re-ranker
    (:func:`lyrics_reranker`), sample, typed-lyrics and MIDI / KAR queries between
    lyrics and sheet / audio score every item by its syllable-by-note pair score as well.
    ``dataset``: the run's (``Run.open_dataset``), for the audio window's length.
    """
    out = []
    if args.sample:
        sources = [args.source] if args.source else list(MODALITIES)
        for s in sources:
            for t in MODALITIES:
                if t != s and (not args.target or t == args.target):
                    if lyrics is not None and lyrics.covers(s, t):
                        hits = lyrics.query_index(index, index.vector(args.sample, s, t), s, t, args.k,
                                                  lyrics.library_query(s, args.sample))
                    elif reranker is not None:
                        hits = reranker.query_sample(index, args.sample, s, t, args.k)
                    else:
                        hits = index.query_sample(args.sample, s, t, args.k)
                    out.append((s, t, hits))
        return out
    encoders = run.features_meta.get("encoders_dir")
    if not encoders:
        raise ValueError(f"{run.run_dir}: the run does not record its encoders_dir; only --sample queries work")
    from model.features import load_embedder

    embedder = load_embedder(encoders, sequence_settings=run.features_meta.get("config"))
    if args.audio:
        targets = [t for t in MODALITIES if t != "audio" and (not args.target or t == args.target)]
        # decoded here when not checked yet, or again when these encoders read another rate than 16 kHz
        if audio is None or audio.sample_rate != embedder.config.sample_rate:
            from model.search.audio_query import load_query_audio
            audio = load_query_audio(args.audio, embedder.config.sample_rate)
        match = audio_query(run, index, embedder, audio, targets, args.k, reranker, window_seconds(dataset), lyrics)
        if info is not None:
            info["match"] = match
        return [("audio", t, match.results[t]) for t in targets]
    aligned = run.config.inputs == "aligned"
    raw = query_inputs(embedder, args, aligned=aligned)
    contour, tokens = None, {}
    if lyrics is not None and aligned:  # a typed line's syllables; a MIDI / KAR file's syllables and notes
        tokens = {s: lyrics.query_tokens(s, v) for s, v in raw.items()}
    if reranker is not None and args.midi is not None:  # the file's audio and sheet both play its notes
        from model.search.melody_rerank import note_contour
        contour = note_contour(embedder.midi_notes(args.midi))
    for s, v in raw.items():
        for t in MODALITIES:
            if t != s and (not args.target or t == args.target):
                vec = run.embed_query(s, v, target=t)[0]
                if s in tokens and lyrics.covers(s, t):
                    out.append((s, t, lyrics.query_index(index, vec, s, t, args.k, tokens[s])))
                elif contour is not None:
                    out.append((s, t, reranker.query_vector(index, vec, s, t, args.k, contour)))
                else:
                    out.append((s, t, index.query(vec, t, args.k, source=s)))
    return out


def check_query_args(args: argparse.Namespace):
    """Refuse a query that cannot give results: empty or letter-free lyrics, silent or
    non-audio WAVs, MIDI without lyric notes, ``--k 0``, ``--source`` equal to ``--target``.

    Returns the decoded ``--audio`` recording (``QueryAudio``), so it is read once, or None.
    """
    from model.errors import BadInputError
    from model.validate import check_count, check_lyrics_query, check_midi_query

    check_count(args.k, "--k")
    audio = None
    if args.lyrics is not None:
        check_lyrics_query(args.lyrics)
    elif args.audio is not None:
        from model.search.audio_query import load_query_audio
        audio = load_query_audio(args.audio)  # no audio, silence, too short: one message before anything loads
    elif args.midi is not None:
        check_midi_query(args.midi)
    if args.sample and args.source and args.source == args.target:
        raise BadInputError(f"--source {args.source} --target {args.target}",
                            "a modality is not retrieved from itself", "choose two different modalities")
    return audio


def run(args: argparse.Namespace) -> int:
    from model.search.retrieval import RetrievalIndex
    from model.ugaar import Run
    from model.validate import check_sample_id

    audio = check_query_args(args)  # before the run and the encoders load: a bad query fails in a second
    r = Run.open(args.run)
    index = RetrievalIndex.from_run(r)
    if args.sample is not None:
        check_sample_id(args.sample, index.sample_ids, r.run_dir)
    dataset = r.open_dataset()
    texts = _lyrics_lookup(dataset)
    reranker = melody_reranker(r, args, dataset)
    lyrics = lyrics_reranker(r, args)
    info: dict = {}
    results = query_results(r, index, args, info, audio, reranker, lyrics, dataset)
    if "match" in info:
        print(f"audio segment: {info['match'].describe()}")
    for source, target, hits in results:
        reranked = reranker is not None and reranker.applies(source, target) and args.lyrics is None
        cfg = reranker.config if reranker is not None else None
        how = ("" if not reranked else
               f"  (re-ranked by melody: top {cfg.k}, score = distance + {cfg.weight:g} × pitch DTW)"
               if not cfg.any_key or args.sample else
               f"  (ordered by melody in any key: all {len(index)} items by key-free pitch DTW)")
        file_tokens = args.lyrics is not None or ((args.midi is not None or args.audio is not None)
                                                  and r.config.inputs == "aligned")
        if lyrics is not None and lyrics.covers(source, target) and (args.sample or file_tokens):
            side = target if source == "lyrics" else source
            how = f"  (re-ranked by syllable-by-note pair score, weight {lyrics.weights[side]:g})"
            reranked = True
        print(f"{source} → {target}" + how)
        for rank, (sid, dist) in enumerate(hits, 1):
            mark = " *" if args.sample and sid == args.sample else ""
            text = f"  {texts[sid][:60]}" if sid in texts else ""
            print(f"  {rank:3d}. {sid}  {dist:.4f}{mark}{text}")
        if args.sample:
            own = index.rank_of(args.sample, source, target)
            print(f"  rank of {args.sample}'s own {target}: {own} / {len(index)}" + (" in the learned space" if reranked else ""))
    return 0


def add_parser(subparsers, name: str = "query", help_text: str = "retrieve partners of a sample, a lyrics line, a MIDI or a WAV"):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("run", metavar="RUN", help="a finished run folder")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sample", metavar="ID", help="a sample of the run's dataset")
    g.add_argument("--lyrics", metavar="TEXT", help="a typed lyrics line")
    g.add_argument("--midi", metavar="FILE", help="a MIDI/KAR file with lyrics (first 20 notes)")
    g.add_argument("--audio", metavar="FILE",
                   help="an audio file (WAV/FLAC/OGG/MP3, any rate and length: the best-matching "
                        "sample-long segment is searched and printed)")
    p.add_argument("--source", choices=MODALITIES, help="with --sample: query from this modality only")
    p.add_argument("--target", choices=MODALITIES, help="retrieve this modality only")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--no-melody", action="store_true",
                   help="rank audio ↔ sheet by the learned space alone (default: its top 100 re-ranked by how "
                        "the recording's pitch follows the sheet's notes)")
    p.add_argument("--no-lyrics-scorer", action="store_true",
                   help="rank lyrics ↔ sheet / audio by the learned space alone (default: with the run's pair "
                        "scorer, when `ugaar lyrics-scorer RUN` trained one)")
    p.add_argument("--any-key", action="store_true",
                   help="for a recording sung or played in another key: every sheet is ordered by its key-free "
                        "pitch distance (the learned space does not find a transposed recording's sheet)")
    p.set_defaults(func=run)
    return p
