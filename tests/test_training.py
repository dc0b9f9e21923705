"""Training machinery on a handful of faces, and the shipped default detector."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from deepscreen.clips import face_crops
from deepscreen.datasets import LabelledVideo, method_groups
from deepscreen.faces import FaceFinder, crop_face, detail
from deepscreen.model import (KINDS, Detector, ModelProfile, PatchNet, create_model, save_checkpoint, truncate_state,
                              widen_head)
from deepscreen.sbi import self_blend
from deepscreen.training import (UNLABELLED_REALS, BalancedSampler, CachedFace, Compute, Domains, Normalize,
                                 PairDataset, SourceAdversary, TrainConfig, adversary_strength, build_cache,
                                 ascend, choose_scored, descend, evaluate, freeze_blocks, held_norm_statistics,
                                 kind_loss, make_example, pooled_logits, matched_examples, pull_toward, match_detail,
                                 native_bf16, smooth_targets, train)

from conftest import load_script

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
    """A folder of real faces (six rotated photos, one clip) and a 4-step config of a tiny model (on the CPU)."""
    data = tmp_path / "real"
    data.mkdir()
    photo = Image.open(astronaut_png).convert("RGB")
    for i, angle in enumerate((-6, -3, 0, 3, 6, 9)):  # a handful of "identities"
        photo.rotate(angle).save(data / f"p{i}.jpg")
    (data / "clip.mp4").write_bytes(face_clip.read_bytes())
    settings = dict(arch="tiny_cnn", input_size=64, steps=4, pairs_per_batch=2, val_every=2, val_fraction=0.3,
                    frames_per_video=3, workers=0, bf16=False, device="cpu")
    cfg = TrainConfig(out=str(tmp_path / "m.pt"), run_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                      **{**settings, **kw})
    return cfg, data


def test_train_command_writes_a_loadable_checkpoint_and_resumes(tmp_path, astronaut_png, face_clip):
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip)
    best = train(cfg, [str(data)])
    assert 0 <= best["auc"] <= 1 and best["step"] in (2, 4)
    det = Detector.load(cfg.out, device="cpu")
    assert det.profile.arch == "tiny_cnn" and det.profile.extra["method"] == "SBI"
    # The last step's weights are kept too (for averaging runs at one step), and equal the best's when it is last.
    last, chosen = (Detector.load(p, device="cpu", runtime="torch").model.state_dict()
                    for p in (tmp_path / "run" / "final.pt", cfg.out))
    assert all(torch.equal(last[k], chosen[k]) for k in last) == (best["step"] == cfg.steps)
    [index_file] = (tmp_path / "cache").glob("index-*.jsonl")
    index = [json.loads(line) for line in index_file.read_text().splitlines()]
    assert {r["kind"] for r in index} >= {"photo", "video", "video-mpeg1"}
    (tmp_path / "run" / "log.jsonl").unlink()
    train(cfg, [str(data)])  # run again: it resumes from the last checkpoint, finds nothing left to do
    assert not (tmp_path / "run" / "log.jsonl").read_text()
    # The same run folder with other settings is refused, not resumed into a mix of two recipes.
    with pytest.raises(ValueError, match=r"other settings \(lr: 0.0003 -> 0.001\)"):
        train(replace(cfg, lr=1e-3), [str(data)])
    train(replace(cfg, workers=1), [str(data)])  # how many loader workers does not matter


def test_face_cache_follows_its_inputs(tmp_path, astronaut_png, face_clip, two_face_clip):
    """Same-named files in two folders keep their own faces and variants; other inputs get their own index."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(face_clip, a / "000.mp4")
    shutil.copy(two_face_clip, b / "000.mp4")
    cache = str(tmp_path / "cache")
    only_a = build_cache([str(a)], cache, frames_per_video=2)
    both = build_cache([str(a), str(b)], cache, frames_per_video=2)
    assert {r.kind for r in only_a} == {"video", "video-mpeg1", "video-h264lo", "video-small"}
    assert len(both) > len(only_a) and len({r.file for r in both}) == len(both)
    assert len(list((tmp_path / "cache" / "variants").glob("000-*.mpg"))) == 2
    assert build_cache([str(a)], cache, frames_per_video=2) == only_a  # reused, not rebuilt
    assert not list((tmp_path / "cache" / "variants").glob("*.part.*"))


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


def test_face_caches_survive_a_fresh_copy_of_the_data(tmp_path, face_clip):
    # Data sets get copied afresh (new modification times): faces found before are still found in the cache,
    # and only other bytes make it look again.
    clip, cache = tmp_path / "clip.mp4", tmp_path / "cache"
    shutil.copy(face_clip, clip)
    items = [LabelledVideo(path=str(clip), label=0, source="s")]
    first = face_crops(items, 3, 0.3, 64, cache)
    [stored] = cache.glob("crops-*.npz")
    made = stored.stat().st_mtime_ns
    os.utime(clip, ns=(made + 10**9, made + 10**9))
    again = face_crops(items, 3, 0.3, 64, cache)
    assert list(cache.glob("crops-*.npz")) == [stored] and stored.stat().st_mtime_ns == made
    assert len(first[0]) == 3 and np.array_equal(first[0], again[0])
    with open(clip, "ab") as fh:
        fh.write(b"\0")
    face_crops(items, 3, 0.3, 64, cache)
    assert len(list(cache.glob("crops-*.npz"))) == 2


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


