"""End to end: the CLI and the Python API over good and bad files, with real ffmpeg, MTCNN and torch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from deepscreen.cli import main
from deepscreen.results import read_results
from conftest import ffmpeg

REQUIRED = {"path", "sha256", "bytes", "status", "message", "score", "verdict", "threshold", "tracks",
            "frames_sampled", "frames_with_faces", "video", "model", "timings", "deepscreen_version"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, face_clip, two_face_clip, rotated_clip, no_face_clip, astronaut_png):
    """A folder of good and bad files, as a user's inbox might be."""
    d = tmp_path_factory.mktemp("inbox")
    shutil.copy(face_clip, d / "face.mp4")
    shutil.copy(two_face_clip, d / "two.mp4")
    shutil.copy(rotated_clip, d / "rotated.mp4")
    shutil.copy(no_face_clip, d / "noface.mp4")
    (d / "empty.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(face_clip.read_bytes()[:20000])
    (d / "notes.mp4").write_text("hello\n" * 100)
    (d / "dir.mp4").mkdir()  # a folder named like a video is walked, not reported
    ffmpeg("-i", str(no_face_clip), "-c", "copy", str(d / "dir.mp4" / "inner.mkv"))
    (d / "readme.txt").write_text("not a video, skipped")
    shutil.copy(astronaut_png, d / "photo.png")
    (d / "sub").mkdir()
    ffmpeg("-i", str(face_clip), "-c", "copy", "-metadata", "title=remuxed", str(d / "sub" / "-dash.mp4"))
    return d


EXPECTED = {"face.mp4": "ok", "two.mp4": "ok", "rotated.mp4": "ok", "noface.mp4": "no_face",
            "empty.mp4": "unsupported", "truncated.mp4": "decode_error", "notes.mp4": "unsupported",
            "inner.mkv": "no_face", "-dash.mp4": "ok"}


def _scan(args, output):
    return CliRunner().invoke(main, ["scan", *map(str, args), "-o", str(output)], catch_exceptions=False)


@pytest.fixture(scope="module")
def scanned(folder, tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "results.jsonl"
    res = _scan([folder, "--weights", tiny_weights, "--frames", "8", "--device", "cpu"], out)
    return res, out


def test_one_record_per_video_file_with_the_right_status(scanned):
    res, out = scanned
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(os.path.basename(r["path"]) for r in records) == sorted(EXPECTED)
    for r in records:
        assert REQUIRED <= set(r), r["path"]
        assert r["status"] == EXPECTED[os.path.basename(r["path"])], (r["path"], r["message"])
        if r["status"] != "ok":
            assert r["message"] and r["score"] is None and r["verdict"] == "unknown"
    assert "2 non-video files skipped" in res.output


def test_ok_records_carry_the_evidence(scanned):
    records = {os.path.basename(r.path): r for r in read_results(str(scanned[1]))}
    face = records["face.mp4"]
    assert face.frames_sampled == 8 and face.frames_with_faces == 8
    assert len(face.tracks) == 1 and face.tracks[0].faces == 8
    assert 0 <= face.score <= 1 and face.verdict in ("fake", "real") and face.threshold == 0.5
    assert face.score == face.tracks[0].score
    assert face.tracks[0].first_t == pytest.approx(3 / 16, abs=0.05) and face.tracks[0].last_t > 2.5
    assert len(face.tracks[0].top_times) == 3
    assert face.video["width"] == 640 and face.video["codec"] == "h264" and face.video["duration"] == pytest.approx(3)
    assert face.model["name"] == "tiny-test" and len(face.model["weights_sha256"]) == 64
    assert len(face.sha256) == 64 and face.bytes > 0
    assert {"probe", "decode", "detect", "score", "total"} <= set(face.timings)
    assert len(records["two.mp4"].tracks) == 2
    assert records["rotated.mp4"].video["rotation"] in (90, 270) and len(records["rotated.mp4"].tracks) == 1
    dash = records["-dash.mp4"]
    assert dash.sha256 != face.sha256 and dash.duplicate_of is None and dash.score == pytest.approx(face.score)


def test_api_and_cli_agree(scanned, screener, face_clip):
    records = {os.path.basename(r.path): r for r in read_results(str(scanned[1]))}
    api = screener.screen(str(face_clip))
    assert api.score == pytest.approx(records["face.mp4"].score, abs=1e-6)
    assert [t.face_times for t in api.tracks] == [t.face_times for t in records["face.mp4"].tracks]


def test_screen_many_yields_in_order(screener, face_clip, no_face_clip, tmp_path):
    paths = [str(face_clip), str(tmp_path / "missing.mp4"), str(no_face_clip)]
    results = list(screener.screen_many(paths))
    assert [r.path for r in results] == paths
    assert [r.status for r in results] == ["ok", "error", "no_face"]
    assert "no such file" in results[1].message


def test_csv_round_trip(folder, tiny_weights, tmp_path, scanned):
    out = tmp_path / "results.csv"
    res = _scan([folder / "face.mp4", folder / "notes.mp4", "--weights", tiny_weights, "--frames", "8"], out)
    assert res.exit_code == 0
    rows = read_results(str(out))
    jsonl = {os.path.basename(r.path): r for r in read_results(str(scanned[1]))}
    assert [r.status for r in rows] == ["ok", "unsupported"]
    assert rows[0].tracks == jsonl["face.mp4"].tracks and rows[0].score == jsonl["face.mp4"].score
    assert rows[1].score is None and rows[1].sha256 == jsonl["notes.mp4"].sha256


def test_exit_codes(folder, tiny_weights, tmp_path):
    clip = folder / "face.mp4"
    common = ["--weights", tiny_weights, "--frames", "2"]
    assert _scan([clip, *common, "--threshold", "0", "--fail-on-fake"], tmp_path / "a.jsonl").exit_code == 1
    assert _scan([clip, *common, "--threshold", "1", "--fail-on-fake"], tmp_path / "b.jsonl").exit_code == 0
    assert _scan([clip, *common, "--threshold", "0"], tmp_path / "c.jsonl").exit_code == 0
    assert _scan([clip, *common, "--frames", "0"], tmp_path / "d.jsonl").exit_code == 2
    assert _scan([clip, "--weights", tmp_path / "missing.pt"], tmp_path / "e.jsonl").exit_code == 2


def test_console_script_and_module_entry_points():
    for cmd in (["deepscreen"], [sys.executable, "-m", "deepscreen"]):
        if cmd == ["deepscreen"]:
            exe = os.path.join(os.path.dirname(sys.executable), "deepscreen")
            cmd = [exe]
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip().endswith(__import__("deepscreen").__version__)


def test_summary_of_a_long_run_shows_the_first_rows_and_all_counts():
    from deepscreen.cli import Tally, summary
    from deepscreen.inputs import WalkStats
    from deepscreen.results import ScreenResult
    from deepscreen.screener import RunStats

    tally = Tally()
    for i in range(60):
        tally.add(ScreenResult(path=f"v{i}.mp4", status="ok", score=0.9, verdict="fake"))
    text = summary(tally, WalkStats(), RunStats(), 1.0, "out.jsonl")
    assert len(tally.rows) == Tally.TABLE_ROWS and "v49.mp4" in text and "v50.mp4" not in text
    assert "... and 10 more in out.jsonl" in text and "60 videos in 1.0 s: 60 fake" in text
