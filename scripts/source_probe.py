"""How much does a detector's face representation still say about where a face came from?  A linear probe.

    .venv/bin/python scripts/source_probe.py WEIGHTS [WEIGHTS...] [--cache cache/faces] [--per-clip 6] [--json OUT]

A detector that reads how a source looks (its camera, codec, resolution) rather than manipulation has features
from which the source can be read off. This script takes the labelled faces that `deepscreen train --labelled`
cached (CACHE/labelled/*/faces.json, with each clip's label, source and method), cuts them with each
checkpoint's own crop rule, takes the pooled features in front of its classifier, and fits a multinomial
logistic regression that guesses the source of real faces (and, apart, the method of fake faces). Clips are
held out whole (grouped 5-fold, sources and methods with fewer than 2 clips left out), so the probe has to
recognise a source in clips it has not seen. It prints the balanced accuracy of each guess beside chance.
`deepscreen train --source-adversary` is meant to lower the first number without lowering the detector's AUC.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import balanced_accuracy_score  # noqa: E402
from sklearn.model_selection import StratifiedGroupKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from deepscreen.faces import crop_face  # noqa: E402
from deepscreen.model import Detector  # noqa: E402
from deepscreen.training import CachedFace, load_cached  # noqa: E402


def cached_faces(cache: Path, per_clip: int) -> list[dict]:
    """Up to `per_clip` evenly spread faces of every cached labelled clip."""
    out = []
    for index in sorted(cache.glob("labelled/*/faces.json")):
        faces = json.loads(index.read_text())
        if faces:
            out += [faces[i] for i in np.unique(np.linspace(0, len(faces) - 1, per_clip).round().astype(int))]
    return out


@torch.no_grad()
def features(weights: str, faces: list[dict], cache: Path) -> np.ndarray:
    det = Detector.load(weights, device="cpu", runtime="torch")
    p, out = det.profile, []
    for s in range(0, len(faces), 64):
        crops = []
        for f in faces[s:s + 64]:
            image = load_cached(cache, CachedFace(**f))
            crops.append(crop_face(image, np.asarray(f["box"], np.float32), p.margin, p.input_size))
        out.append(det.model.features(det.to_tensor(crops)).mean((2, 3)).numpy())
    return np.concatenate(out)


def probe(x: np.ndarray, target: list[str], groups: list[str]) -> tuple[float, float, int]:
    """Balanced accuracy of guessing `target` on held-out clips, chance, and how many classes took part."""
    target, groups = np.asarray(target), np.asarray(groups)
    clips = {c: set(groups[target == c]) for c in set(target)}
    keep = np.isin(target, [c for c, g in clips.items() if len(g) >= 2])
    x, target, groups = x[keep], target[keep], groups[keep]
    guess = np.empty(len(target), dtype=object)
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    for train, test in folds.split(x, target, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        guess[test] = model.fit(x[train], target[train]).predict(x[test])
    classes = len(set(target))
    return float(balanced_accuracy_score(target, guess.astype(str))), 1.0 / classes, classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--cache", default="cache/faces")
    ap.add_argument("--per-clip", type=int, default=6)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    cache = Path(args.cache)
    faces = cached_faces(cache, args.per_clip)
    if not faces:
        sys.exit(f"no labelled faces cached under {cache}: run `deepscreen train --labelled` first")
    real = [i for i, f in enumerate(faces) if f["label"] == 0]
    fake = [i for i, f in enumerate(faces) if f["label"] == 1]
    results = {}
    for w in args.weights:
        x = features(w, faces, cache)
        results[w] = {}
        for name, rows, key in (("real source", real, "source"), ("fake method", fake, "method")):
            acc, chance, n = probe(x[rows], [faces[i][key] for i in rows], [faces[i]["group"] for i in rows])
            results[w][name] = {"balanced_accuracy": round(acc, 3), "chance": round(chance, 3), "classes": n}
            print(f"{w}: {name}: balanced accuracy {acc:.3f} over {n} classes (chance {chance:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