def _face_record(group: str, label: int, source: str, method: str = "") -> CachedFace:
    return CachedFace(f"{group}.jpg", group, "labelled", [0, 0, 1, 1], [[0, 0]] * 5, label, source, method)


def test_balanced_sampler_weighs_sources_and_methods_not_clips():
    # Reals: source "big" has 30 clips of 10 faces, "small" one clip of 1 face. Fakes: "swap" has 20 clips,
    # "gen" has 2 (one of 40 faces). Every source or method must come up about equally often.
    records = [_face_record(f"big{c}", 0, "big") for c in range(30) for _ in range(10)]
    records += [_face_record("small0", 0, "small")]
    records += [_face_record(f"swap{c}", 1, "s", "swap") for c in range(20)]
    records += [_face_record("gen0", 1, "g", "gen")] + [_face_record("gen1", 1, "g", "gen") for _ in range(40)]
    sampler = BalancedSampler(records)
    rng = np.random.default_rng(0)
    reals = [sampler.draw(rng, 0) for _ in range(4000)]
    fakes = [sampler.draw(rng, 1) for _ in range(4000)]
    assert all(r.label == 0 for r in reals) and all(r.label == 1 for r in fakes)
    assert abs(sum(r.source == "small" for r in reals) / 4000 - 0.5) < 0.03
    assert abs(sum(r.method == "gen" for r in fakes) / 4000 - 0.5) < 0.03
    gen = [r for r in fakes if r.method == "gen"]  # within a method, clips alike whatever their length
    assert abs(sum(r.group == "gen0" for r in gen) / len(gen) - 0.5) < 0.05
    assert not BalancedSampler(records[:5]).has(1)


def test_confounds_come_at_the_same_rate_whatever_the_label(face):
    """A training pair's two sides get corner insets, captions and black surrounds equally often."""
    from deepscreen import confounds

    image, f = face
    crop = crop_face(image, f.box, 0.3, 96)
    rng = np.random.default_rng(1)
    changed = [[not np.array_equal(confounds.confound(crop, rng), crop) for _ in range(600)] for _ in range(2)]
    expected = 1 - (1 - confounds.INSET_P) * (1 - confounds.CAPTION_P) * (1 - confounds.ON_BLACK_P)
    for side in changed:
        assert abs(np.mean(side) - expected) < 0.05
    inset = confounds.corner_inset(crop, np.random.default_rng(2))
    corners = [inset[:20, :20], inset[:20, -20:], inset[-20:, :20], inset[-20:, -20:]]
    originals = [crop[:20, :20], crop[:20, -20:], crop[-20:, :20], crop[-20:, -20:]]
    assert sum(not np.array_equal(a, b) for a, b in zip(corners, originals)) == 1  # exactly one corner
    assert np.array_equal(inset[40:56, 40:56], crop[40:56, 40:56])  # the face itself untouched
    black = confounds.on_black(crop, np.random.default_rng(3))
    assert black[0, 0].sum() == 0 and np.array_equal(black[48, 48], crop[48, 48])
    # An occluder hides up to 20% of the crop (a quarter at most: rounding), and only when asked for.
    hidden = [np.any(confounds.occlusion(crop, np.random.default_rng(i)) != crop, axis=2).mean() for i in range(50)]
    assert 0 < min(hidden) and max(hidden) <= 0.25 and np.mean(hidden) > 0.05
    rate = np.mean([np.any(confounds.confound(crop, rng, 0.0, occlude_p=1.0) != crop) for _ in range(100)])
    assert rate > 0.95
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    assert np.array_equal(confounds.confound(crop, a), confounds.confound(crop, b, occlude_p=0.0))
    assert a.random() == b.random()  # occlusion off draws nothing: earlier recipes' random streams are unchanged


