"""Does a stricter first MTCNN stage find the same faces for less? Whole-frame searches compared on real clips.

    .venv/bin/python scripts/face_search_check.py DIR [DIR ...] [--frames 8] [--first-stage 0.6,0.7,0.8]

For every video under the folders (any layout `deepscreen bench` reads, or plain folders of clips), `--frames`
evenly spaced frames are searched whole (as scan's early passes do) by FaceFinders that differ only in the
first-stage (P-Net) threshold of MTCNN; fewer first-stage candidates mean fewer crops for the later stages,
which is where most of MTCNN's CPU time goes. Printed per threshold: the seconds spent searching, and the faces
the first threshold found that it did not (a face is the same when the boxes overlap at IoU >= 0.7), those it
found that the first did not, and, over the faces both found, the largest change of the detector's score on the
face's crop (`--weights`, default the shipped detector): a video's score moves by no more than that.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deepscreen import media  # noqa: E402
from deepscreen.datasets import load_dataset  # noqa: E402
from deepscreen.faces import FaceFinder, crop_face, iou  # noqa: E402
from deepscreen.inputs import iter_inputs  # noqa: E402
from deepscreen.model import Detector, default_weights  # noqa: E402


def _videos(folder: str) -> list[str]:
    try:
        return [it.path for it in load_dataset(folder)]
    except ValueError:  # not a labelled layout: every video in it
        return list(iter_inputs([folder]))


def _unmatched(a: list, b: list) -> int:
    return sum(1 for f in a if not any(iou(f.box, g.box) >= 0.7 for g in b))


def _score_change(image, ref: list, other: list, detector: Detector) -> float:
    """The largest change of a face's score between its box in `ref` and its match in `other`."""
    size, margin = detector.profile.input_size, detector.profile.margin
    pairs = [(f, max(other, key=lambda g: iou(f.box, g.box))) for f in ref if other]
    pairs = [(f, g) for f, g in pairs if iou(f.box, g.box) >= 0.7]
    if not pairs:
        return 0.0
    scores = detector.score([crop_face(image, face.box, margin, size) for pair in pairs for face in pair])
    return float(abs(scores[0::2] - scores[1::2]).max())


def compare(paths: list[str], frames: int, thresholds: list[float], detector: Detector) -> list[dict]:
    finders = []
    for t in thresholds:
        finder = FaceFinder()
        finder.mtcnn.thresholds = [t, *finder.mtcnn.thresholds[1:]]
        finders.append(finder)
    rows = [{"first_stage": t, "seconds": 0.0, "faces": 0, "missed": 0, "new": 0, "score_change": 0.0}
            for t in thresholds]
    for path in paths:
        try:
            info = media.probe(path)
            images = [f.image for f in media.read_frames(path, info, media.sample_times(info, frames))]
        except media.MediaError:
            continue
        for start in range(0, len(images), finders[0].batch_size):
            chunk = images[start:start + finders[0].batch_size]
            found = []
            for finder, row in zip(finders, rows):
                t0 = time.perf_counter()
                found.append(finder._detect(chunk))
                row["seconds"] += time.perf_counter() - t0
            for faces, row in zip(found, rows):
                for image, ref, other in zip(chunk, found[0], faces):
                    row["faces"] += len(other)
                    row["missed"] += _unmatched(ref, other)
                    row["new"] += _unmatched(other, ref)
                    row["score_change"] = max(row["score_change"], _score_change(image, ref, other, detector))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--frames", type=int, default=8, help="frames searched whole per video (default 8)")
    ap.add_argument("--first-stage", default="0.6,0.7,0.8", help="P-Net thresholds; the first is the reference")
    ap.add_argument("--weights", default=str(default_weights()))
    args = ap.parse_args(argv)
    paths = [p for folder in args.folders for p in _videos(folder)]
    detector = Detector.load(args.weights, device="cpu")
    rows = compare(paths, args.frames, [float(x) for x in args.first_stage.split(",")], detector)
    print(f"{len(paths)} videos, {args.frames} frames each, searched whole")
    for row in rows:
        print(f"  first stage {row['first_stage']:.2f}: {row['seconds']:7.1f} s, {row['faces']} faces, "
              f"{row['missed']} of the reference's missed, {row['new']} not in the reference, "
              f"largest change of a face's score {row['score_change']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
