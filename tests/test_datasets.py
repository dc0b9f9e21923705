"""Labelled data set layouts (deepscreen.datasets): empty files in each shape, no decoding."""
from __future__ import annotations

import json
import os

import pytest

from deepscreen.datasets import LabelledVideo, load_dataset, method_groups, source_folds


def _touch(root, *rels):
    for rel in rels:
        p = root.joinpath(*rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def _by_name(items):
    return {os.path.basename(v.path): v for v in items}


def test_labels_csv_in_root(tmp_path):
    _touch(tmp_path, "clips/a.mp4", "clips/b.mov", "c.avi")
    (tmp_path / "labels.csv").write_text(
        "file,label,source,method\nclips/a.mp4,fake,yt,FaceSwap\nclips/b.mov,real,yt,\nc.avi,1,,\n"
    )
    items = load_dataset(str(tmp_path))
    got = _by_name(items)
    assert got["a.mp4"].label == 1 and got["a.mp4"].method == "FaceSwap" and got["a.mp4"].source == "yt"
    assert got["b.mov"].label == 0
    assert got["c.avi"].label == 1
    assert all(os.path.isabs(v.path) and os.path.isfile(v.path) for v in items)


def test_explicit_labels_file_relative_to_csv_folder(tmp_path):
    _touch(tmp_path, "videos/x.mp4", "videos/y.mp4")
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "gt.csv").write_text("file,label\n../videos/x.mp4,0\n../videos/y.mp4,REAL\n")
    items = load_dataset(str(tmp_path / "videos"), labels=str(meta / "gt.csv"))
    assert [v.label for v in items] == [0, 0]
    assert items[0].path == str((tmp_path / "videos" / "x.mp4").resolve())


def test_bad_label_raises(tmp_path):
    _touch(tmp_path, "a.mp4")
    (tmp_path / "labels.csv").write_text("file,label\na.mp4,maybe\n")
    with pytest.raises(ValueError, match="real/fake"):
        load_dataset(str(tmp_path))


def test_real_fake_folders(tmp_path):
    _touch(tmp_path, "real/r1.mp4", "real/youtube/r2.MKV", "fake/deepfakes/sub/f1.webm",
           "fake/f2.mp4", "fake/notes.txt")
    got = _by_name(load_dataset(str(tmp_path)))
    assert set(got) == {"r1.mp4", "r2.MKV", "f1.webm", "f2.mp4"}
    assert got["r1.mp4"].label == 0 and got["r1.mp4"].source == ""
    assert got["r2.MKV"].source == "youtube"
    assert got["f1.webm"].label == 1 and got["f1.webm"].source == "deepfakes"


def test_faceforensics(tmp_path):
    _touch(tmp_path,
           "original_sequences/youtube/c23/videos/000.mp4",
           "original_sequences/actors/c23/videos/01__talking.mp4",
           "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
           "manipulated_sequences/Deepfakes/masks/videos/000_003.mp4",
           "manipulated_sequences/FaceSwap/c23/videos/001_002.mp4",
           "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__talking.mp4")
    items = load_dataset(str(tmp_path))
    assert len(items) == 5  # mask videos are not inputs
    got = _by_name(items)
    assert got["000.mp4"].label == 0 and got["000.mp4"].source == "youtube"
    assert got["01__talking.mp4"].source == "actors"
    assert got["000_003.mp4"].label == 1 and got["000_003.mp4"].method == "Deepfakes"
    assert "masks" not in got["000_003.mp4"].path
    assert got["001_002.mp4"].method == "FaceSwap"
    assert got["01_02__talking.mp4"].source == "actors"


