"""scripts/look_check.py on clips the tests render: crops cached once, every look scored, faceless clips named."""
from __future__ import annotations

import json

from conftest import load_script


def test_look_check(tmp_path, face_clip, two_face_clip, no_face_clip, tiny_weights, capsys):
    look_check = load_script("look_check")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label,source,method\n"
                      f"{face_clip},real,astro,\n{no_face_clip},real,astro,\n{two_face_clip},fake,astro,mirror\n")
    work, out = tmp_path / "work", tmp_path / "report.json"
    args = [str(tmp_path), "--weights", str(tiny_weights), "--frames", "4", "--workdir", str(work)]
    assert look_check.main(args + ["--looks", "original,grey,darker,corners,inset", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "original" in printed and "grey" in printed and "astro (fake)" in printed and "AUC" in printed

    report = json.loads(out.read_text())
    assert report["videos"] == 3 and report["without_faces"] == [str(no_face_clip)]
    assert list(report["looks"]) == ["original", "grey", "darker", "corners", "inset"]
    for look in report["looks"].values():
        assert set(look["scores"]) == {str(face_clip), str(two_face_clip)}
        assert all(0.0 <= s <= 1.0 for s in look["scores"].values())
        assert look["auc"] in (0.0, 1.0)  # one real and one fake clip with faces
        assert look["groups"]["astro (real)"] == look["scores"][str(face_clip)]
    orig, grey = report["looks"]["original"]["scores"], report["looks"]["grey"]["scores"]
    assert any(abs(orig[k] - grey[k]) > 1e-6 for k in orig)  # the change really reached the detector

    # A second run reuses the cached crops (one file) and scores them identically.
    assert len(list(work.glob("crops-*.npz"))) == 1
    assert look_check.main(args + ["--looks", "original", "--json", str(out)]) == 0
    assert len(list(work.glob("crops-*.npz"))) == 1
    assert json.loads(out.read_text())["looks"]["original"]["scores"] == orig


def test_look_check_by_fine_detail_alone(tmp_path, face_clip, two_face_clip, tiny_weights, capsys):
    """No model: each clip is scored by its crops' fine detail, which a blur must lower everywhere."""
    look_check = load_script("look_check")
    (tmp_path / "labels.csv").write_text(f"file,label,source\n{face_clip},real,astro\n{two_face_clip},fake,astro\n")
    out = tmp_path / "report.json"
    args = [str(tmp_path), "--weights", str(tiny_weights), "--frames", "3", "--workdir", str(tmp_path / "work"),
            "--score", "detail", "--looks", "original,blur,sharpen", "--json", str(out)]
    assert look_check.main(args) == 0
    assert "fine detail (no model)" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["score"] == "detail" and "weights_sha256" not in report
    original, blur, sharpen = (report["looks"][k]["scores"] for k in ("original", "blur", "sharpen"))
    for clip in original:
        assert blur[clip] < 0.7 * original[clip] < sharpen[clip]
