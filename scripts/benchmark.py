"""Throughput and memory: the decode floor, a naive pipeline and deepscreen, on clips this script renders.

    .venv/bin/python scripts/benchmark.py [--clips 20] [--seconds 10] [--frames 32] [--weights FILE]
                                         [--workdir DIR] [--long-minutes 10] [--json OUT]

The set: N clips of `--seconds`, alternating 1280x720 and 1920x1080, 30 fps, H.264 (veryfast, CRF 23, a
keyframe every 2 s, temporal grain so the bitrate is camera-like: ~2 Mbit/s at 720p, ~5 at 1080p), each a
virtual camera panning over scikit-image's public-domain astronaut photo; zoom, pan, hue and saturation differ
per clip, so no two clips have the same content (deepscreen would screen a copy only once). Clips are cached
in the workdir (default cache/benchmark/) under names that carry every rendering setting, so reruns skip
generation.

Phases, each in its own subprocess so that peak RSS is per phase: the phase's ru_maxrss (RUSAGE_SELF) plus the most
RSS its ffmpeg/ffprobe children held at once, sampled from /proc every 20 ms. (RUSAGE_CHILDREN's ru_maxrss is kept in
the JSON but not used: a child's ru_maxrss counts the parent's pages it shared between fork and exec, so every ffmpeg
started by a 1.5 GB Python process reports >= 1.5 GB. For the same reason this script's own process never imports
torch: each phase process would inherit its RSS as a floor.)
  (a) decode floor: media.probe + media.sample_times + media.read_frames for the same frames, 2 at a time on a
      thread pool (Screener's default `workers`), frames dropped as they come;
  (b) naive: OpenCV VideoCapture reads every frame, keeps the sampled ones, facenet-pytorch MTCNN(keep_all,
      min_face_size=20) on each at full resolution one at a time, each face crop scored alone by the same
      Detector; run on the first --naive-clips clips (an even number keeps the 720p/1080p mix), compared per video;
  (c) deepscreen: Screener(weights, device, frames, detect_every, early_exit, runtime).screen_many(all clips),
      scan's defaults unless --device (default cpu), --no-early-exit or --runtime say otherwise (what-ifs: what
      each part is worth); the naive pipeline (b) stays on the CPU;
  then deepscreen on one long 1280x720 clip (--long-minutes; the 10-s reference clip looped with stream copy,
  so it costs nothing to make) against that 10-s reference clip alone.
Wall times count the work only; loading models and importing torch are reported as setup_s.

A smoke run (tests/test_benchmark_script.py goes smaller still, with --sizes and a tiny detector):
    .venv/bin/python scripts/benchmark.py --clips 2 --seconds 2 --long-minutes 0.2 --workdir /tmp/dsbench
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FPS = 30
GOP_S = 2
SIZES = "1280x720,1920x1080"
LONG_SIZE = "1280x720"
PRESET, CRF, NOISE = "veryfast", 23, 14  # grain 14: ~2 Mbit/s at 720p, ~5 at 1080p (3: 0.3 Mbit/s, unrealistic)
RENDER_VERSION = 1  # bump when the rendering below changes: cached clips carry it in their names
STAGES = ("hash", "probe", "decode", "detect", "score", "total")
TARGETS = {"c_over_a": 1.5, "b_over_c": 5.0, "long_rss_ratio": 1.2}

# Where the astronaut's face is in the 512x512 photo (x1, y1, x2, y2), as in tests/conftest.py.
FACE = (175, 60, 275, 190)


# ------------------------------------------------------------------------------------------------------------
# The clips
# ------------------------------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def astronaut(workdir: Path) -> Path:
    path = workdir / "astronaut.png"
    if not path.is_file():
        from PIL import Image
        from skimage import data

        Image.fromarray(data.astronaut()).save(path)
    return path


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def render(photo: Path, out: Path, size: tuple[int, int], seconds: float, variant: int, gop_s: float = GOP_S) -> None:
    """A camera panning over the photo: the face drifts across the frame; `variant` changes zoom, pan and colour."""
    w, h = size
    zoom = 1.15 + 0.1 * (variant % 5)  # the photo is scaled to a square zoom * w wide, the frame cut from it
    side = _even(w * zoom)
    fx, fy = (FACE[0] + FACE[2]) / 2 / 512 * side, (FACE[1] + FACE[3]) / 2 / 512 * side
    x0, y0 = fx - w / 2, fy - 0.45 * h  # face a little above the middle
    ax, ay = 0.08 * w, 0.04 * h
    period = max(1.0, seconds / 2 if seconds >= 4 else seconds)
    phase = 0.7 * variant
    x = f"clip({x0:.1f}+{ax:.1f}*sin(2*PI*t/{period:.3f}+{phase:.2f}),0,iw-ow)"
    y = f"clip({y0:.1f}+{ay:.1f}*sin(2*PI*t/{1.7 * period:.3f}+{phase:.2f}),0,ih-oh)"
    hue = ((variant * 7) % 31) - 15  # degrees, small: skin stays skin
    sat = 0.85 + 0.05 * (variant % 6)
    vf = (f"scale={side}:{side},crop={w}:{h}:'{x}':'{y}',hue=h={hue}:s={sat:.2f},"
          f"noise=alls={NOISE}:allf=t+u,format=yuv420p")
    tmp = out.with_name(out.stem + ".part" + out.suffix)
    gop = str(round(gop_s * FPS))  # fixed: no scene-cut keyframes in between
    _ffmpeg("-loop", "1", "-framerate", str(FPS), "-i", str(photo), "-t", f"{seconds:g}", "-vf", vf,
            "-r", str(FPS), "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF), "-g", gop, "-keyint_min", gop,
            "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp))
    os.replace(tmp, out)


def loop_to(src: Path, out: Path, seconds: float, src_seconds: float) -> None:
    """A long clip from a short one, by looping it with stream copy (no encoding): seconds of work, not minutes."""
    loops = max(0, math.ceil(seconds / src_seconds) - 1)
    tmp = out.with_name(out.stem + ".part" + out.suffix)
    _ffmpeg("-stream_loop", str(loops), "-i", str(src), "-t", f"{seconds:g}", "-c", "copy", "-an",
            "-movflags", "+faststart", str(tmp))
    os.replace(tmp, out)


def clip_name(size: tuple[int, int], seconds: float, variant: int, gop_s: float = GOP_S) -> str:
    return (f"v{RENDER_VERSION}_{size[0]}x{size[1]}_{FPS}fps_{seconds:g}s_g{gop_s:g}_{PRESET}_crf{CRF}"
            f"_n{NOISE}_{variant:03d}.mp4")


def make_set(workdir: Path, clips: int, seconds: float, sizes: list[tuple[int, int]]) -> tuple[list[str], int]:
    """The N clips (cached); returns their paths and how many had to be rendered now."""
    photo = astronaut(workdir)
    paths, made = [], 0
    for i in range(clips):
        size = sizes[i % len(sizes)]
        path = workdir / clip_name(size, seconds, i)
        if not path.is_file():
            render(photo, path, size, seconds, i)
            made += 1
        paths.append(str(path))
    return paths, made


def make_long(workdir: Path, minutes: float, seconds: float, size: tuple[int, int]) -> tuple[str, str, int]:
    """The 10-s reference clip and the long clip that loops it; returns both and how many were made now."""
    made = 0
    ref = workdir / clip_name(size, seconds, 999)
    if not ref.is_file():
        render(astronaut(workdir), ref, size, seconds, 999)
        made += 1
    long_s = minutes * 60
    long_path = workdir / f"long_{long_s:g}s_from_{ref.name}"
    if not long_path.is_file():
        loop_to(ref, long_path, long_s, seconds)
        made += 1
    return str(ref), str(long_path), made


def random_weights(workdir: Path) -> Path:
    """A random-weight mobilenet_v2 at input 224: the shipped detector's shape; speed does not depend on values."""
    path = workdir / "random-mobilenet_v2-224.pt"
    if not path.is_file():
        import torch

        from deepscreen.model import ModelProfile, create_model, save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(path, create_model("mobilenet_v2"),
                        ModelProfile(name="benchmark-random", arch="mobilenet_v2", input_size=224, margin=0.3))
    return path


