"""The CUDA path (MTCNN on the GPU, the detector under fp16 autocast) against the CPU's, where torch sees a GPU.

CI has none, so this skips there; on a GPU machine it is the check `scripts/device_check.py` makes on a folder."""
from __future__ import annotations

import pytest
import torch

from deepscreen import Screener

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_finds_the_same_faces_and_gives_the_cpu_scores(face_clip, two_face_clip):
    cpu = Screener(device="cpu", runtime="torch", early_exit=False, frames=8)
    gpu = Screener(device="auto", early_exit=False, frames=8)
    assert gpu.device.type == "cuda" and gpu.detector.runtime == "torch"
    for clip in (face_clip, two_face_clip):
        a, b = cpu.screen(str(clip)), gpu.screen(str(clip))
        assert a.status == b.status == "ok"
        assert [t.faces for t in a.tracks] == [t.faces for t in b.tracks]
        assert abs(a.score - b.score) < 0.02 and a.verdict == b.verdict
