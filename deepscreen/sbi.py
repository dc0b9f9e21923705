"""Self-Blended-Images (SBI) pseudo-fake generation.

The detector is trained on real faces only.  A "fake" is made by blending a
slightly altered copy of a face back onto itself inside a randomized face mask
(after Shiohara & Yamasaki, CVPR 2022).  The result carries the generic traces
of face swapping -- a blending boundary, colour/frequency mismatch, a small
misalignment -- without any identity change, so the classifier cannot learn
generator-specific shortcuts.

Only numpy and OpenCV are used here so the module can run in data-loader
workers without torch.  Every random draw goes through the caller's
``np.random.Generator``: the same seed always gives the same sample.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["LANDMARK_ORDER", "face_hull_mask", "self_blend", "restage", "degrade", "make_pair"]

#: Order of the five landmarks that every function here expects (MTCNN order),
#: each as (x, y) in image pixels.
LANDMARK_ORDER: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# --------------------------------------------------------------------------
# Mean-face template.
#
# Normalized frame: midpoint between the eyes at the origin, inter-ocular
# distance 1, y pointing down (like image rows).  "left" means image-left, as
# in MTCNN output.  The proportions follow average adult anthropometry (face
# width ~2.1 IOD, eye-to-chin ~1.8 IOD, eye-to-hairline ~1 IOD) and were
# checked against a frontal photo.
# --------------------------------------------------------------------------
_ANCHORS = np.array(
    [
        [-0.50, 0.00],  # left eye
        [0.50, 0.00],  # right eye
        [0.00, 0.55],  # nose tip
        [-0.40, 1.12],  # mouth left corner
        [0.40, 1.12],  # mouth right corner
    ],
    dtype=np.float64,
)

_JAW_HALF = np.array(
    [
        [-1.05, 0.05],  # temple / ear top
        [-1.04, 0.45],  # cheekbone
        [-0.97, 0.85],
        [-0.85, 1.18],  # jaw angle
        [-0.64, 1.48],
        [-0.35, 1.72],
    ],
    dtype=np.float64,
)
_CHIN = np.array([[0.0, 1.82]], dtype=np.float64)
_JAW = np.concatenate([_JAW_HALF, _CHIN, _JAW_HALF[::-1] * [-1.0, 1.0]])

_BROWS = np.array(
    [[-0.95, -0.22], [-0.60, -0.38], [-0.20, -0.32], [0.20, -0.32], [0.60, -0.38], [0.95, -0.22]],
    dtype=np.float64,
)
_FOREHEAD = np.array(
    [[-0.95, -0.70], [-0.50, -0.98], [0.00, -1.05], [0.50, -0.98], [0.95, -0.70]],
    dtype=np.float64,
)

#: Full template (29 points): 5 MTCNN anchors, jaw line, eyebrows, forehead.
_TEMPLATE = np.concatenate([_ANCHORS, _JAW, _BROWS, _FOREHEAD])
_N_ANCHOR, _N_JAW, _N_BROW = len(_ANCHORS), len(_JAW), len(_BROWS)
_SL_JAW = slice(_N_ANCHOR, _N_ANCHOR + _N_JAW)
_SL_BROW = slice(_N_ANCHOR + _N_JAW, _N_ANCHOR + _N_JAW + _N_BROW)
_SL_FOREHEAD = slice(_N_ANCHOR + _N_JAW + _N_BROW, len(_TEMPLATE))
# Point that inner-face shrinking contracts towards (between eyes and mouth).
_FACE_CENTRE = np.array([0.0, 0.6])


# --------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------
def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2):
        raise ValueError(f"landmarks must have shape (5, 2) in LANDMARK_ORDER, got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks contain non-finite values")
    return lm


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")


def _fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src -> dst.

    Same model as ``cv2.estimateAffinePartial2D`` but solved in closed form over
    all five points: no RANSAC, so no point is dropped as an "outlier" on
    non-frontal faces and the result never depends on OpenCV's internal RNG.
    Returns a 2x3 matrix.
    """
    # Unknowns p = (a, b, tx, ty) with x' = a x - b y + tx, y' = b x + a y + ty.
    n = len(src)
    A = np.zeros((2 * n, 4))
    A[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    A[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    a, b, tx, ty = np.linalg.lstsq(A, dst.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ M[:, :2].T + M[:, 2]


def _odd(k: float) -> int:
    """Round to the nearest odd kernel size >= 1 (GaussianBlur needs odd sizes)."""
    k = max(1, int(round(k)))
    return k if k % 2 == 1 else k + 1


def _fill_hull(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    """Fill the convex hull of pts (image pixels) as a float32 {0,1} mask."""
    mask = np.zeros(shape, dtype=np.uint8)
    # Fixed-point coordinates (4 fractional bits) keep sub-pixel precision.
    hull = cv2.convexHull(np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def _random_hull_points(rng: np.random.Generator) -> np.ndarray:
    """Pick a random hull variant in template coordinates.

    Real manipulations replace differently sized regions (whole face with
    forehead, classic landmark hull, inner face only), so the detector must not
    rely on one boundary location.
    """
    jaw, brows, forehead = _TEMPLATE[_SL_JAW], _TEMPLATE[_SL_BROW], _TEMPLATE[_SL_FOREHEAD]
    variant = rng.choice(3, p=[0.3, 0.4, 0.3])
    if variant == 0:  # whole face including forehead
        pts = np.concatenate([jaw, brows, forehead])
    elif variant == 1:  # jaw + eyebrows (the usual 68-landmark hull)
        pts = np.concatenate([jaw, brows])
    else:  # inner face: contract towards the face centre
        pts = np.concatenate([jaw, brows])
        pts = _FACE_CENTRE + (pts - _FACE_CENTRE) * rng.uniform(0.7, 0.92)
    # Per-point jitter breaks the template's perfect symmetry.
    return pts + rng.normal(0.0, 0.03, size=pts.shape)


def _elastic_warp(mask: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Warp the mask with a smooth random displacement field.

    A coarse grid of random offsets is upsampled bicubically, giving a wobbly
    boundary instead of a perfect polygon edge.
    """
    h, w = mask.shape
    grid = int(rng.integers(3, 7))
    dx = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = xs + dx * np.float32(amplitude)
    map_y = ys + dy * np.float32(amplitude)
    return cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def face_hull_mask(
    shape: tuple[int, int],
    landmarks: np.ndarray,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Face-region mask from the 5 MTCNN landmarks.

    A mean-face contour template is aligned to the landmarks and its convex
    hull filled.  Five points do not describe the face outline, so the template
    supplies jaw line, cheeks, eyebrows and forehead.

    Without ``rng`` the result is the plain jaw+eyebrow hull as a binary mask
    (deterministic, for tests and debugging).  With ``rng`` it is randomized:
    hull variant, small affine and elastic deformation, erosion/dilation and a
    Gaussian blur of random odd size, then rescaled so its maximum is 1.

    Returns float32 HxW in [0, 1].
    """
    h, w = int(shape[0]), int(shape[1])
    lm = _check_landmarks(landmarks)
    M = _fit_similarity(_ANCHORS, lm)
    face = float(np.hypot(M[0, 0], M[1, 0]))  # pixels per template unit (~inter-ocular distance)

    if rng is None:
        pts = np.concatenate([_TEMPLATE[_SL_JAW], _TEMPLATE[_SL_BROW]])
        return _fill_hull((h, w), _apply(M, pts))

    pts = _apply(M, _random_hull_points(rng))

    # Small random affine of the hull around its centre.
    centre = pts.mean(axis=0)
    angle = np.deg2rad(rng.uniform(-5, 5))
    scale = rng.uniform(0.95, 1.05, size=2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = rng.uniform(-0.04, 0.04, size=2) * face
    pts = (pts - centre) @ (rot * scale).T + centre + shift

    mask = _fill_hull((h, w), pts)
    mask = _elastic_warp(mask, amplitude=rng.uniform(0.02, 0.08) * face, rng=rng)
    mask = (mask > 0.5).astype(np.float32)

    # Random erosion or dilation moves the boundary in or out a little.
    op = rng.choice(3)
    if op > 0:
        k = _odd(rng.uniform(0.03, 0.15) * face)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        mask = (cv2.erode if op == 1 else cv2.dilate)(mask, kernel)

    # Soft boundary.  Blurring the binary mask puts the transition half inside,
    # half outside; optionally keep only the fully-inside core and blur again so
    # the transition lies inside the face (like a blended swap).
    k1 = _odd(rng.uniform(0.08, 0.5) * face)
    mask = cv2.GaussianBlur(mask, (k1, k1), 0)
    if rng.random() < 0.5:
        peak = float(mask.max())
        if peak > 0:
            mask = (mask >= 0.999 * peak).astype(np.float32)
            k2 = _odd(rng.uniform(0.08, 0.5) * face)
            mask = cv2.GaussianBlur(mask, (k2, k2), 0)

    peak = float(mask.max())
    if peak > 0:
        mask = mask / peak
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------
# Source-face alteration (inside the mask only)
# --------------------------------------------------------------------------
def _rgb_shift(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return img + rng.uniform(-20, 20, size=3).astype(np.float32)


def _hsv_shift(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = np.mod(hsv[..., 0] + rng.uniform(-5, 5), 180)  # OpenCV hue is 0..179 (2 deg/unit)
    hsv[..., 1] = hsv[..., 1] * rng.uniform(0.8, 1.2)
    hsv[..., 2] = hsv[..., 2] * rng.uniform(0.85, 1.15)
    hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)


def _brightness_contrast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha = rng.uniform(0.9, 1.1)
    beta = rng.uniform(-0.1, 0.1) * 255
    mean = img.mean()
    return (img - mean) * alpha + mean + beta


def _resample_blur(img: np.ndarray, face: float, rng: np.random.Generator) -> np.ndarray:
    """Downscale then upscale: the swapped face is often lower resolution.

    The factor is bounded so the eyes stay >= ~18 px apart; below that small
    faces turn into a smear no real swap would produce.
    """
    h, w = img.shape[:2]
    f = rng.uniform(min(0.7, max(0.3, 18.0 / face)), 0.75)
    small = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    interp = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)[int(rng.integers(3))]
    return cv2.resize(small, (w, h), interpolation=interp)


def _small_affine(img: np.ndarray, face: float, rng: np.random.Generator) -> np.ndarray:
    """Shift/scale by a few percent: the pasted face is never perfectly aligned."""
    h, w = img.shape[:2]
    cx, cy = w / 2.0, h / 2.0
    sx, sy = rng.uniform(0.96, 1.04, size=2)
    tx, ty = rng.uniform(-0.03, 0.03, size=2) * face * 2.0  # ~3% of face height
    M = np.array([[sx, 0.0, cx - sx * cx + tx], [0.0, sy, cy - sy * cy + ty]], dtype=np.float64)
    return cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _alter_source(image: np.ndarray, face: float, rng: np.random.Generator) -> np.ndarray:
    """Random colour + frequency + geometry changes making the pseudo-source face."""
    src = image.astype(np.float32)
    # One colour op always (guarantees a statistical mismatch), a second sometimes.
    colour_ops = [_rgb_shift, _hsv_shift, _brightness_contrast]
    order = rng.permutation(len(colour_ops))
    src = colour_ops[order[0]](src, rng)
    if rng.random() < 0.3:
        src = colour_ops[order[1]](src, rng)
    src = np.clip(src, 0, 255)
    # Frequency mismatch: a blurrier face, as a swapped face rendered at low resolution is.  No sharpened
    # source: with one, the detector learned to call sharp or face-restored real faces fake (weights/README.md).
    if rng.random() < 0.4:
        src = _resample_blur(src, face, rng)
    src = np.clip(src, 0, 255)
    # Geometric misalignment.
    if rng.random() < 0.8:
        src = _small_affine(src, face, rng)
    return src


def self_blend(
    image: np.ndarray,
    landmarks: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Make an SBI pseudo-fake from one real face image.

    ``out = src * m * r + image * (1 - m * r)`` where ``src`` is an altered copy
    of ``image``, ``m`` a randomized face mask and ``r`` a random blend ratio.
    Pixels where the effective mask ``m * r`` is exactly 0 are returned
    unchanged, so the only fake evidence lies inside the blended region (global
    quality augmentation belongs in :func:`degrade`, applied to real and fake
    alike).

    Returns (blended uint8 HxWx3, effective mask float32 HxW in [0, 1]).
    """
    _check_image(image)
    lm = _check_landmarks(landmarks)
    face = float(np.hypot(*(lm[1] - lm[0])))
    face = max(face, 1.0)

    src = _alter_source(image, face, rng)
    mask = face_hull_mask(image.shape[:2], lm, rng)
    ratio = float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0]))
    eff = (mask * np.float32(ratio)).astype(np.float32)

    m3 = eff[..., None]
    blended = src * m3 + image.astype(np.float32) * (1.0 - m3)
    out = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    out = np.where(m3 > 0, out, image)  # exact identity outside the mask
    return out, eff


# --------------------------------------------------------------------------
# New surroundings (real and fake alike: applied before blending)
# --------------------------------------------------------------------------
# A head-and-shoulders region in template units: an ellipse around the head, a trapezoid for neck and
# shoulders.  The face hull (|x| <= 1.05, -1.05 <= y <= 1.82) lies well inside it.
_HEAD_CENTRE, _HEAD_AXES = (0.0, 0.35), (1.35, 2.0)
RESTAGE_P = 0.3  # how often a training pair gets new surroundings
_BUST = np.array([[-1.0, 1.5], [1.0, 1.5], [25.0, 40.0], [-25.0, 40.0]])  # reaches past the frame


def _backdrop(image: np.ndarray, face: float, rng: np.random.Generator) -> np.ndarray:
    """What lies behind the person: the scene out of focus, or a plain studio backdrop."""
    h, w = image.shape[:2]
    if rng.random() < 0.5:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.15, 0.6) * face).astype(np.float32)
    colour = rng.uniform(0, 255, size=3)
    ramp = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None, None] * rng.uniform(-25, 25)
    flat = np.broadcast_to(colour, (h, w, 3)).astype(np.float32) + ramp
    return flat + rng.normal(0.0, rng.uniform(0.0, 3.0), size=flat.shape).astype(np.float32)


def restage(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put the person in front of other surroundings: a blurred scene or a flat backdrop.

    Why: the detector compares the face with what surrounds it.  Trained on busy backgrounds only, version 1
    scored real faces in front of a plain studio wall (GRID) as pasted (weights/README.md).  Applied to the
    image *before* the self-blend, so real and fake share the new surroundings and differ only by the blend;
    the head region left untouched contains the face hull that the blend uses.
    """
    _check_image(image)
    lm = _check_landmarks(landmarks)
    M = _fit_similarity(_ANCHORS, lm)
    face = float(np.hypot(M[0, 0], M[1, 0]))
    s = rng.uniform(1.0, 1.3)
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    ellipse = np.column_stack([np.cos(angles), np.sin(angles)]) * np.array(_HEAD_AXES) * s + _HEAD_CENTRE
    keep = np.maximum(_fill_hull(image.shape[:2], _apply(M, ellipse)), _fill_hull(image.shape[:2], _apply(M, _BUST)))
    keep = cv2.GaussianBlur(keep, (0, 0), rng.uniform(0.04, 0.15) * face)[..., None]
    out = image.astype(np.float32) * keep + _backdrop(image, face, rng) * (1.0 - keep)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# Quality augmentation (real and fake alike)
# --------------------------------------------------------------------------
def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    # OpenCV's codec assumes BGR when converting to YCbCr; feed it BGR so chroma
    # subsampling hits the right channels.
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - encoder failure is not expected
        return img
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random quality degradation, applied with the same distribution to real and fake.

    Videos to screen are re-encoded, rescaled and noisy.  If only fakes looked
    degraded (the blend does soften the face), the detector would learn
    "low quality = fake"; degrading both classes the same way removes that cue.
    With probability 0.2 the image is returned unchanged.
    """
    _check_image(image)
    if rng.random() < 0.2:
        return image.copy()
    img = image
    h, w = img.shape[:2]

    r = rng.random()
    if r < 0.05:  # black-and-white footage
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    elif r < 0.15:  # colour grading and coloured stage light turn skin any hue; that is not manipulation
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(rng.integers(-30, 31))) % 180  # 2 degrees a unit
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    elif r < 0.45:  # white balance, exposure and saturation differ from camera to camera
        f = img.astype(np.float32) * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
        mean = f.mean()
        f = (f - mean) * rng.uniform(0.85, 1.15) + mean + rng.uniform(-15, 15)
        grey = f.mean(axis=2, keepdims=True)
        f = grey + (f - grey) * rng.uniform(0.6, 1.3)
        img = np.clip(np.round(f), 0, 255).astype(np.uint8)

    r = rng.random()
    if r < 0.35:  # whole-image resolution loss
        f = rng.uniform(0.25, 1.0)
        small = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        interp = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST, cv2.INTER_AREA)[int(rng.integers(4))]
        img = cv2.resize(small, (w, h), interpolation=interp)
    elif r < 0.55:  # defocus / motion-ish blur
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))

    if rng.random() < 0.25:  # sensor noise
        noise = rng.normal(0.0, rng.uniform(1.0, 8.0), size=img.shape)
        img = np.clip(np.round(img.astype(np.float32) + noise), 0, 255).astype(np.uint8)

    if rng.random() < 0.6:  # compression, last as in a real delivery chain
        img = _jpeg(np.ascontiguousarray(img), int(rng.integers(30, 96)))

    return np.ascontiguousarray(img) if img is not image else image.copy()


def make_pair(
    image: np.ndarray,
    landmarks: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Build a (real, fake) training pair from one real face.

    Sometimes the face is first given new surroundings (:func:`restage`); the
    fake is :func:`self_blend` of that image; both are then passed through
    :func:`degrade` with independent draws, so the pair differs only by the
    blend and quality cannot tell the classes apart.
    """
    if rng.random() < RESTAGE_P:
        image = restage(image, landmarks, rng)
    fake, _ = self_blend(image, landmarks, rng)
    real = degrade(image, rng)
    fake = degrade(fake, rng)
    return real, fake
