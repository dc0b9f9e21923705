"""Real MTCNN on rendered clips: faces found where the face is, crops, tracks."""
from __future__ import annotations

import numpy as np
import pytest

from deepscreen import media
from deepscreen.faces import Face, FaceFinder, crop_box, crop_face, link_tracks
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
