"""Re-rank audio ↔ sheet results by how well a recording's pitch follows a sheet's notes.

The learned space finds a melody's candidates whatever plays it, but its top
one is often wrong on a timbre the audio branch never heard: held-out strings,
flute and choir reach 25–60 % audio→sheet R@1 (``docs/benchmarks.md``).  The
pitch a recording sounds does not depend on its timbre.  This module compares
it with the notes, query-by-humming style, for the top :attr:`MelodyRerankConfig.k`
candidates only:

1. the recording's :func:`model.features.tokens.pitch_track.pitch_track` (60 ms
   frames of pitched sound);
2. the sheet's :func:`note_contour`: each note's pitch repeated for its
   duration, rests left out, at the same 60 ms frames;
3. :func:`contour_distance`, a dynamic time warping of the two with steps
   (1, 0), (0, 1), (1, 1): each frame costs its pitch difference in semitones,
   capped at :attr:`MelodyRerankConfig.cap` so that an octave error or a
   noise frame counts as one wrong frame, not as a distant melody.  The sum
   is divided by the two lengths, so long and short melodies compare.  The
   warping absorbs tempo differences, missed onsets and legato;
4. the candidate's score: its distance in the learned space (``1 − cos``;
   ``d² / 2`` for Euclidean runs, the same on unit vectors), standardised over
   the k candidates so that the weight means the same in every run, plus
   :attr:`MelodyRerankConfig.weight` × the contour distance.  Candidates
   after the k-th keep their order.

A dropped recording may be longer than a sheet's melody: its whole track is
searched for each candidate's contour, start and end free (``within``).

It is an alignment-aware re-ranker as issue 9 invites, and the figures are
reported with and without it.  It reads only what the user has: the
recording's waveform and the sheet's notes (every sheet of the library is
engraved from its notes; a dropped MIDI or MusicXML has them too).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from model.features.tokens.pitch_track import TRACK_FRAME_S
from model.progress import CancelToken, ProgressCallback, report

#: The modality pairs the re-ranker orders: a recording's pitch against a sheet's notes.
PAIRS = (("audio", "sheet"), ("sheet", "audio"))


@dataclass(frozen=True)
class MelodyRerankConfig:
    """How audio ↔ sheet results are re-ranked.

    Attributes
    ----------
    k : int
        Candidates of the learned space re-ranked per query (the rest keep
        their order after them); 0: every item of the library.
    weight : float
        Contour distance (mean semitones per frame) added per standard
        deviation of the learned distances among the k candidates.
    cap : float
        A frame's pitch difference counts at most this many semitones.
    any_key : bool
        Compare the melodies after removing each one's median pitch, for a
        recording sung or played in another key than the sheet.  Off, the
        recording must be in the sheet's key (a rendering, or a recording of
        the same arrangement), which discriminates more.  Use
        :meth:`for_any_key`: the learned space does not find a transposed
        recording's sheet (validation, 3–4 semitones away: audio→sheet R@1
        0.5–1.9 %), so the whole library is ordered by pitch.
    """

    k: int = 100
    weight: float = 10.0
    cap: float = 3.0
    any_key: bool = False

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"melody re-ranking needs k ≥ 0 candidates (0: all), got {self.k}")
        if self.weight < 0 or self.cap <= 0:
            raise ValueError(f"melody re-ranking needs weight ≥ 0 and cap > 0, got {self.weight}, {self.cap}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def choose(cls, any_key: bool = False) -> "MelodyRerankConfig":
        """The validated setting: :meth:`for_any_key`, or the defaults (the recording in the sheet's key)."""
        return cls.for_any_key() if any_key else cls()

    @classmethod
    def for_any_key(cls) -> "MelodyRerankConfig":
        """A melody in any key: every item ordered by key-free pitch distance, the learned
        distance only breaking ties (validation, piano 3 semitones up and a held-out flute
        4 down: audio→sheet R@1 79 / 85 %, against 2 / 1 % for the learned space)."""
        return cls(k=0, weight=1000.0, any_key=True)

    def fetch(self, k: int, n_items: int) -> int:
        """How many of the learned space's results a query of ``k`` results needs."""
        return n_items if self.k == 0 else max(k, self.k)


def note_contour(notes: Sequence[Any], frame_s: float = TRACK_FRAME_S) -> np.ndarray:
    """A sheet's pitch over time: each note's MIDI pitch for its duration, in ``frame_s`` frames.

    Parameters
    ----------
    notes : sequence
        Objects with ``pitch`` (MIDI) and ``duration`` (seconds), in order
        (:class:`model.data.song.Note`).  Rests between notes are left out, as
        :func:`~model.features.tokens.pitch_track.pitch_track` leaves out silence.
    frame_s : float

    Returns
    -------
    (T,) float32 array
        At least one frame per note.
    """
    frames = [np.full(max(1, int(round(float(n.duration) / frame_s))), float(n.pitch), np.float32) for n in notes]
    return np.concatenate(frames) if frames else np.zeros(0, np.float32)


def _dtw_kernel():
    """The numba-compiled DTW, compiled on first use (numba ships with umap-learn)."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def dtw(a, b, cap, open_a):
        # a along rows, b along columns; open_a: b may start and end anywhere in a
        n, m = len(a), len(b)
        prev = np.full(m, np.inf)
        cur = np.full(m, np.inf)
        best_end = np.inf
        for i in range(n):
            for j in range(m):
                d = abs(a[i] - b[j])
                if d > cap:
                    d = cap
                if j == 0 and (i == 0 or open_a):
                    cur[j] = 2.0 * d
                    continue
                best = np.inf
                if i > 0 and prev[j] + d < best:
                    best = prev[j] + d
                if j > 0 and cur[j - 1] + d < best:
                    best = cur[j - 1] + d
                if i > 0 and j > 0 and prev[j - 1] + 2.0 * d < best:
                    best = prev[j - 1] + 2.0 * d
                cur[j] = best
            if cur[m - 1] < best_end:
                best_end = cur[m - 1]
            prev, cur = cur, prev
        if open_a:
            return best_end / (2.0 * m)
        return prev[m - 1] / (n + m)

    return dtw


_DTW: Optional[Callable[[np.ndarray, np.ndarray, float, bool], float]] = None


def contour_distance(track: np.ndarray, contour: np.ndarray, cap: float = 3.0, any_key: bool = False,
                     within: bool = False) -> float:
    """Mean capped pitch difference (semitones) along the best time warping of two pitch sequences.

    Parameters
    ----------
    track, contour : (T,) arrays
        Two pitch sequences (fractional MIDI numbers).
    cap, any_key
        As :class:`MelodyRerankConfig`.
    within : bool
        Find ``contour`` anywhere inside ``track`` (a recording longer than
        the melody: its start and end are free, the mean is over
        ``2 × len(contour)``).  Otherwise both are aligned end to end, and the
        distance is symmetric in its arguments.

    An empty sequence is ``cap`` from everything (nothing to compare).
    """
    global _DTW
    a = np.asarray(track, np.float64)
    b = np.asarray(contour, np.float64)
    if len(a) == 0 or len(b) == 0:
        return float(cap)
    if any_key:
        a, b = a - np.median(a), b - np.median(b)
    if _DTW is None:
        _DTW = _dtw_kernel()
    return float(_DTW(a, b, float(cap), bool(within)))


def spatial_score(distances: np.ndarray, metric: str) -> np.ndarray:
    """The learned space's distances of one query's candidates, standardised over them.

    ``1 − cos`` (cosine) or ``d² / 2`` (Euclidean; the same on unit vectors),
    then minus their mean, over their standard deviation: the contour weight
    means the same for every run, whatever the scale of its space.
    """
    d = np.asarray(distances, np.float64)
    s = d if metric == "cosine" else np.square(d) / 2.0
    spread = s.std()
    return (s - s.mean()) / spread if spread > 0 else np.zeros_like(s)


def rerank_hits(hits: Sequence[tuple[str, float]], query: np.ndarray,
                candidate: Callable[[str], Optional[np.ndarray]], metric: str,
                config: MelodyRerankConfig = MelodyRerankConfig(), within: bool = False,
                cost: Optional[Callable[[Any], float]] = None, cancel: Optional[CancelToken] = None,
                progress: Optional[ProgressCallback] = None) -> list[tuple[str, float]]:
    """Re-order a query's nearest-first ``hits`` by learned distance plus contour distance.

    Parameters
    ----------
    hits : list of (sample_id, distance)
        The learned space's results, nearest first (at least ``config.k`` of
        them for the re-ranking to see that many).
    query : (T,) array
        The query's pitch sequence (a recording's track, or a sheet's contour).
    candidate : callable
        sample id → the candidate's pitch sequence of the other kind, or None
        when it has none (it then counts ``config.cap``).
    metric : str
        The run's metric (:func:`spatial_score`).
    config : MelodyRerankConfig
    within : bool
        ``query`` is a recording's track that may be longer than the melody:
        each candidate's contour is found inside it (:func:`contour_distance`).
    cost : callable, optional
        sample id → its contour distance to ``query``, already known (a cache:
        :func:`rerank_ranks`); default: computed from ``candidate``.
    cancel, progress
        Checked and reported once per candidate (a whole library in any key
        takes about a second at 10k items).

    Returns
    -------
    list of (sample_id, score)
        The first ``config.k`` hits re-ordered with their combined score
        (standardised learned distance + weight × contour distance; lower is
        better), then the others unchanged.  With an empty query
        (no pitched sound) ``hits`` come back as they were.
    """
    hits = list(hits)
    if len(query) == 0 or not hits:
        return hits
    head, tail = (hits, []) if config.k == 0 else (hits[:config.k], hits[config.k:])
    spatial = spatial_score(np.array([d for _, d in head]), metric)
    if cost is None:
        def cost(sid: Any) -> float:
            seq = candidate(sid)
            return contour_distance(query, seq if seq is not None else np.zeros(0), config.cap, config.any_key, within)
    scored = []
    for n, ((sid, _dist), z) in enumerate(zip(head, spatial), 1):
        if cancel is not None:
            cancel.raise_if_set()
        scored.append((sid, float(z) + config.weight * cost(sid)))
        report(progress, "melody", n, len(head))
    scored.sort(key=lambda h: h[1])
    return scored + tail


def rerank_ranks(distances: np.ndarray, queries: Sequence[np.ndarray], candidates: Sequence[np.ndarray],
                 metric: str, config: MelodyRerankConfig = MelodyRerankConfig(),
                 costs: Optional[dict[tuple[int, int], float]] = None) -> np.ndarray:
    """1-based rank of each query's true partner (query i ↔ candidate i) after re-ranking.

    Parameters
    ----------
    distances : (N, N) array
        The learned space's distances, query rows × candidate columns.
    queries, candidates : sequences of N pitch sequences
        Tracks and contours, in the order of the rows and the columns.
    metric : str
    config : MelodyRerankConfig
    costs : dict, optional
        ``(query, candidate)`` → contour distance already computed with this
        ``cap`` and ``any_key``; filled as it goes, so several ``k`` and
        ``weight`` settings share one set of DTWs.

    Each query's top ``config.k`` are ordered by :func:`rerank_hits`; a partner
    outside them keeps its rank in the learned space.
    """
    distances = np.asarray(distances, np.float64)
    costs = {} if costs is None else costs
    ranks = np.empty(distances.shape[0], np.int64)
    k = distances.shape[1] if config.k == 0 else min(config.k, distances.shape[1])
    for i in range(distances.shape[0]):
        order = np.argsort(distances[i], kind="stable")
        where = int(np.nonzero(order == i)[0][0])
        if where >= k:
            ranks[i] = where + 1
            continue

        def cost(j: int, i: int = i) -> float:
            if (i, j) not in costs:
                costs[i, j] = contour_distance(queries[i], candidates[j], config.cap, config.any_key)
            return costs[i, j]

        hits = rerank_hits([(int(j), distances[i, j]) for j in order[:k]], queries[i], candidates.__getitem__,
                           metric, config, cost=cost)
        ranks[i] = [j for j, _ in hits].index(i) + 1
    return ranks


class MelodyReranker:
    """Re-ranks a run's audio ↔ sheet results with the library's pitch tracks and note contours.

    Parameters
    ----------
    track_of : callable
        sample id → pitch track of its audio item (empty when unknown).
    contour_of : callable
        sample id → :func:`note_contour` of its sheet's notes (empty when unknown).
    metric : str
        The run's metric.
    config : MelodyRerankConfig
    tracks : dict, optional
        The table ``track_of`` reads, when it reads one: :meth:`add_tracks` fills it.
    """

    def __init__(self, track_of: Callable[[str], np.ndarray], contour_of: Callable[[str], np.ndarray], metric: str,
                 config: MelodyRerankConfig = MelodyRerankConfig(),
                 tracks: Optional[dict[str, np.ndarray]] = None) -> None:
        self.track_of, self.contour_of = track_of, contour_of
        self.metric, self.config = metric, config
        self._tracks = tracks

    @classmethod
    def from_tables(cls, tracks: Mapping[str, np.ndarray], contours: Mapping[str, np.ndarray], metric: str,
                    config: MelodyRerankConfig = MelodyRerankConfig()) -> "MelodyReranker":
        """From ready tables (ids missing from them have no sequence)."""
        empty = np.zeros(0, np.float32)
        return cls(lambda s: tracks.get(s, empty), lambda s: contours.get(s, empty), metric, config)

    @classmethod
    def from_dataset(cls, dataset, metric: str, config: MelodyRerankConfig = MelodyRerankConfig(),
                     compute_missing: bool = True) -> "MelodyReranker":
        """For a run's dataset: contours from its notes; tracks from its cache
        (:func:`~model.features.tokens.pitch_track.dataset_pitch_tracks`), or, for items
        not cached yet, computed from their audio when first asked (about 25 ms each:
        a query re-ranks at most ``config.k`` of them).

        ``compute_missing=False`` (the window, which must not compute on its GUI
        thread): items not cached have no track until :meth:`add_tracks`.
        """
        from model.features.tokens.pitch_track import cached_pitch_tracks, pitch_track

        cached = cached_pitch_tracks(dataset)
        contours: dict[str, np.ndarray] = {}

        def track_of(sid: str) -> np.ndarray:
            if sid not in cached:
                if not compute_missing:
                    return np.zeros(0, np.float32)
                try:
                    cached[sid] = pitch_track(*dataset.load_audio(sid))
                except Exception:  # no audio or a damaged file: ranked by the learned space alone
                    cached[sid] = np.zeros(0, np.float32)
            return cached[sid]

        def contour_of(sid: str) -> np.ndarray:
            if sid not in contours:
                try:
                    contours[sid] = note_contour(dataset.sample(sid).notes)
                except KeyError:
                    contours[sid] = np.zeros(0, np.float32)
            return contours[sid]

        return cls(track_of, contour_of, metric, config, tracks=cached)

    def missing_tracks(self, sample_ids: Sequence[str]) -> bool:
        """Whether any of ``sample_ids`` has no track in the table :meth:`from_dataset` read (one read
        of the cache serves the reranker and this question)."""
        if self._tracks is None:
            raise TypeError("missing_tracks needs a reranker that reads a track table (MelodyReranker.from_dataset)")
        return any(sid not in self._tracks for sid in sample_ids)

    def add_tracks(self, tracks: Mapping[str, np.ndarray]) -> None:
        """Tracks computed elsewhere (a background task) for a reranker made by :meth:`from_dataset`."""
        if self._tracks is None:
            raise TypeError("add_tracks needs a reranker that reads a track table (MelodyReranker.from_dataset)")
        self._tracks.update(tracks)

    @staticmethod
    def applies(source: str, target: str) -> bool:
        """Whether results of ``source`` → ``target`` are re-ranked (audio ↔ sheet only)."""
        return (source, target) in PAIRS

    def query_sequence(self, source: str, sample_id: str) -> np.ndarray:
        """The pitch sequence of a library item queried from ``source`` (its track or its contour)."""
        return self.track_of(sample_id) if source == "audio" else self.contour_of(sample_id)

    def rerank(self, source: str, target: str, hits: Sequence[tuple[str, float]],
               query: np.ndarray, within: bool = False, config: Optional[MelodyRerankConfig] = None,
               cancel: Optional[CancelToken] = None,
               progress: Optional[ProgressCallback] = None) -> list[tuple[str, float]]:
        """``hits`` of a ``source`` → ``target`` query with pitch sequence ``query``, re-ranked
        (unchanged for pairs other than audio ↔ sheet).  ``within``: ``query`` is a
        recording's track, searched for each sheet's melody (:func:`rerank_hits`).
        ``config`` overrides :attr:`config`; ``cancel``, ``progress`` as :func:`rerank_hits`."""
        if not self.applies(source, target):
            return list(hits)
        of = self.contour_of if target == "sheet" else self.track_of
        return rerank_hits(hits, query, of, self.metric, config or self.config, within and target == "sheet",
                           cancel=cancel, progress=progress)

    def query_sample(self, index, sample_id: str, source: str, target: str, k: int) -> list[tuple[str, float]]:
        """``index.query_sample`` with audio ↔ sheet results re-ranked (the top ``config.k`` are fetched).

        A library item is a rendering of its own notes, so it is in its sheet's key:
        these queries always use the key-exact setting, whatever :attr:`config` says.
        """
        if not self.applies(source, target):
            return index.query_sample(sample_id, source, target, k)
        config = MelodyRerankConfig() if self.config.any_key else self.config
        hits = index.query_sample(sample_id, source, target, config.fetch(k, len(index)))
        return self.rerank(source, target, hits, self.query_sequence(source, sample_id), config=config)[:k]

    def query_vector(self, index, vector: np.ndarray, source: str, target: str, k: int,
                     query: np.ndarray, within: bool = False, cancel: Optional[CancelToken] = None,
                     progress: Optional[ProgressCallback] = None) -> list[tuple[str, float]]:
        """``index.query`` of a new item with pitch sequence ``query`` (a dropped recording's
        track with ``within=True``, a dropped score's contour), re-ranked for audio ↔ sheet;
        ``cancel`` and ``progress`` are checked and reported per candidate."""
        if not self.applies(source, target):
            return index.query(vector, target, k, source=source)
        hits = index.query(vector, target, self.config.fetch(k, len(index)), source=source)
        return self.rerank(source, target, hits, query, within, cancel=cancel, progress=progress)[:k]
