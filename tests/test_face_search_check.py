"""scripts/face_search_check.py: whole-frame searches under two first-stage thresholds, compared on a real clip."""
from __future__ import annotations

from conftest import load_script

from deepscreen.model import Detector


def test_the_reference_threshold_matches_itself_and_a_stricter_one_is_compared(face_clip, tiny_weights):
    check = load_script("face_search_check")
    detector = Detector.load(tiny_weights, device="cpu")
    same, strict = check.compare([str(face_clip)], 4, [0.6, 0.95], detector)
    assert same["faces"] == 4 and same["missed"] == same["new"] == 0 and same["score_change"] == 0.0
    assert strict["first_stage"] == 0.95 and strict["faces"] + strict["missed"] - strict["new"] == 4
    assert same["seconds"] > 0 and strict["seconds"] > 0
