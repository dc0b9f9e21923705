"""Tests for the SBI pseudo-fake generator (deepscreen.sbi)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from deepscreen import sbi  # noqa: E402

# Hand-placed MTCNN-order landmarks for skimage.data.astronaut() (checked by
# drawing them on the image): left eye, right eye, nose tip, mouth corners.
ASTRONAUT_LANDMARKS = np.array(
    [[202.5, 101.0], [246.0, 103.5], [222.5, 125.0], [201.0, 141.0], [245.0, 142.5]],
    dtype=np.float64,
)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return skimage_data.astronaut()


def _landmark_box(scale: float) -> tuple[float, float, float, float]:
    """Landmark bounding box enlarged by `scale` around its centre."""
    x0, y0 = ASTRONAUT_LANDMARKS.min(axis=0)
    x1, y1 = ASTRONAUT_LANDMARKS.max(axis=0)
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * scale, (y1 - y0) / 2 * scale
    return cx - hw, cy - hh, cx + hw, cy + hh


def test_landmark_order() -> None:
    assert sbi.LANDMARK_ORDER == ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def test_plain_mask_inside_face(face: np.ndarray) -> None:
    mask = sbi.face_hull_mask(face.shape[:2], ASTRONAUT_LANDMARKS)
    assert mask.dtype == np.float32 and mask.shape == face.shape[:2]
    assert set(np.unique(mask)) <= {0.0, 1.0}
    ys, xs = np.nonzero(mask)
    assert len(xs) > 0
    # Landmarks span ~44x42 px; the face (brows to chin) must fit in ~3x that box.
    bx0, by0, bx1, by1 = _landmark_box(3.0)
    assert xs.min() >= bx0 and xs.max() <= bx1 and ys.min() >= by0 and ys.max() <= by1
    # ... and matches the real face: cheeks ~181..265, brows ~85, chin ~182.
    assert 165 <= xs.min() <= 195 and 250 <= xs.max() <= 280
    assert 75 <= ys.min() <= 100 and 165 <= ys.max() <= 195
    for x, y in ASTRONAUT_LANDMARKS:
        assert mask[int(round(y)), int(round(x))] == 1.0


def test_similarity_fit_matches_opencv() -> None:
    """Closed-form fit == cv2.estimateAffinePartial2D when it keeps all points."""
    ours = sbi._fit_similarity(sbi._ANCHORS, ASTRONAUT_LANDMARKS)
    cv, inliers = cv2.estimateAffinePartial2D(
        sbi._ANCHORS.astype(np.float32), ASTRONAUT_LANDMARKS.astype(np.float32), ransacReprojThreshold=1e6
    )
    assert inliers.all()
    np.testing.assert_allclose(ours, cv, atol=1e-2)


@pytest.mark.parametrize("seed", range(6))
def test_random_mask_range_and_location(face: np.ndarray, seed: int) -> None:
    mask = sbi.face_hull_mask(face.shape[:2], ASTRONAUT_LANDMARKS, np.random.default_rng(seed))
    assert mask.dtype == np.float32 and mask.shape == face.shape[:2]
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask.max() == pytest.approx(1.0)
    ys, xs = np.nonzero(mask)
    bx0, by0, bx1, by1 = _landmark_box(4.0)
    assert xs.min() >= bx0 and xs.max() <= bx1 and ys.min() >= by0 and ys.max() <= by1
    nose_x, nose_y = ASTRONAUT_LANDMARKS[2]
    assert mask[int(nose_y), int(nose_x)] > 0.5


@pytest.mark.parametrize("seed", range(8))
def test_self_blend_changes_only_masked_pixels(face: np.ndarray, seed: int) -> None:
    before = face.copy()
    out, eff = sbi.self_blend(face, ASTRONAUT_LANDMARKS, np.random.default_rng(seed))
    np.testing.assert_array_equal(face, before)  # input untouched
    assert out.dtype == np.uint8 and out.shape == face.shape
    assert eff.dtype == np.float32 and eff.shape == face.shape[:2]
    assert eff.min() >= 0.0 and eff.max() <= 1.0 and eff.max() > 0.0
    changed = np.any(out != face, axis=2)
    assert changed.any()
    assert not np.any(changed & (eff == 0))
    # Background far from the face is untouched.
    np.testing.assert_array_equal(out[:, 400:], face[:, 400:])


@pytest.mark.parametrize("seed", range(6))
def test_restage_keeps_the_face_and_replaces_the_surroundings(face: np.ndarray, seed: int) -> None:
    out = sbi.restage(face, ASTRONAUT_LANDMARKS, np.random.default_rng(seed))
    assert out.dtype == np.uint8 and out.shape == face.shape
    np.testing.assert_array_equal(out, sbi.restage(face, ASTRONAUT_LANDMARKS, np.random.default_rng(seed)))
    # The face (its jaw-and-brow hull, dilated a little) keeps its value to within rounding.
    hull = sbi.face_hull_mask(face.shape[:2], ASTRONAUT_LANDMARKS)
    reach = cv2.dilate(hull, np.ones((9, 9), np.uint8)) > 0
    assert np.abs(out[reach].astype(int) - face[reach]).max() <= 1
    # Far from the face (the flag, the rocket) the scene is blurred away or replaced.
    far = np.abs(out[:, 400:].astype(int) - face[:, 400:]).mean()
    assert far > 10


def test_degrade_and_make_pair_shapes(face: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        d = sbi.degrade(face, rng)
        assert d.dtype == np.uint8 and d.shape == face.shape
    real, fake = sbi.make_pair(face, ASTRONAUT_LANDMARKS, rng)
    for x in (real, fake):
        assert x.dtype == np.uint8 and x.shape == face.shape


def test_degrade_sometimes_identity_sometimes_not(face: np.ndarray) -> None:
    small = face[40:240, 120:330].copy()
    same = [np.array_equal(sbi.degrade(small, np.random.default_rng(s)), small) for s in range(40)]
    assert any(same) and not all(same)


def test_same_seed_same_output(face: np.ndarray) -> None:
    def run(seed: int) -> list[np.ndarray]:
        a, m = sbi.self_blend(face, ASTRONAUT_LANDMARKS, np.random.default_rng(seed))
        d = sbi.degrade(face, np.random.default_rng(seed + 1000))
        r, f = sbi.make_pair(face, ASTRONAUT_LANDMARKS, np.random.default_rng(seed))
        return [a, m, d, r, f]

    np.random.seed(1)
    cv2.setRNGSeed(1)
    first = run(7)
    np.random.seed(2)  # global RNGs must not matter
    cv2.setRNGSeed(2)
    second = run(7)
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)

    other = run(8)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])
    assert not np.array_equal(first[4], other[4])
    # degrade may return the image unchanged for some seeds: compare several.
    d_a = [sbi.degrade(face, np.random.default_rng(s)) for s in range(4)]
    assert any(not np.array_equal(d_a[0], d) for d in d_a[1:])


def test_bad_inputs(face: np.ndarray) -> None:
    with pytest.raises(ValueError):
        sbi.face_hull_mask(face.shape[:2], np.zeros((68, 2)))
    with pytest.raises(ValueError):
        sbi.self_blend(face.astype(np.float32), ASTRONAUT_LANDMARKS, np.random.default_rng(0))
