"""Make samples/: short clips the project may ship, from a public-domain NASA photo.

Every clip is rendered from scikit-image's `astronaut` image (Eileen Collins, NASA, public domain) or its
`coffee` image (no face), with camera motion, compression and noise; the manipulated clips use the project's
own self-blending (deepscreen.sbi) applied to the face before the camera moves over it. They show that the
pipeline runs and that labels line up; they do not measure real-world accuracy.

    .venv/bin/python scripts/make_samples.py samples/
"""
from __future__ import annotations

import argparse
import csv
import subprocess
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from deepscreen.faces import FaceFinder
from deepscreen.sbi import self_blend

W, H, FPS, SECONDS = 480, 360, 25, 3


def camera(photo: np.ndarray, t: float, zoom: float, pan: float, shake: float, rng: np.random.Generator) -> np.ndarray:
    """One frame of a virtual camera moving over the photo: a slow zoom and pan, plus hand shake."""
    h, w = photo.shape[:2]
    scale = zoom * (1 + 0.08 * np.sin(2 * np.pi * t / SECONDS))
    cw, ch = w / scale, w / scale * H / W
    cx = w / 2 + pan * w * np.sin(2 * np.pi * t / SECONDS) + rng.normal(0, shake)
    cy = h * 0.3 + rng.normal(0, shake)
    m = np.array([[W / cw, 0, -(cx - cw / 2) * W / cw], [0, H / ch, -(cy - ch / 2) * H / ch]], np.float32)
    return cv2.warpAffine(photo, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def encode(frames: list[np.ndarray], path: Path, crf: int, noise: float, rng: np.random.Generator) -> None:
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                             "-s", f"{W}x{H}", "-r", str(FPS), "-i", "pipe:", "-c:v", "libx264", "-crf", str(crf),
                             "-preset", "medium", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
                            stdin=subprocess.PIPE)
    for f in frames:
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).astype(np.uint8)
        proc.stdin.write(f.tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed on {path}")


# name, label, method, (zoom, pan, shake), crf, noise, blend seed (None = real)
CLIPS = [
    ("real_pan.mp4", "real", "", (1.6, 0.05, 0.5), 23, 0, None),
    ("real_zoom_noisy.mp4", "real", "", (2.2, 0.02, 1.5), 30, 6, None),
    ("real_lowq.mp4", "real", "", (1.3, 0.08, 0.8), 38, 2, None),
    ("fake_sbi_pan.mp4", "fake", "self-blend", (1.6, 0.05, 0.5), 23, 0, 3),
    ("fake_sbi_zoom_noisy.mp4", "fake", "self-blend", (2.2, 0.02, 1.5), 30, 6, 11),
    ("fake_sbi_lowq.mp4", "fake", "self-blend", (1.3, 0.08, 0.8), 38, 2, 7),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photo = data.astronaut()
    face = FaceFinder(min_face=40).find([photo], [0.0])[0][0]
    rows = []
    for i, (name, label, method, motion, crf, noise, seed) in enumerate(CLIPS):
        rng = np.random.default_rng(100 + i)
        src = photo
        if seed is not None:
            # the manipulation is fixed for the clip (like a swapped face), the camera moves over it
            src, _ = self_blend(photo, face.landmarks, np.random.default_rng(seed))
        frames = [camera(src, k / FPS, *motion, rng) for k in range(FPS * SECONDS)]
        encode(frames, args.out / name, crf, noise, rng)
        rows.append({"file": name, "label": label, "source": "astronaut", "method": method})
    rng = np.random.default_rng(0)
    encode([camera(data.coffee(), k / FPS, 1.2, 0.05, 0.5, rng) for k in range(FPS * SECONDS)],
           args.out / "noface_coffee.mp4", 28, 0, rng)
    with open(args.out / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label", "source", "method"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows) + 1} clips and labels.csv to {args.out}")


if __name__ == "__main__":
    main()
