"""Does time help? Video scores from the same face scores, aggregated several ways, and a feature-drift statistic.

    .venv/bin/python scripts/temporal_check.py LABELLED_DIR BENCH_DIR [--weights FILE] [--frames 16] [--json OUT]

BENCH_DIR is where `deepscreen bench LABELLED_DIR -o BENCH_DIR` left its results.jsonl: every video's face
scores in time order, per person. Each aggregation below turns the counted tracks' face scores into a video
score (the maximum over tracks, as `deepscreen scan` does), and the script prints the video AUC of each, over
all clips and per fake method against all real clips:

- top-half: the mean of the top half of the face scores (what scan uses);
- mean, median, max: the plain statistics;
- flicker: the mean absolute change of the face score from one sampled frame to the next (generated heads are
  said to flicker); top-half+flicker adds the two.

And one statistic of the face itself, not of the score: drift, the mean cosine distance between the detector's
pooled features of consecutive faces (the largest face in `--frames` evenly spaced frames; generated heads are
said to drift in identity and texture). Crops are cached in --workdir.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepscreen.aggregate import MIN_TRACK_FACES, track_score  # noqa: E402
from deepscreen.bench import _norm  # noqa: E402
from deepscreen.clips import face_crops  # noqa: E402
from deepscreen.datasets import LabelledVideo, load_dataset  # noqa: E402
from deepscreen.model import Detector, default_weights  # noqa: E402
from deepscreen.results import read_results  # noqa: E402


def _flicker(s: np.ndarray) -> float:
    return float(np.abs(np.diff(s)).mean()) if len(s) > 1 else 0.0


AGGREGATIONS = {
    "top-half": track_score,
    "mean": lambda s: float(np.mean(s)),
    "median": lambda s: float(np.median(s)),
    "max": lambda s: float(np.max(s)),
    "flicker": _flicker,
    "top-half+flicker": lambda s: track_score(s) + _flicker(s),
}


def video_scores(bench_dir: str) -> dict[str, dict[str, float]]:
    """Per video path (normalised), each aggregation's score over the tracks that count."""
    done = read_results(str(Path(bench_dir) / "results.jsonl"))  # read only: the bench may still be writing
    out = {}
    for r in done:
        if r.status != "ok" or not r.tracks:
            continue
        need = min(MIN_TRACK_FACES, max(t.faces for t in r.tracks))
        series = [np.asarray([s for _, s in sorted(zip(t.face_times, t.face_scores))]) for t in r.tracks
                  if t.faces >= need]
        out[_norm(r.path)] = {name: max(agg(s) for s in series) for name, agg in AGGREGATIONS.items()}
    return out


@torch.no_grad()
def drift(detector: Detector, crops: np.ndarray) -> float | None:
    """Mean cosine distance between pooled backbone features of consecutive faces (MobileNetV2 only)."""
    if len(crops) < 2 or not hasattr(detector.model, "features"):
        return None
    x = detector.to_tensor(list(crops))
    f = torch.nn.functional.normalize(detector.model.features(x).mean(dim=(2, 3)), dim=1)
    return float((1 - (f[1:] * f[:-1]).sum(dim=1)).mean())


def aucs(items: list[LabelledVideo], scores: dict[str, float]) -> dict[str, float | None]:
    """AUC over all clips with a score, and per fake method against all real clips."""
    kept = [it for it in items if scores.get(_norm(it.path)) is not None]
    out = {}
    groups = {"all": kept} | {f"method:{m}": [it for it in kept if it.label == 0 or it.method == m]
                              for m in sorted({it.method for it in kept if it.label})}
    for name, group in groups.items():
        y = [it.label for it in group]
        out[name] = float(roc_auc_score(y, [scores[_norm(it.path)] for it in group])) if len(set(y)) == 2 else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="labelled videos, any layout `deepscreen bench` reads")
    ap.add_argument("bench_dir", help="the -o folder of `deepscreen bench DATA`")
    ap.add_argument("--weights", default=str(default_weights()))
    ap.add_argument("--frames", type=int, default=16, help="frames per clip for the drift statistic")
    ap.add_argument("--workdir", default=str(ROOT / "cache" / "temporal_check"))
    ap.add_argument("--json", help="write every clip's statistics here")
    args = ap.parse_args(argv)
    items = load_dataset(args.data)
    per_video = video_scores(args.bench_dir)
    detector = Detector.load(args.weights, device="auto")
    crops = face_crops(items, args.frames, detector.profile.margin, detector.profile.input_size, Path(args.workdir))
    for it, c in zip(items, crops):
        if _norm(it.path) in per_video:
            per_video[_norm(it.path)]["drift"] = drift(detector, c)
    names = list(AGGREGATIONS) + ["drift"]
    table = {n: aucs(items, {k: v.get(n) for k, v in per_video.items()}) for n in names}
    groups = list(table[names[0]])
    width = max(len(g) for g in groups)
    print(f"video AUC by aggregation ({len(per_video)} scored clips of {len(items)})")
    print(" " * width + "".join(f"{n:>18}" for n in names))
    for g in groups:
        cells = "".join(f"{table[n][g]:18.3f}" if table[n].get(g) is not None else f"{'-':>18}" for n in names)
        print(f"{g:<{width}}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps({"aucs": table, "videos": per_video}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
