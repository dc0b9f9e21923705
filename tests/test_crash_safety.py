"""kill -9 at random moments, then --resume: every file ends with exactly one valid record."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from conftest import ffmpeg

TRIALS = 20


def test_sigkill_at_random_moments_then_resume(tmp_path, face_clip, no_face_clip, tiny_weights):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(8):  # small distinct clips, with and without a face, and a bad file
        if i % 3 == 0:
            ffmpeg("-i", str(face_clip), "-c", "copy", "-metadata", f"title={i}", str(inbox / f"face{i}.mp4"))
        else:
            ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={8 + i}", "-t", f"{1 + i % 3}",
                   str(inbox / f"plain{i}.mp4"))
    (inbox / "bad.mp4").write_bytes(os.urandom(3000))
    shutil.copy(no_face_clip, inbox / "noface.mp4")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "deepscreen", "-q", "scan", str(inbox), "-o", str(out), "--resume",
           "--weights", str(tiny_weights), "--frames", "3", "--workers", "2"]
    rng = random.Random(1234)
    kills_mid_write = 0
    for _ in range(TRIALS):
        before = out.read_bytes().count(b"\n") if out.exists() else 0
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.5, 6.0))  # anywhere: during imports, model loading or screening
        else:  # soon after a new record lands, to catch the writer at work
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                if out.exists() and out.read_bytes().count(b"\n") > before:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.3))
            kills_mid_write += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    subprocess.run(cmd, check=True, timeout=300)
    lines = out.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line is whole, valid JSON
    names = [os.path.basename(r["path"]) for r in records]
    assert sorted(names) == sorted(os.listdir(inbox))  # exactly one record per file
    assert kills_mid_write > 0