# ------------------------------------------------------------------------------------------------------------
# The phases (each runs in a child process: `benchmark.py --phase-spec FILE`)
# ------------------------------------------------------------------------------------------------------------


def _status_kb(pid: str, *keys: str) -> list[int]:
    """VmRSS/VmHWM... of a process in kB (0 when it is gone)."""
    out = dict.fromkeys(keys, 0)
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key = line.split(":", 1)[0]
                if key in out:
                    out[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return [out[k] for k in keys]


class ChildMemory(threading.Thread):
    """Samples the ffmpeg/ffprobe children of this process every `interval` s: the most RSS they hold at once, and
    the largest high-water mark (VmHWM) of any one of them.

    RUSAGE_CHILDREN cannot say this: a child's ru_maxrss includes the pages it shared with this process between
    fork and exec, so for a 1 GB Python process every `ffmpeg` child reports at least 1 GB.
    """

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval = interval
        self.together_kb = self.largest_kb = self.seen = 0
        self._pids: set[str] = set()
        self._done = threading.Event()

    def _children(self) -> list[str]:
        pids = []
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/children") as fh:
                    pids.extend(fh.read().split())
            except OSError:
                pass
        return pids

    def run(self) -> None:
        while not self._done.wait(self.interval):
            together = 0
            for pid in self._children():
                try:
                    with open(f"/proc/{pid}/comm") as fh:
                        if fh.read().strip() not in ("ffmpeg", "ffprobe"):
                            continue  # not exec'd yet: still a copy of this process
                except OSError:
                    continue
                rss, hwm = _status_kb(pid, "VmRSS", "VmHWM")
                together += rss
                self.largest_kb = max(self.largest_kb, hwm)
                self._pids.add(pid)
            self.together_kb = max(self.together_kb, together)

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.seen = len(self._pids)


def _rusage(children: ChildMemory) -> dict:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"peak_rss_mb": round((me.ru_maxrss + children.together_kb) / 1024, 1),
            "peak_rss_mb_python": round(me.ru_maxrss / 1024, 1),
            "peak_rss_mb_ffmpeg_together": round(children.together_kb / 1024, 1),
            "peak_rss_mb_ffmpeg_largest": round(children.largest_kb / 1024, 1),
            "ffmpeg_processes_sampled": children.seen,
            "rusage_children_maxrss_mb": round(kids.ru_maxrss / 1024, 1),  # inflated by fork: see ChildMemory
            "peak_rss_mb_rusage_self_plus_children": round((me.ru_maxrss + kids.ru_maxrss) / 1024, 1),
            "cpu_s_python": round(me.ru_utime + me.ru_stime, 2),
            "cpu_s_ffmpeg": round(kids.ru_utime + kids.ru_stime, 2)}


