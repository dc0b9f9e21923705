"""Train a detector on real faces with Self-Blended Images (SBI) as fakes, and on labelled real and fake video.

Three steps, each resumable:
1. cache: find faces in real images and videos with the same MTCNN and crop rule as inference, and store a
   context crop (twice the face) with its box and landmarks. Videos are also transcoded to low-quality
   variants (small MPEG-1, low-bitrate H.264) so that low quality is learnt as *real*. Labelled clips (any
   layout `deepscreen bench` reads) give the largest face in N evenly spaced frames each, cached clip by clip.
2. train: each batch holds (real, fake) pairs: a face and its self-blend, or, given labelled clips, a real
   and a fake face drawn evenly by source, method and clip (`BalancedSampler`). Both sides are degraded alike
   and carry the same non-manipulation marks (`confounds`), so neither quality nor a corner inset decides.
3. select: checkpoints are compared on a held-out split (by identity for photos, by video for clips) whose
   reals include the degraded video variants, and the best is exported as a deployable checkpoint.  Given a
   folder of labelled real and fake videos (`select_on`), checkpoints are chosen by video-level AUC on them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset

from . import autoencoder, media
from .aggregate import track_score
from .confounds import ON_BLACK_P, confound
from .datasets import LabelledVideo, load_dataset
from .clips import face_crops, fingerprint, largest_faces
from .faces import FaceFinder, crop_box, crop_face, detail
from .inputs import is_video_name
from .model import (KINDS, ModelError, ModelProfile, PatchNet, create_model, resolve_device, save_checkpoint,
                    sha256_file, truncate_state, widen_head)
from .sbi import degrade, make_pair

log = logging.getLogger("deepscreen.train")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CONTEXT_MARGIN = 1.0  # cached crops hold the face box enlarged by this much, so training can jitter the crop
CACHE_SIDE = 320
# Low-quality variants of each real video: (name, ffmpeg output options). GRID-like MPEG-1 and web-like H.264.
VIDEO_VARIANTS = {
    "mpeg1": {"vcodec": "mpeg1video", "b:v": "400k", "r": "25", "vf": "scale=360:-2"},
    "h264lo": {"vcodec": "libx264", "crf": "36", "preset": "veryfast", "vf": "scale=480:-2"},
    "small": {"vcodec": "libx264", "crf": "28", "preset": "veryfast", "vf": "scale=240:-2"},
}


# Labelled fake methods of ../shared/data/videos-train whose faces are blended into a filmed frame (swaps and
# reenactment, as self-blends are); any other method counts as generated whole. Used by kind networks only.
BLENDED_METHODS = ("DFDC", "DeepFaceLive", "DeeperForensics", "Deepfakes", "FF++", "GHOST", "UADFV", "inswapper",
                   "roop", "unknown")


@dataclass
class CachedFace:
    file: str  # relative to the cache folder
    group: str  # identity (photo) or video: the unit of the train/validation split
    kind: str  # "photo", "video" or "video-<variant>"
    box: list[float]  # in the cached crop's pixels
    landmarks: list[list[float]]
    label: int = 0  # 1: a face from a clip labelled fake (labelled clips only)
    source: str = ""
    method: str = ""


@dataclass
class TrainConfig:
    out: str
    run_dir: str = "runs/sbi"
    cache_dir: str = "cache/faces"
    arch: str = "mobilenet_v2"
    pretrained: str | None = None  # ImageNet weights for the backbone (torchvision's own file)
    input_size: int = 224
    margin: float = 0.3
    steps: int = 2200
    pairs_per_batch: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-4
    val_every: int = 250
    val_fraction: float = 0.12
    video_share: float = 0.5  # fraction of training pairs drawn from video faces (clean and degraded)
    frames_per_video: int = 40
    labelled: list[str] = field(default_factory=list)  # labelled real/fake clips (any layout bench reads)
    frames_per_clip: int = 16  # faces cached per labelled clip (the largest face in evenly spaced frames)
    sbi_share: float = 0.35  # with labelled clips: fraction of pairs that are self-blended instead
    recon_share: float = 0.0  # fraction of pairs that are a real face and its reconstruction (taken from the labelled)
    autoencoder: str | None = None  # the latent autoencoder that makes those reconstructions (deepscreen.autoencoder)
    exclude_methods: list[str] = field(default_factory=list)  # fake methods left out (leave-one-out runs)
    exclude_sources: list[str] = field(default_factory=list)  # sources left out, reals and fakes (cross-validation)
    blended_methods: list[str] = field(default_factory=lambda: list(BLENDED_METHODS))  # the rest: generated
    match_detail: bool = False  # blur the sharper face of each labelled pair down to the other's fine detail
    same_source: float = 0.0  # chance that a labelled fake is paired with a real of its own source (PairDataset)
    on_black: float = ON_BLACK_P  # chance that a training face (real or fake) is shown on black
    occlude: float = 0.0  # chance that a training face (real or fake) has part of it hidden (confounds.occlusion)
    source_adversary: float = 0.0  # strength of the push against guessing a face's source (SourceAdversary); 0: off
    adversary_objective: str = "confuse"  # how the backbone is pushed: "confuse" or "reverse" (SourceAdversary)
    label_smoothing: float = 0.0  # detection targets moved this far toward 0.5 (smooth_targets); 0: hard 0 and 1
    sharpness: float = 0.0  # SAM's radius: each step's gradient is taken at the worst weights this near (ascend); 0: off
    probe_steps: int = 0  # the first N steps train only the head(s), the backbone frozen with its statistics (LP-FT)
    init: str | None = None  # start from a deepscreen checkpoint instead of ImageNet weights
    freeze: int = 0  # the first N blocks of the backbone's `features` keep their starting weights
    anchor: float = 0.0  # pull toward the starting weights each step, as a fraction of the lr (pull_toward); 0: off
    seed: int = 0
    workers: int | None = None  # data loader processes; None: 1 on a CPU, all cores but two on a GPU
    device: str = "auto"  # "auto": the GPU when torch sees one, else the CPU
    bf16: bool | None = None  # None: on a CPU only where it runs bf16 natively (native_bf16); on a GPU where supported
    ema_decay: float = 0.995  # validate and export an exponential moving average of the weights (0: raw weights)
    select_on: str | None = None  # labelled videos (any layout `deepscreen bench` reads) to choose checkpoints on
    select_frames: int = 8  # frames per video scored when choosing
    name: str = "deepscreen-sbi-mnv2"


# -- 1. cache ---------------------------------------------------------------------------------------------

def _largest(faces):
    return max(faces, key=lambda f: f.size) if faces else None


def _store(cache: Path, rel: str, image: np.ndarray, face, group: str, kind: str) -> CachedFace:
    """Save the context crop around a face, with box and landmarks moved into the crop's pixels."""
    h, w = image.shape[:2]
    x0, y0, side = crop_box(face.box, CONTEXT_MARGIN, w, h)
    crop = image[y0:y0 + side, x0:x0 + side]
    k = min(1.0, CACHE_SIDE / side)
    if k < 1.0:
        crop = cv2.resize(crop, (round(side * k), round(side * k)), interpolation=cv2.INTER_AREA)
    path = cache / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    box = (face.box - [x0, y0, x0, y0]) * k
    lms = (face.landmarks - [x0, y0]) * k
    return CachedFace(rel, group, kind, [round(float(v), 2) for v in box],
                      [[round(float(a), 2), round(float(b), 2)] for a, b in lms])


