"""Training machinery on a handful of faces, and the shipped default detector."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepscreen.faces import FaceFinder, crop_face
from deepscreen.model import Detector, create_model
from deepscreen.sbi import self_blend
from deepscreen.training import CachedFace, Normalize, TrainConfig, make_example, train

SHIPPED = Path(__file__).resolve().parent.parent / "weights" / "deepscreen-sbi-mnv2.pt"


@pytest.fixture(scope="module")
def face(astronaut_png):
    image = np.asarray(Image.open(astronaut_png).convert("RGB"))
    found = FaceFinder().find([image], [0.0])[0][0]
    return image, found


def test_a_few_steps_on_a_handful_of_pairs_lower_the_loss(face):
    image, f = face
    record = CachedFace("x.jpg", "photo:x", "photo", f.box.tolist(), f.landmarks.tolist())
    rng = np.random.default_rng(0)
    pairs = [make_example(image, record, rng, 64, 0.3) for _ in range(4)]
    x = torch.from_numpy(np.stack([im for pair in pairs for im in pair]))
    y = torch.tensor([0.0, 1.0] * 4).unsqueeze(1)
    torch.manual_seed(0)
    model, norm = create_model("tiny_cnn"), Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(norm(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * losses[0]


def _tiny_run(tmp_path: Path, astronaut_png: Path, face_clip: Path, **kw) -> tuple[TrainConfig, Path]:
    """A folder of real faces (six rotated photos, one clip) and a 4-step config of a tiny model."""
    data = tmp_path / "real"
    data.mkdir()
    photo = Image.open(astronaut_png).convert("RGB")
    for i, angle in enumerate((-6, -3, 0, 3, 6, 9)):  # a handful of "identities"
        photo.rotate(angle).save(data / f"p{i}.jpg")
    (data / "clip.mp4").write_bytes(face_clip.read_bytes())
    cfg = TrainConfig(out=str(tmp_path / "m.pt"), run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                      arch="tiny_cnn", input_size=64, steps=4, pairs_per_batch=2, val_every=2, val_fraction=0.3,
                      frames_per_video=3, workers=0, bf16=False, **kw)
    return cfg, data


def test_train_command_writes_a_loadable_checkpoint_and_resumes(tmp_path, astronaut_png, face_clip):
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip)
    best = train(cfg, [str(data)])
    assert 0 <= best["auc"] <= 1 and best["step"] in (2, 4)
    det = Detector.load(cfg.out, device="cpu")
    assert det.profile.arch == "tiny_cnn" and det.profile.extra["method"] == "SBI"
    index = [json.loads(line) for line in (tmp_path / "cache" / "index.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in index} >= {"photo", "video", "video-mpeg1"}
    (tmp_path / "run" / "log.jsonl").unlink()
    train(cfg, [str(data)])  # run again: it resumes from the last checkpoint, finds nothing left to do
    assert not (tmp_path / "run" / "log.jsonl").read_text()
    # The same run folder with other settings is refused, not resumed into a mix of two recipes.
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.0003 -> 0.001\)"):
        train(replace(cfg, lr=1e-3), [str(data)])
    train(replace(cfg, workers=1), [str(data)])  # how many loader workers does not matter


def test_checkpoints_chosen_on_labelled_videos(tmp_path, astronaut_png, face_clip, two_face_clip, no_face_clip):
    chooser = tmp_path / "choose"
    chooser.mkdir()
    labels = "file,label\n{},real\n{},fake\n{},real\n".format(face_clip, two_face_clip, no_face_clip)
    (chooser / "labels.csv").write_text(labels)
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, select_on=str(chooser), select_frames=3)
    best = train(cfg, [str(data)])
    vals = [json.loads(x)["val"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"val"' in x]
    assert [v["step"] for v in vals] == [2, 4]
    for v in vals:  # one real and one fake clip with a face: the video AUC is 0 or 1, and it is what selects
        assert v["auc_select_videos"] in (0.0, 1.0) and v["select"] == v["auc_select_videos"]
    assert best["select"] == max(v["select"] for v in vals)
    assert Detector.load(cfg.out, device="cpu").profile.extra["chosen_on_videos"] == "choose"
    assert len(list((tmp_path / "cache" / "select").glob("crops-*.npz"))) == 1  # faces found once

    (chooser / "labels.csv").write_text(labels.replace("fake", "real"))
    with pytest.raises(ValueError, match="needs real and fake videos"):
        train(replace(cfg, run_dir=str(tmp_path / "run2")), [str(data)])


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped default detector")
def test_shipped_weights_score_a_self_blended_face_above_the_face(face):
    image, f = face
    det = Detector.load(SHIPPED, device="cpu")
    size, margin = det.profile.input_size, det.profile.margin
    real = crop_face(image, f.box, margin, size)
    fakes = [crop_face(self_blend(image, f.landmarks, np.random.default_rng(seed))[0], f.box, margin, size)
             for seed in range(8)]
    real_score, fake_scores = det.score([real])[0], det.score(fakes)
    assert fake_scores.mean() > real_score
