"""Why a result was retrieved: which query and result positions drive their similarity (no Qt).

Runs on aligned inputs (``RunConfig.inputs == "aligned"``) read one token per
syllable (lyrics), per detected audio onset (audio) and per engraved note
(sheet).  :func:`occlusion_alignment` asks the trained encoders, without
looking inside them, how the similarity of a query and a result changes
when positions are taken away:

* ``s`` is the similarity the run retrieves with: minus the distance the
  retrieval index ranks by (Euclidean, or ``1 − cos`` for cosine runs);
* ``s(−i)`` is the same with query position ``i`` masked out (the encoder
  sees the item as if that syllable, onset or note were padding), ``s(−j)``
  with result position ``j`` masked, ``s(−i,−j)`` with both;
* the **importance** of a position is ``s − s(−i)``: how much similarity is
  lost without it (negative: the position pulled the two apart);
* the **interaction** ``Δ_ij = s − s(−i) − s(−j) + s(−i,−j)`` is the
  second-order difference: the similarity the pair ``(i, j)`` brings *together*
  beyond what each brings alone.  Large positive cells are positions that
  match each other (a stressed syllable over a long note); an encoder that
  compares positions one by one shows them along its alignment path.

Embedding each item once per removed position (T + 1 forwards each side,
T ≤ 32) and one (T_q + 1) × (T_r + 1) similarity matrix of those embeddings
give every ``s(−i,−j)``: the cost is two small batches, whatever the encoder.

The paper's pooled inputs, CCA and the random baseline have no positions to
take away: :func:`alignment_status` says so in plain words.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from model.feature_set import SequenceInput

#: Shown instead of a matrix when the model reads no sequences.
NO_ALIGNMENT_PAPER = ("No sequence alignment for this model (paper features): it reads one mean-pooled "
                      "vector per item, so no syllable, note or onset can be singled out. Train with "
                      "aligned inputs to see why a result was retrieved.")
NO_ALIGNMENT_CCA = ("No sequence alignment for this model (CCA baseline): it projects the flattened "
                    "positions linearly; its canonical weights, not an alignment, explain a result.")
NO_ALIGNMENT_RANDOM = ("No sequence alignment for this model (random baseline): its embeddings do not "
                       "depend on the input.")

_NOTE_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")


def alignment_status(config: Any) -> Optional[str]:
    """Why a run has no position alignment, in plain words; None when it has one.

    Parameters
    ----------
    config : RunConfig
        The run's configuration (``inputs`` and ``method`` are read).
    """
    method = getattr(config, "method", "")
    if method == "random":
        return NO_ALIGNMENT_RANDOM
    if getattr(config, "inputs", "paper") != "aligned":
        return NO_ALIGNMENT_PAPER
    if method == "cca":
        return NO_ALIGNMENT_CCA
    return None


@dataclass
class PositionAlignment:
    """How a query and a result line up, position by position.

    Attributes
    ----------
    query_modality, result_modality : str
    available : bool
        False for models without positions; then ``message`` says why and
        the arrays are empty.
    message : str
    similarity : float
        ``s``: minus the retrieval distance of the two items.
    interaction : np.ndarray, shape (T_q, T_r)
        ``Δ_ij`` (zero in padding rows and columns).
    query_importance : np.ndarray, shape (T_q,)
        ``s − s(−i)`` (zero at padding).
    result_importance : np.ndarray, shape (T_r,)
        ``s − s(−j)`` (zero at padding).
    query_length, result_length : int
        Valid positions of each item.
    metric : str
        ``euclidean`` or ``cosine``.
    """

    query_modality: str
    result_modality: str
    available: bool = True
    message: str = ""
    similarity: float = 0.0
    interaction: np.ndarray = None  # type: ignore[assignment]
    query_importance: np.ndarray = None  # type: ignore[assignment]
    result_importance: np.ndarray = None  # type: ignore[assignment]
    query_length: int = 0
    result_length: int = 0
    metric: str = "euclidean"

    def __post_init__(self) -> None:
        if self.interaction is None:
            self.interaction = np.zeros((0, 0), np.float32)
        if self.query_importance is None:
            self.query_importance = np.zeros(0, np.float32)
        if self.result_importance is None:
            self.result_importance = np.zeros(0, np.float32)

    @property
    def valid_interaction(self) -> np.ndarray:
        """``Δ`` cut to the valid positions, ``(query_length, result_length)``."""
        return self.interaction[: self.query_length, : self.result_length]


def unavailable(query_modality: str, result_modality: str, message: str) -> PositionAlignment:
    """A :class:`PositionAlignment` that only says why there is none."""
    return PositionAlignment(query_modality, result_modality, available=False, message=message)


def _one_item(values: SequenceInput) -> SequenceInput:
    """``values`` as a batch of one item (a bare item's 1-D pooled vector gets its batch axis)."""
    pooled = np.asarray(values.pooled)
    tokens = np.asarray(values.tokens)
    lengths = np.atleast_1d(np.asarray(values.lengths))
    if pooled.ndim == 1:
        pooled, tokens = pooled[None], tokens[None]
    if len(pooled) != 1:
        raise ValueError(f"one item expected, got {len(pooled)}")
    return SequenceInput(pooled, tokens, lengths)


def _occluded_batch(method: Any, modality: str, item: SequenceInput) -> tuple[Any, int]:
    """The item and one copy per valid position with that position masked: ``(L + 1, T, D)``.

    A masked position is what padding is to the encoder (left out of the
    attention, the mean and the per-position read-out), so the other
    positions keep their indices; removing the token and shifting the rest
    would change every later position's learned position embedding.  An
    item of one position cannot lose it (an all-padding item has no
    encoding): its token is set to zero — the training mean after the
    method's standardisation — instead.
    """
    from model.ugaar.model import SequenceBatch
    batch = method.tensor(modality, item)
    length = int(batch.mask[0].sum())
    rows = length + 1
    pooled = batch.pooled.expand(rows, -1).clone()
    tokens = batch.tokens.expand(rows, -1, -1).clone()
    mask = batch.mask.expand(rows, -1).clone()
    pos = torch.arange(length, device=tokens.device)
    tokens[pos + 1, pos] = 0.0
    if length > 1:
        mask[pos + 1, pos] = False
    return SequenceBatch(pooled, tokens, mask), length


@torch.no_grad()
def _embed(method: Any, modality: str, batch: Any) -> np.ndarray:
    """The retrieval-space vectors of a SequenceBatch, as :meth:`Method.embed_modality` maps them."""
    net = method.generator if method.config.retrieval_space == "generator" else method.discriminator
    was_training = net.training
    net.eval()
    try:
        return net(modality, batch).double().cpu().numpy()
    finally:
        net.train(was_training)


def similarity_matrix(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Minus the retrieval distance between every row of ``a`` and of ``b``, ``(len(a), len(b))``.

    Euclidean: ``−‖a − b‖``; cosine: ``cos − 1`` (the index's ``1 − cos``, negated).
    Float64, since :func:`occlusion_alignment` subtracts close values.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if metric == "cosine":
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return a @ b.T - 1.0
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return -np.sqrt(np.maximum(sq, 0.0))


def occlusion_alignment(method: Any, query_modality: str, query: SequenceInput, result_modality: str,
                        result: SequenceInput, metric: Optional[str] = None) -> PositionAlignment:
    """Position-by-position occlusion interaction of a query item and a result item.

    Parameters
    ----------
    method : model.ugaar.factory.Method
        A trained method (``Run.method()``).
    query_modality, result_modality : str
        ``audio``, ``sheet`` or ``lyrics`` (different from each other).
    query, result : SequenceInput
        One item each (``FeatureSet.input_of(m, "aligned")[[row]]``, or an
        embedder's sequence of a typed line or a dropped file), raw as the
        features store them: the method standardises them.
    metric : str, optional
        ``euclidean`` or ``cosine``; the run's own metric when None.

    Returns
    -------
    PositionAlignment
        Unavailable (with the reason) for paper inputs, CCA and random runs.
    """
    reason = alignment_status(method.config)
    if reason is not None:
        return unavailable(query_modality, result_modality, reason)
    metric = metric or getattr(method.config, "metric", "euclidean")
    qb, lq = _occluded_batch(method, query_modality, _one_item(query))
    rb, lr = _occluded_batch(method, result_modality, _one_item(result))
    s = similarity_matrix(_embed(method, query_modality, qb), _embed(method, result_modality, rb), metric)
    base = s[0, 0]
    q_drop, r_drop = s[1:, 0], s[0, 1:]
    tq, tr = int(qb.tokens.shape[1]), int(rb.tokens.shape[1])
    interaction = np.zeros((tq, tr), np.float32)
    interaction[:lq, :lr] = base - q_drop[:, None] - r_drop[None, :] + s[1:, 1:]
    q_imp = np.zeros(tq, np.float32)
    q_imp[:lq] = base - q_drop
    r_imp = np.zeros(tr, np.float32)
    r_imp[:lr] = base - r_drop
    return PositionAlignment(query_modality, result_modality, True, "", float(base), interaction, q_imp, r_imp,
                             lq, lr, metric)


def run_alignment(run: Any, method: Any, features: Any, query_id: str, query_modality: str, result_id: str,
                  result_modality: str) -> PositionAlignment:
    """:func:`occlusion_alignment` of two samples of a feature set, or why there is none.

    Parameters
    ----------
    run : model.ugaar.run.Run
        Its configuration decides whether there is an alignment.
    method : Method or None
        ``run.method()``, loaded once by the caller (None: loaded here).
    features : FeatureSet
        The features holding both samples (with sequences).
    query_id, result_id : str
        Sample ids.
    """
    reason = alignment_status(run.config)
    if reason is not None:
        return unavailable(query_modality, result_modality, reason)
    if not features.has_sequences:
        return unavailable(query_modality, result_modality,
                           "No sequence alignment: these features have no per-position sequences "
                           "(extracted before sequence inputs existed); re-extract them.")
    row = {sid: i for i, sid in enumerate(map(str, features.sample_ids))}
    missing = [sid for sid in (query_id, result_id) if sid not in row]
    if missing:
        return unavailable(query_modality, result_modality,
                           f"No alignment: {missing[0]} is not in the active run's features.")
    qi, ri = row[query_id], row[result_id]
    method = method if method is not None else run.method()
    return occlusion_alignment(method, query_modality, features.input_of(query_modality, "aligned")[[qi]],
                               result_modality, features.input_of(result_modality, "aligned")[[ri]])


# -- what the positions are -------------------------------------------------------------

def partner_alignment(query_modality: str, result_modality: str, query_length: int, result_length: int,
                      shape: tuple[int, int], query_onsets: Optional[Sequence[float]] = None,
                      result_onsets: Optional[Sequence[float]] = None,
                      note_onsets: Optional[Sequence[float]] = None) -> np.ndarray:
    """Which positions of an item and its true partner belong together, ``shape`` bool.

    Syllable ``k`` is sung on note ``k``: lyrics ↔ sheet is the diagonal.  An
    audio onset belongs to the note sounding at its time (``note_onsets``:
    the sample's note onsets in seconds from its start); without them, or
    for audio ↔ audio, nothing is marked.
    """
    out = np.zeros(shape, dtype=bool)

    def note_of(onsets: Sequence[float]) -> np.ndarray:
        return notes_of_onsets(onsets, note_onsets)

    if "audio" not in (query_modality, result_modality):
        k = min(query_length, result_length, *shape)
        out[np.arange(k), np.arange(k)] = True
    elif note_onsets is not None and len(note_onsets) and query_modality != result_modality:
        if query_modality == "audio" and query_onsets is not None:
            notes = note_of(query_onsets[:query_length])
            for i, n in enumerate(notes):
                if i < shape[0] and n < min(result_length, shape[1]):
                    out[i, n] = True
        elif result_modality == "audio" and result_onsets is not None:
            notes = note_of(result_onsets[:result_length])
            for j, n in enumerate(notes):
                if j < shape[1] and n < min(query_length, shape[0]):
                    out[n, j] = True
    return out


#: How far before a note's onset a detected audio onset still belongs to it:
#: one 40 ms row of tolerance, since a detected onset may land a row before its note.
ONSET_TOLERANCE_S = 0.045


def notes_of_onsets(onsets: Sequence[float], note_onsets: Sequence[float]) -> np.ndarray:
    """Index of the note sounding at each audio onset (within :data:`ONSET_TOLERANCE_S`).

    ``onsets`` are seconds from the sample's start (the audio starts at its
    first note); ``note_onsets`` are the notes' onsets in song time.
    """
    starts = np.asarray(note_onsets, dtype=float) - float(note_onsets[0])
    return np.clip(np.searchsorted(starts, np.asarray(onsets, dtype=float) + ONSET_TOLERANCE_S, side="right") - 1,
                   0, len(starts) - 1)


def per_note(values: Sequence[float], modality: str, n_notes: int,
             onsets: Optional[Sequence[float]] = None, note_onsets: Optional[Sequence[float]] = None
             ) -> Optional[np.ndarray]:
    """Per-position values (importances) as one value per note of the sample, ``(n_notes,)``.

    Syllables and engraved notes are notes already; audio onsets add up on
    the note sounding at their time.  None when audio has no onset times.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(n_notes)
    if modality in ("lyrics", "sheet"):
        k = min(n_notes, len(values))
        out[:k] = values[:k]
        return out
    if onsets is None or note_onsets is None or not len(note_onsets):
        return None
    k = min(len(values), len(onsets))
    idx = notes_of_onsets(onsets[:k], note_onsets)
    np.add.at(out, idx[idx < n_notes], values[:k][idx < n_notes])
    return out


def note_name(pitch: int) -> str:
    """``60`` → ``C4`` (sharps and flats as a lead sheet spells them most often)."""
    pitch = int(pitch)
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def audio_onset_seconds(dataset: Any, sample_id: str, feature_config: Any,
                        encoders_dir: Optional[str] = None) -> np.ndarray:
    """Times (s from the sample's start) of the onsets the audio tokens were cut at.

    Found again as :func:`model.features.tokens.sequences.dataset_sequences` found
    them: the same log-mel rows (``stft_hop_s × audio_time_pool`` = 40 ms each)
    and the same detector (the learned one is read from ``encoders_dir``),
    capped at ``sequence_max_len``.
    """
    from model.features.extract import audio_input
    from model.features.learned.onset_net import load as load_onset_net
    from model.features.tokens.sequences import audio_rows, detect_onsets
    wave, sr = dataset.load_audio(sample_id)
    rows = audio_rows(audio_input(wave, sr, feature_config))
    net = load_onset_net(encoders_dir) if feature_config.onset_method == "learned" and encoders_dir else None
    onsets = detect_onsets(rows, feature_config, net)[: feature_config.sequence_max_len]
    return onsets.astype(np.float64) * feature_config.stft_hop_s * feature_config.audio_time_pool


def position_labels(modality: str, sample: Any, length: int,
                    onsets: Optional[Sequence[float]] = None) -> list[str]:
    """One label per valid position: syllables (lyrics), note names (sheet), onset times (audio).

    ``sample`` is the dataset's :class:`model.data.song.Sample` (None: numbered
    positions); ``onsets`` are the audio onsets in seconds
    (:func:`audio_onset_seconds`).
    """
    labels: list[str] = []
    for k in range(length):
        if modality == "lyrics" and sample is not None and k < len(sample.notes):
            labels.append(sample.notes[k].syllable or "·")
        elif modality == "sheet" and sample is not None and k < len(sample.notes):
            labels.append(note_name(sample.notes[k].pitch))
        elif modality == "audio" and onsets is not None and k < len(onsets):
            labels.append(f"{float(onsets[k]):.2f} s")
        else:
            labels.append(f"{modality[0]}{k + 1}")
    return labels