def test_training_on_labelled_clips(tmp_path, astronaut_png, face_clip, two_face_clip, no_face_clip):
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    for name, clip in (("real.mp4", face_clip), ("fake.mp4", two_face_clip), ("empty.mp4", no_face_clip)):
        (labelled / name).write_bytes(clip.read_bytes())
    (labelled / "labels.csv").write_text("file,label,source,method\nreal.mp4,real,cam,\n"
                                         "fake.mp4,fake,web,Tint\nempty.mp4,fake,web,Nothing\n")
    chooser = tmp_path / "choose"
    chooser.mkdir()
    (chooser / "labels.csv").write_text(f"file,label\n{face_clip},real\n{two_face_clip},fake\n")
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, labelled=[str(labelled)], frames_per_clip=3,
                          sbi_share=0.5, select_on=str(chooser), select_frames=3)
    # The chooser holds the very clips of the labelled set: refused before any training.
    with pytest.raises(ValueError, match="also in the selection set"):
        train(cfg, [str(data)])
    for name in ("real.mp4", "fake.mp4"):  # now other files (the guard is by content), of the same pictures
        (labelled / name).write_bytes((labelled / name).read_bytes() + b"\0")
    best = train(cfg, [str(data)])
    assert best["step"] in (2, 4)
    cached = [r for f in (tmp_path / "cache" / "labelled").glob("*/faces.json") for r in json.loads(f.read_text())]
    assert {(r["label"], r["source"], r["method"]) for r in cached} == {(0, "cam", ""), (1, "web", "Tint")}
    assert len([r for r in cached if r["label"] == 1]) == 3  # 3 frames of two people: the largest face of each
    det = Detector.load(cfg.out, device="cpu")
    assert det.profile.extra["method"] == "SBI + labelled video"
    assert det.profile.extra["train_inputs"] == ["real", "labelled"]
    # Leaving a method out drops its clips from training and says so in the profile.
    run2 = replace(cfg, run_dir=str(tmp_path / "run2"), out=str(tmp_path / "m2.pt"), exclude_methods=["Tint"])
    train(run2, [str(data)])
    assert Detector.load(run2.out, device="cpu").profile.extra["excluded_methods"] == ["Tint"]
    # Leave-one-out runs of the same recipe: a `+` group is left out of one run, together, and scored against
    # the chooser's reals by that run and by a control that trained on it.
    loo = load_script("leave_one_out")
    assert method_groups("A+B, C,") == [["A", "B"], ["C"]]
    table = tmp_path / "loo.json"
    loo.main([cfg.run_dir, "--methods", "Tint+Nothing", "--steps", "2", "--frames", "3", "--json", str(table)])
    row = json.loads(table.read_text())["Tint+Nothing"]
    assert (row["clips"], row["select_reals"], row["steps"]) == (1, 1, 2)  # the faceless clip has nothing to score
    assert 0 <= row["auc_unseen"] <= 1 and 0 <= row["fake_mean_seen"] <= 1
    left_out = Detector.load(str(Path(cfg.run_dir) / "leave-out" / "Tint+Nothing" / "model.pt"), device="cpu")
    assert left_out.profile.extra["excluded_methods"] == ["Tint", "Nothing"]
    with pytest.raises(SystemExit):
        loo.main([cfg.run_dir, "--methods", "Tint+Absent", "--steps", "2"])
    # A network with a logit per kind trains on the same data (here on detail-matched pairs) and loads like any other.
    run3 = replace(cfg, run_dir=str(tmp_path / "run3"), out=str(tmp_path / "m3.pt"), arch="mobilenet_v2_kinds",
                   blended_methods=["Tint"], match_detail=True, on_black=0.5, margin=0.1)
    train(run3, [str(data)])
    det = Detector.load(run3.out, device="cpu")
    assert det.profile.extra["match_detail"] is True and det.profile.extra["on_black"] == 0.5
    assert det.profile.margin == 0.1  # scan crops as training did
    kinds = det.profile.extra["kinds"]
    assert kinds["names"] == list(KINDS) and kinds["blended_methods"] == ["Tint"]
    # The way of scoring chosen on the selection clips is what the loaded detector (in ONNX Runtime) scores.
    assert det.model.scored == [KINDS.index(k) for k in kinds["scored"]] and det.runtime == "onnx"
    crops = [np.asarray(Image.open(astronaut_png).convert("RGB").resize((64, 64))), np.zeros((64, 64, 3), np.uint8)]
    with torch.no_grad():
        logits = det.model.kinds(det.to_tensor(crops))[:, det.model.scored].amax(1)
    assert np.allclose(det.score(crops), torch.sigmoid(logits).numpy(), atol=1e-4)
    # A patch network starts from a whole MobileNetV2 checkpoint, trains every patch against the source adversary,
    # and scans in ONNX Runtime as PyTorch scores it.
    whole = tmp_path / "whole.pt"
    save_checkpoint(whole, create_model("mobilenet_v2"), ModelProfile(name="w", arch="mobilenet_v2", input_size=64,
                                                                      margin=cfg.margin))
    run4 = replace(cfg, run_dir=str(tmp_path / "run4"), out=str(tmp_path / "m4.pt"), arch="mobilenet_v2_patches",
                   init=str(whole), source_adversary=2.0)
    train(run4, [str(data)])
    det = Detector.load(run4.out, device="cpu")
    assert det.profile.arch == "mobilenet_v2_patches" and det.runtime == "onnx"
    with torch.no_grad():
        assert np.allclose(det.score(crops), torch.sigmoid(det.model(det.to_tensor(crops))).flatten().numpy(),
                           atol=1e-4)


