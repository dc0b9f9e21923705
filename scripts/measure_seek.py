"""When does input seeking beat one select pass? Informs deepscreen.media.SEEK_AFTER_S.

    .venv/bin/python scripts/measure_seek.py [--durations 10 30 60 120] [--gops 2 8] [--frames 32]
                                             [--repeat 2] [--workdir DIR] [--json OUT]

For 1280x720 30 fps H.264 clips (rendered like scripts/benchmark.py's, one keyframe every GOP seconds), times
media.read_frames for `--frames` evenly sampled frames twice: with the select filter (one pass that decodes
everything up to the last sampled frame) and with input seeking (one ffmpeg per frame, each decoding from the
keyframe before its frame), by setting media.SEEK_AFTER_S to force each path. Reports wall time and the CPU time
ffmpeg spent (what matters when the models share the machine), the best of --repeat runs.

Clips are cached in the workdir (default cache/measure_seek/): one clip per GOP is encoded, 40 s for the defaults
(a multiple of both 2 and 8, so keyframes stay evenly spaced when it is looped), and each duration is cut or looped
from it by stream copy.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import benchmark as bench  # noqa: E402  (scripts/benchmark.py: the same rendering)
from deepscreen import media  # noqa: E402

SIZE = (1280, 720)
SEGMENT_S = 40  # at most: a multiple of every keyframe interval, so that looping keeps keyframes evenly spaced


def segment_length(durations: list[float], gops: list[float]) -> float:
    """The shortest multiple of all (whole-second) GOPs that covers the longest clip, capped at SEGMENT_S."""
    step = math.lcm(*[max(1, round(g)) for g in gops]) if all(g == round(g) for g in gops) else SEGMENT_S
    return step * min(math.ceil(SEGMENT_S / step), math.ceil(max(durations) / step))


def make_clip(workdir: Path, duration: float, gop: float, segment_s: float) -> Path:
    seg = workdir / bench.clip_name(SIZE, segment_s, 500, gop)
    if not seg.is_file():
        bench.render(bench.astronaut(workdir), seg, SIZE, segment_s, 500, gop)
    out = workdir / f"d{duration:g}s_from_{seg.name}"
    if not out.is_file():
        bench.loop_to(seg, out, duration, segment_s)
    return out


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_read(path: Path, frames: int, seek: bool) -> tuple[float, float, int]:
    """Wall and ffmpeg CPU seconds (probe excluded) to read the sampled frames by one path; and the frame count."""
    info = media.probe(str(path))
    times = media.sample_times(info, frames)
    saved = media.SEEK_AFTER_S
    media.SEEK_AFTER_S = 0.0 if seek else math.inf
    try:
        cpu0, t0 = _children_cpu(), time.monotonic()
        n = sum(1 for _ in media.read_frames(str(path), info, times))
        return time.monotonic() - t0, _children_cpu() - cpu0, n
    finally:
        media.SEEK_AFTER_S = saved


def crossover(rows: list[dict], key: str) -> float | None:
    """The duration from which seeking is faster and stays faster (interpolated between the durations measured,
    on the log of the seek/select ratio); None when it never wins; the shortest duration when it always does."""
    rows = sorted(rows, key=lambda r: r["duration"])
    ratios = [r[f"seek_{key}"] / r[f"select_{key}"] for r in rows]
    if ratios[-1] >= 1:
        return None
    k = len(ratios) - 1
    while k > 0 and ratios[k - 1] < 1:
        k -= 1
    if k == 0:
        return rows[0]["duration"]
    d0, d1 = rows[k - 1]["duration"], rows[k]["duration"]
    r0, r1 = math.log(ratios[k - 1]), math.log(ratios[k])
    return round(d0 + (d1 - d0) * r0 / (r0 - r1), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--durations", type=float, nargs="+", default=[10, 30, 60, 120])
    ap.add_argument("--gops", type=float, nargs="+", default=[2, 8], help="keyframe intervals in seconds")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest counts")
    ap.add_argument("--workdir", default=str(HERE.parent / "cache" / "measure_seek"))
    ap.add_argument("--json", help="write the measurements here")
    args = ap.parse_args(argv)

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    segment_s = segment_length(args.durations, args.gops)
    clips = {(g, d): make_clip(workdir, d, g, segment_s) for g in args.gops for d in args.durations}
    gen_s = time.monotonic() - t0
    print(f"clips in {workdir} ready in {gen_s:.1f} s; media.SEEK_AFTER_S is {media.SEEK_AFTER_S:g}")

    rows = []
    print(f"\n{'GOP s':>6}{'clip s':>8}{'select s':>10}{'seek s':>9}{'seek/sel':>10}{'select cpu':>12}"
          f"{'seek cpu':>10}{'cpu ratio':>11}  faster (wall)")
    for (gop, duration), path in clips.items():
        best = {}
        for _ in range(max(1, args.repeat)):
            for mode in ("select", "seek"):  # alternated, so load drifts hit both alike
                wall, cpu, n = time_read(path, args.frames, mode == "seek")
                if mode not in best or wall < best[mode][0]:
                    best[mode] = (wall, cpu, n)
        (sw, sc, sn), (kw, kc, kn) = best["select"], best["seek"]
        row = {"gop_s": gop, "duration": duration, "select_wall": round(sw, 3), "seek_wall": round(kw, 3),
               "select_cpu": round(sc, 3), "seek_cpu": round(kc, 3), "select_frames": sn, "seek_frames": kn}
        rows.append(row)
        print(f"{gop:>6g}{duration:>8g}{sw:>10.2f}{kw:>9.2f}{kw / sw:>10.2f}{sc:>12.2f}{kc:>10.2f}{kc / sc:>11.2f}"
              f"  {'seek' if kw < sw else 'select'}")

    print()
    summary = {}
    for gop in args.gops:
        mine = [r for r in rows if r["gop_s"] == gop]
        wall, cpu = crossover(mine, "wall"), crossover(mine, "cpu")
        summary[f"{gop:g}"] = {"crossover_wall_s": wall, "crossover_cpu_s": cpu}
        say = lambda x: "never, up to the longest clip" if x is None else f"from about {x:g} s"  # noqa: E731
        print(f"GOP {gop:g} s: seeking wins on wall time {say(wall)}; on ffmpeg CPU time {say(cpu)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": list(SIZE), "fps": bench.FPS, "frames": args.frames,
                                               "repeat": args.repeat, "generation_s": round(gen_s, 2),
                                               "seek_after_s": media.SEEK_AFTER_S, "rows": rows,
                                               "crossover": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
