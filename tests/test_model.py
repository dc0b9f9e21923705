"""Detector checkpoints: profiles, safe loading, strict matching, batched scoring."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from deepscreen.model import Detector, ModelError, ModelProfile, create_model, save_checkpoint, sha256_file


def test_checkpoint_round_trip_keeps_profile_and_scores(tiny_weights):
    det = Detector.load(tiny_weights, device="cpu", batch_size=3)
    assert det.profile.arch == "tiny_cnn" and det.profile.input_size == 64 and det.profile.margin == 0.3
    assert det.info()["weights_sha256"] == sha256_file(tiny_weights)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(7)]
    scores = det.score(crops)
    assert scores.shape == (7,) and ((scores > 0) & (scores < 1)).all()
    # batching does not change the numbers
    assert np.allclose(scores, Detector.load(tiny_weights, device="cpu", batch_size=32).score(crops), atol=1e-6)


def test_auto_device_is_cpu_without_cuda(tiny_weights):
    det = Detector.load(tiny_weights, device="auto")
    assert det.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


class Boom:
    def __reduce__(self):
        return (print, ("this would have run code",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "deepscreen-detector", "payload": Boom()}, evil)
    with pytest.raises(ModelError, match="refused to load evil.pt"):
        Detector.load(evil)


def test_profile_that_does_not_match_its_tensors_is_refused(tmp_path):
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, create_model("tiny_cnn"), ModelProfile(name="x", arch="mobilenet_v2", input_size=64,
                                                                 margin=0.3))
    with pytest.raises(ModelError, match="do not match"):
        Detector.load(path)


def test_missing_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Detector.load(tmp_path / "nope.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelError, match="not a deepscreen detector"):
        Detector.load(other)


def test_onnx_runtime_scores_as_pytorch_does_and_exports_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSCREEN_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(1)
    path = tmp_path / "mnv2.pt"  # the shipped architecture, random weights
    save_checkpoint(path, create_model("mobilenet_v2"), ModelProfile(name="t", arch="mobilenet_v2", input_size=96,
                                                                   margin=0.3))
    crops = [np.random.default_rng(i).integers(0, 256, (96, 96, 3), dtype=np.uint8) for i in range(5)]
    eager = Detector.load(path, device="cpu", runtime="torch", batch_size=2)
    onnx = Detector.load(path, device="cpu", runtime="onnx", batch_size=2)
    assert (eager.runtime, onnx.runtime) == ("torch", "onnx") and onnx.info()["runtime"] == "onnx"
    assert np.allclose(onnx.score(crops), eager.score(crops), atol=1e-5)
    [export] = (tmp_path / "cache" / "onnx").iterdir()
    assert export.name.startswith(sha256_file(path)[:16])
    stamp = export.stat().st_mtime_ns
    again = Detector.load(path, device="cpu")  # auto on a CPU: ONNX Runtime, from the cached export
    assert again.runtime == "onnx" and export.stat().st_mtime_ns == stamp
    assert np.allclose(again.score(crops[:1]), eager.score(crops[:1]), atol=1e-5)
    # the decoder shares the cores: the runtime's threads must sleep between runs, not spin
    assert again._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_unless_told_otherwise(preset, expected):
    # Read by OpenMP once, when torch loads: deepscreen sets it on import, before torch, and keeps a user's value.
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    code = "import os, deepscreen.model, torch; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