def _cache_photos(paths: list[str], cache: Path, finder: FaceFinder) -> list[CachedFace]:
    out = []
    by_size: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for p in paths:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        if img is None:
            continue
        by_size.setdefault(img.shape, []).append((p, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)))
        if len(by_size[img.shape]) >= 32:
            out += _detect_photos(by_size.pop(img.shape), cache, finder)
    for batch in by_size.values():
        out += _detect_photos(batch, cache, finder)
    return out


def _detect_photos(batch: list[tuple[str, np.ndarray]], cache: Path, finder: FaceFinder) -> list[CachedFace]:
    found = finder.find([im for _, im in batch], [0.0] * len(batch))
    out = []
    for (p, im), faces in zip(batch, found):
        face = _largest(faces)
        if face is not None:
            stem = Path(p).stem.split(".")[0]
            out.append(_store(cache, f"photos/{_file_key(p)}.jpg", im, face, group=f"photo:{stem}", kind="photo"))
    return out


def _file_key(path: str) -> str:
    """A cache name for one input file: its stem, made unique by its path (two folders may both hold 000.mp4)."""
    return f"{Path(path).stem}-{hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:8]}"


def _cache_video(path: str, cache: Path, finder: FaceFinder, frames: int) -> list[CachedFace]:
    stem, key = Path(path).stem, _file_key(path)
    out = []
    sources = [(path, "video")]
    for variant, opts in VIDEO_VARIANTS.items():
        dst = cache / "variants" / f"{key}.{variant}.{'mpg' if variant == 'mpeg1' else 'mp4'}"
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                media.transcode(path, str(dst), **opts)
            except media.MediaError as e:
                log.warning("skipping the %s variant of %s: %s", variant, path, e.message)
                continue
        sources.append((str(dst), f"video-{variant}"))
    for src, kind in sources:
        try:
            info = media.probe(src)
            times = media.sample_times(info, frames=frames)
            decoded = list(media.read_frames(src, info, times))
        except media.MediaError as e:
            log.warning("skipping %s: %s", src, e.message)
            continue
        found = finder.find([f.image for f in decoded], [f.t for f in decoded])
        for frame, faces in zip(decoded, found):
            face = _largest(faces)
            if face is not None:
                out.append(_store(cache, f"videos/{key}/{kind}_{frame.index:03d}.jpg", frame.image, face,
                                  group=f"video:{stem}", kind=kind))
    return out


def build_cache(inputs: list[str], cache_dir: str, frames_per_video: int = 40, device: str = "cpu") -> list[CachedFace]:
    """Find and store faces from folders of photos and videos.

    The index is keyed by the files found (path and content) and the frame count, so the same inputs reuse it
    and other inputs get their own (faces stored by an earlier build are reused only through an index).
    """
    cache = Path(cache_dir)
    photos, videos = [], []
    for root in inputs:
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    photos.append(p)
                elif is_video_name(f):
                    videos.append(p)
    what = [frames_per_video, *([os.path.abspath(p), *fingerprint(p)] for p in sorted(photos + videos))]
    index = cache / f"index-{hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]}.jsonl"
    if index.exists():
        return [CachedFace(**json.loads(line)) for line in index.read_text().splitlines()]
    finder = FaceFinder(device=device, min_face=40)
    log.info("caching faces from %d photos and %d videos into %s", len(photos), len(videos), cache)
    records = _cache_photos(sorted(photos), cache, finder)
    for v in sorted(videos):
        records += _cache_video(v, cache, finder, frames_per_video)
        log.info("cached %s (%d faces so far)", v, len(records))
    tmp = index.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))
    os.replace(tmp, index)
    return records


def _clip_key(path: str) -> str:
    return hashlib.sha256(json.dumps([os.path.abspath(path), *fingerprint(path)]).encode()).hexdigest()[:16]


def cache_labelled(items: list[LabelledVideo], cache_dir: str, frames: int, device: str = "cpu") -> list[CachedFace]:
    """The largest face in `frames` evenly spaced frames of each labelled clip, with its label, source and method.

    Cached clip by clip (keyed by path, fingerprint and frame count), so an interrupted run
    carries on where it stopped; a clip that cannot be read or shows no face gives no faces and a warning.
    """
    cache = Path(cache_dir)
    finder = None
    out = []
    for n, it in enumerate(items):
        key = f"{_clip_key(it.path)}-{frames}"
        index = cache / "labelled" / key / "faces.json"
        if not index.exists():
            finder = finder or FaceFinder(device=device, min_face=40)
            records = []
            for frame, face in largest_faces(it.path, frames, finder):
                r = _store(cache, f"labelled/{key}/{frame.index:03d}.jpg", frame.image, face,
                           group=f"clip:{key}", kind="labelled")
                r.label, r.source, r.method = it.label, it.source, it.method
                records.append(r)
            if not records:
                log.warning("no face found in %s", it.path)
            index.parent.mkdir(parents=True, exist_ok=True)
            tmp = index.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps([asdict(r) for r in records]))
            os.replace(tmp, index)
            log.info("cached %d faces of labelled clip %d/%d %s", len(records), n + 1, len(items), it.path)
        out += [CachedFace(**r) for r in json.loads(index.read_text())]
    return out


