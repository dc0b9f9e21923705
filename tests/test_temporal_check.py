"""scripts/temporal_check.py's aggregations on hand-made bench records; scripts/temporal_model_check.py's models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deepscreen.datasets import LabelledVideo
from deepscreen.model import default_weights
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


def _clips(rng, n: int, fake_wobble: float):
    """Reals and fakes with the same mean features; fakes' features wobble over time by `fake_wobble`."""
    out = []
    for i in range(n):
        label = i % 2
        frames = rng.normal(0, 1, size=4) + rng.normal(0, 0.1 + fake_wobble * label, size=(12, 4))
        out.append((frames, label, np.full(12, 1 / (12 * n))))
    return out


def test_temporal_models_learn_what_only_time_shows():
    tm = load_script("temporal_model_check")
    rng = np.random.default_rng(0)
    train, test = _clips(rng, 120, 1.0), _clips(rng, 60, 1.0)
    # Frame by frame, a fake face is a real face plus noise: nothing to learn but spread.
    assert tm.auc(tm.fit("mean+spread", train, 1.0), test) > 0.95
    assert tm.auc(tm.fit("mean+steps", train, 1.0), test) > 0.95
    assert tm.auc(tm.fit("gru", train, 0.01), test) > 0.9
    # The per-frame control sees single faces: no better than the spread of a few frames lets it be by luck.
    assert tm.auc(tm.fit("frame", train, 1.0), test) < 0.8


def test_temporal_model_check_end_to_end(tmp_path, face_clip, two_face_clip, capsys):
    tm = load_script("temporal_model_check")
    data = tmp_path / "labelled"
    data.mkdir()
    for name, clip in (("real.mp4", face_clip), ("fake.mp4", two_face_clip)):
        (data / name).write_bytes(clip.read_bytes())
    (data / "labels.csv").write_text("file,label,source,method\nreal.mp4,real,cam,\nfake.mp4,fake,web,Tint\n")
    out = tmp_path / "table.json"
    assert tm.main([str(data), str(data), "--weights", str(default_weights()), "--frames", "3", "--dims", "4",
                    "--cache-dir", str(tmp_path / "cache"), "--workdir", str(tmp_path / "work"),
                    "--json", str(out)]) == 0
    table = json.loads(out.read_text())
    assert set(table) == set(tm.MODELS)
    assert all(0 <= row["labelled"] <= 1 for row in table.values())
    assert "strength chosen on labelled" in capsys.readouterr().out
