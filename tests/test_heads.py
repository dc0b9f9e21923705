"""Linear heads on frozen backbones: the fit, its folding into a committee network, and the fit-heads command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import animate, load_script
from deepscreen.cli import main
from deepscreen.heads import (Head, build_committee, face_weights, fit_head, load_tapnet,
                              pooled_features)
from deepscreen.model import Detector, ModelProfile, create_model, save_checkpoint
from deepscreen.training import CachedFace


def _backbones(tmp_path: Path) -> tuple[Path, Path]:
    """Random MobileNetV2 weights in both formats a member reads: a deepscreen checkpoint, torchvision's file."""
    torch.manual_seed(0)
    ours = tmp_path / "ours.pt"
    save_checkpoint(ours, create_model("mobilenet_v2"), ModelProfile(name="b", arch="mobilenet_v2", input_size=96,
                                                                     margin=0.3))
    tv = tmp_path / "imagenet.pth"
    torch.save(create_model("mobilenet_v2").state_dict(), tv)
    return ours, tv


def _record(group: str, label: int, source: str = "", method: str = "") -> CachedFace:
    return CachedFace("x.jpg", group, "labelled", [0, 0, 1, 1], [], label, source, method)


def test_face_weights_balance_sources_methods_and_clips():
    records = ([_record("a", 0, source="big") for _ in range(30)] + [_record("b", 0, source="big")] +
               [_record("c", 0, source="small") for _ in range(2)] +
               [_record("d", 1, method="M") for _ in range(8)] + [_record("e", 1, method="N")])
    w = face_weights(records)
    by = lambda pick: w[[i for i, r in enumerate(records) if pick(r)]].sum()  # noqa: E731
    assert by(lambda r: r.label == 0) == pytest.approx(0.5) and by(lambda r: r.label == 1) == pytest.approx(0.5)
    assert by(lambda r: r.source == "big") == pytest.approx(by(lambda r: r.source == "small"))
    assert by(lambda r: r.group == "a") == pytest.approx(by(lambda r: r.group == "b"))  # 30 faces weigh as 1
    assert by(lambda r: r.method == "M") == pytest.approx(by(lambda r: r.method == "N"))


def test_committee_network_computes_the_fitted_heads(tmp_path, face):
    ours, tv = _backbones(tmp_path)
    rng = np.random.default_rng(0)
    crops = np.stack([np.clip(face.astype(int) + rng.integers(-20, 21, face.shape), 0, 255).astype(np.uint8)
                      for _ in range(12)])
    crops[6:, :, :, 0] = 255 - crops[6:, :, :, 0]  # "fakes": the red channel inverted
    y = np.array([0] * 6 + [1] * 6)
    w = np.full(12, 1 / 12)
    nets = [load_tapnet(str(ours)), load_tapnet(str(tv))]
    feats = [pooled_features(n, crops) for n in nets]
    heads = [fit_head(f, y, w, c) for f, c in zip(feats, (1.0, 1e-3))]
    z = np.mean([h.z(f) for h, f in zip(heads, feats)], 0)  # the committee: its members' mean standardised logit
    assert z[y == 1].min() > z[y == 0].max()  # the fit separates what it was fitted on
    for h, f in zip(heads, feats):  # standardised on the training reals
        assert h.z(f[y == 0]).mean() == pytest.approx(0, abs=1e-4)
        assert h.z(f[y == 0]).std() == pytest.approx(1, abs=1e-3)
    path = tmp_path / "committee.pt"
    save_checkpoint(path, build_committee(nets, heads), ModelProfile(name="c", arch="mobilenet_v2_taps_x2",
                                                                      input_size=96, margin=0.3))
    want = 1 / (1 + np.exp(-z))
    for runtime in ("torch", "onnx"):
        det = Detector.load(path, device="cpu", runtime=runtime)
        assert det.runtime == runtime
        assert np.allclose(det.score(list(crops)), want, atol=1e-4)


def test_a_head_needs_both_classes():
    with pytest.raises(ValueError, match="real and fake"):
        fit_head(np.zeros((4, 3)), np.zeros(4, int), np.full(4, 0.25), 1.0)