def test_a_patch_network_starts_from_a_whole_one_and_scores_the_mean_of_its_face_patches():
    torch.manual_seed(0)
    whole = create_model("mobilenet_v2")
    net = create_model("mobilenet_v2_patches").eval()
    net.load_state_dict({**net.state_dict(), **truncate_state(whole.state_dict(), PatchNet.cut)})
    assert torch.equal(net.features[PatchNet.cut - 1].conv[0][0].weight,
                       whole.features[PatchNet.cut - 1].conv[0][0].weight)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        patches, pooled = net.patches(x)
        assert patches.shape == (2, 100) and pooled.shape == (2, PatchNet.width)  # the middle 10 x 10 of 14 x 14
        assert torch.allclose(net(x).flatten(), patches.mean(1))
        x2 = x.clone()
        x2[..., :24, :] = 0  # the crop's top rows: margin around the face, outside every scored patch's centre
        changed = (net.patches(x2)[0] != patches).view(2, 10, 10)
        assert changed[:, 0].any() and not changed[:, 6:].any()  # each patch sees its own part of the face


def test_a_kind_network_starts_as_its_one_logit_parent_and_scores_its_likelier_kind():
    torch.manual_seed(0)
    parent = create_model("mobilenet_v2").eval()
    child = create_model("mobilenet_v2_kinds").eval()
    child.load_state_dict(widen_head(parent.state_dict(), len(KINDS)))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(child(x), parent(x), atol=1e-5)
        child.classifier[-1].bias += torch.tensor([0.0, 2.0])  # now the kinds disagree
        kinds = child.kinds(x)
        assert torch.equal(child(x).flatten(), kinds.amax(1)) and (kinds[:, 1] > kinds[:, 0]).all()


def test_the_way_a_kind_network_scores_is_chosen_on_labelled_clips():
    class Brightness(torch.nn.Module):
        """Kind logits from mean brightness: "generated" rises with it, "blended" falls."""

        def kinds(self, x: torch.Tensor) -> torch.Tensor:
            b = x.mean((1, 2, 3))
            return torch.stack([-b, b], 1)

    rng = np.random.default_rng(0)
    labels = [0, 1] * 4
    clips = [rng.integers(0, 100, (3, 8, 8, 3), dtype=np.uint8) + 120 * y for y in labels]  # fakes brighter
    norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    scored, aucs = choose_scored(Brightness(), norm, clips, labels)
    assert scored == [KINDS.index("generated")]
    assert aucs["generated"] == 1.0 and aucs["blended"] == 0.0 and set(aucs) == {"blended+generated", *KINDS}


def test_kind_loss_teaches_reals_both_kinds_and_fakes_only_their_own():
    logits = torch.zeros(4, 2, requires_grad=True)  # (real, fake) pairs: a blended fake, then a generated one
    y = torch.tensor([0.0, 1.0, 0.0, 1.0]).unsqueeze(1)
    kind_loss(logits, y, torch.tensor([0, 1])).backward()
    g = logits.grad
    assert (g[[0, 2]] > 0).all()  # reals pushed down on both logits
    assert g[1, 0] < 0 and g[1, 1] == 0  # the blended fake up on its own logit, the other left alone
    assert g[3, 1] < 0 and g[3, 0] == 0


def test_smoothed_targets_stop_the_push_at_a_finite_logit():
    eps = 0.1
    y = torch.tensor([[0.0], [1.0]])
    assert smooth_targets(y, eps).flatten().tolist() == pytest.approx([0.05, 0.95])
    bound = float(np.log(0.95 / 0.05))  # the logit whose probability is the smoothed target
    for logits, push in ((torch.tensor([[-bound], [bound]]), 0.0), (torch.tensor([[-8.0], [8.0]]), 1.0)):
        logits.requires_grad_(True)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, smooth_targets(y, eps)).backward()
        g = logits.grad.flatten()
        if push:  # past the bound, a confident right answer is pulled back toward it
            assert g[0] < 0 and g[1] > 0
        else:
            assert g.abs().max() < 1e-6
    logits = torch.full((2, 2), 8.0, requires_grad=True)  # a real and a blended fake, both very sure "fake"
    kind_loss(logits, y, torch.tensor([0]), eps).backward()
    assert (logits.grad[0] > 0).all() and logits.grad[1, 0] > 0 and logits.grad[1, 1] == 0


def test_sharpness_aware_steps_climb_rho_along_the_gradient_and_come_back():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.LazyLinear(1))
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 2, (8, 1)).float()
    loss = lambda: torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)  # noqa: E731
    loss().backward()
    params = list(net.parameters())
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    at_start = loss().item()
    stats = net[1].running_mean.clone()
    moves = ascend(params, 0.5)
    moved = torch.cat([(p - b).flatten() for p, b in zip(params, before)])
    assert torch.linalg.vector_norm(moved).item() == pytest.approx(0.5, rel=1e-4)
    assert torch.nn.functional.cosine_similarity(moved, torch.cat([g.flatten() for g in grads]), dim=0) > 0.9999
    with torch.no_grad(), held_norm_statistics(net):
        assert loss().item() > at_start  # uphill: the worst weights near by, where SAM takes its gradient
    assert torch.equal(net[1].running_mean, stats) and net[1].momentum == 0.1
    descend(params, moves)
    assert all(torch.allclose(p, b, atol=1e-6) for p, b in zip(params, before))
    params[0].grad = torch.full_like(params[0], float("inf"))  # a scaled loss that overflowed: nothing moves
    descend(params, ascend(params, 0.5))
    assert all(torch.allclose(p, b, atol=1e-6) for p, b in zip(params, before))


