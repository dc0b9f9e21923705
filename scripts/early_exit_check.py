"""Choosing the early-exit margins: what stopping after an early pass would change, from one full look.

    .venv/bin/python scripts/early_exit_check.py LABELLED_DIR FULL_DIR [--threshold T] [--early EARLY_DIR]
                                                 [--weights W [--set M8,M4]]

FULL_DIR is where `deepscreen bench LABELLED_DIR --no-early-exit -o FULL_DIR` (or `deepscreen calibrate`) left its
results.jsonl: every face score with its time. Scan's early passes look at every 8th, then every 4th sampled
frame, and stop after a pass whose video score lies its margin or more (in logits) from the threshold. For a
grid of the two margins, the script keeps only each pass's faces, scores each video from them the way `scan`
does, and prints: the videos that stop after each pass, the frames looked at, the verdicts that differ from the
full look's, and the AUC over all clips. (Tracks keep the full look's person ids here; a real pass links its
faces itself.) The margins scan uses with the weights (`--weights`, default: the shipped ones) are marked; with
`--set M8,M4` those margins are written into the weights' profile (logits spread differently for each detector,
so each carries its own: choose them on the set its threshold was calibrated on).

With --early EARLY_DIR (`deepscreen bench LABELLED_DIR -o EARLY_DIR`, early exit on) it also prints the
measured comparison of that run against the full look: videos stopped, verdicts changed, AUC, frames.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from deepscreen import media  # noqa: E402
from deepscreen.aggregate import MIN_TRACK_FACES, track_score  # noqa: E402
from deepscreen.bench import _norm  # noqa: E402
from deepscreen.datasets import load_dataset  # noqa: E402
from deepscreen.results import ScreenResult, read_results  # noqa: E402
from deepscreen.model import Detector, default_weights, update_profile  # noqa: E402
from deepscreen.screener import EARLY_PASS_FRAMES, EARLY_PASSES, _logit, early_passes  # noqa: E402

GRID = [(m8, m4) for m8 in (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0) for m4 in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
        if m8 >= m4]  # the first pass sees half the frames: it needs the wider margin


def _records(bench_dir: str) -> dict[str, ScreenResult]:
    done = read_results(str(Path(bench_dir) / "results.jsonl"))  # read only: the bench may still be writing
    return {_norm(r.path): r for r in done}


def sample_index(r: ScreenResult, frames: int) -> tuple[Callable[[float], int], int]:
    """Maps a face's time back to the index of its sampled frame (the frame is the first at or after its target)."""
    info = media.VideoInfo(**{k: r.video[k] for k in ("duration", "fps", "frame_count", "width", "height",
                                                      "rotation", "codec")}, container="")
    targets = media.sample_times(info, frames)
    if info.duration <= media.SEEK_AFTER_S:
        targets = media._onto_frames(info, targets)
    return lambda t: max(0, bisect.bisect_right(targets, t + 1e-3) - 1), len(targets)


