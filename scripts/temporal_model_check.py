"""Does a learnt temporal model beat a learnt per-frame one? Trained on labelled clips, chosen on one set, reported on others.

    .venv/bin/python scripts/temporal_model_check.py TRAIN_DIR SELECT_DIR [REPORT_DIR ...] --weights FILE
        [--frames 16] [--json OUT]

The issue behind it (#14) asks for "a small temporal model over per-frame features" against the mean of the top
half of the face scores. Per clip, the largest face in --frames evenly spaced frames (TRAIN_DIR's from the cache
`deepscreen train` keeps; the others found and cached here) goes through --weights' backbone; its features
pooled at four depths, as `deepscreen fit-heads` uses them (PCA to --dims, fitted on TRAIN_DIR), are what every
model below sees. Each model is trained on
TRAIN_DIR's clips, weighted so that every real source and every fake method counts alike (as
`deepscreen train` samples), its regularisation chosen by video AUC on SELECT_DIR; REPORT_DIRs are only scored.

- frame: a logistic regression on single faces; the clip's score is the mean of the top half of its faces'
  (what scan does with the detector's own scores). Time plays no part: the control.
- mean+spread: one logistic regression per clip on the mean of its faces' features and their spread over time
  (standard deviation): how much the face changes across the clip.
- mean+steps: the mean and the mean absolute change between consecutive faces (order matters).
- gru: a one-layer GRU over the faces in time order, its last state to a logit.

Use a backbone that never trained on TRAIN_DIR (the self-blend-only version 3): features of a network fitted to
those very clips separate them perfectly and teach the models nothing about new ones.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from deepscreen.aggregate import track_score  # noqa: E402
from deepscreen.clips import face_crops  # noqa: E402
from deepscreen.datasets import load_dataset  # noqa: E402
from deepscreen.heads import face_weights, fit_head, load_tapnet, pooled_features, training_crops  # noqa: E402
from deepscreen.training import cache_labelled  # noqa: E402

MARGIN, SIZE = 0.3, 224  # the crop of every detector here (and of `deepscreen fit-heads`)
# A clip: its faces' features in time order, its label, and its faces' training weights (None outside training).
Clip = tuple[np.ndarray, int, np.ndarray | None]
# Regularisation tried, chosen on SELECT_DIR: C of the logistic regressions (smaller: stronger), the GRU's weight decay.
STRENGTHS = {"logistic": (0.001, 0.01, 0.1, 1.0), "gru": (0.01, 0.1, 1.0)}


def training_clips(train_dir: str, backbone, frames: int, cache_dir: str) -> list[Clip]:
    """TRAIN_DIR's clips from the training face cache, in time order, weighted as `deepscreen fit-heads` weighs."""
    records = cache_labelled(load_dataset(train_dir), cache_dir, frames)
    feats = pooled_features(backbone, training_crops(records, cache_dir, MARGIN, SIZE))
    weights = face_weights(records)
    by_clip: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_clip[r.group].append(i)
    out = []
    for idx in by_clip.values():
        idx.sort(key=lambda i: records[i].file)
        out.append((feats[idx], records[idx[0]].label, weights[idx]))
    return out


def other_clips(data_dir: str, backbone, frames: int, workdir: str) -> list[Clip]:
    items = load_dataset(data_dir)
    crops = face_crops(items, frames, MARGIN, SIZE, Path(workdir))
    return [(pooled_features(backbone, c), it.label, None) for it, c in zip(items, crops) if len(c) >= 2]


def summary(f: np.ndarray, how: str) -> np.ndarray:
    spread = f.std(0) if how == "mean+spread" else np.abs(np.diff(f, axis=0)).mean(0)
    return np.concatenate([f.mean(0), spread])


def fit_frame(train: list[Clip], c: float):
    x = np.concatenate([f for f, _, _ in train])
    y = np.concatenate([[label] * len(f) for f, label, _ in train])
    head = fit_head(x, y, np.concatenate([w for _, _, w in train]), c)
    return lambda f: track_score(1 / (1 + np.exp(-head.logits(f))))


