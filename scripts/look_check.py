"""Does the detector react to how a clip looks rather than to manipulation?  Scores under whole-crop changes.

    .venv/bin/python scripts/look_check.py LABELLED_DIR [--weights FILE] [--score detail] [--frames 8] [--json OUT]

A manipulation detector should score a clip about the same whether it is grey, darker, blurred or sharper,
or whether a corner holds an inset photo, a caption or nothing (masked grey), or the face sits on black:
none of those changes manipulates a face. This script takes the largest face in `--frames` evenly
spaced frames of each labelled video (the same MTCNN and crop rule as `deepscreen scan`), applies each
whole-crop change below to real and fake clips alike, and prints per source the mean video score (mean of the
top half of the face scores, as a track is scored) and the AUC over all clips. Large moves of the real sources'
means under a change are a cue the detector uses that is not manipulation. LABELLED_DIR is any layout that
`deepscreen bench` reads (labels.csv with file,label,source,method; real/ and fake/; FF++; Celeb-DF; DFDC).

With `--score detail` the crops are scored by their fine detail instead (the variance of the Laplacian, the
statistic `deepscreen train --match-detail` equalises): no model at all. Its AUC is what sharpness alone gets on
the set, the floor a detector has to beat there before its ranking says anything about manipulation.

Crops are cached in --workdir (default cache/look_check/, keyed by the files' paths, sizes and times, frames,
margin and input size), so checking a second set of weights on the same clips takes only the scoring time.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from deepscreen import confounds, sbi  # noqa: E402
from deepscreen.aggregate import track_score  # noqa: E402
from deepscreen.datasets import LabelledVideo, load_dataset  # noqa: E402
from deepscreen.clips import face_crops  # noqa: E402
from deepscreen.model import Detector, default_weights  # noqa: E402
from deepscreen.faces import detail  # noqa: E402


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    return cv2.LUT(img, np.round(255.0 * (np.arange(256) / 255.0) ** g).astype(np.uint8))


def _hue(img: np.ndarray, degrees: int) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + degrees // 2) % 180  # OpenCV hue runs 0-179
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _sharpen(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float32)
    return np.clip(f + 0.8 * (f - cv2.GaussianBlur(f, (0, 0), 1.5)), 0, 255).round().astype(np.uint8)


def _half(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h))


def _corners_masked(img: np.ndarray, k: float = 0.3) -> np.ndarray:
    """Mid-grey over each corner (30% of the side): where source insets and watermarks sit."""
    out = img.copy()
    h, w = img.shape[:2]
    ch, cw = round(h * k), round(w * k)
    for ys in (slice(0, ch), slice(h - ch, h)):
        for xs in (slice(0, cw), slice(w - cw, w)):
            out[ys, xs] = 128
    return out


def _marked(mark):
    """A non-manipulation mark of training's own kind, drawn the same way on every crop (a fixed seed)."""
    return lambda x: mark(x, np.random.default_rng(0))


LOOKS = {
    "original": lambda x: x,
    "grey": lambda x: np.repeat(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2),
    "hue+60": lambda x: _hue(x, 60),
    "darker": lambda x: _gamma(x, 1.6),
    "brighter": lambda x: _gamma(x, 0.6),
    "blur": lambda x: cv2.GaussianBlur(x, (0, 0), 1.2),
    "sharpen": _sharpen,
    "half-res": _half,
    "jpeg40": lambda x: sbi._jpeg(x, 40),  # the training degradation's own JPEG round trip
    "corners": _corners_masked,
    "inset": _marked(confounds.corner_inset),
    "caption": _marked(confounds.caption),
    "on-black": _marked(confounds.on_black),
}


def check(items: list[LabelledVideo], crops: list[np.ndarray], score: Callable[[list[np.ndarray]], np.ndarray],
          looks: list[str]) -> dict:
    """Per look: each clip's score, each (source, label) group's mean, and the AUC over all clips with faces."""
    used = [i for i in range(len(items)) if len(crops[i])]
    report = {"videos": len(items), "without_faces": [items[i].path for i in range(len(items)) if i not in used],
              "looks": {}}
    for look in looks:
        change = LOOKS[look]
        scores = {i: track_score(score([change(c) for c in crops[i]])) for i in used}
        groups: dict[str, list[float]] = {}
        for i in used:
            group = f"{items[i].source or '-'} ({'fake' if items[i].label else 'real'})"
            groups.setdefault(group, []).append(scores[i])
        y = [items[i].label for i in used]
        auc = float(roc_auc_score(y, [scores[i] for i in used])) if len(set(y)) == 2 else None
        report["looks"][look] = {"auc": auc, "groups": {g: float(np.mean(s)) for g, s in sorted(groups.items())},
                                 "scores": {items[i].path: scores[i] for i in used}}
    return report


def table(report: dict) -> str:
    looks = list(report["looks"])
    groups = list(report["looks"][looks[0]]["groups"])
    width = max(len(g) for g in groups + ["AUC (all clips)"])
    lines = [" " * width + "".join(f"{look:>10}" for look in looks)]
    for g in groups:
        lines.append(f"{g:<{width}}" + "".join(f"{report['looks'][lk]['groups'][g]:10.3f}" for lk in looks))
    aucs = [report["looks"][lk]["auc"] for lk in looks]
    cells = "".join(f"{a:10.3f}" if a is not None else f"{'-':>10}" for a in aucs)
    lines.append(f"{'AUC (all clips)':<{width}}" + cells)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="labelled videos, any layout `deepscreen bench` reads")
    ap.add_argument("--labels", help="labels CSV, when not DATA/labels.csv")
    ap.add_argument("--weights", default=str(default_weights()))
    ap.add_argument("--score", choices=("detector", "detail"), default="detector",
                    help="detail: score crops by fine detail alone, no model (crops cut with the weights' rule)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--looks", default=",".join(LOOKS), help=f"comma-separated, from: {', '.join(LOOKS)}")
    ap.add_argument("--workdir", default=str(ROOT / "cache" / "look_check"))
    ap.add_argument("--json", help="write the full report (every clip's score under every look) here")
    args = ap.parse_args(argv)
    logging.basicConfig(format="%(message)s")  # a clip that cannot be read is named on stderr
    looks = [s.strip() for s in args.looks.split(",") if s.strip()]
    unknown = [lk for lk in looks if lk not in LOOKS]
    if unknown:
        ap.error(f"unknown look(s): {', '.join(unknown)}")
    items = load_dataset(args.data, args.labels)
    # Scoring by detail needs only the crop rule: no ONNX export for it.
    detector = Detector.load(args.weights, device="auto", runtime="torch" if args.score == "detail" else "auto")
    crops = face_crops(items, args.frames, detector.profile.margin, detector.profile.input_size, Path(args.workdir))
    if args.score == "detail":
        report = check(items, crops, lambda cs: np.array([detail(c) for c in cs]), looks)
        report.update(score="detail", frames=args.frames)
        print(f"fine detail (no model): mean video detail per source under whole-crop changes ({len(items)} "
              f"videos, {args.frames} frames each)")
    else:
        report = check(items, crops, detector.score, looks)
        report.update(score="detector", weights=args.weights, weights_sha256=detector.sha256, frames=args.frames)
        print(f"{detector.profile.name} v{detector.profile.version}: mean video score per source under whole-crop "
              f"changes ({len(items)} videos, {args.frames} frames each)")
    print(table(report))
    if report["without_faces"]:
        print(f"no face found in {len(report['without_faces'])} video(s): " + ", ".join(report["without_faces"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
