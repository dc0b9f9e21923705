"""Fit linear heads on frozen backbones and join them into a committee detector.

Why: fine-tuning the whole network on a hundred fake clips learns those generators; a linear head on frozen
features is the usual way to generalise further, and it takes minutes on a CPU, not an hour. What it did here is
in weights/README.md ("Tried and not shipped"): strong on `select/`, weak on `dev/`, where frozen ImageNet features
read clean face-centred real video as generated. Check any committee on clips it was not chosen on.

Each member's logit is standardised on the training reals (mean 0, spread 1), so that neither member's scale
decides, and the committee's logit is the members' mean. All of it is folded into the members' linear layers:
the saved checkpoint is an ordinary `model.Committee` that scan, ONNX export and the GPU path run as is.
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .aggregate import track_score
from .faces import crop_face
from .model import FORMAT, Committee, ModelProfile, TapNet, save_checkpoint
from .training import CachedFace, cache_labelled, labelled_clips, load_cached, selection_clips

log = logging.getLogger("deepscreen.heads")
MEAN, STD = ModelProfile.mean, ModelProfile.std  # ImageNet's, as every backbone here was trained


@dataclass
class Member:
    backbone: str  # a deepscreen mobilenet_v2 checkpoint, or torchvision's ImageNet mobilenet_v2 file
    c: float  # inverse L2 strength of the logistic head: smaller leans towards the class-mean direction


def load_tapnet(path: str) -> TapNet:
    """A TapNet whose feature layers come from `path` (its head is left to be fitted)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and state.get("format") == FORMAT:
        if state["profile"]["arch"] != "mobilenet_v2":
            raise ValueError(f"{path}: a backbone must be a mobilenet_v2 checkpoint, not {state['profile']['arch']}")
        state = state["state_dict"]
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    net = TapNet()
    try:
        net.features.load_state_dict(features, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} holds no MobileNetV2 feature layers: {e}") from e
    return net.eval()


@torch.no_grad()
def pooled_features(net: TapNet, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """N x H x W x 3 uint8 crops -> N x TAP_FEATURES, normalised as the detector normalises."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD).view(1, 3, 1, 1) * 255
    out = [net.pooled((torch.from_numpy(crops[s:s + batch]).permute(0, 3, 1, 2).float() - mean) / std).numpy()
           for s in range(0, len(crops), batch)]
    return np.concatenate(out) if out else np.zeros((0, net.head.in_features), np.float32)


def face_weights(records: list[CachedFace]) -> np.ndarray:
    """Each real source and each fake method weighs the same, each clip the same within it; classes half each.

    The weights `training.BalancedSampler` draws with, for a fit that sees every face at once.
    """
    by = [(r.label, (r.method or "unknown") if r.label else (r.source or "unknown")) for r in records]
    clips: dict[tuple, set] = {}
    for r, b in zip(records, by):
        clips.setdefault(b, set()).add(r.group)
    faces = Counter(r.group for r in records)
    w = np.array([1.0 / len(clips[b]) / faces[r.group] for r, b in zip(records, by)])
    y = np.array([r.label for r in records])
    for label in (0, 1):
        if (y == label).any():
            w[y == label] /= w[y == label].sum()
    return w / 2


@dataclass
class Head:
    """A linear head in raw feature space, and its logit's mean and spread on the training reals."""
    coef: np.ndarray
    bias: float
    real_mean: float
    real_std: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef + self.bias

    def z(self, x: np.ndarray) -> np.ndarray:
        return (self.logits(x) - self.real_mean) / self.real_std


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, c: float) -> Head:
    """L2 logistic regression on standardised features (weighted by `w`), folded back into raw feature space."""
    if len(set(y.tolist())) < 2:
        raise ValueError("fitting a head needs real and fake faces")
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=5000).fit((x - mu) / sd, y, sample_weight=w * len(y))
    coef = clf.coef_[0] / sd
    bias = float(clf.intercept_[0] - coef @ mu)
    real = x[y == 0] @ coef + bias
    return Head(coef, bias, float(real.mean()), float(real.std() + 1e-6))


def build_committee(nets: list[TapNet], heads: list[Head]) -> Committee:
    """Fold each head, its standardisation and its 1/n share into its member's linear layer."""
    committee = Committee(len(nets))
    n = len(nets)
    for member, net, h in zip(committee.members, nets, heads):
        member.features.load_state_dict(net.features.state_dict())
        member.head.weight.data = torch.from_numpy(h.coef / (n * h.real_std)).float().view(1, -1)
        member.head.bias.data = torch.tensor([(h.bias - h.real_mean) / (n * h.real_std)], dtype=torch.float32)
    return committee.eval()


def training_crops(records: list[CachedFace], cache_dir: str, margin: float, size: int) -> np.ndarray:
    """The cached labelled faces cut with the inference crop rule, undegraded."""
    return np.stack([crop_face(load_cached(Path(cache_dir), r), np.asarray(r.box, np.float32), margin, size)
                     for r in records])


def fit(members: list[Member], labelled: list[str], out: str, cache_dir: str = "cache/faces",
        frames_per_clip: int = 16, select_on: str | None = None, select_frames: int = 8,
        exclude_methods: list[str] = (), margin: float = 0.3, size: int = 224,
        name: str = "deepscreen-committee") -> dict:
    """Fit every member's head on the labelled clips' faces, save the committee; report select AUCs if given."""
    items = labelled_clips(labelled, list(exclude_methods), select_on)
    records = cache_labelled(items, cache_dir, frames_per_clip)
    y = np.array([r.label for r in records])
    w = face_weights(records)
    crops = training_crops(records, cache_dir, margin, size)
    log.info("fitting %d head(s) on %d faces (%d fake) of %d clips", len(members), len(records), int(y.sum()),
             len({r.group for r in records}))
    chooser = selection_clips(select_on, select_frames, margin, size, cache_dir) if select_on else None
    nets, heads, report = [], [], {"members": []}
    select_z = []
    for m in members:
        net = load_tapnet(m.backbone)
        head = fit_head(pooled_features(net, crops), y, w, m.c)
        nets.append(net)
        heads.append(head)
        row = {"backbone": os.path.basename(m.backbone), "c": m.c}
        if chooser is not None:
            clips, labels = chooser
            select_z.append([head.z(pooled_features(net, c)) for c in clips])
            row["select_auc"] = _video_auc(labels, select_z[-1])
        report["members"].append(row)
        log.info("member %s", json.dumps(row))
    if chooser is not None:
        report["select_auc"] = _video_auc(chooser[1], [np.mean(z, 0) for z in zip(*select_z)])
        log.info("committee: select AUC %.4f", report["select_auc"])
    profile = ModelProfile(name=name, arch="mobilenet_v2_taps" if len(members) == 1 else "mobilenet_v2_taps_x2",
                           input_size=size, margin=margin, mean=MEAN, std=STD,
                           extra={"method": "linear heads on frozen backbones (committee)",
                                  "train_inputs": [os.path.basename(os.path.normpath(p)) for p in labelled],
                                  "heads": report["members"]})
    if exclude_methods:
        profile.extra["excluded_methods"] = list(exclude_methods)
    if select_on:
        profile.extra["chosen_on_videos"] = os.path.basename(os.path.normpath(select_on))
    save_checkpoint(out, build_committee(nets, heads), profile)
    return report


def _video_auc(labels: list[int], face_z: list[np.ndarray]) -> float:
    """Video AUC with scan's aggregation: the mean of the top half of each clip's face scores."""
    return float(roc_auc_score(labels, [track_score(1 / (1 + np.exp(-z))) for z in face_z]))