def test_pairs_say_which_kind_their_fake_is(tmp_path, face):
    image, f = face
    Image.fromarray(image).save(tmp_path / "face.jpg")
    record = CachedFace("face.jpg", "g", "labelled", f.box.tolist(), f.landmarks.tolist())
    labelled = [replace(record, group="r", source="cam"), replace(record, group="s", label=1, method="Swapper"),
                replace(record, group="t", label=1, method="Talker")]

    def kinds(**kw) -> set[str]:
        data = PairDataset([], str(tmp_path), 64, 0.3, 40, 0.5, 0, labelled, **kw)
        seen = set()
        for i in range(40):
            x, y, kind, _ = data[i]
            assert x.shape == (2, 64, 64, 3) and y.tolist() == [0.0, 1.0]
            seen.add(KINDS[kind])
        return seen

    assert kinds(sbi_share=0.0, blended_methods=("Swapper",)) == set(KINDS)  # one method of each kind
    assert kinds(sbi_share=0.0, blended_methods=()) == {"generated"}
    assert kinds(sbi_share=1.0) == {"blended"}  # self-blends are blends


def test_pairs_say_where_each_face_came_from(tmp_path, face):
    """Reals are numbered by source (other real inputs are one source of their own), labelled fakes by method."""
    image, f = face
    Image.fromarray(image).save(tmp_path / "face.jpg")
    record = CachedFace("face.jpg", "g", "labelled", f.box.tolist(), f.landmarks.tolist())
    labelled = [replace(record, group="r", source="cam"), replace(record, group="q", source="tv"),
                replace(record, group="t", label=1, source="web", method="Talker")]
    domains = Domains.of(labelled)
    assert domains == Domains(real=["cam", "tv", UNLABELLED_REALS], fake=["Talker"])
    assert domains.index(replace(record, kind="video")) == 2  # a real input that is no labelled clip
    photo = replace(record, kind="photo", group="photo:p")
    data = PairDataset([photo], str(tmp_path), 64, 0.3, 60, 0.0, 0, labelled, sbi_share=0.5)
    seen = {tuple(data[i][3].tolist()) for i in range(60)}
    # Self-blends: the real side's source, no method for the fake; labelled pairs: both.
    assert seen == {(0, -1), (1, -1), (2, -1), (0, 0), (1, 0)}


def test_a_fake_meets_a_real_of_its_own_source_cut_and_degraded_alike(tmp_path, face):
    image, f = face
    Image.fromarray(image).save(tmp_path / "face.jpg")
    record = CachedFace("face.jpg", "g", "labelled", f.box.tolist(), f.landmarks.tolist())
    labelled = [replace(record, group="d", source="demo"), replace(record, group="t", source="tv"),
                replace(record, group="c", source="cam"),
                replace(record, group="s", label=1, source="demo", method="Swapper"),
                replace(record, group="w", label=1, source="web", method="Talker")]  # web: no real clips
    domains = Domains.of(labelled)
    demo, swapper = domains.index(labelled[0]), domains.index(labelled[3])

    def reals_met(same_source: float) -> dict[int, set[int]]:
        data = PairDataset([], str(tmp_path), 64, 0.3, 120, 0.5, 0, labelled, sbi_share=0.0, same_source=same_source)
        met: dict[int, set[int]] = {}
        for i in range(120):
            real, fake = data[i][3].tolist()
            met.setdefault(fake, set()).add(real)
        return met

    assert reals_met(1.0)[swapper] == {demo}
    assert len(reals_met(1.0)[domains.index(labelled[4])]) == 3  # a fake with no real of its source: any real
    assert len(reals_met(0.0)[swapper]) == 3
    # One face as both sides: cut and degraded alike, the two crops are the same, whatever the draw.
    for seed in range(20):
        a, b = matched_examples(image, labelled[0], image, labelled[3], np.random.default_rng(seed), 64, 0.3)
        assert a.shape == (64, 64, 3) and np.array_equal(a, b)
    sampler = BalancedSampler(labelled)
    assert sampler.draw_real_of(np.random.default_rng(0), "web") is None


