"""Set a detector's default threshold from labelled clips: at most a given share of real clips flagged.

A score is only a verdict once someone has chosen where "fake" starts, and that choice must be made on real
video like the video to be screened, with the pipeline's own settings. `calibrate` screens a labelled set with
the scan pipeline (through `bench`, so it resumes and leaves the same reports), takes the lowest threshold
that flags no more than `max_fpr` of its real clips, and writes it into the checkpoint's profile with a
record of how it was chosen. Every later scan with those weights uses it unless `--threshold` says otherwise.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Any

from .bench import _labelled_scores, bench_items, thresholds_at_fpr
from .datasets import load_dataset
from .model import update_profile


def calibrate(weights: str, dataset: str, out_dir: str, screener: Any, max_fpr: float = 0.05,
              labels: str | None = None, progress: Any = None) -> dict[str, Any]:
    """Screen `dataset`, choose the threshold, write it into `weights`; returns the calibration record."""
    items = load_dataset(dataset, labels)
    metrics, results = bench_items(items, out_dir, screener, progress)
    labels_scored, scores, _ = _labelled_scores(items, results)
    y, s = labels_scored.tolist(), scores.tolist()
    if len(set(y)) < 2:
        raise ValueError(f"{dataset}: calibrating needs scored real and fake clips "
                         f"({y.count(0)} real, {y.count(1)} fake scored)")
    key = f"{max_fpr:g}"
    thr, tpr = thresholds_at_fpr(y, s, [max_fpr])
    if thr[key] is None:
        raise ValueError(f"no threshold flags at most {max_fpr:.0%} of the {y.count(0)} real clips: "
                         "the highest-scoring real clip already scores as high as any fake")
    threshold = thr[key]
    flagged = sum(1 for label, score in zip(y, s) if label == 0 and score >= threshold)
    record = {
        "set": os.path.basename(os.path.normpath(dataset)),
        "max_fpr": max_fpr,
        "threshold": threshold,
        "reals": y.count(0),
        "fakes": y.count(1),
        "reals_flagged": flagged,
        "fakes_caught": round(tpr[key] * y.count(1)),
        "auc": metrics["auc"],
        "frames": screener.frames,
        "detect_every": screener.faces.detect_every,
        "early_exit": screener.early_exit,
        "date": datetime.date.today().isoformat(),
    }
    update_profile(weights, threshold=threshold, calibration=record)
    with open(os.path.join(out_dir, "calibration.json"), "w", encoding="utf-8") as out:
        json.dump(record, out, indent=2)
    return record