def fit_summary(train: list[Clip], c: float, how: str):
    x = np.stack([summary(f, how) for f, _, _ in train])
    head = fit_head(x, np.asarray([label for _, label, _ in train]), np.asarray([w.sum() for _, _, w in train]), c)
    return lambda f: float(head.logits(summary(f, how)[None])[0])


class _Gru(torch.nn.Module):
    def __init__(self, dims: int, hidden: int = 16):
        super().__init__()
        self.gru = torch.nn.GRU(dims, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, 1)

    def forward(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        packed = torch.nn.utils.rnn.pack_sequence(seqs, enforce_sorted=False)  # clips differ in faces found
        return self.out(self.gru(packed)[1][-1]).squeeze(1)


def fit_gru(train: list[Clip], decay: float, epochs: int = 60, seed: int = 0):
    torch.manual_seed(seed)
    every = np.concatenate([f for f, _, _ in train])
    mean, std = every.mean(0), every.std(0) + 1e-6

    def seqs(clips) -> list[torch.Tensor]:
        return [torch.tensor((f - mean) / std, dtype=torch.float32) for f in clips]

    net = _Gru(train[0][0].shape[1])
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=decay)
    x = seqs([f for f, _, _ in train])
    y = torch.tensor([float(label) for _, label, _ in train])
    w = torch.tensor([wt.sum() for _, _, wt in train], dtype=torch.float32)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(train)), max(1, len(train) // 32)):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                net([x[i] for i in batch]), y[batch], weight=w[batch] / w[batch].sum(), reduction="sum")
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return lambda f: float(net(seqs([f])).detach()[0])


def fit(name: str, train: list[Clip], strength: float):
    if name == "frame":
        return fit_frame(train, strength)
    if name == "gru":
        return fit_gru(train, strength)
    return fit_summary(train, strength, name)


MODELS = ("frame", "mean+spread", "mean+steps", "gru")


def auc(score, clips: list[Clip]) -> float:
    return float(roc_auc_score([label for _, label, _ in clips], [score(f) for f, _, _ in clips]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_dir")
    ap.add_argument("select_dir")
    ap.add_argument("report_dirs", nargs="*")
    ap.add_argument("--weights", required=True,
                    help="a MobileNetV2 backbone that never trained on TRAIN_DIR (a deepscreen checkpoint or "
                         "torchvision's ImageNet file)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--dims", type=int, default=32, help="PCA dimensions of the pooled features")
    ap.add_argument("--cache-dir", default=str(ROOT / "cache" / "faces"), help="`deepscreen train`'s face cache")
    ap.add_argument("--workdir", default=str(ROOT / "cache" / "temporal_check"))
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)
    try:
        backbone = load_tapnet(args.weights)
    except ValueError as e:
        ap.error(str(e))
    train = training_clips(args.train_dir, backbone, args.frames, args.cache_dir)
    sets = {Path(d).name: other_clips(d, backbone, args.frames, args.workdir) for d in [args.select_dir, *args.report_dirs]}
    pca = PCA(args.dims, random_state=0).fit(np.concatenate([f for f, _, _ in train]))

    def reduce(clips: list[Clip]) -> list[Clip]:
        return [(pca.transform(f), label, w) for f, label, w in clips]

    train, sets = reduce(train), {k: reduce(v) for k, v in sets.items()}
    select = Path(args.select_dir).name
    table = {}
    for name in MODELS:
        tried = {s: fit(name, train, s) for s in STRENGTHS["gru" if name == "gru" else "logistic"]}
        best = max(tried, key=lambda s: auc(tried[s], sets[select]))
        table[name] = {"strength": best} | {k: auc(tried[best], v) for k, v in sets.items()}
    print(f"video AUC; trained on {Path(args.train_dir).name} ({len(train)} clips), strength chosen on {select}")
    print(f"{'model':<14}{'strength':>10}" + "".join(f"{k:>14}" for k in sets))
    for name, row in table.items():
        print(f"{name:<14}{row['strength']:>10}" + "".join(f"{row[k]:14.3f}" for k in sets))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
