"""Labelled clips to face crops: the largest face in N evenly spaced frames, cut as inference cuts it.

Used where many models or checkpoints are scored on the same clips (choosing a training checkpoint on
labelled videos, `scripts/look_check.py`): finding faces is the slow part, so it is done once and cached.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from . import media
from .aggregate import track_score
from .datasets import LabelledVideo
from .faces import Face, FaceFinder, crop_face
from .model import Detector

log = logging.getLogger("deepscreen.clips")


def fingerprint(path: str) -> tuple[int, str]:
    """A file's size and the hash of its first MiB: what a clip holds, whenever it was copied.

    Caches are keyed by it (with the path) rather than by modification time, so a data set copied afresh to
    the same place keeps its faces.
    """
    with open(path, "rb") as fh:
        return os.path.getsize(path), hashlib.sha256(fh.read(1 << 20)).hexdigest()


def largest_faces(path: str, frames: int, finder: FaceFinder) -> list[tuple[media.Frame, Face]]:
    """The largest face in each of `frames` evenly spaced frames of a clip; frames without a face are left out.

    A clip that cannot be read gives none, with a warning, so one bad file does not stop a batch.
    """
    try:
        info = media.probe(path)
        sampled = list(media.read_frames(path, info, media.sample_times(info, frames=frames)))
    except media.MediaError as e:
        log.warning("skipped %s: %s", path, e.message)
        return []
    found = finder.find([f.image for f in sampled], [f.t for f in sampled]) if sampled else []
    return [(frame, max(faces, key=lambda f: f.size)) for frame, faces in zip(sampled, found) if faces]


def face_crops(items: list[LabelledVideo], frames: int, margin: float, size: int, cache: Path) -> list[np.ndarray]:
    """Per clip, the largest face per sampled frame as size x size RGB crops (N x size x size x 3 uint8).

    Cached in `cache`, keyed by the files' paths and fingerprints and by the settings; a clip
    that cannot be read or shows no face gets an empty array (and a warning), so one bad file does not stop
    the rest.
    """
    files = [[it.path, *fingerprint(it.path)] for it in items]
    key = hashlib.sha256(json.dumps([files, frames, margin, size]).encode()).hexdigest()[:16]
    path = cache / f"crops-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return [z[str(i)] for i in range(len(items))]
    finder = FaceFinder(min_face=40)
    out = []
    for it in items:
        found = largest_faces(it.path, frames, finder)
        crops = [crop_face(frame.image, face.box, margin, size) for frame, face in found]
        if not crops:
            log.warning("%s: no face in %d sampled frames", it.path, frames)
        out.append(np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # two runs may share a cache
    np.savez_compressed(tmp, **{str(i): c for i, c in enumerate(out)})
    os.replace(tmp, path)
    return out


def video_scores(weights: str, crops: list[np.ndarray]) -> list[float]:
    """Each clip's score by a checkpoint, from its crops: the mean of the top half of its face scores, as scan's."""
    det = Detector.load(weights, device="auto")
    return [track_score(det.score(list(c))) for c in crops]