def test_dfdc_parts(tmp_path):
    for part, files in (("dfdc_train_part_0", {"aaa.mp4": "FAKE", "bbb.mp4": "REAL"}),
                        ("dfdc_train_part_1", {"ccc.mp4": "REAL"})):
        meta = {n: {"label": lab, "split": "train", "original": None if lab == "REAL" else "bbb.mp4"}
                for n, lab in files.items()}
        _touch(tmp_path, *(f"{part}/{n}" for n in files))
        (tmp_path / part / "metadata.json").write_text(json.dumps(meta))
    got = _by_name(load_dataset(str(tmp_path)))
    assert {k: v.label for k, v in got.items()} == {"aaa.mp4": 1, "bbb.mp4": 0, "ccc.mp4": 0}
    assert all(v.source == "dfdc" for v in got.values())


def test_dfdc_single_folder_skips_missing(tmp_path):
    _touch(tmp_path, "a.mp4")
    (tmp_path / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "FAKE"}, "gone.mp4": {"label": "REAL"}}))
    with pytest.warns(UserWarning, match="not found"):
        items = load_dataset(str(tmp_path))
    assert [(os.path.basename(v.path), v.label) for v in items] == [("a.mp4", 1)]


def test_celebdf_inverted_labels(tmp_path):
    _touch(tmp_path, "YouTube-real/00170.mp4", "Celeb-real/id0_0001.mp4", "Celeb-synthesis/id0_id1_0001.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00170.mp4\n1 Celeb-real/id0_0001.mp4\n0 Celeb-synthesis/id0_id1_0001.mp4\n"
    )
    got = _by_name(load_dataset(str(tmp_path)))
    assert got["00170.mp4"].label == 0 and got["00170.mp4"].source == "YouTube-real"
    assert got["id0_0001.mp4"].label == 0 and got["id0_0001.mp4"].source == "Celeb-real"
    assert got["id0_id1_0001.mp4"].label == 1 and got["id0_id1_0001.mp4"].source == "Celeb-synthesis"


def test_unknown_layout_names_the_layouts(tmp_path):
    _touch(tmp_path, "random/a.mp4")
    with pytest.raises(ValueError) as err:
        load_dataset(str(tmp_path))
    msg = str(err.value)
    for word in ("labels", "real/", "FaceForensics++", "DFDC", "Celeb-DF"):
        assert word in msg


def test_folds_share_no_source_and_no_method_and_balance_the_classes():
    clips = [("cam1", 0, ""), ("cam1", 0, ""), ("cam1", 1, "SwapA"),  # a swap demo's two halves
             ("cam2", 0, ""), ("cam2", 0, ""), ("cam3", 0, ""), ("cam4", 0, ""), ("cam5", 0, ""),
             ("repoB", 1, "GenB"), ("repoB", 1, "GenB"), ("repoC", 1, "GenB"),  # one method, two sources
             ("repoD", 1, "GenD"), ("repoE", 1, "GenD2"), ("repoF", 1, "GenF"), ("", 1, "GenG")]
    items = [LabelledVideo(f"/d/{i:02d}.mp4", label, source, method) for i, (source, label, method) in enumerate(clips)]
    folds = source_folds(items, 3)
    assert sorted(it.path for f in folds for it in f) == sorted(it.path for it in items)
    for key in ("source", "method"):
        seen = [{getattr(it, key) for it in f if getattr(it, key) and (key == "source" or it.label)} for f in folds]
        assert all(not (seen[a] & seen[b]) for a in range(3) for b in range(a + 1, 3)), key
    assert all(sum(it.label for it in f) >= 2 and sum(not it.label for it in f) >= 2 for f in folds)
    assert source_folds(items, 3) == folds  # the same split every time
    # A family named together lands in one fold; too few groups for the folds is refused.
    family = source_folds(items, 3, method_groups("GenD+GenD2"))
    assert len({i for i, f in enumerate(family) for it in f if it.method in ("GenD", "GenD2")}) == 1
    assert method_groups("A+B, C,") == [["A", "B"], ["C"]]
    with pytest.raises(ValueError, match="cannot fill"):
        source_folds(items[:3], 2)

