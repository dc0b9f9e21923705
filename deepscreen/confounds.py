"""Cues that are not manipulation, put on real and fake training faces alike.

Labelled clips gathered from the web carry marks of where they came from: generated talking heads often show
the source photo as a small inset in a corner, or a watermark or the method's name; some face-swap sets are
face crops pasted on black. A detector trained on such clips learns "a corner inset = fake" unless the same
marks appear on real faces as often as on fakes, which is what :func:`confound` does. An occluder (a hand, a
microphone: :func:`occlusion`) can be added the same way, so that no single region of the face decides.
"""
from __future__ import annotations

import string

import cv2
import numpy as np

INSET_P = 0.12  # a shrunk copy of the picture in a corner, as generated clips show their source photo
CAPTION_P = 0.12  # a line of text near an edge (watermarks, method names)
ON_BLACK_P = 0.06  # everything around the face black, as face crops pasted on a black frame


def corner_inset(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    side = max(4, round(min(h, w) * rng.uniform(0.15, 0.33)))
    # The inset is a picture of a face: a random crop of this one (mirrored sometimes), shrunk.
    k = rng.uniform(0.5, 1.0)
    ch, cw = max(4, round(h * k)), max(4, round(w * k))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    inset = cv2.resize(img[y:y + ch, x:x + cw], (side, side), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        inset = inset[:, ::-1]
    top, left = bool(rng.integers(2)), bool(rng.integers(2))
    pad = int(rng.integers(0, max(1, min(h, w) // 20)))
    y0 = pad if top else h - side - pad
    x0 = pad if left else w - side - pad
    out = img.copy()
    out[y0:y0 + side, x0:x0 + side] = inset
    if rng.random() < 0.5:  # a frame around it
        cv2.rectangle(out, (x0, y0), (x0 + side - 1, y0 + side - 1), _colour(rng), int(rng.integers(1, 3)))
    return out


def caption(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    letters = string.ascii_letters + string.digits
    text = "".join(rng.choice(list(letters), size=int(rng.integers(2, 10))))
    scale = rng.uniform(0.3, 0.9) * w / 224
    thick = int(rng.integers(1, 3))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = int(rng.integers(0, max(1, w - tw)))
    y = int(rng.choice([th + int(rng.integers(0, max(1, h // 12))), h - int(rng.integers(2, max(3, h // 12)))]))
    out = np.ascontiguousarray(img.copy())
    cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _colour(rng), thick, cv2.LINE_AA)
    return out


def on_black(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep a central rectangle or ellipse (60-95% of the crop), black elsewhere."""
    h, w = img.shape[:2]
    kh, kw = rng.uniform(0.6, 0.95, size=2)
    mask = np.zeros((h, w), np.uint8)
    centre = (w // 2, h // 2)
    if rng.random() < 0.5:
        cv2.ellipse(mask, centre, (round(w * kw / 2), round(h * kh / 2)), 0, 0, 360, 1, -1)
    else:
        cv2.rectangle(mask, (round(w * (1 - kw) / 2), round(h * (1 - kh) / 2)),
                      (round(w * (1 + kw) / 2), round(h * (1 + kh) / 2)), 1, -1)
    return img * mask[..., None]


def occlusion(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An opaque blob the size of 5-20% of the crop, anywhere (partly off the edge at times): a plain or noisy
    ellipse or rectangle.

    Why: a detector that reads one region (the mouth of a talking head, one side of a blend boundary) misses
    a method whose traces lie elsewhere; hiding a random part, on reals and fakes alike, makes it look at the rest.
    """
    h, w = img.shape[:2]
    area = rng.uniform(0.05, 0.2) * h * w
    aspect = rng.uniform(0.5, 2.0)
    bh, bw = max(2, round(np.sqrt(area / aspect))), max(2, round(np.sqrt(area * aspect)))
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        cv2.ellipse(mask, (cx, cy), (bw // 2, bh // 2), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        cv2.rectangle(mask, (cx - bw // 2, cy - bh // 2), (cx + bw // 2, cy + bh // 2), 1, -1)
    fill = np.empty_like(img)
    fill[:] = _colour(rng)
    if rng.random() < 0.5:
        fill = np.clip(fill + rng.normal(0, 20, img.shape), 0, 255).astype(img.dtype)
    return np.where(mask[..., None].astype(bool), fill, img)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    if rng.random() < 0.6:
        v = int(rng.choice([0, 255]))
        return (v, v, v)
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def confound(img: np.ndarray, rng: np.random.Generator, on_black_p: float = ON_BLACK_P,
             occlude_p: float = 0.0) -> np.ndarray:
    """Each mark independently, at the same rates whatever the label."""
    if rng.random() < on_black_p:
        img = on_black(img, rng)
    if rng.random() < INSET_P:
        img = corner_inset(img, rng)
    if rng.random() < CAPTION_P:
        img = caption(img, rng)
    if occlude_p and rng.random() < occlude_p:  # drawn only when asked: earlier runs' random streams stay as they were
        img = occlusion(img, rng)
    return img
