"""Per-position features: tokens per syllable, audio onset and engraved note; pitch tracks.

- ``sequences``: one token per syllable, per audio onset, per engraved note
  (``FeatureSet.tokens``) and the flux onset detectors;
- ``prosody``: per-syllable prosodic features and the typed-text syllabifier;
- ``phonetics``: per-syllable phonetic columns (lyrics re-ranking);
- ``onset_pitch``: the pitch of each audio token's note (lyrics re-ranking);
- ``pitch_track``: a recording's pitch, frame by frame (melody re-ranking).
"""
