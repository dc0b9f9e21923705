"""scripts/source_probe.py: the probe reads a source that the features carry, on clips it did not fit on."""
from __future__ import annotations

import numpy as np
import torch

from conftest import load_script
from deepscreen.datasets import LabelledVideo
from deepscreen.model import ModelProfile, create_model, save_checkpoint
from deepscreen.training import cache_labelled


def test_the_probe_reads_a_source_the_features_carry_and_only_then():
    probe = load_script("source_probe").probe
    rng = np.random.default_rng(0)
    # Three sources of three clips of four faces each, and one source with a single clip (left out: no clip of it
    # could be held out while another is learnt from).
    target = [s for s in "abc" for _ in range(12)] + ["d"] * 4
    groups = [f"{s}{i // 4}" for s in "abc" for i in range(12)] + ["d0"] * 4
    carried = np.eye(4)[["abcd".index(s) for s in target]] * 6 + rng.normal(size=(40, 4))
    acc, chance, classes = probe(np.hstack([carried, rng.normal(size=(40, 6))]), target, groups)
    assert classes == 3 and chance == 1 / 3 and acc > 0.9
    acc, _, _ = probe(rng.normal(size=(40, 10)), target, groups)  # features that say nothing of the source
    assert acc < 0.7


def test_probe_features_come_from_cached_faces(tmp_path, face_clip, two_face_clip):
    source_probe = load_script("source_probe")
    cache = tmp_path / "cache"
    cache_labelled([LabelledVideo(str(face_clip), 0, "cam"), LabelledVideo(str(two_face_clip), 1, "web", "Tint")],
                   str(cache), frames=3)
    faces = source_probe.cached_faces(cache, per_clip=2)
    assert sorted((f["label"], f["source"]) for f in faces) == [(0, "cam"), (0, "cam"), (1, "web"), (1, "web")]
    torch.manual_seed(0)
    weights = tmp_path / "m.pt"
    save_checkpoint(weights, create_model("mobilenet_v2"),
                    ModelProfile(name="probe-test", arch="mobilenet_v2", input_size=64, margin=0.3))
    x = source_probe.features(str(weights), faces, cache)
    # Untrained weights give tiny features: compare them relative to their size.
    assert x.shape == (4, 1280) and np.isfinite(x).all() and not np.allclose(x[0], x[2], rtol=1e-3, atol=0)