def pass_score(r: ScreenResult, frames: int, stride: int) -> float | None:
    """The video score from the faces of every `stride`-th sampled frame, or None when that pass is skipped."""
    index_of, n = sample_index(r, frames)
    if -(-n // stride) < EARLY_PASS_FRAMES:
        return None
    series = [[s for t, s in zip(tr.face_times, tr.face_scores) if index_of(t) % stride == 0]
              for tr in r.tracks]
    series = [s for s in series if s]
    if not series:
        return None
    need = min(MIN_TRACK_FACES, max(len(s) for s in series))
    return max(track_score(s) for s in series if len(s) >= need)


def _auc(y: list[int], s: list[float]) -> float | None:
    return float(roc_auc_score(y, s)) if len(set(y)) == 2 else None


def simulate(items, full: dict[str, ScreenResult], threshold: float, frames: int,
             scan: tuple[float, ...] = tuple(m for _, m in EARLY_PASSES)) -> list[dict]:
    scored = [(it, full[_norm(it.path)]) for it in items
              if _norm(it.path) in full and full[_norm(it.path)].status == "ok"]
    strides = [stride for stride, _ in EARLY_PASSES]
    passes = {id(r): [pass_score(r, frames, stride) for stride in strides] for _, r in scored}
    y = [it.label for it, _ in scored]
    rows = []
    for margins in GRID:
        scores, stopped, looked, changed = [], [0] * len(strides), 0, 0
        for _, r in scored:
            score, used = r.score, r.frames_sampled
            for k, (stride, margin, s) in enumerate(zip(strides, margins, passes[id(r)])):
                if s is not None and abs(_logit(s) - _logit(threshold)) >= margin:
                    score, used = s, math.ceil(r.frames_sampled / stride)
                    stopped[k] += 1
                    break
            looked += used
            changed += (score >= threshold) != (r.score >= threshold)
            scores.append(score)
        rows.append({"margins": list(margins), "videos": len(scored), "stopped_early": sum(stopped),
                     "stopped_after_pass": stopped, "verdicts_changed": changed, "frames_looked_at": looked,
                     "frames_full": sum(r.frames_sampled for _, r in scored), "auc": _auc(y, scores),
                     "auc_full": _auc(y, [r.score for _, r in scored]),
                     "scan": tuple(margins) == tuple(scan)})
    return rows


def measured(items, full: dict[str, ScreenResult], early: dict[str, ScreenResult], threshold: float) -> dict:
    pairs = [(it, full[k], early[k]) for it in items if (k := _norm(it.path)) in full and k in early
             and full[k].status == "ok" and early[k].status == "ok"]
    y = [it.label for it, _, _ in pairs]
    return {"videos": len(pairs), "stopped_early": sum(e.stopped == "early" for _, _, e in pairs),
            "verdicts_changed": sum((f.score >= threshold) != (e.score >= threshold) for _, f, e in pairs),
            "frames_looked_at": sum(e.frames_sampled for _, _, e in pairs),
            "frames_full": sum(f.frames_sampled for _, f, _ in pairs),
            "auc": _auc(y, [e.score for _, _, e in pairs]), "auc_full": _auc(y, [f.score for _, f, _ in pairs])}


def _line(row: dict) -> str:
    share = row["frames_looked_at"] / max(1, row["frames_full"])
    return (f"{row['stopped_early']:4d}/{row['videos']} stopped early, {row['verdicts_changed']} verdicts changed, "
            f"AUC {row['auc']:.4f} (full look {row['auc_full']:.4f}), {share:.0%} of the frames looked at")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="labelled videos, any layout `deepscreen bench` reads")
    ap.add_argument("full_dir", help="the -o folder of `deepscreen bench DATA --no-early-exit`")
    ap.add_argument("--early", help="the -o folder of `deepscreen bench DATA` (early exit on), to compare")
    ap.add_argument("--frames", type=int, default=32, help="the --frames of the bench runs")
    ap.add_argument("--threshold", type=float,
                    help="the threshold early exit stops around (default: the one in the records; give the new one "
                         "when the records are from `deepscreen calibrate`, which scanned before setting it)")
    ap.add_argument("--weights", default=str(default_weights()), help="the weights whose margins scan uses")
    ap.add_argument("--set", help="M8,M4: write these margins into --weights' profile")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    if args.set:
        update_profile(args.weights, early_exit_margins=[float(m) for m in args.set.split(",")])
    scan = tuple(m for _, m in early_passes(Detector.load(args.weights, device="cpu", runtime="torch").profile))
    items = load_dataset(args.data)
    full = _records(args.full_dir)
    threshold = args.threshold or next(r.threshold for r in full.values() if r.threshold is not None)
    out = {"threshold": threshold, "simulated": simulate(items, full, threshold, args.frames, scan)}
    print(f"threshold {threshold:g}; simulated from the full look:")
    for row in out["simulated"]:
        after = "+".join(map(str, row["stopped_after_pass"]))
        print(f"  margins {row['margins'][0]:.2f}, {row['margins'][1]:.2f}{' (scan)' if row['scan'] else '       '}: "
              f"{_line(row)} ({after} after each pass)")
    if args.early:
        out["measured"] = measured(items, full, _records(args.early), threshold)
        print(f"measured (early exit on): {_line(out['measured'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