def phase_decode(spec: dict) -> dict:
    from deepscreen import media

    def one(path: str) -> int:
        info = media.probe(path)
        times = media.sample_times(info, spec["frames"])
        return sum(1 for _ in media.read_frames(path, info, times))

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=spec["workers"]) as pool:
        counts = list(pool.map(one, spec["paths"]))
    return {"wall_s": time.monotonic() - t0, "videos": len(counts), "frames": sum(counts), "setup_s": 0.0}


def phase_naive(spec: dict) -> dict:
    import cv2
    import numpy as np
    import torch
    from facenet_pytorch import MTCNN

    from deepscreen import media
    from deepscreen.faces import crop_face
    from deepscreen.model import Detector

    t_setup = time.monotonic()
    mtcnn = MTCNN(keep_all=True, min_face_size=20, device="cpu")
    detector = Detector.load(spec["weights"], device="cpu", runtime="torch")  # plain PyTorch, as a first try would
    size, margin = detector.profile.input_size, detector.profile.margin
    setup = time.monotonic() - t_setup

    t0 = time.monotonic()
    sampled = decoded = crops = 0
    scores = []
    for path in spec["paths"]:
        cap = cv2.VideoCapture(path)
        fps = cap.get(cv2.CAP_PROP_FPS)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        info = media.VideoInfo(duration=n / fps, fps=fps, frame_count=n, width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                               height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), rotation=0, codec="", container="")
        wanted = {min(n - 1, math.ceil(t * fps - 1e-6)) for t in media.sample_times(info, spec["frames"])}
        video_scores = []
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            decoded += 1
            if i in wanted:
                sampled += 1
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                with torch.inference_mode():
                    boxes, probs = mtcnn.detect(rgb)
                if boxes is not None:
                    for box, p in zip(boxes, probs):
                        if p is None or p < 0.95:
                            continue
                        crops += 1
                        video_scores.append(float(detector.score([crop_face(rgb, box, margin, size)])[0]))
            i += 1
        cap.release()
        scores.append(float(np.mean(video_scores)) if video_scores else None)
    return {"wall_s": time.monotonic() - t0, "videos": len(spec["paths"]), "frames": sampled,
            "frames_decoded": decoded, "crops_scored": crops, "setup_s": setup, "scores": scores,
            "torch_threads": torch.get_num_threads()}