def test_the_source_adversary_pushes_the_features_against_its_heads():
    domains = Domains(real=["cam", "tv", UNLABELLED_REALS], fake=["Talker", "Swapper"])
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    domain = torch.tensor([0, 1, 2, -1, 1, 0])  # the fourth face (a self-blend) has no method: left out
    real, fake = [0, 2, 4], [1, 5]
    ce = torch.nn.functional.cross_entropy

    def grads(objective: str) -> tuple[SourceAdversary, torch.Tensor, torch.Tensor, dict]:
        torch.manual_seed(0)
        adversary = SourceAdversary(8, domains, objective)
        features = torch.randn(6, 8, requires_grad=True)
        loss, acc = adversary(features, y, domain, strength=0.5)
        loss.backward()
        return adversary, features, loss, acc

    # "reverse": the heads' own loss, whose gradient reaches the features times -0.5.
    adversary, features, loss, acc = grads("reverse")
    pushed = features.grad.clone()
    features.grad = None
    plain = ce(adversary.real(features[real]), domain[real]) + ce(adversary.fake(features[fake]), domain[fake])
    plain.backward()
    assert torch.allclose(loss, plain) and torch.allclose(pushed, -0.5 * features.grad)
    assert features.grad.abs().sum() > 0 and set(acc) == {"real", "fake"}
    assert all(0 <= v <= 1 for v in acc.values())
    # "confuse": the heads learn as before; the features move only toward what leaves the heads unsure.
    adversary, features, loss, acc = grads("confuse")
    pushed, head_grad = features.grad.clone(), adversary.real.weight.grad.clone()
    features.grad, adversary.real.weight.grad = None, None
    ce(adversary.real(features[real].detach()), domain[real]).backward()
    assert torch.allclose(head_grad, adversary.real.weight.grad)
    unsure = sum(-adversary_head(features[rows]).log_softmax(1).mean()
                 for adversary_head, rows in ((adversary.real, real), (adversary.fake, fake)))
    features.grad = None
    (0.5 * unsure).backward()
    assert torch.allclose(pushed, features.grad) and pushed.abs().sum() > 0
    assert adversary_strength(0.0, 0.3) == 0.0 and 0.29 < adversary_strength(1.0, 0.3) <= 0.3
    with pytest.raises(ValueError, match="unknown adversary objective"):
        SourceAdversary(8, domains, "ignore")


def test_cross_validation_scores_each_clip_by_a_run_that_never_saw_its_source(tmp_path, astronaut_png, face_clip,
                                                                               two_face_clip):
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    rows = []
    for i, (clip, label, source, method) in enumerate(((face_clip, "real", "cam1", ""), (two_face_clip, "fake", "web1", "Tint"),
                                                       (face_clip, "real", "cam2", ""), (two_face_clip, "fake", "web2", "Shade"))):
        (labelled / f"c{i}.mp4").write_bytes(clip.read_bytes() + b"\0" * i)
        rows.append(f"c{i}.mp4,{label},{source},{method}\n")
    (labelled / "labels.csv").write_text("file,label,source,method\n" + "".join(rows))
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, labelled=[str(labelled)], frames_per_clip=3, sbi_share=0.5)
    Path(cfg.run_dir).mkdir()  # the recipe, as `deepscreen train` records it
    (Path(cfg.run_dir) / "config.json").write_text(json.dumps({**asdict(cfg), "inputs": [str(data)]}))
    cv = load_script("cross_validate")
    assert cv.main([cfg.run_dir, "--folds", "2", "--steps", "2", "--frames", "3"]) == 0
    out = Path(cfg.run_dir) / "cross-val"
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["status"] == "ok" and 0 <= r["score"] <= 1 for r in records)
    source = {str(labelled / f"c{i}.mp4"): row.split(",")[2] for i, row in enumerate(rows)}
    folds = {r["model"]["fold"] for r in records}
    assert folds == {0, 1}
    for r in records:  # each clip was scored by the run that left its source out, and trained on the other fold
        left_out = Detector.load(r["model"]["weights"], device="cpu").profile.extra["excluded_sources"]
        assert source[r["path"]] in left_out and len(left_out) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == 4 and 0 <= summary["auc"] <= 1 and set(summary["folds"]) == {"0", "1"}
    # Run again: the folds are trained already, so the same scores come back without training.
    trained = {p: p.stat().st_mtime_ns for p in out.glob("fold*/last.pt")}
    cv.main([cfg.run_dir, "--folds", "2", "--steps", "2", "--frames", "3"])
    assert [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()] == records
    assert {p: p.stat().st_mtime_ns for p in out.glob("fold*/last.pt")} == trained
    # A baseline: one checkpoint scores every clip, nothing trained, the same summary.
    base = tmp_path / "baseline"
    fixed = records[0]["model"]["weights"]
    cv.main([cfg.run_dir, "--folds", "2", "--frames", "3", "--weights", fixed, "--out", str(base)])
    again = [json.loads(line) for line in (base / "results.jsonl").read_text().splitlines()]
    assert {r["model"]["weights"] for r in again} == {fixed} and not list(base.glob("fold*"))
    assert [r["score"] for r in again if r["model"]["fold"] == records[0]["model"]["fold"]] == \
        [r["score"] for r in records if r["model"]["fold"] == records[0]["model"]["fold"]]


