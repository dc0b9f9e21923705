"""Running unattended: resume after kill -9, dedupe, streaming, lists, timeouts, JSON logs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from deepscreen import media
from deepscreen.cli import main
from deepscreen.screener import default_timeout
from conftest import ffmpeg

CLI = [sys.executable, "-m", "deepscreen"]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory, face_clip, no_face_clip, two_face_clip):
    d = tmp_path_factory.mktemp("mod")
    shutil.copy(face_clip, d / "a.mp4")
    shutil.copy(no_face_clip, d / "b.mp4")
    shutil.copy(two_face_clip, d / "c.mp4")
    for i in range(3):  # distinct content, cheap to screen
        ffmpeg("-f", "lavfi", "-i", f"color=c=0x{i}0{i}0{i}0:size=160x120:rate=5", "-t", "1", str(d / f"plain{i}.mp4"))
    return d


def _records(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def _run(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def test_resume_after_kill_9_leaves_exactly_one_record_per_file(inbox, tiny_weights, tmp_path):
    out = tmp_path / "out.jsonl"
    args = [*CLI, "scan", str(inbox), "-o", str(out), "--weights", str(tiny_weights), "--frames", "4", "--resume"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = out.read_text().count("\n")
    assert 2 <= done_before < 6
    with open(out, "a") as fh:  # a torn last line, as a kill in the middle of a write would leave
        fh.write('{"path": "' + str(inbox / "c.mp4") + '", "status": "o')
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = _records(out)  # every line parses
    names = sorted(os.path.basename(r["path"]) for r in records)
    assert names == sorted(os.listdir(inbox))
    # a third run finds everything done and writes nothing
    res = subprocess.run(args, check=True, capture_output=True, text=True)
    assert len(_records(out)) == len(records) and "6 already done" in res.stderr


def test_resume_matches_moved_content_by_hash(inbox, tiny_weights, tmp_path):
    out = tmp_path / "out.jsonl"
    assert _run(["scan", inbox / "a.mp4", "-o", out, "--weights", tiny_weights, "--frames", "4"]).exit_code == 0
    moved = tmp_path / "renamed.mp4"
    shutil.copy(inbox / "a.mp4", moved)
    os.utime(moved, (1, 1))
    assert _run(["scan", inbox / "a.mp4", moved, "-o", out, "--resume", "--weights", tiny_weights]).exit_code == 0
    first, second = _records(out)
    assert second["path"] == str(moved) and second["duplicate_of"] == str(inbox / "a.mp4")
    assert second["score"] == first["score"] and second["sha256"] == first["sha256"]


def test_identical_content_is_scored_once(inbox, tiny_weights, tmp_path):
    d = tmp_path / "dupes"
    d.mkdir()
    for name in ("x1.mp4", "x2.mp4", "x3.mp4"):
        shutil.copy(inbox / "a.mp4", d / name)
    out = tmp_path / "out.jsonl"
    res = _run(["scan", d, "-o", out, "--weights", tiny_weights, "--frames", "4"])
    assert "2 duplicates" in res.output
    x1, x2, x3 = _records(out)
    assert x1["duplicate_of"] is None and x1["timings"]["detect"] > 0
    assert x2["duplicate_of"] == x3["duplicate_of"] == x1["path"]
    assert x2["score"] == x1["score"] and "detect" not in x2["timings"]


def test_stdout_streaming_and_paths_from_stdin(inbox, tiny_weights):
    paths = f"{inbox / 'a.mp4'}\n\n{inbox / 'plain0.mp4'}\n"
    res = subprocess.run([*CLI, "scan", "--from-list", "-", "-o", "-", "--weights", str(tiny_weights),
                          "--frames", "4"], input=paths, capture_output=True, text=True, check=True)
    lines = res.stdout.splitlines()
    assert [json.loads(x)["path"] for x in lines] == [str(inbox / "a.mp4"), str(inbox / "plain0.mp4")]
    assert "2 videos" in res.stderr  # the summary goes to stderr, never into the records


def test_timeout_kills_ffmpeg_and_the_batch_goes_on(inbox, tiny_weights, tmp_path, media_dir):
    # Big frames: decoding the 600 frames of the slow clip takes ~5.6 s on an idle 2-core machine, well past the
    # 2 s limit; the plain clip needs ~0.2 s. (10 s looped twice by stream copy: the encode is paid once.)
    ten = media_dir / "slow10.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=30", "-t", "10", "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", "yuv420p", str(ten))
    slow = media_dir / "slow.mp4"
    ffmpeg("-stream_loop", "1", "-i", str(ten), "-c", "copy", str(slow))
    ten.unlink()
    out = tmp_path / "out.jsonl"
    res = _run(["scan", slow, inbox / "plain1.mp4", "-o", out, "--weights", tiny_weights, "--timeout", "2",
                "--frames", "30"])
    assert res.exit_code == 0
    slow_rec, next_rec = _records(out)
    assert slow_rec["status"] == "timeout" and "time limit (2 s)" in slow_rec["message"]
    assert next_rec["status"] == "no_face"
    assert not [p for p in _ffmpeg_children() if str(slow) in p]
    # --timeout 0 sets no limit: the same clip is decoded to the end.
    res = _run(["scan", slow, "-o", tmp_path / "none.jsonl", "--weights", tiny_weights, "--timeout", "0",
                "--frames", "30"])
    assert res.exit_code == 0
    [rec] = _records(tmp_path / "none.jsonl")
    assert rec["status"] == "no_face" and rec["frames_sampled"] == 30


def test_default_timeout_follows_what_is_decoded():
    def info(duration):
        return media.VideoInfo(duration=duration, fps=30.0, frame_count=int(duration * 30), width=1920, height=1080,
                               rotation=0, codec="h264", container="mp4", start_time=0.0, stream_index=0)

    times = [0.0] * 32
    short, longer = default_timeout(info(10), times), default_timeout(info(100), times)
    assert 60 < short < longer  # a clip decoded whole: the limit grows with its length...
    hour, day = default_timeout(info(3600), times), default_timeout(info(86400), times)
    assert hour == day < 1000  # ...a long video is sampled by seeking: the limit follows the frames asked for
    assert default_timeout(info(3600), times[:8]) < hour
    assert default_timeout(info(0), times) == 60  # unknown duration: the base allowance only


def _ffmpeg_children() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith("ffmpeg")]


def test_json_logs_and_quiet(inbox, tiny_weights, tmp_path):
    res = subprocess.run([*CLI, "--log-format", "json", "-v", "scan", str(inbox / "b.mp4"), str(tmp_path / "no.mp4"),
                          "-o", str(tmp_path / "o.jsonl"), "--weights", str(tiny_weights), "--frames", "2"],
                         capture_output=True, text=True, check=True)
    logs = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert {(e["level"], e["status"]) for e in logs} == {("info", "no_face"), ("warning", "error")}
    quiet = subprocess.run([*CLI, "-q", "scan", str(inbox / "b.mp4"), "-o", str(tmp_path / "q.jsonl"), "--weights",
                            str(tiny_weights), "--frames", "2"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""


def test_copies_around_a_missing_file_keep_input_order(inbox, tiny_weights, tmp_path, monkeypatch):
    """A file that fails its checks must still claim its content in input order: a copy after it may not become
    the original of a copy before it (the first copy's hash is slowed down to make the race certain)."""
    from deepscreen import screener as screener_mod

    first, later = tmp_path / "first.mp4", tmp_path / "later.mp4"
    shutil.copy(inbox / "a.mp4", first)
    shutil.copy(inbox / "a.mp4", later)
    real_check = screener_mod._check_file

    def slow_for_first(path):
        if path == str(first):
            time.sleep(1.0)
        return real_check(path)

    monkeypatch.setattr(screener_mod, "_check_file", slow_for_first)
    s = screener_mod.Screener(weights=tiny_weights, device="cpu", frames=4, workers=3)
    a, missing, b = s.screen_many([str(first), str(tmp_path / "gone.mp4"), str(later)])
    assert a.status == "ok" and a.duplicate_of is None and a.score is not None
    assert missing.status != "ok" and "gone.mp4" in missing.path
    assert b.duplicate_of == str(first) and b.score == a.score


def test_exit_codes_tell_a_crash_from_a_flag(inbox, tiny_weights, tmp_path, monkeypatch):
    """A CI gate reads 1 as 'something flagged': bad set-up is 2 and a bug is 3, never 1."""
    import deepscreen.cli as cli

    base = ["scan", "--weights", str(tiny_weights), "--frames", "4", "--fail-on-fake", "--threshold", "0"]
    res = CliRunner().invoke(main, [*base, "--from-list", str(tmp_path / "no-such-list.txt")])
    assert res.exit_code == 2 and "no-such-list.txt" in res.output
    res = CliRunner().invoke(main, [*base, str(inbox / "a.mp4"), "-o", str(tmp_path / "no-dir" / "out.jsonl")])
    assert res.exit_code == 2 and "cannot write the output" in res.output
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(main, [*base, str(inbox / "a.mp4"), "-o", str(out)])
    assert res.exit_code == 1, res.output  # threshold 0: the face is flagged

    def broken_summary(*args, **kwargs):
        raise RuntimeError("a bug in the summary")

    monkeypatch.setattr(cli, "summary", broken_summary)
    res = CliRunner().invoke(main, [*base, str(inbox / "a.mp4"), "-o", str(out)])
    assert res.exit_code == 3 and "RuntimeError: a bug in the summary" in res.output
    assert len(_records(out)) == 2  # the records written before the bug are kept
