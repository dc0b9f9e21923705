"""The latent autoencoder whose reconstructions of real faces are pseudo-fakes, and the pairs it makes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepscreen import autoencoder
from deepscreen.faces import FaceFinder
from deepscreen.model import KINDS
from deepscreen.training import CachedFace, PairDataset


@pytest.fixture(scope="module")
def face(astronaut_png):
    image = np.asarray(Image.open(astronaut_png).convert("RGB"))
    return image, FaceFinder().find([image], [0.0])[0][0]


@pytest.fixture(scope="module")
def fitted(face):
    """A small autoencoder fitted for a few seconds to crops of the test face, and its losses."""
    ae = autoencoder.LatentAutoencoder(width=8, latent=8, stages=3)  # the default is 2
    losses = autoencoder.fit(ae, [face[0]], steps=120, batch=4, size=48, lr=3e-3, seed=0)
    return ae, losses


def test_the_autoencoder_learns_to_reconstruct_and_keeps_any_size(fitted, face):
    ae, losses = fitted
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    odd = np.ascontiguousarray(face[0][:37, :45])  # sides that are not multiples of 8
    out = autoencoder.reconstruct(ae, odd)
    assert out.shape == odd.shape and out.dtype == np.uint8


def test_a_saved_autoencoder_reconstructs_as_before(fitted, face, tmp_path):
    ae, _ = fitted
    autoencoder.save(ae, tmp_path / "ae.pt")
    crop = np.ascontiguousarray(face[0][:64, :64])
    assert np.array_equal(autoencoder.reconstruct(autoencoder.load(tmp_path / "ae.pt"), crop),
                          autoencoder.reconstruct(ae, crop))


def test_the_spectrum_loss_sees_lost_detail_that_l1_barely_does():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    soft = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert autoencoder.spectrum_loss(soft, x) > 2 * autoencoder.spectrum_loss(x + 0.01, x)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float32).ravel(), b.astype(np.float32).ravel())[0, 1])


def test_decoded_pairs_differ_only_by_the_decoder(fitted, face, tmp_path):
    """Both sides of a pair get one degradation, crop and flip: a face lines up with its own reconstruction
    better than with the fake side of another pair; the fake is a generated face, of no labelled method."""
    ae, _ = fitted
    image, f = face
    Image.fromarray(image).save(tmp_path / "face.jpg")
    autoencoder.save(ae, tmp_path / "ae.pt")
    photo = CachedFace("face.jpg", "photo:p", "photo", f.box.tolist(), f.landmarks.tolist())
    with pytest.raises(ValueError, match="needs an autoencoder"):
        PairDataset([photo], str(tmp_path), 64, 0.3, 8, 0.0, 0, recon_share=1.0)
    data = PairDataset([photo], str(tmp_path), 64, 0.3, 8, 0.0, 0, recon_share=1.0,
                       autoencoder_path=str(tmp_path / "ae.pt"))
    pairs = [data[i] for i in range(8)]
    assert all(KINDS[kind] == "generated" and domains[1].item() == -1 for _, _, kind, domains in pairs)
    x = [p[0].numpy() for p in pairs]
    own = [_corr(a[0], a[1]) for a in x]
    other = [_corr(x[i][0], x[(i + 1) % 8][1]) for i in range(8)]
    assert min(own) > 0.5 and np.mean(own) > np.mean(other) + 0.1  # (marks are drawn for each side apart)
    assert all(not np.array_equal(a[0], a[1]) for a in x)


def test_the_training_script_reports_how_close_and_how_sharp_its_reconstructions_are(face, tmp_path, capsys):
    from conftest import load_script

    script = load_script("train_autoencoder")
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(6):
        Image.fromarray(np.ascontiguousarray(np.roll(face[0], 9 * i, axis=1)[:96, :96])).save(faces / f"{i}.png")
    out = tmp_path / "ae.pt"
    args = [str(faces), "--out", str(out), "--held-out", "2", "--width", "8"]
    assert script.main(args + ["--steps", "4", "--batch", "2", "--size", "32"]) == 0
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["images"] == 4 and written["steps"] == 4 and 0 < written["detail_ratio"] and written["psnr_db"] > 0
    capsys.readouterr()
    assert script.main(args + ["--report"]) == 0  # the saved one, not retrained
    again = json.loads(capsys.readouterr().out)
    assert again["psnr_db"] == written["psnr_db"] and "steps" not in again
