"""Damaged feature caches: reported, rebuilt, never trusted.

An interrupted copy of a dataset folder leaves a truncated
``features/<key>.npz`` (the FeatureSet) or ``features/inputs/<key>.npz`` (the
front-end inputs).  ``extract_features`` must say so through its progress
callback and compute them again, with the same result as the intact cache.
Interrupted pre-training is covered by
tests/test_features_pipeline.py::test_interrupted_pretraining_resumes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from test_app_fixtures import tiny_dataset_path, tiny_features_ready


def test_truncated_feature_caches_are_reported_and_rebuilt(tmp_path):
    from model.data.dataset import Dataset
    from model.feature_set import FeatureSet, cached_feature_files
    from model.features import FeatureConfig, extract_features
    from model.validate import FEATURE_SET_KEYS, load_npz

    if not tiny_features_ready():
        pytest.skip("model.features not available")
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset_path(), root)  # the shared fixture's caches stay intact
    fs_path = cached_feature_files(root)[-1]
    good = FeatureSet.load(fs_path)
    inputs = sorted((root / "features" / "inputs").glob("*.npz"))
    assert inputs, "the fixture's extraction caches its front-end inputs"
    good_inputs = {p: load_npz(p) for p in inputs}
    for p in [fs_path, *inputs]:
        data = p.read_bytes()
        p.write_bytes(data[:len(data) // 3])  # what an interrupted copy leaves

    messages: list[str] = []
    fs = extract_features(Dataset.open(root), FeatureConfig.from_dict(good.meta["config"]),
                          progress=lambda p: messages.append(p.message))

    damaged = [m for m in messages if str(fs_path) in m]
    assert damaged and "truncated or damaged" in damaged[0] and "recomputing" in damaged[0], messages
    assert any(str(inputs[0]) in m and "damaged; recomputing" in m for m in messages), messages
    assert fs.meta["cache_path"] == str(fs_path)
    for name in ("audio", "sheet", "lyrics"):
        np.testing.assert_allclose(getattr(fs, name), getattr(good, name), atol=1e-5)
    load_npz(fs_path, FEATURE_SET_KEYS)  # rebuilt in place, whole again
    for p, arrays in good_inputs.items():
        rebuilt = load_npz(p)
        assert list(rebuilt["sample_ids"]) == list(arrays["sample_ids"])
        np.testing.assert_array_equal(rebuilt["audio_offsets"], arrays["audio_offsets"])