def test_training_with_a_source_adversary(tmp_path, astronaut_png, face_clip, two_face_clip):
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    for name, clip in (("real.mp4", face_clip), ("fake.mp4", two_face_clip)):
        (labelled / name).write_bytes(clip.read_bytes())
    (labelled / "labels.csv").write_text("file,label,source,method\nreal.mp4,real,cam,\nfake.mp4,fake,web,Tint\n")
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, arch="mobilenet_v2", labelled=[str(labelled)],
                          frames_per_clip=3, sbi_share=0.5, source_adversary=0.5, label_smoothing=0.1,
                          sharpness=0.05)
    with pytest.raises(ValueError, match="needs --labelled"):
        train(replace(cfg, arch="tiny_cnn", run_dir=str(tmp_path / "tiny")), [str(data)])
    train(cfg, [str(data)])
    assert Detector.load(cfg.out, device="cpu").profile.extra["source_adversary"] == {"strength": 0.5,
                                                                                     "objective": "confuse"}
    assert Detector.load(cfg.out, device="cpu").profile.extra["label_smoothing"] == 0.1
    assert Detector.load(cfg.out, device="cpu").profile.extra["sharpness"] == 0.05
    heads = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["adversary"]
    assert heads["real.weight"].shape == (2, 1280) and heads["fake.weight"].shape == (1, 1280)  # cam + unlabelled
    train(cfg, [str(data)])  # resumes with its heads


def test_training_with_decoded_faces_records_its_autoencoder(tmp_path, astronaut_png, face_clip):
    from deepscreen import autoencoder
    from deepscreen.model import sha256_file

    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, recon_share=0.5)
    with pytest.raises(ValueError, match="needs --autoencoder"):
        train(cfg, [str(data)])
    autoencoder.save(autoencoder.LatentAutoencoder(width=8, latent=4), tmp_path / "ae.pt")
    cfg = replace(cfg, autoencoder=str(tmp_path / "ae.pt"))
    with pytest.raises(ValueError, match="exceed 1"):
        train(replace(cfg, labelled=[str(data)], sbi_share=0.6, run_dir=str(tmp_path / "over")), [str(data)])
    train(cfg, [str(data)])
    assert Detector.load(cfg.out, device="cpu").profile.extra["reconstructions"] == {
        "share": 0.5, "autoencoder": "ae.pt", "autoencoder_sha256": sha256_file(tmp_path / "ae.pt")}


def test_matching_detail_blurs_only_the_sharper_face_down_to_the_other(face):
    image, f = face
    sharp = crop_face(image, f.box, 0.3, 128)
    soft = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    assert detail(sharp) > 3 * detail(soft)
    for a, b in ((sharp, soft), (soft, sharp)):  # whichever side the sharper face is on
        a2, b2 = match_detail(a, b)
        kept, blurred = (b2, a2) if a is sharp else (a2, b2)
        assert kept is soft
        assert 0.5 * detail(soft) <= detail(blurred) <= detail(soft)
    same = match_detail(sharp, sharp.copy())
    assert np.array_equal(same[0], sharp) and np.array_equal(same[1], sharp)


def test_on_black_rate_reaches_both_sides_of_every_pair(tmp_path, face):
    image, f = face
    Image.fromarray(image).save(tmp_path / "face.jpg")
    record = CachedFace("face.jpg", "g", "labelled", f.box.tolist(), f.landmarks.tolist())
    labelled = [replace(record, group="r", source="cam"), replace(record, group="t", label=1, method="Talker")]

    def black_corner_share(on_black: float) -> np.ndarray:
        data = PairDataset([], str(tmp_path), 64, 0.3, 200, 0.5, 0, labelled, sbi_share=0.5, on_black=on_black)
        corners = np.stack([data[i][0][:, :3, :3].numpy().reshape(2, -1).max(axis=1) == 0 for i in range(200)])
        return corners.mean(axis=0)  # per side (real, fake): how often its corner is black

    assert (black_corner_share(1.0) > 0.9).all()  # not 1: a corner inset or caption may cover the corner
    assert (black_corner_share(0.0) < 0.1).all()
    half = black_corner_share(0.5)
    assert abs(half[0] - half[1]) < 0.15 and 0.3 < half.mean() < 0.7


def test_training_precision_follows_the_device():
    cpu = Compute.choose("cpu")
    assert cpu.device.type == "cpu" and cpu.dtype == (torch.bfloat16 if native_bf16() else None)
    assert Compute.choose("cpu", bf16=True).dtype == torch.bfloat16 and Compute.choose("cpu", bf16=False).dtype is None
    assert not cpu.scaler().is_enabled()  # loss scaling is for fp16 only
    assert cpu.loader_workers(None) == 1 and cpu.loader_workers(0) == 0  # on a CPU the model needs the cores
    gpu = Compute(torch.device("cuda"), torch.bfloat16)
    assert gpu.loader_workers(None) == max(1, len(os.sched_getaffinity(0)) - 2) and gpu.loader_workers(3) == 3
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            Compute.choose("cuda")
        assert Compute.choose("auto").device.type == "cpu"


