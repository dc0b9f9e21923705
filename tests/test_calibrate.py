"""Threshold calibration on labelled clips the tests render, with a small random-weight detector."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from deepscreen.cli import main
from deepscreen.model import Detector


@pytest.fixture()
def labelled(tmp_path, face_clip, two_face_clip, rotated_clip):
    data = tmp_path / "set"
    data.mkdir()
    for name, clip in (("r1.mp4", face_clip), ("r2.mp4", rotated_clip), ("f1.mp4", two_face_clip)):
        shutil.copy(clip, data / name)
    (data / "labels.csv").write_text("file,label\nr1.mp4,real\nr2.mp4,real\nf1.mp4,fake\n")
    return data


def test_calibrate_writes_the_threshold_that_flags_at_most_the_budget(tmp_path, tiny_weights, labelled):
    weights = tmp_path / "w.pt"
    shutil.copy(tiny_weights, weights)
    out = tmp_path / "cal"
    res = CliRunner().invoke(main, ["calibrate", str(labelled), "--weights", str(weights), "--max-fpr", "0.5",
                                    "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    scores = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line)["score"]
              for line in (out / "results.jsonl").read_text().splitlines()}
    det = Detector.load(weights, device="cpu")
    thr, cal = det.profile.threshold, det.profile.extra["calibration"]
    # The lowest of the clips' scores that, as a threshold, flags at most one of the two reals.
    reals = [scores["r1.mp4"], scores["r2.mp4"]]
    expected = min(s for s in scores.values() if sum(r >= s for r in reals) <= 1)
    flagged = sum(s >= thr for s in reals)
    assert flagged <= 1 and cal["reals_flagged"] == flagged and cal["reals"] == 2 and cal["fakes"] == 1
    assert cal["fakes_caught"] == int(scores["f1.mp4"] >= thr) and cal["set"] == "set" and cal["frames"] == 32
    assert thr == pytest.approx(expected, abs=1e-6)
    assert json.loads((out / "calibration.json").read_text())["threshold"] == pytest.approx(thr)
    # Every track records the fine detail of its face crops, and the report ranks the clips by it alone.
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(t["detail"] > 0 for r in records for t in r["tracks"])
    details = {r["path"].rsplit("/", 1)[-1]: max(r["tracks"], key=lambda t: t["faces"])["detail"]
               for r in records}  # the person seen most
    sharp = json.loads((out / "metrics.json").read_text())["sharpness"]
    assert sharp["n"] == 3 and sharp["auc"] == sum(details["f1.mp4"] > details[r] for r in ("r1.mp4", "r2.mp4")) / 2
    # The new default reaches every scan with these weights; the weights themselves are unchanged.
    assert det.profile.arch == "tiny_cnn"
    original = Detector.load(tiny_weights, device="cpu")
    for k, v in original.model.state_dict().items():
        assert (det.model.state_dict()[k] == v).all()


def test_calibrate_refuses_a_set_with_one_class(tmp_path, tiny_weights, labelled):
    (labelled / "labels.csv").write_text("file,label\nr1.mp4,real\nr2.mp4,real\n")
    weights = tmp_path / "w.pt"
    shutil.copy(tiny_weights, weights)
    res = CliRunner().invoke(main, ["calibrate", str(labelled), "--weights", str(weights), "-o",
                                    str(tmp_path / "c"), "--device", "cpu"])
    assert res.exit_code == 2 and "needs scored real and fake clips" in res.output
    assert "calibration" not in Detector.load(weights, device="cpu").profile.extra


def test_calibrate_refuses_records_another_model_made(tmp_path, tiny_weights, labelled):
    """Records are reused by path when a bench resumes: a second checkpoint must not inherit the first's scores."""
    from deepscreen.model import ModelProfile, create_model, save_checkpoint

    out = tmp_path / "cal"
    first = tmp_path / "w1.pt"
    shutil.copy(tiny_weights, first)
    args = ["--max-fpr", "0.5", "-o", str(out), "--device", "cpu"]
    res = CliRunner().invoke(main, ["calibrate", str(labelled), "--weights", str(first), *args])
    assert res.exit_code == 0, res.output
    second = tmp_path / "w2.pt"
    save_checkpoint(second, create_model("tiny_cnn"), ModelProfile(name="other", arch="tiny_cnn", input_size=64,
                                                                   margin=0.3))
    res = CliRunner().invoke(main, ["calibrate", str(labelled), "--weights", str(second), *args])
    assert res.exit_code == 2 and "other settings" in res.output and "detector" in res.output
    assert "calibration" not in Detector.load(second, device="cpu").profile.extra
    # The same model again (its file now holds a threshold) resumes: nothing is screened twice.
    lines = (out / "results.jsonl").read_text().count("\n")
    res = CliRunner().invoke(main, ["calibrate", str(labelled), "--weights", str(first), *args])
    assert res.exit_code == 0, res.output
    assert (out / "results.jsonl").read_text().count("\n") == lines
    # Two runs on the same clips can be compared; three clips are too few for an interval, and it says so.
    res = CliRunner().invoke(main, ["compare", str(labelled), str(out), str(tmp_path)])
    assert res.exit_code == 2 and "holds no results.jsonl" in res.output
    res = CliRunner().invoke(main, ["compare", str(labelled), str(out), str(out)])
    assert res.exit_code == 2 and "at least 10 real" in res.output