class BalancedSampler:
    """Draws labelled faces so that no source or generator dominates.

    Reals: a source uniformly, then a clip of it, then a face of the clip. Fakes: a method (the generator or
    manipulation) uniformly, then a clip, then a face. A source with 30 clips thus weighs as much as one with
    one clip; within a clip every face is as likely, whatever the clip's length.
    """

    def __init__(self, records: list[CachedFace]):
        self.tree: dict[int, list[list[list[CachedFace]]]] = {}
        self.reals_by_source: dict[str, list[list[CachedFace]]] = {}
        for label in (0, 1):
            groups: dict[str, dict[str, list[CachedFace]]] = {}
            for r in records:
                if r.label == label:
                    by = (r.method or "unknown") if label else (r.source or "unknown")
                    groups.setdefault(by, {}).setdefault(r.group, []).append(r)
            self.tree[label] = [list(clips.values()) for _, clips in sorted(groups.items())]
            if label == 0:
                self.reals_by_source = {source: list(clips.values()) for source, clips in groups.items()}

    def has(self, label: int) -> bool:
        return bool(self.tree[label])

    def draw(self, rng: np.random.Generator, label: int) -> CachedFace:
        return _face_of(self.tree[label][rng.integers(len(self.tree[label]))], rng)

    def draw_real_of(self, rng: np.random.Generator, source: str) -> CachedFace | None:
        """A real face of this source (a clip, then a face), or None where the source has no real clips."""
        clips = self.reals_by_source.get(source or "unknown")
        return _face_of(clips, rng) if clips else None


def _face_of(clips: list[list[CachedFace]], rng: np.random.Generator) -> CachedFace:
    faces = clips[rng.integers(len(clips))]
    return faces[rng.integers(len(faces))]


def split(records: list[CachedFace], fraction: float, seed: int) -> tuple[list[CachedFace], list[CachedFace]]:
    """Hold out whole groups (an identity, or a video with all its variants)."""
    rng = random.Random(seed)
    val_groups = set()
    for prefix in ("photo:", "video:"):
        groups = sorted({r.group for r in records if r.group.startswith(prefix)})
        rng.shuffle(groups)
        val_groups.update(groups[: max(1, round(len(groups) * fraction))] if groups else [])
    train = [r for r in records if r.group not in val_groups]
    val = [r for r in records if r.group in val_groups]
    return train, val


# -- 2. train ---------------------------------------------------------------------------------------------