def test_frozen_blocks_keep_their_starting_weights(tmp_path, astronaut_png, face_clip):
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, arch="mobilenet_v2", freeze=5)
    start = create_model("mobilenet_v2")
    save_checkpoint(tmp_path / "init.pt", start, ModelProfile(name="init", arch="mobilenet_v2", input_size=64, margin=0.3))
    train(replace(cfg, init=str(tmp_path / "init.pt"), ema_decay=0.0), [str(data)])
    det = Detector.load(cfg.out, device="cpu")
    assert det.profile.extra["frozen_blocks"] == 5
    before, after = start.state_dict(), det.model.state_dict()
    frozen = [k for k in before if k.startswith(tuple(f"features.{i}." for i in range(5))) and "running" not in k
              and "num_batches" not in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["features.6.conv.0.0.weight"], after["features.6.conv.0.0.weight"])
    with pytest.raises(ValueError, match="no feature blocks"):
        freeze_blocks(create_model("tiny_cnn"), 2)


def test_a_probe_step_teaches_the_head_and_leaves_the_backbone_and_its_statistics_alone(tmp_path, astronaut_png,
                                                                                       face_clip):
    torch.manual_seed(0)
    model = create_model("mobilenet_v2").train()
    x = torch.randn(4, 3, 64, 64)
    stats = model.features[1].conv[0][1].running_mean.clone()
    logits, features = pooled_logits(model, x, probing=True)
    logits.sum().backward()
    assert features.shape == (4, 1280) and not model.features.training
    assert all(p.grad is None for p in model.features.parameters())
    assert model.classifier[1].weight.grad.abs().sum() > 0
    assert torch.equal(stats, model.features[1].conv[0][1].running_mean)
    pooled_logits(model, x)[0].sum().backward()  # after the probe: everything learns, the statistics follow the data
    assert model.features.training and model.features[0][0].weight.grad.abs().sum() > 0
    assert not torch.equal(stats, model.features[1].conv[0][1].running_mean)
    assert torch.allclose(pooled_logits(model.eval(), x)[0], model(x), atol=1e-5)  # what scan computes

    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, arch="mobilenet_v2", probe_steps=2)
    for wrong in (replace(cfg, probe_steps=4), replace(cfg, arch="tiny_cnn")):
        with pytest.raises(ValueError, match="--probe-steps needs"):
            train(replace(wrong, run_dir=str(tmp_path / "wrong")), [str(data)])
    train(cfg, [str(data)])
    assert Detector.load(cfg.out, device="cpu").profile.extra["probe_steps"] == 2


def test_an_anchor_pulls_fine_tuning_back_toward_the_starting_weights(tmp_path, astronaut_png, face_clip):
    w, w0 = [torch.tensor([1.0, -2.0])], [torch.tensor([0.0, 2.0])]
    pull_toward(w, w0, 0.25)
    assert torch.allclose(w[0], torch.tensor([0.75, -1.0]))
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, ema_decay=0.0)
    start = create_model("tiny_cnn")
    save_checkpoint(tmp_path / "init.pt", start, ModelProfile(name="init", arch="tiny_cnn", input_size=64, margin=0.3))
    before = {k: v for k, v in start.state_dict().items() if k in dict(start.named_parameters())}

    def moved(anchor: float) -> float:
        run = replace(cfg, init=str(tmp_path / "init.pt"), anchor=anchor, run_dir=str(tmp_path / f"run{anchor}"),
                      out=str(tmp_path / f"m{anchor}.pt"))
        train(run, [str(data)])
        det = Detector.load(run.out, device="cpu")
        assert det.profile.extra.get("anchor") == (anchor or None)
        after = det.model.state_dict()
        return sum((after[k] - v).abs().sum().item() for k, v in before.items())

    free, anchored, pinned = moved(0.0), moved(1000.0), moved(1e9)  # 1e9: pulled all the way back every step
    assert pinned == 0.0 < anchored < free


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bf16", [True, False], ids=["bf16", "fp16"])
def test_training_on_a_gpu_resumes_on_the_cpu(tmp_path, astronaut_png, face_clip, bf16, monkeypatch):
    cfg, data = _tiny_run(tmp_path, astronaut_png, face_clip, arch="mobilenet_v2", device="cuda", bf16=bf16)
    checks = []

    def crash_at_the_second_check(*args):
        checks.append(args)
        if len(checks) == 2:
            raise RuntimeError("the machine went away")  # after step 2's checkpoint, before step 4's
        return evaluate(*args)

    monkeypatch.setattr("deepscreen.training.evaluate", crash_at_the_second_check)
    with pytest.raises(RuntimeError, match="went away"):
        train(cfg, [str(data)])
    state = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 2 and bool(state["scaler"]) == (not bf16)  # fp16 keeps its loss scale for the resume
    monkeypatch.undo()
    best = train(replace(cfg, device="cpu"), [str(data)])  # the same run goes on on the CPU, from step 2
    logged = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["val"]["step"] for x in logged if "val" in x] == [2, 4]
    assert all(np.isfinite(v) for x in logged if "val" in x for v in x["val"].values())
    assert best["step"] in (2, 4) and Detector.load(cfg.out, device="cpu").profile.arch == "mobilenet_v2"
