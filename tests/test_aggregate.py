"""The aggregation rules, by hand."""
from __future__ import annotations

import pytest

from deepscreen.aggregate import track_score, video_score
from deepscreen.results import TrackResult


def test_track_score_is_mean_of_top_half():
    assert track_score([0.1, 0.9, 0.5, 0.7]) == pytest.approx(0.8)
    assert track_score([0.1, 0.9, 0.5]) == pytest.approx(0.7)  # top 2 of 3
    assert track_score([0.4]) == pytest.approx(0.4)


def _track(score, faces):
    return TrackResult(track_id=0, score=score, faces=faces, first_t=0, last_t=1, top_times=[])


def test_video_score_is_max_over_tracks_long_enough_to_count():
    assert video_score([]) is None
    assert video_score([_track(0.2, 10), _track(0.9, 4)]) == 0.9
    # a single-frame detection cannot decide the video when a real track exists
    assert video_score([_track(0.2, 10), _track(0.99, 1)]) == 0.2
    # but when every track is short, they all count
    assert video_score([_track(0.3, 1), _track(0.6, 2)]) == 0.6