def phase_deepscreen(spec: dict) -> dict:
    from deepscreen import Screener, media  # before torch, as the CLI does: deepscreen sets OpenMP's wait policy

    import torch

    t_setup = time.monotonic()
    screener = Screener(weights=spec["weights"], device=spec["device"], frames=spec["frames"],
                        detect_every=spec["detect_every"], early_exit=spec["early_exit"], runtime=spec["runtime"])
    if spec.get("torch_threads"):  # a what-if, set after Screener (which may choose its own)
        torch.set_num_threads(spec["torch_threads"])
    setup = time.monotonic() - t_setup
    t0 = time.monotonic()
    records = list(screener.screen_many(spec["paths"]))
    wall = time.monotonic() - t0
    durations = [r.video.get("duration", 0.0) for r in records if r.video]
    return {"wall_s": wall, "videos": len(records), "frames": sum(r.frames_sampled for r in records),
            "setup_s": setup, "torch_threads": torch.get_num_threads(), "workers": screener.workers,
            "statuses": [r.status for r in records], "timings": [dict(r.timings) for r in records],
            "stopped_early": sum(r.stopped == "early" for r in records), "runtime": screener.detector.runtime,
            "device": str(screener.device),
            "scores": [r.score for r in records], "duplicates": screener.stats.duplicates,
            "read_path": ["seek" if d > media.SEEK_AFTER_S else "select" for d in durations],
            "seek_after_s": media.SEEK_AFTER_S}


PHASES = {"decode": phase_decode, "naive": phase_naive, "deepscreen": phase_deepscreen}


