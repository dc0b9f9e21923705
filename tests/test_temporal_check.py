"""scripts/temporal_check.py's aggregations, on hand-made bench records (no decoding, no model)."""
from __future__ import annotations

import json

import pytest

from deepscreen.datasets import LabelledVideo
from deepscreen.results import ScreenResult, TrackResult

from conftest import load_script


def _track(scores, times=None, track_id=0):
    times = times or [float(i) for i in range(len(scores))]
    return TrackResult(track_id=track_id, score=0.0, faces=len(scores), first_t=min(times), last_t=max(times),
                       top_times=[], face_scores=scores, face_times=times)


def test_aggregations_read_face_scores_in_time_order_over_counted_tracks(tmp_path):
    tc = load_script("temporal_check")
    records = [
        # face scores listed out of time order: flicker must follow time, not list order
        ScreenResult(path="/v/a.mp4", status="ok", tracks=[_track([0.9, 0.1, 0.5], times=[2.0, 0.0, 1.0])]),
        # a two-face spurious track does not count beside a four-face one
        ScreenResult(path="/v/b.mp4", status="ok", tracks=[_track([0.2, 0.2, 0.2, 0.2]), _track([1.0, 1.0], track_id=1)]),
        ScreenResult(path="/v/c.mp4", status="no_face"),
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    got = tc.video_scores(str(tmp_path))
    assert set(got) == {"/v/a.mp4", "/v/b.mp4"}
    a = got["/v/a.mp4"]  # in time order: 0.1, 0.5, 0.9
    assert a["flicker"] == pytest.approx(0.4) and a["max"] == 0.9 and a["median"] == 0.5
    assert a["top-half"] == pytest.approx(0.7) and a["top-half+flicker"] == pytest.approx(1.1)
    assert got["/v/b.mp4"]["max"] == 0.2 and got["/v/b.mp4"]["flicker"] == 0.0

    items = [LabelledVideo("/v/a.mp4", 1, method="Gen"), LabelledVideo("/v/b.mp4", 0),
             LabelledVideo("/v/c.mp4", 0)]
    aucs = tc.aucs(items, {k: v["mean"] for k, v in got.items()})
    assert aucs == {"all": 1.0, "method:Gen": 1.0}  # the unscored clip is left out