def test_a_backbone_must_be_a_mobilenet_v2(tmp_path, tiny_weights):
    with pytest.raises(ValueError, match="mobilenet_v2"):
        load_tapnet(str(tiny_weights))
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="no MobileNetV2 feature layers"):
        load_tapnet(str(bad))


def test_fit_heads_command_on_labelled_clips(tmp_path, astronaut_png, face_clip, media_dir):
    ours, tv = _backbones(tmp_path)
    labelled, chooser = tmp_path / "labelled", tmp_path / "choose"
    labelled.mkdir()
    chooser.mkdir()
    (labelled / "real.mp4").write_bytes(face_clip.read_bytes())
    animate(astronaut_png, labelled / "fake.mp4", 2, "scale=640:640,crop=640:480:0:40,hue=h=120")
    (labelled / "labels.csv").write_text("file,label,source,method\nreal.mp4,real,cam,\nfake.mp4,fake,web,Tint\n")
    animate(astronaut_png, chooser / "real.mp4", 2, "scale=600:600,crop=600:480:0:30")
    animate(astronaut_png, chooser / "fake.mp4", 2, "scale=600:600,crop=600:480:0:30,hue=h=110")
    (chooser / "labels.csv").write_text("file,label\nreal.mp4,real\nfake.mp4,fake\n")
    out = tmp_path / "committee.pt"
    args = ["fit-heads", str(labelled), "--member", str(ours), "1.0", "--member", str(tv), "1e-3",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--frames-per-clip", "3"]
    result = CliRunner().invoke(main, [*args, "--select-on", str(chooser)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.rsplit("; wrote", 1)[0].splitlines()[-1])
    assert [m["backbone"] for m in report["members"]] == ["ours.pt", "imagenet.pth"]
    assert 0.0 <= report["select_auc"] <= 1.0 and all("select_auc" in m for m in report["members"])
    det = Detector.load(out, device="cpu")
    assert det.profile.arch == "mobilenet_v2_taps_x2" and det.profile.extra["chosen_on_videos"] == "choose"
    assert det.profile.extra["heads"] == report["members"]
    # The same clip as training and choosing: refused, as `train` refuses it.
    (chooser / "labels.csv").write_text(f"file,label\n{labelled / 'real.mp4'},real\nfake.mp4,fake\n")
    result = CliRunner().invoke(main, [*args, "--select-on", str(chooser)])
    assert result.exit_code != 0 and "also in the selection set" in result.output
    result = CliRunner().invoke(main, [*args, "--member", str(tv), "1.0"])
    assert result.exit_code != 0 and "one or two members" in result.output


@pytest.fixture(scope="module")
def face(astronaut_png):
    from PIL import Image

    return np.asarray(Image.open(astronaut_png).convert("RGB").crop((150, 40, 300, 190)).resize((96, 96)))


def test_leave_one_out_table_shows_what_an_unseen_method_costs():
    """Features where method A's fakes share a direction no other method has: left out, A is missed."""
    loo = load_script("heads_leave_one_out")
    rng = np.random.default_rng(0)
    records, rows = [], []
    for clip in range(120):
        label, method = (0, "") if clip < 60 else (1, "A" if clip < 90 else "B")
        for _ in range(4):
            x = rng.normal(size=6)
            x[0] += 3 * (method == "A")
            x[1] += 3 * (method == "B")
            records.append(_record(f"clip{clip}", label, source=f"s{clip % 3}", method=method))
            rows.append(x)
    feats = [np.array(rows)]
    reals = [[rng.normal(size=(4, 6)) for _ in range(40)]]
    table = loo.leave_one_out(feats, records, [1.0], reals, ["A", "B"])
    assert set(table) == {"A", "B"} and table["A"]["clips"] == 30 and table["A"]["reals"] == 40
    for row in table.values():
        assert row["auc_seen_committee"] > 0.9  # fitted on the method: caught
        assert row["auc_unseen_committee"] < 0.75  # never seen: its own direction carries no weight
        assert row["auc_seen_member0"] == row["auc_seen_committee"]  # one member: the committee is that member