def _die_with_parent() -> None:
    """Linux: end this phase process if the benchmark that started it is killed (no orphan keeps the CPU busy)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_phase_child(spec_path: str) -> None:
    _die_with_parent()
    spec = json.loads(Path(spec_path).read_text())
    if spec["kind"] == "facts":
        Path(spec["out"]).write_text(json.dumps(torch_facts()))
        return
    if spec["kind"] == "weights":
        random_weights(Path(spec["workdir"]))
        return
    children = ChildMemory()
    children.start()
    result = PHASES[spec["kind"]](spec)
    children.stop()
    result.update(_rusage(children))
    result["wall_s"] = round(result["wall_s"], 3)
    result["setup_s"] = round(result["setup_s"], 3)
    Path(spec["out"]).write_text(json.dumps(result))


def _child(spec: dict, tmp: Path, name: str) -> None:
    spec_path = tmp / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--phase-spec", str(spec_path)], check=True,
                   cwd=str(ROOT))


def run_phase(name: str, kind: str, paths: list[str], args, weights: str, tmp: Path) -> dict:
    spec = {"kind": kind, "paths": paths, "frames": args.frames, "detect_every": args.detect_every,
            "weights": weights, "workers": 2, "early_exit": args.early_exit, "runtime": args.runtime,
            "device": args.device,
            "torch_threads": args.torch_threads, "out": str(tmp / f"{name}.json")}
    print(f"  {name}: {len(paths)} clip(s) ...", end="", flush=True)
    t0 = time.monotonic()
    _child(spec, tmp, name)
    result = json.loads(Path(spec["out"]).read_text())
    result["process_s"] = round(time.monotonic() - t0, 2)
    result["videos_per_s"] = round(result["videos"] / result["wall_s"], 3) if result["wall_s"] else None
    result["frames_per_s"] = round(result["frames"] / result["wall_s"], 2) if result["wall_s"] else None
    result["s_per_video"] = round(result["wall_s"] / result["videos"], 3) if result["videos"] else None
    print(f" {result['wall_s']:.1f} s of work, {result['process_s']:.1f} s in all", flush=True)
    return result


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------


def torch_facts() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"torch": torch.__version__, "torch_threads_default": torch.get_num_threads(), "gpu": gpu}


def machine_facts() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    mem_mb = None
    try:
        mem_mb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory_mb": mem_mb, "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "ffmpeg": ffmpeg_version.replace("ffmpeg version ", ""),
            "platform": platform.platform()}


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def _fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def report(out: dict) -> None:
    m = out["machine"]
    print("\nMachine")
    print(f"  CPU: {m['cpu']}; cores: {m['cores']} ({m['cores_usable']} usable); load average at start: "
          f"{' '.join(map(str, m['load_avg_at_start']))}")
    print(f"  python {m['python']}, torch {m['torch']} ({m['torch_threads_default']} threads by default; the "
          f"deepscreen phases ran with {out['phases']['c_deepscreen'].get('torch_threads')}), "
          f"ffmpeg {m['ffmpeg'].split(' ')[0]}; GPU: {m.get('gpu') or 'none'}")
    busy = m["load_avg_at_start"][0]
    if busy > 0.5 * m["cores_usable"]:
        print(f"  WARNING: the machine was busy when this started (1-min load {busy} on {m['cores_usable']} cores): "
              f"timings are not representative")
    s = out["settings"]
    print(f"  set: {s['clips']} clips x {s['seconds']:g} s ({', '.join(s['sizes'])}, {FPS} fps, H.264 {PRESET} "
          f"CRF {CRF}, keyframe every {GOP_S} s), {s['frames']} frames sampled per video, whole-frame face search "
          f"on every {s.get('detect_every', 1)}, early exit {'on' if s.get('early_exit', False) else 'off'}, "
          f"detector runtime {out['phases']['c_deepscreen'].get('runtime', 'torch')} on "
          f"{out['phases']['c_deepscreen'].get('device', 'cpu')}; weights {s['weights']}")
    gen = out["generation"]
    print(f"  generation: {gen['made']} file(s) made in {gen['seconds']:.1f} s ({gen['cached']} cached)")

    print(f"\n{'phase':<28}{'videos':>7}{'frames':>8}{'wall s':>9}{'videos/s':>10}{'frames/s':>10}"
          f"{'s/video':>9}{'peak RSS MB':>13}{'(python':>9}{'ffmpeg)':>9}{'CPU s':>8}{'setup s':>9}")
    for key, label in (("a_decode", "(a) decode floor"), ("b_naive", "(b) naive"), ("c_deepscreen", "(c) deepscreen"),
                       ("short_clip", "deepscreen, 10-s clip"), ("long_clip", "deepscreen, long clip")):
        r = out["phases"].get(key)
        if not r:
            continue
        if key == "long_clip":
            label = f"deepscreen, {s['long_minutes']:g}-min clip"
        elif key == "short_clip":
            label = f"deepscreen, {s['seconds']:g}-s clip"
        print(f"{label:<28}{r['videos']:>7}{r['frames']:>8}{r['wall_s']:>9.2f}{_fmt(r['videos_per_s'], '.3f'):>10}"
              f"{_fmt(r['frames_per_s'], '.1f'):>10}{_fmt(r['s_per_video'], '.3f'):>9}{r['peak_rss_mb']:>13.0f}"
              f"{r['peak_rss_mb_python']:>9.0f}{r['peak_rss_mb_ffmpeg_together']:>9.0f}"
              f"{r['cpu_s_python'] + r['cpu_s_ffmpeg']:>8.1f}{r['setup_s']:>9.1f}")
    print("  peak RSS = the phase's Python ru_maxrss + the most its ffmpeg/ffprobe children held at once (sampled\n"
          "  every 20 ms); wall s counts the work, setup s the model loading before it; CPU s = the phase's\n"
          "  process and its ffmpeg children, setup included")
    b = out["phases"].get("b_naive")
    if b:
        print(f"  (b) decoded {b['frames_decoded']} frames to keep {b['frames']}; scored {b['crops_scored']} crops "
              f"one at a time; torch threads {b.get('torch_threads')}; per video, on the first {b['videos']} clip(s)")

    r = out["ratios"]
    print("\nRatios (time per video)")
    print(f"  c/a = {_fmt(r['c_over_a'], '.2f')}   target <= {TARGETS['c_over_a']}   "
          f"{'ok' if r['c_over_a'] is not None and r['c_over_a'] <= TARGETS['c_over_a'] else 'MISSED'}")
    if r.get("b_over_c") is not None:
        print(f"  b/c = {_fmt(r['b_over_c'], '.2f')}   target >= {TARGETS['b_over_c']}   "
              f"{'ok' if r['b_over_c'] >= TARGETS['b_over_c'] else 'MISSED'}")

    st = out["deepscreen_stages"]
    print(f"\ndeepscreen mean seconds per video by stage ({st['videos']} ok record(s)); decode runs on worker threads\n"
          f"and overlaps detect/score, so the stages add up to more than the wall time per video")
    print("  " + "".join(f"{k:>9}" for k in STAGES))
    print("  " + "".join(f"{_fmt(st['mean_s'].get(k), '.3f'):>9}" for k in STAGES))
    print(f"  models (detect + score) busy {_fmt(st['model_share_of_wall'], '.0%')} of the wall time; "
          f"statuses: {st['statuses']}; stopped early: {out['phases']['c_deepscreen'].get('stopped_early', 0)} "
          f"of {out['phases']['c_deepscreen']['videos']}")

    lc = out.get("long")
    if lc:
        print(f"\nLong clip: {lc['long_s']:g} s vs {lc['short_s']:g} s at {s['long_size']} (read path: "
              f"{lc['long_read_path']} vs {lc['short_read_path']}; media.SEEK_AFTER_S = {lc['seek_after_s']:g})")
        print(f"  peak RSS {lc['long_rss_mb']:.0f} MB vs {lc['short_rss_mb']:.0f} MB: ratio "
              f"{lc['rss_ratio']:.2f}   target <= {TARGETS['long_rss_ratio']}   "
              f"{'ok' if lc['rss_ratio'] <= TARGETS['long_rss_ratio'] else 'MISSED'}")
        print(f"  wall {lc['long_wall_s']:.2f} s vs {lc['short_wall_s']:.2f} s: ratio {lc['wall_ratio']:.2f}")
    print(f"\nWhole run: {out['total_s']:.0f} s ({out['generation']['seconds']:.0f} s of it generating clips)")


def stage_means(c: dict) -> dict:
    ok = [t for t, status in zip(c["timings"], c["statuses"]) if status == "ok"] or c["timings"]
    means = {k: round(sum(t.get(k, 0.0) for t in ok) / len(ok), 4) if ok else None for k in STAGES}
    model = sum(t.get("detect", 0.0) + t.get("score", 0.0) for t in c["timings"])
    counts: dict[str, int] = {}
    for status in c["statuses"]:
        counts[status] = counts.get(status, 0) + 1
    return {"videos": len(ok), "mean_s": means, "model_s": round(model, 3),
            "model_share_of_wall": round(model / c["wall_s"], 3) if c["wall_s"] else None, "statuses": counts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20, help="clips in the set (default 20)")
    ap.add_argument("--seconds", type=float, default=10, help="length of each clip (default 10)")
    ap.add_argument("--frames", type=int, default=32, help="frames sampled per video (default 32)")
    ap.add_argument("--detect-every", type=int, default=4,
                    help="deepscreen searches whole frames on every Nth sampled frame (default 4, as scan)")
    ap.add_argument("--weights", help="detector checkpoint (default weights/deepscreen-sbi-mnv2.pt if present, "
                                      "else a random-weight mobilenet_v2 made in the workdir)")
    ap.add_argument("--workdir", default=str(ROOT / "cache" / "benchmark"), help="clip cache (default cache/benchmark)")
    ap.add_argument("--long-minutes", type=float, default=10, help="long clip length; 0 skips it (default 10)")
    ap.add_argument("--naive-clips", type=int, default=2,
                    help="clips the naive pipeline runs on, from the start of the set (default 2: one 720p, one "
                         "1080p; it is compared per video, and takes seconds per frame); 0 skips it")
    ap.add_argument("--sizes", default=SIZES, help=f"frame sizes the clips alternate (default {SIZES})")
    ap.add_argument("--long-size", default=LONG_SIZE, help=f"long clip's frame size (default {LONG_SIZE})")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="what-if: override torch's thread count (default: one per core) in the deepscreen phases")
    ap.add_argument("--no-early-exit", dest="early_exit", action="store_false",
                    help="what-if: deepscreen looks at every sampled frame (scan --no-early-exit)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                    help="where deepscreen's phases run MTCNN and the detector (default cpu)")
    ap.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx"),
                    help="what-if: where deepscreen's detector runs (default auto, as scan: ONNX Runtime on a CPU)")
    ap.add_argument("--json", help="write everything measured here")
    ap.add_argument("--phase-spec", help=argparse.SUPPRESS)  # internal: run one phase in this process
    args = ap.parse_args(argv)
    if args.phase_spec:
        run_phase_child(args.phase_spec)
        return 0
    if not shutil.which("ffmpeg"):
        print("ffmpeg not found", file=sys.stderr)
        return 2

    t_start = time.monotonic()
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = [_size(s) for s in args.sizes.split(",") if s.strip()]
    long_size = _size(args.long_size)

    # This process stays small (no torch here): a child's ru_maxrss starts from its parent's RSS at the fork, so a
    # big parent would inflate every phase's peak. Anything that needs torch runs in a child too.
    tmp_dir = tempfile.TemporaryDirectory(prefix="deepscreen-bench-")
    tmp = Path(tmp_dir.name)
    default = ROOT / "weights" / "deepscreen-sbi-mnv2.pt"  # deepscreen.model's WEIGHTS_DIR / DEFAULT_WEIGHTS
    if args.weights:
        weights = Path(args.weights).resolve()
    elif default.is_file():
        weights = default
    else:
        weights = workdir / "random-mobilenet_v2-224.pt"
        if not weights.is_file():
            _child({"kind": "weights", "workdir": str(workdir)}, tmp, "weights")
    machine = machine_facts()
    _child({"kind": "facts", "out": str(tmp / "facts.json")}, tmp, "facts")
    machine.update(json.loads((tmp / "facts.json").read_text()))

    print(f"Clips in {workdir} ...", flush=True)
    t0 = time.monotonic()
    paths, made = make_set(workdir, args.clips, args.seconds, sizes)
    ref = long_path = None
    if args.long_minutes > 0:
        ref, long_path, made_long = make_long(workdir, args.long_minutes, args.seconds, long_size)
        made += made_long
    gen_s = time.monotonic() - t0
    all_paths = paths + ([ref, long_path] if ref else [])
    for p in all_paths:  # into the page cache, so that no phase pays for a cold disk
        with open(p, "rb") as fh:
            while fh.read(1 << 20):
                pass
    print(f"  {made} made in {gen_s:.1f} s, {len(all_paths) - made} cached", flush=True)

    out: dict = {"machine": machine, "phases": {},
                 "settings": {"clips": args.clips, "seconds": args.seconds, "frames": args.frames,
                              "detect_every": args.detect_every, "early_exit": args.early_exit,
                              "runtime": args.runtime, "device": args.device,
                              "sizes": [f"{w}x{h}" for w, h in sizes], "fps": FPS, "gop_s": GOP_S, "preset": PRESET,
                              "crf": CRF, "long_minutes": args.long_minutes, "long_size": args.long_size,
                              "naive_clips": min(args.naive_clips, args.clips), "weights": str(weights),
                              "torch_threads_override": args.torch_threads or None,
                              "workdir": str(workdir)},
                 "generation": {"seconds": round(gen_s, 2), "made": made, "cached": len(all_paths) - made},
                 "targets": TARGETS}
    phases = out["phases"]
    print("Phases (each in its own process):", flush=True)
    with tmp_dir:
        phases["a_decode"] = run_phase("a_decode", "decode", paths, args, str(weights), tmp)
        if args.naive_clips > 0:
            phases["b_naive"] = run_phase("b_naive", "naive", paths[:args.naive_clips], args, str(weights), tmp)
        phases["c_deepscreen"] = run_phase("c_deepscreen", "deepscreen", paths, args, str(weights), tmp)
        if ref:
            phases["short_clip"] = run_phase("short_clip", "deepscreen", [ref], args, str(weights), tmp)
            phases["long_clip"] = run_phase("long_clip", "deepscreen", [long_path], args, str(weights), tmp)

    a, c = phases["a_decode"], phases["c_deepscreen"]
    b = phases.get("b_naive")
    out["ratios"] = {"c_over_a": _ratio(c["s_per_video"], a["s_per_video"]),
                     "b_over_c": _ratio(b["s_per_video"], c["s_per_video"]) if b else None}
    out["deepscreen_stages"] = stage_means(c)
    if ref:
        sc, lc = phases["short_clip"], phases["long_clip"]
        out["long"] = {"short_s": args.seconds, "long_s": args.long_minutes * 60,
                       "short_rss_mb": sc["peak_rss_mb"], "long_rss_mb": lc["peak_rss_mb"],
                       "rss_ratio": _ratio(lc["peak_rss_mb"], sc["peak_rss_mb"]),
                       "short_wall_s": sc["wall_s"], "long_wall_s": lc["wall_s"],
                       "wall_ratio": _ratio(lc["wall_s"], sc["wall_s"]),
                       "short_read_path": sc["read_path"][0] if sc["read_path"] else "-",
                       "long_read_path": lc["read_path"][0] if lc["read_path"] else "-",
                       "seek_after_s": lc["seek_after_s"]}
    out["total_s"] = round(time.monotonic() - t_start, 1)
    report(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
