"""scripts/benchmark.py end to end in its tiniest mode: small frames, a tiny detector, a few frames per clip."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"


@pytest.mark.slow
def test_benchmark_tiny(tmp_path, tiny_weights):
    out = tmp_path / "bench.json"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--clips", "2", "--seconds", "1", "--frames", "2", "--sizes", "320x240,480x270",
         "--long-size", "320x240", "--long-minutes", "0.05", "--naive-clips", "1", "--weights", str(tiny_weights),
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=600)  # ~20 s on an idle 2-core machine; generous for a busy one
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the phase processes and their ffmpeg too
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    assert "c/a =" in stdout and "b/c =" in stdout and "Long clip" in stdout
    report = json.loads(out.read_text())
    phases = report["phases"]
    assert set(phases) == {"a_decode", "b_naive", "c_deepscreen", "short_clip", "long_clip"}
    assert phases["a_decode"]["frames"] == 4 and phases["c_deepscreen"]["frames"] == 4
    assert phases["b_naive"]["videos"] == 1 and phases["b_naive"]["frames"] == 2
    assert all(p["peak_rss_mb"] > 0 and p["wall_s"] > 0 for p in phases.values())
    assert report["generation"]["made"] == 4  # 2 clips, the reference clip and the long one
    assert report["machine"]["torch"] and report["machine"]["cores"] >= 1
    assert set(report["deepscreen_stages"]["mean_s"]) >= {"hash", "probe", "decode", "detect", "score"}
    assert report["long"]["long_s"] == 3 and report["long"]["rss_ratio"] > 0
