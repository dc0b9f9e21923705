"""CPU against CUDA: do the same videos get the same scores and verdicts on a GPU as on the CPU?

    python scripts/device_check.py DIR [DIR ...] [--weights W] [--frames 32] [--json OUT]

Screens every video under DIR twice with early exit off (so both look at the same sampled frames): on the CPU
with the detector in PyTorch fp32, and on CUDA (MTCNN on the GPU, the detector under fp16 autocast with pinned
memory, as `scan --device auto` runs it there). Prints, per video, both scores, the difference, the faces found
on each device and whether the verdicts agree; then the largest difference, the verdicts that changed and each
device's wall time for the whole set (models loaded before the clock starts; one warm-up video first), and what
loading and that first video cost (on a GPU, `Screener` warms CUDA up while loading). Exits 1 when a verdict changes or a score moves by more than --tolerance.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepscreen import Screener  # noqa: E402  (before torch, as the CLI does)
from deepscreen.inputs import iter_inputs  # noqa: E402

import torch  # noqa: E402


def screen_all(device: str, paths: list[str], args) -> tuple[dict, float, dict]:
    """Records, the wall time of the set after a first video, and what loading and that first video took."""
    t0 = time.monotonic()
    screener = Screener(weights=args.weights, device=device, frames=args.frames, early_exit=False, runtime="torch")
    start = {"load_s": time.monotonic() - t0}
    first = screener.screen(paths[0])
    start.update(first_detect_s=first.timings.get("detect", 0.0), first_score_s=first.timings.get("score", 0.0))
    t0 = time.monotonic()
    records = {r.path: r for r in screener.screen_many(paths)}
    again = records[paths[0]].timings
    start.update(again_detect_s=again.get("detect", 0.0), again_score_s=again.get("score", 0.0))
    return records, time.monotonic() - t0, start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--weights", help="detector checkpoint (default: the shipped one)")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--tolerance", type=float, default=0.02, help="largest score difference accepted (default 0.02)")
    ap.add_argument("--json", help="write the per-video comparison here")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("torch sees no CUDA device: nothing to compare", file=sys.stderr)
        return 2
    paths = sorted(iter_inputs(args.dirs))
    if not paths:
        print("no video files found", file=sys.stderr)
        return 2
    cpu, cpu_s, cpu_start = screen_all("cpu", paths, args)
    gpu, gpu_s, gpu_start = screen_all("cuda", paths, args)

    rows, worst, changed = [], 0.0, []
    print(f"{'video':<40}{'cpu':>8}{'cuda':>8}{'diff':>8}{'faces cpu/cuda':>16}  verdicts")
    for p in paths:
        a, b = cpu[p], gpu[p]
        diff = abs(a.score - b.score) if a.score is not None and b.score is not None else None
        worst = max(worst, diff or 0.0)
        if a.verdict != b.verdict:
            changed.append(p)
        faces = (sum(t.faces for t in a.tracks), sum(t.faces for t in b.tracks))
        rows.append({"path": p, "cpu": a.score, "cuda": b.score, "diff": diff, "faces": faces,
                     "verdicts": [a.verdict, b.verdict], "status": [a.status, b.status]})
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"{Path(p).name[:39]:<40}{fmt(a.score):>8}{fmt(b.score):>8}{fmt(diff):>8}"
              f"{f'{faces[0]}/{faces[1]}':>16}  {a.verdict}/{b.verdict}")
    frames = sum(r.frames_sampled for r in cpu.values())
    print(f"\n{len(paths)} videos, {frames} sampled frames; GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print(f"largest score difference {worst:.4f} (tolerance {args.tolerance}); verdicts changed: {len(changed)}")
    print(f"wall: cpu {cpu_s:.1f} s ({frames / cpu_s:.1f} frames/s, {torch.get_num_threads()} threads), "
          f"cuda {gpu_s:.1f} s ({frames / gpu_s:.1f} frames/s)")
    for name, st in (("cpu", cpu_start), ("cuda", gpu_start)):
        print(f"{name}: load {st['load_s']:.1f} s; first video detect {st['first_detect_s']:.2f} s, score "
              f"{st['first_score_s']:.2f} s; the same video again {st['again_detect_s']:.2f} s, {st['again_score_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "worst": worst, "changed": changed, "cpu_s": cpu_s,
                                               "cuda_s": gpu_s, "frames": frames, "start": {"cpu": cpu_start,
                                                                                            "cuda": gpu_start},
                                               "gpu": torch.cuda.get_device_name(0)}, indent=2))
    return 1 if changed or worst > args.tolerance else 0


if __name__ == "__main__":
    sys.exit(main())
