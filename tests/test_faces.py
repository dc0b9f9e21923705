"""Real MTCNN on rendered clips: faces found where the face is, crops, tracks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepscreen import media
from deepscreen.faces import Face, FaceFinder, crop_box, crop_face, iou, lift_shadows, link_tracks
from conftest import ASTRONAUT_FACE, box_inside


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder(device="cpu", min_face=40)


def _frames(path, n):
    info = media.probe(str(path))
    return list(media.read_frames(str(path), info, media.sample_times(info, n)))


def test_face_found_where_the_face_is(finder, astronaut_png):
    from PIL import Image

    image = np.asarray(Image.open(astronaut_png).convert("RGB"))
    faces = finder.find([image], [0.0])[0]
    assert len(faces) == 1
    assert box_inside(faces[0].box, ASTRONAUT_FACE)
    left_eye, right_eye = faces[0].landmarks[:2]
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 15


def test_detection_on_a_downscaled_copy_reports_full_resolution_boxes(finder, astronaut_png):
    from PIL import Image

    image = np.asarray(Image.open(astronaut_png).convert("RGB").resize((1024, 1024)))
    assert finder.detection_scale(1024, 1024) < 1
    faces = finder.find([image], [0.0])[0]
    assert len(faces) == 1
    assert box_inside(faces[0].box / 2, ASTRONAUT_FACE)


def test_small_faces_are_dropped(astronaut_png):
    from PIL import Image

    image = np.asarray(Image.open(astronaut_png).convert("RGB"))
    assert FaceFinder(min_face=200).find([image], [0.0]) == [[]]


def test_two_people_make_two_tracks(finder, two_face_clip):
    frames = _frames(two_face_clip, 4)
    found = finder.find([f.image for f in frames], [f.t for f in frames])
    assert all(len(faces) == 2 for faces in found)
    assert link_tracks(found) == 2
    for faces in found:
        by_track = {f.track_id: f for f in faces}
        assert by_track[0].box[0] != by_track[1].box[0]
        # each track stays on its own side of the frame
    xs = {t: {round(f.box[0] // 400) for faces in found for f in faces if f.track_id == t} for t in (0, 1)}
    assert len(xs[0]) == 1 and len(xs[1]) == 1 and xs[0] != xs[1]


def test_tracks_survive_a_missed_frame():
    def face(x, i):
        return Face(frame_index=i, t=float(i), box=np.array([x, 10, x + 50, 60], np.float32), prob=0.99,
                    landmarks=np.zeros((5, 2), np.float32))

    frames = [[face(10, 0), face(300, 0)], [face(14, 1)], [face(18, 2), face(302, 2)], [face(600, 3)]]
    assert link_tracks(frames) == 3
    assert [f.track_id for f in frames[2]] == [0, 1] and frames[3][0].track_id == 2


def test_crop_is_square_and_never_padded():
    image = np.full((100, 200, 3), 255, np.uint8)
    x0, y0, side = crop_box(np.array([150, 0, 210, 80]), 0.5, 200, 100)
    assert side == 100 and x0 + side <= 200 and y0 == 0
    crop = crop_face(image, np.array([150, 0, 210, 80]), 0.5, 64)
    assert crop.shape == (64, 64, 3) and crop.min() == 255  # all from the image: no black border


@pytest.fixture(scope="module")
def tracker() -> FaceFinder:
    return FaceFinder(device="cpu", min_face=40, detect_every=4)


def test_frames_between_whole_frame_searches_find_the_same_moving_face(finder, tracker, face_clip):
    frames = _frames(face_clip, 12)  # 0.25 s apart: searched whole on frames 0, 4 and 8 only
    images, times = [f.image for f in frames], [f.t for f in frames]
    full, tracked = finder.find(images, times), tracker.find(images, times)
    assert all(len(faces) == 1 for faces in tracked)
    for i, (a, b) in enumerate(zip(full, tracked)):
        if i % 4 == 0:
            np.testing.assert_array_equal(a[0].box, b[0].box)
        assert iou(a[0].box, b[0].box) > 0.8, i
        assert b[0].t == times[i] and b[0].frame_index == i


def test_two_people_are_both_followed_between_searches(tracker, two_face_clip):
    frames = _frames(two_face_clip, 8)
    found = tracker.find([f.image for f in frames], [f.t for f in frames])
    assert all(len(faces) == 2 for faces in found)
    assert link_tracks(found) == 2


def test_frames_far_apart_are_each_searched_whole(finder, tracker, face_clip):
    images = [f.image for f in _frames(face_clip, 6)]
    times = [2.0 * i for i in range(6)]  # a long video sampled sparsely: faces may move anywhere
    full, tracked = finder.find(images, times), tracker.find(images, times)
    for a, b in zip(full, tracked):
        np.testing.assert_array_equal(np.array([f.box for f in a]), np.array([f.box for f in b]))


def test_a_face_appearing_between_searches_is_found_at_the_next_one(tracker, face_clip):
    images = [f.image for f in _frames(face_clip, 6)]
    images[0] = np.full_like(images[0], 128)  # nobody in the first frame
    found = tracker.find(images, [0.1 * i for i in range(6)])
    assert [len(faces) for faces in found] == [0, 0, 0, 0, 1, 1]


def test_lift_shadows_brightens_dark_frames_only():
    gradient = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    dark = np.stack([gradient // 8] * 3, axis=-1)  # mean luminance ~0.06
    lifted = lift_shadows(dark)
    assert 0.40 < lifted.mean() / 255 < 0.50
    assert np.all(np.diff(lifted[0, :, 0].astype(int)) >= 0)  # order of tones kept
    normal = np.stack([gradient] * 3, axis=-1)
    assert lift_shadows(normal) is normal
    black = np.zeros_like(normal)
    assert lift_shadows(black) is black  # a fade to black is not amplified noise


DARK_DFDC = Path(__file__).resolve().parents[2] / "shared/data/dev/dfdc_abofeumbvv.mp4"


@pytest.mark.skipif(not DARK_DFDC.exists(), reason="needs ../shared/data/dev (not in CI)")
def test_face_found_in_dim_footage(finder):
    frames = _frames(DARK_DFDC, 16)  # a dim room, a dark-skinned face: MTCNN alone finds it in 2 of 16
    found = finder.find([f.image for f in frames], [f.t for f in frames])
    assert sum(bool(faces) for faces in found) >= 12