def load_cached(cache: Path, r: CachedFace) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(cache / r.file), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def labelled_example(image: np.ndarray, r: CachedFace, rng: np.random.Generator, size: int,
                     margin: float) -> np.ndarray:
    """A labelled face as a training input: the inference crop (margin jittered), degraded as SBI pairs are."""
    crop = crop_face(degrade(image, rng), np.asarray(r.box, np.float32), margin * rng.uniform(0.8, 1.25), size)
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def matched_examples(real: np.ndarray, a: CachedFace, fake: np.ndarray, b: CachedFace, rng: np.random.Generator,
                     size: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """A real and a fake face cut with one crop jitter and flip, then degraded by one draw.

    The crops are cut first so that both have the same shape and every random draw of `degrade` (its noise
    included) is shared: the pair differs in the faces only, not in what happened to them afterwards.
    """
    seed = int(rng.integers(2 ** 63))
    out = []
    for image, r in ((real, a), (fake, b)):
        g = np.random.default_rng(seed)
        crop = crop_face(image, np.asarray(r.box, np.float32), margin * g.uniform(0.8, 1.25), size)
        out.append(degrade(np.ascontiguousarray(crop[:, ::-1] if g.random() < 0.5 else crop), g))
    return out[0], out[1]


BLUR_SIGMAS = (0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0)


def match_detail(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blur the sharper crop of a pair until its fine detail is no more than the other's (or the blur runs out).

    Why: the labelled fakes are mostly large, sharp faces and the reals come at every resolution, so in
    training sharpness alone separates the classes (and ranks select at AUC 0.76 with no model at all; see
    weights/README.md). Within a pair of equal detail it cannot decide.
    """
    da, db = detail(a), detail(b)
    if da == db:
        return a, b
    sharp_is_a = da > db
    sharp, target = (a, db) if sharp_is_a else (b, da)
    for sigma in BLUR_SIGMAS:
        blurred = cv2.GaussianBlur(sharp, (0, 0), sigma)
        if detail(blurred) <= target:
            break
    return (blurred, b) if sharp_is_a else (a, blurred)


def make_example(image: np.ndarray, r: CachedFace, rng: np.random.Generator, size: int, margin: float,
                 train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One (real, fake) pair of detector inputs, cut with the inference crop rule (margin jittered in training)."""
    lms = np.asarray(r.landmarks, np.float32)
    real, fake = make_pair(image, lms, rng)
    box = np.asarray(r.box, np.float32)
    m = margin * rng.uniform(0.8, 1.25) if train else margin
    real, fake = crop_face(real, box, m, size), crop_face(fake, box, m, size)
    if train and rng.random() < 0.5:
        real, fake = real[:, ::-1], fake[:, ::-1]
    return np.ascontiguousarray(real), np.ascontiguousarray(fake)


UNLABELLED_REALS = "(unlabelled real faces)"  # the real inputs that are not labelled clips: one source of their own


@dataclass
class Domains:
    """Where a training face came from: reals by source, labelled fakes by method (each class numbered apart)."""

    real: list[str]
    fake: list[str]

    @classmethod
    def of(cls, labelled: list[CachedFace]) -> "Domains":
        return cls(real=sorted({r.source or "unknown" for r in labelled if r.label == 0}) + [UNLABELLED_REALS],
                   fake=sorted({r.method or "unknown" for r in labelled if r.label == 1}))

    def index(self, r: CachedFace) -> int:
        if r.label:
            return self.fake.index(r.method or "unknown")
        return self.real.index(r.source or "unknown") if r.kind == "labelled" else len(self.real) - 1


class _Reversed(torch.autograd.Function):
    """Identity forward; the gradient flows back multiplied by -strength (Ganin and Lempitsky, ICML 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.strength * grad, None


ADVERSARY_OBJECTIVES = ("confuse", "reverse")


class SourceAdversary(nn.Module):
    """Two linear heads on the pooled features: which real source a real face is from, which method a fake is from.

    Why: the detector's false alarms are whole real sources (a webcam, an interview, low-resolution crops) and its
    misses whole generators, i.e. it reads how a source looks. The heads learn to tell sources apart within a
    class while the backbone is pushed against them, so that the features that survive say whether a face is real,
    not where it came from (domain-adversarial training, class by class). Two pushes: "reverse" sends the heads'
    gradient back negated (Ganin and Lempitsky 2015), which can also be won by making the heads confidently wrong,
    and "confuse" asks the backbone for features on which the heads are uniformly unsure (Tzeng et al. 2015).
    """

    def __init__(self, width: int, domains: Domains, objective: str = "confuse"):
        super().__init__()
        if objective not in ADVERSARY_OBJECTIVES:
            raise ValueError(f"unknown adversary objective {objective!r}; known: {', '.join(ADVERSARY_OBJECTIVES)}")
        self.objective = objective
        self.real = nn.Linear(width, len(domains.real))
        self.fake = nn.Linear(width, max(1, len(domains.fake)))

    def forward(self, features: torch.Tensor, y: torch.Tensor, domain: torch.Tensor,
                strength: float) -> tuple[torch.Tensor, dict]:
        """The loss to add to the detector's (heads and push together) and how often each head guessed right (as
        tensors: reading them is left to the log, every few steps, so that a GPU is not waited on every step)."""
        reverse = self.objective == "reverse"
        f = _Reversed.apply(features, strength) if reverse else features.detach()
        loss, acc = features.new_zeros(()), {}
        for name, head, label in (("real", self.real, 0), ("fake", self.fake, 1)):
            keep = (y == label) & (domain >= 0)
            if not keep.any():
                continue
            logits = head(f[keep])
            loss = loss + nn.functional.cross_entropy(logits, domain[keep])
            acc[name] = (logits.argmax(1) == domain[keep]).float().mean().detach()
            if not reverse:  # the heads held still: only the features move toward a uniform guess
                guess = nn.functional.linear(features[keep], head.weight.detach(), head.bias.detach())
                loss = loss - strength * guess.log_softmax(1).mean()
        return loss, acc


def adversary_strength(progress: float, top: float) -> float:
    """DANN's ramp from 0 to `top` over training (2 / (1 + exp(-10 p)) - 1): the heads learn before they push."""
    return top * (2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0)


class PairDataset(Dataset):
    """Draws (real, fake) pairs, each side with the same chance of non-manipulation marks.

    A pair is self-blended from one real face (photos and video faces mixed at `video_share`; given labelled
    clips, half the time a labelled real face drawn by source); or, with probability `recon_share`, such a real
    face and its reconstruction by a latent autoencoder (`recon_example`); or, given labelled clips, a labelled
    real and a labelled fake face drawn by `BalancedSampler`. With probability `same_source`, a labelled fake
    whose source also has real clips (the real half of a swap demo, a generator's own driving videos) is paired
    with a real of that source instead, both cut and degraded alike (`matched_examples`), so that within such a
    pair cameras, production and quality are alike and only the manipulation tells them apart.
    """

    def __init__(self, records: list[CachedFace], cache: str, size: int, margin: float, length: int,
                 video_share: float, seed: int, labelled: list[CachedFace] = (), sbi_share: float = 1.0,
                 blended_methods: tuple[str, ...] = BLENDED_METHODS, same_detail: bool = False,
                 on_black: float = ON_BLACK_P, occlude: float = 0.0, recon_share: float = 0.0,
                 autoencoder_path: str | None = None, same_source: float = 0.0):
        if recon_share and not autoencoder_path:
            raise ValueError("a reconstruction share needs an autoencoder (--autoencoder)")
        self.cache = Path(cache)
        self.photos = [r for r in records if r.kind == "photo"]
        self.videos = [r for r in records if r.kind != "photo"]
        self.size, self.margin, self.length = size, margin, length
        self.video_share = video_share if self.videos and self.photos else float(bool(self.videos))
        self.sampler = BalancedSampler(list(labelled))
        both = self.sampler.has(0) and self.sampler.has(1)
        self.sbi_share = sbi_share if both else 1.0 - recon_share
        self.recon_share = recon_share
        self.autoencoder_path = autoencoder_path
        self._ae = None  # loaded on first use, in the process that draws the pairs
        self.seed = seed
        self.blended = set(blended_methods)
        self.same_detail = same_detail
        self.same_source = same_source
        self.on_black = on_black
        self.occlude = occlude
        self.domains = Domains.of(list(labelled))

    def __len__(self) -> int:
        return self.length

    def _sbi_face(self, rng: np.random.Generator) -> CachedFace:
        if self.sampler.has(0) and (not (self.photos or self.videos) or rng.random() < 0.5):
            return self.sampler.draw(rng, 0)
        pool = self.videos if rng.random() < self.video_share else self.photos
        return pool[rng.integers(len(pool))]

    def recon_example(self, r: CachedFace, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A real face and its reconstruction, then the same degradation, crop and flip for both (one seed), so
        that the pair differs only by what the decoder did to the pixels; and the sharper of the two blurred down
        to the other's fine detail (`match_detail`), because a small decoder also softens the face and "soft
        means fake" is a cue that real low-resolution video would pay for."""
        if self._ae is None:
            self._ae = autoencoder.load(self.autoencoder_path)
        image = load_cached(self.cache, r)
        decoded = autoencoder.reconstruct(self._ae, image)
        seed = int(rng.integers(2 ** 63))
        return match_detail(labelled_example(image, r, np.random.default_rng(seed), self.size, self.margin),
                            labelled_example(decoded, r, np.random.default_rng(seed), self.size, self.margin))

    def __getitem__(self, i: int):
        """(real, fake) crops, their labels (0, 1), the fake's kind (an index into `model.KINDS`) and the pair's
        domains (`Domains.index`: the real's source, the fake's method; -1 for a self-blended or decoded fake)."""
        rng = np.random.default_rng([self.seed, i])
        draw = rng.random()
        if draw < self.sbi_share:
            r = self._sbi_face(rng)
            real, fake = make_example(load_cached(self.cache, r), r, rng, self.size, self.margin)
            kind = KINDS.index("blended")
            domains = [self.domains.index(r), -1]
        elif draw < self.sbi_share + self.recon_share:
            r = self._sbi_face(rng)
            real, fake = self.recon_example(r, rng)
            kind = KINDS.index("generated")
            domains = [self.domains.index(r), -1]
        else:
            a, b = self.sampler.draw(rng, 0), self.sampler.draw(rng, 1)
            own = self.sampler.draw_real_of(rng, b.source) if self.same_source and rng.random() < self.same_source \
                else None
            if own is None:
                real = labelled_example(load_cached(self.cache, a), a, rng, self.size, self.margin)
                fake = labelled_example(load_cached(self.cache, b), b, rng, self.size, self.margin)
            else:
                a = own
                real, fake = matched_examples(load_cached(self.cache, a), a, load_cached(self.cache, b), b, rng,
                                              self.size, self.margin)
            if self.same_detail:
                real, fake = match_detail(real, fake)
            kind = KINDS.index("blended" if b.method in self.blended else "generated")
            domains = [self.domains.index(a), self.domains.index(b)]
        pair = np.stack([confound(real, rng, self.on_black, self.occlude),
                         confound(fake, rng, self.on_black, self.occlude)])
        return torch.from_numpy(pair), torch.tensor([0.0, 1.0]), kind, torch.tensor(domains)


class Normalize(nn.Module):
    """uint8 NHWC -> normalised float NCHW, inside the graph so the loader ships bytes."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float()
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def native_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated, ~9x slower.

    torch's kernels must use AVX512 (`get_cpu_capability`), and the CPU must list a bf16 instruction set.
    """
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class Compute:
    """Where training runs and in which autocast precision (`dtype` None: fp32)."""

    device: torch.device
    dtype: torch.dtype | None = None

    @classmethod
    def choose(cls, device: str = "auto", bf16: bool | None = None) -> "Compute":
        """The CPU in bf16 only where it runs bf16 natively; a GPU in bf16 where it has it, else fp16.

        Why fp16 on older GPUs rather than fp32: mixed precision is most of a GPU's training speed, and fp16
        with loss scaling (see `scaler`) trains MobileNetV2 as well. `bf16=False` on a GPU means fp16.
        """
        try:
            dev = resolve_device(device)
        except ModelError as e:
            raise ValueError(str(e)) from e
        if dev.type == "cuda":
            use_bf16 = torch.cuda.is_bf16_supported() if bf16 is None else bf16
            return cls(dev, torch.bfloat16 if use_bf16 else torch.float16)
        if dev.type != "cpu":
            raise ValueError(f"training runs on the CPU or a CUDA GPU, not {device!r}")
        return cls(dev, torch.bfloat16 if (native_bf16() if bf16 is None else bf16) else None)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def scaler(self) -> torch.amp.GradScaler:
        """Loss scaling, on for fp16 only (its gradients underflow without it; bf16 has fp32's range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def put(self, x: torch.Tensor) -> torch.Tensor:
        """A batch onto the device; from pinned memory (the loader's, on a GPU) the copy overlaps compute."""
        return x.to(self.device, non_blocking=True)

    def loader_workers(self, asked: int | None) -> int:
        """Data loader processes: one beside the training process on a CPU, whose cores the model needs; on a GPU
        every core but two, because making the self-blends and degradations is then the slow part."""
        if asked is not None:
            return asked
        return max(1, len(os.sched_getaffinity(0)) - 2) if self.device.type == "cuda" else 1

    def __str__(self) -> str:
        return f"{self.device.type} {str(self.dtype).removeprefix('torch.') if self.dtype else 'fp32'}"


CPU = Compute(torch.device("cpu"))


def _backbone(cfg: TrainConfig) -> nn.Module:
    model = create_model(cfg.arch)
    if cfg.init:
        ckpt = torch.load(cfg.init, map_location="cpu", weights_only=True)
        arch, state = ckpt.get("profile", {}).get("arch"), ckpt["state_dict"]
        if arch == "mobilenet_v2" and cfg.arch == "mobilenet_v2_kinds":
            state = widen_head(state, len(KINDS))
        elif arch == "mobilenet_v2" and isinstance(model, PatchNet):  # the head starts new
            model.load_state_dict({**model.state_dict(), **truncate_state(state, PatchNet.cut)}, strict=True)
            return model
        elif arch != cfg.arch:
            raise ValueError(f"{cfg.init} is not a {cfg.arch} deepscreen checkpoint")
        model.load_state_dict(state, strict=True)
    elif cfg.pretrained:
        state = torch.load(cfg.pretrained, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("classifier.1.")}
        if isinstance(model, PatchNet):
            state = truncate_state(state, PatchNet.cut)
        missing, unexpected = model.load_state_dict(state, strict=False)
        head = "classifier." if isinstance(model, PatchNet) else "classifier.1."
        if unexpected or any(not k.startswith(head) for k in missing):
            raise ValueError(f"{cfg.pretrained} does not fit {cfg.arch}: missing {missing}, unexpected {unexpected}")
    return model


def freeze_blocks(model: nn.Module, n: int) -> None:
    """Keep the first `n` feature blocks at their starting weights (their batch-norm statistics still adapt).

    Why: fine-tuning on a hundred fake clips moves the low-level filters toward those sources' looks (version 5
    lost most of version 3's face-swap ranking on dev); fixed early blocks keep the self-blend filters. On our
    data that did not bring the swaps back (weights/README.md, "early blocks frozen").
    """
    if n <= 0:
        return
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or n > len(features):
        raise ValueError(f"--freeze {n}: this architecture has "
                         f"{len(features) if isinstance(features, nn.Sequential) else 'no'} feature blocks")
    for p in features[:n].parameters():
        p.requires_grad_(False)


def pooled_logits(model: nn.Module, x: torch.Tensor, probing: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A MobileNetV2's logits and the pooled features they come from (what the source adversary reads).

    With `probing` the backbone runs without gradients and with its batch statistics held, so only the head
    learns: the linear probe of LP-FT (Kumar et al., ICLR 2022). Fine-tuning from a head that does not fit the new
    labels yet bends the starting features toward them in the first steps, which is where out-of-distribution
    accuracy is lost in that paper; a head fitted first asks less of the features. On our clips it ranked held-out
    sources worse: a head fitted on version 3's features reads the training sources' looks (weights/README.md, "LP-FT").
    """
    model.features.train(model.training and not probing)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not probing):
        features = model.features(x).mean((2, 3))
    return model.classifier(features).float(), features


@torch.no_grad()
def ascend(params: list[torch.Tensor], rho: float) -> list[torch.Tensor | None]:
    """Move the weights `rho` along their gradient (SAM's first step, Foret et al., ICLR 2021); returns the moves.

    The step's gradient is then taken there: a minimum whose loss stays low within `rho` of it (a flat one) is
    preferred, which in several domain-generalisation studies ranks unseen domains better than a sharp one. The
    move is the gradient's direction only, so a loss scaler's factor does not change it; a gradient that is not
    finite (a scaled-loss overflow) moves nothing and leaves the scaler to skip the step. Written here rather than
    taken from a wrapper optimiser: those keep AdamW's moments out of their state (resume) and know no scaler.
    """
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
    if not torch.isfinite(norm):
        return [None] * len(params)
    moves = [None if p.grad is None else p.grad * (rho / (norm + 1e-12)) for p in params]
    for p, e in zip(params, moves):
        if e is not None:
            p.add_(e)
    return moves


@torch.no_grad()
def descend(params: list[torch.Tensor], moves: list[torch.Tensor | None]) -> None:
    """Undo `ascend`: the optimiser then steps from the weights it had, with the gradient taken at the moved ones."""
    for p, e in zip(params, moves):
        if e is not None:
            p.sub_(e)


@contextmanager
def held_norm_statistics(model: nn.Module):
    """Batch-norm layers normalise by the batch but do not update their running statistics (momentum 0): SAM's
    second pass sees the same batch again, through moved weights, and should not count it twice."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    kept = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, k in zip(norms, kept):
            m.momentum = k


@torch.no_grad()
def pull_toward(params: list[torch.Tensor], start: list[torch.Tensor], amount: float) -> None:
    """Move each weight `amount` of the way back to its starting value (L2-SP, Li et al. 2018, decoupled as
    AdamW decouples weight decay): fine-tuning may go where the labelled clips lead, at a price for leaving
    what the start knew (version 3 detects face swaps that labelled training forgets)."""
    for p, p0 in zip(params, start):
        p.lerp_(p0, amount)


@torch.no_grad()
def _outputs(model: nn.Module, head, norm: Normalize, x: np.ndarray, compute: Compute = CPU,
             batch: int = 64) -> np.ndarray:
    """`head` (the model, or one of its methods) over uint8 crops in batches, in eval mode: float outputs."""
    model.eval()
    out = []
    for s in range(0, len(x), batch):
        with compute.autocast():
            out.append(head(norm(compute.put(torch.from_numpy(x[s:s + batch])))).float().cpu().numpy())
    model.train()
    return np.concatenate(out)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits))).numpy()


def choose_scored(model: nn.Module, norm: Normalize, clips: list[np.ndarray], labels: list[int],
                  compute: Compute = CPU) -> tuple[list[int], dict[str, float]]:
    """How a kind network should score, chosen by video AUC on labelled clips: every kind's max, or one kind.

    Why: a head can rank unseen material better than the max of both, whose false alarms add up (on select, the
    blended head rose on real faces that the generated head left low). Ties go to every kind.
    """
    per_clip = [_outputs(model, model.kinds, norm, c, compute) for c in clips]
    ways = [list(range(len(KINDS)))] + [[i] for i in range(len(KINDS))]
    aucs = {}
    for way in ways:
        scores = [track_score(_sigmoid(k[:, way].max(1))) for k in per_clip]
        aucs["+".join(KINDS[i] for i in way)] = float(roc_auc_score(labels, scores))
    best = max(ways, key=lambda w: aucs["+".join(KINDS[i] for i in w)])  # first of equals: every kind
    return best, aucs


def _predict(model: nn.Module, norm: Normalize, x: np.ndarray, compute: Compute) -> np.ndarray:
    return _sigmoid(_outputs(model, model, norm, x, compute).flatten())


def validation_set(val: list[CachedFace], cache: str, size: int, margin: float, seed: int, limit: int = 600):
    """Fixed (real, fake) pairs from held-out groups; reals include the degraded video variants."""
    rng = np.random.default_rng(seed + 1)
    photos = [r for r in val if r.kind == "photo"]
    videos = [r for r in val if r.kind != "photo"]
    pick = [pool[i] for pool in (photos, videos) if pool
            for i in sorted(rng.choice(len(pool), min(len(pool), limit // 2), replace=False))]
    reals, fakes, kinds = [], [], []
    for r in pick:
        real, fake = make_example(load_cached(Path(cache), r), r, rng, size, margin, train=False)
        reals.append(real)
        fakes.append(fake)
        kinds.append(r.kind)
    return np.stack(reals), np.stack(fakes), kinds


def evaluate(scores_real: np.ndarray, scores_fake: np.ndarray, kinds: list[str]) -> dict:
    """Held-out metrics: AUC overall and on video faces, and how often degraded real video looks fake."""
    y = np.r_[np.zeros(len(scores_real)), np.ones(len(scores_fake))]
    is_video = np.array([k != "photo" for k in kinds])
    degraded = np.array([k.startswith("video-") for k in kinds])
    m = {"auc": float(roc_auc_score(y, np.r_[scores_real, scores_fake]))}
    if is_video.any():
        m["auc_video"] = float(roc_auc_score(np.r_[np.zeros(is_video.sum()), np.ones(is_video.sum())],
                                             np.r_[scores_real[is_video], scores_fake[is_video]]))
    if degraded.any():
        m["real_degraded_mean"] = float(scores_real[degraded].mean())
        m["real_degraded_fpr"] = float((scores_real[degraded] >= 0.5).mean())
    m["real_mean"] = float(scores_real.mean())
    # Selection score: ranking quality, counting video faces (the target domain) as much as photos.
    m["select"] = (m["auc"] + m.get("auc_video", m["auc"])) / 2
    return m


def smooth_targets(y: torch.Tensor, eps: float) -> torch.Tensor:
    """Targets 0 and 1 moved to eps/2 and 1 - eps/2 (label smoothing, Szegedy et al. 2016).

    Why: with hard targets the loss keeps rewarding ever larger logits on faces that are already easy, and on these
    clips what makes a face easy is often how its source looks; smoothed targets stop that push at a finite logit.
    """
    return y * (1 - eps) + eps / 2


def kind_loss(logits: torch.Tensor, y: torch.Tensor, kind: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """BCE per kind: a real face is neither kind; a fake is its own kind, and says nothing about the other.

    `logits` is (2B, kinds) for B (real, fake) pairs in order; `kind` (B,) is each fake's kind. Why not "not the
    other kind": a generated head pasted back into its frame has a blend boundary too.
    """
    target = smooth_targets(y, eps).expand_as(logits).clone()
    weight = torch.ones_like(logits)
    fakes = y.flatten() == 1
    weight[fakes] = nn.functional.one_hot(kind, logits.shape[1]).to(weight.dtype)
    return nn.functional.binary_cross_entropy_with_logits(logits, target, weight, reduction="sum") / weight.sum()


def load_recipe(run_dir: str) -> tuple[TrainConfig, list[str]]:
    """A run's settings and inputs as its config.json recorded them: the recipe to train again (leave-one-out and
    cross-validation runs); settings newer than the run take their defaults."""
    setup = json.loads((Path(run_dir) / "config.json").read_text())
    inputs = setup.pop("inputs")
    return TrainConfig(**{f.name: setup[f.name] for f in fields(TrainConfig) if f.name in setup}), inputs


def _check_same_run(run: Path, setup: dict) -> None:
    """Refuse to resume a run that was started with other settings or data.

    Why: every run defaults to the same run folder, and resuming someone else's half-trained model under new
    settings would silently mix two recipes (and export to the wrong file).
    """
    if not (run / "last.pt").exists() or not (run / "config.json").exists():
        return
    before = json.loads((run / "config.json").read_text())
    ignore = {"workers", "device"}  # do not change what is trained: a run started on a CPU may go on on a GPU
    # Only what the run recorded is compared: runs started by older versions recorded less.
    diff = sorted(k for k in before if k not in ignore and setup.get(k) != before[k])
    if diff:
        changes = "; ".join(f"{k}: {before.get(k)!r} -> {setup.get(k)!r}" for k in diff)
        raise ValueError(f"{run} holds a run started with other settings ({changes}); "
                         f"pass another --run-dir, or delete {run} to start over")


def selection_clips(select_on: str, frames: int, margin: float, size: int,
                    cache_dir: str) -> tuple[list[np.ndarray], list[int]]:
    """Face crops and labels of the labelled videos to choose checkpoints on (clips without a face left out)."""
    items = load_dataset(select_on)
    crops = face_crops(items, frames, margin, size, Path(cache_dir) / "select")
    used = [i for i, c in enumerate(crops) if len(c)]
    labels = [items[i].label for i in used]
    if len(set(labels)) < 2:
        raise ValueError(f"{select_on}: choosing checkpoints needs real and fake videos with faces "
                         f"({labels.count(0)} real, {labels.count(1)} fake found)")
    log.info("choosing checkpoints on %d labelled videos (%d fake, %d real; %d without a face left out)",
             len(used), sum(labels), len(labels) - sum(labels), len(items) - len(used))
    return [crops[i] for i in used], labels


def labelled_clips(roots: list[str], exclude_methods: list[str] = (), select_on: str | None = None,
                   exclude_sources: list[str] = ()) -> list[LabelledVideo]:
    """The labelled training clips, less the excluded methods' fakes and the excluded sources' clips; refuses any
    clip of the selection set."""
    items = [it for root in roots for it in load_dataset(root)
             if not (it.label and it.method in exclude_methods) and it.source not in exclude_sources]
    if select_on:
        chosen_on = {fingerprint(it.path) for it in load_dataset(select_on)}
        both = [it.path for it in items if fingerprint(it.path) in chosen_on]
        if both:
            raise ValueError(f"{len(both)} training clip(s) are also in the selection set {select_on} "
                             f"(first: {both[0]}); checkpoints must be chosen on clips never trained on")
    return items


def train(cfg: TrainConfig, inputs: list[str]) -> dict:
    """Cache faces, train on SBI pairs (and labelled clips), keep the best checkpoint by held-out score; resumable."""
    if cfg.probe_steps and (cfg.arch != "mobilenet_v2" or cfg.probe_steps >= cfg.steps):
        raise ValueError("--probe-steps needs --arch mobilenet_v2, and fewer probe steps than --steps")
    if cfg.recon_share and not (cfg.autoencoder and os.path.isfile(cfg.autoencoder)):
        raise ValueError("--recon-share needs --autoencoder, a file written by scripts/train_autoencoder.py")
    if cfg.recon_share + (cfg.sbi_share if cfg.labelled else 0.0) > 1.0:
        raise ValueError("--recon-share and --sbi-share together exceed 1")
    torch.manual_seed(cfg.seed)
    compute = Compute.choose(cfg.device, cfg.bf16)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    setup = {**asdict(cfg), "inputs": [os.path.abspath(p) for p in inputs]}
    _check_same_run(run, setup)
    (run / "config.json").write_text(json.dumps(setup, indent=2))
    # First, with the chooser: inputs that cannot work fail fast.
    labelled_items = labelled_clips(cfg.labelled, cfg.exclude_methods, cfg.select_on, cfg.exclude_sources)
    chooser = (selection_clips(cfg.select_on, cfg.select_frames, cfg.margin, cfg.input_size, cfg.cache_dir)
               if cfg.select_on else None)
    records = build_cache(inputs, cfg.cache_dir, cfg.frames_per_video, compute.device)
    labelled = cache_labelled(labelled_items, cfg.cache_dir, cfg.frames_per_clip, compute.device)
    tr, va = split(records, cfg.val_fraction, cfg.seed)
    log.info("faces: %d train, %d validation (%d groups held out); %d labelled (%d fake); training on %s",
             len(tr), len(va), len({r.group for r in va}), len(labelled), sum(r.label for r in labelled), compute)
    vx_real, vx_fake, vkinds = validation_set(va, cfg.cache_dir, cfg.input_size, cfg.margin, cfg.seed)

    names = [os.path.basename(os.path.normpath(p)) for p in inputs + cfg.labelled]
    profile = ModelProfile(name=cfg.name, arch=cfg.arch, input_size=cfg.input_size, margin=cfg.margin,
                           extra={"method": "SBI + labelled video" if labelled else "SBI", "train_inputs": names})
    if cfg.arch == "mobilenet_v2_kinds":
        profile.extra["kinds"] = {"names": list(KINDS), "blended_methods": list(cfg.blended_methods)}
    if cfg.match_detail:
        profile.extra["match_detail"] = True
    if cfg.on_black != ON_BLACK_P:
        profile.extra["on_black"] = cfg.on_black
    if cfg.occlude:
        profile.extra["occlude"] = cfg.occlude
    if cfg.source_adversary:
        profile.extra["source_adversary"] = {"strength": cfg.source_adversary, "objective": cfg.adversary_objective}
    if cfg.label_smoothing:
        profile.extra["label_smoothing"] = cfg.label_smoothing
    if cfg.sharpness:
        profile.extra["sharpness"] = cfg.sharpness
    if cfg.probe_steps:
        profile.extra["probe_steps"] = cfg.probe_steps
    if cfg.recon_share:
        profile.extra["reconstructions"] = {"share": cfg.recon_share, "autoencoder": os.path.basename(cfg.autoencoder),
                                            "autoencoder_sha256": sha256_file(cfg.autoencoder)}
    if cfg.exclude_methods:
        profile.extra["excluded_methods"] = list(cfg.exclude_methods)
    if cfg.exclude_sources:
        profile.extra["excluded_sources"] = list(cfg.exclude_sources)
    if cfg.init:
        profile.extra["init"] = os.path.basename(cfg.init)
    if cfg.freeze:
        profile.extra["frozen_blocks"] = cfg.freeze
    if cfg.anchor:
        profile.extra["anchor"] = cfg.anchor
    if cfg.select_on:
        profile.extra["chosen_on_videos"] = os.path.basename(os.path.normpath(cfg.select_on))
    model = _backbone(cfg).to(compute.device, memory_format=torch.channels_last)
    freeze_blocks(model, cfg.freeze)
    # Why an average: checkpoints a few hundred steps apart score held-out pairs alike but real video from
    # unseen sources very differently (weights/README.md); averaging the weights over the last few hundred
    # steps is the usual way to damp such step-to-step variation.
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True) if cfg.ema_decay else None
    norm = Normalize(profile.mean, profile.std).to(compute.device)
    scaler = compute.scaler()
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    start = [p.detach().clone() for p in groups[0]["params"]] if cfg.anchor else None  # before any resume
    adversary = None
    patches = isinstance(model, PatchNet)
    if cfg.source_adversary:
        classifier = getattr(model, "classifier", None)
        if not isinstance(classifier, nn.Sequential) or not labelled:
            raise ValueError("--source-adversary needs --labelled clips and a MobileNetV2 architecture")
        width = PatchNet.width if patches else classifier[-1].in_features
        adversary = SourceAdversary(width, Domains.of(labelled),
                                    cfg.adversary_objective).to(compute.device)
        # The heads learn at the backbone's rate: at ten times it (tried) their guesses swung from batch to batch
        # and the push followed noise (weights/README.md, "a source adversary").
        groups.append({"params": list(adversary.parameters()), "lr": cfg.lr})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=cfg.steps,
                                                pct_start=0.05)
    step, best = 0, {"select": -1.0}
    last = run / "last.pt"
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])  # moves the optimiser's state to the parameters' device
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        sched.load_state_dict(state["sched"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if adversary is not None:
            adversary.load_state_dict(state["adversary"])
        step, best = state["step"], json.loads(state["best"])
        log.info("resumed at step %d (best so far %.4f)", step, best["select"])

    data = PairDataset(tr, cfg.cache_dir, cfg.input_size, cfg.margin, cfg.steps * cfg.pairs_per_batch,
                       cfg.video_share, cfg.seed, labelled, cfg.sbi_share, tuple(cfg.blended_methods),
                       cfg.match_detail, cfg.on_black, cfg.occlude, cfg.recon_share, cfg.autoencoder,
                       cfg.same_source)
    order = list(range(step * cfg.pairs_per_batch, len(data)))
    workers = compute.loader_workers(cfg.workers)
    loader = DataLoader(torch.utils.data.Subset(data, order), batch_size=cfg.pairs_per_batch,
                        num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=compute.device.type == "cuda")
    loss_fn = nn.BCEWithLogitsLoss()
    by_kind = hasattr(model, "kinds")
    logf = open(run / "log.jsonl", "a")
    t0, seen = time.monotonic(), 0
    model.train()
    no_adversary = torch.zeros((), device=compute.device)

    def losses(x: torch.Tensor, y: torch.Tensor, kind: torch.Tensor, domain: torch.Tensor):
        """This batch's detection loss (the one logged), the adversary's loss and its accuracies."""
        adv_loss, adv_acc = no_adversary, {}
        probing = step < cfg.probe_steps
        with compute.autocast():
            if patches:  # every central patch is asked for its face's label
                logits, features = model.patches(norm(x))
                logits, y = logits.float(), y.expand(-1, logits.shape[1])
                if adversary is not None:
                    adv_loss, adv_acc = adversary(features.float(), y[:, 0], compute.put(domain.flatten()),
                                                  adversary_strength(step / cfg.steps, cfg.source_adversary))
            elif adversary is not None or probing:
                logits, features = pooled_logits(model, norm(x), probing)
                if adversary is not None:  # while probing its heads learn too; the push reaches no backbone yet
                    strength = 0.0 if probing else adversary_strength(step / cfg.steps, cfg.source_adversary)
                    adv_loss, adv_acc = adversary(features.float(), y.flatten(), compute.put(domain.flatten()),
                                                  strength)
            else:
                logits = model.kinds(norm(x)).float() if by_kind else model(norm(x)).float()
            loss = (kind_loss(logits, y, kind, cfg.label_smoothing) if by_kind
                    else loss_fn(logits, smooth_targets(y, cfg.label_smoothing)))
        return loss, adv_loss, adv_acc

    trainable = [p for g in groups for p in g["params"]]
    for x, y, kind, domain in loader:
        x, y, kind = compute.put(x.flatten(0, 1)), compute.put(y.flatten().unsqueeze(1)), compute.put(kind)
        loss, adv_loss, adv_acc = losses(x, y, kind, domain)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss + adv_loss).backward()
        if cfg.sharpness:
            moves = ascend(trainable, cfg.sharpness)
            opt.zero_grad(set_to_none=True)
            with held_norm_statistics(model):
                moved_loss, moved_adv_loss, _ = losses(x, y, kind, domain)
                scaler.scale(moved_loss + moved_adv_loss).backward()
            descend(trainable, moves)
        scaler.step(opt)
        scaler.update()
        if start is not None:
            pull_toward(groups[0]["params"], start, min(1.0, cfg.anchor * sched.get_last_lr()[0]))
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        seen += len(x)
        if step % 25 == 0:
            rate = seen / (time.monotonic() - t0)
            logf.write(json.dumps({"step": step, "loss": round(loss.item(), 4), "img_s": round(rate, 1),
                                   "lr": sched.get_last_lr()[0],
                                   **({"adversary_loss": round(adv_loss.item(), 4)} if adversary is not None else {}),
                                   **{f"adversary_acc_{k}": round(v.item(), 3) for k, v in adv_acc.items()}}) + "\n")
            logf.flush()
        if step % cfg.val_every == 0 or step == cfg.steps:
            final = ema.module if ema is not None else model
            m = evaluate(_predict(final, norm, vx_real, compute), _predict(final, norm, vx_fake, compute), vkinds)
            if chooser is not None and by_kind:
                scored, aucs = choose_scored(final, norm, *chooser, compute)
                m.update({f"auc_select_videos_{k}": v for k, v in aucs.items()})
                m["auc_select_videos"] = m["select"] = max(aucs.values())
            elif chooser is not None:
                clips, labels = chooser
                video_scores = [track_score(_predict(final, norm, c, compute)) for c in clips]
                m["auc_select_videos"] = float(roc_auc_score(labels, video_scores))
                m["select"] = m["auc_select_videos"]
            m["step"] = step
            logf.write(json.dumps({"val": m}) + "\n")
            logf.flush()
            log.info("step %d: %s", step, {k: round(v, 4) for k, v in m.items()})
            if m["select"] > best["select"]:
                best = m
                if chooser is not None and by_kind:
                    profile.extra["kinds"]["scored"] = [KINDS[i] for i in scored]
                save_checkpoint(cfg.out, final, profile)
                save_checkpoint(run / f"best_step{step}.pt", final, profile)
            if step == cfg.steps:  # the last step's weights, whichever step was chosen: for averaging runs at one step
                save_checkpoint(run / "final.pt", final, profile)
            tmp = run / "last.pt.tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "ema": ema.state_dict() if ema is not None else None, "scaler": scaler.state_dict(),
                        "adversary": adversary.state_dict() if adversary is not None else None,
                        "step": step, "best": json.dumps(best)}, tmp)
            os.replace(tmp, last)
    logf.close()
    return best
