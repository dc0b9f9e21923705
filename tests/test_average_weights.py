"""scripts/average_weights.py: the soup is the parameter-wise mean, loads as a detector, and needs calibrating."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepscreen.model import Detector, ModelProfile, create_model, save_checkpoint

from conftest import load_script


def _checkpoint(path, seed: int, arch: str = "tiny_cnn", size: int = 64) -> None:
    torch.manual_seed(seed)
    save_checkpoint(path, create_model(arch), ModelProfile(name="t", arch=arch, input_size=size, margin=0.3,
                                                           threshold=0.8, extra={"method": "test"}))


def test_soup_is_the_mean_of_its_parts(tmp_path):
    aw = load_script("average_weights")
    a, b, soup = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "soup.pt"
    _checkpoint(a, 0)
    _checkpoint(b, 1)
    assert aw.main([str(a), str(b), "--out", str(soup)]) == 0
    parts = [Detector.load(p, device="cpu", runtime="torch") for p in (a, b)]
    mixed = Detector.load(soup, device="cpu", runtime="torch")
    for name, value in mixed.model.state_dict().items():
        if value.is_floating_point():
            expected = (parts[0].model.state_dict()[name] + parts[1].model.state_dict()[name]) / 2
            assert torch.allclose(value, expected)
    assert mixed.profile.threshold == 0.5  # the parts' threshold does not carry over
    assert mixed.profile.extra == {"method": "test", "averaged": ["a.pt", "b.pt"]}
    crops = [np.full((64, 64, 3), v, np.uint8) for v in (30, 200)]
    assert mixed.score(crops).shape == (2,)


def test_soup_refuses_parts_that_do_not_match(tmp_path):
    aw = load_script("average_weights")
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    _checkpoint(a, 0)
    _checkpoint(b, 1, size=96)
    with pytest.raises(SystemExit, match="differs"):
        aw.main([str(a), str(b), "--out", str(tmp_path / "soup.pt")])


def test_mix_weighs_the_parts(tmp_path):
    aw = load_script("average_weights")
    a, b, mix = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "mix.pt"
    _checkpoint(a, 0)
    _checkpoint(b, 1)
    assert aw.main([str(a), str(b), "--mix", "3", "1", "--out", str(mix)]) == 0  # normalised: 0.75, 0.25
    parts = [Detector.load(p, device="cpu", runtime="torch").model.state_dict() for p in (a, b)]
    mixed = Detector.load(mix, device="cpu", runtime="torch")
    for name, value in mixed.model.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * parts[0][name] + 0.25 * parts[1][name], atol=1e-6)
    assert mixed.profile.extra["mix"] == [0.75, 0.25]
    with pytest.raises(SystemExit, match="one non-negative weight per checkpoint"):
        aw.main([str(a), str(b), "--mix", "1", "--out", str(mix)])
