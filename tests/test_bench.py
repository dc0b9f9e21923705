"""Bench metrics and reports: hand-computed cases, no decoding, no models."""
from __future__ import annotations

import json
import os

import matplotlib.image as mpimg
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from deepscreen.bench import (
    UNSCORED_POLICY,
    auc_interval,
    compare_aucs,
    compute_metrics,
    eer,
    format_table,
    throughput,
    write_reports,
)
from deepscreen.datasets import LabelledVideo
from deepscreen.results import ScreenResult, TrackResult


def _ok(path: str, score: float, **kw) -> ScreenResult:
    return ScreenResult(path=path, status="ok", score=score, **kw)


def _case(entries):
    """entries: (name, label, score-or-status, source, method) -> items, results."""
    items, results = [], {}
    for name, label, sc, source, method in entries:
        p = os.path.abspath(f"/data/{name}.mp4")
        items.append(LabelledVideo(path=p, label=label, source=source, method=method))
        if sc == "missing":
            continue
        results[p] = _ok(p, sc) if isinstance(sc, float) else ScreenResult(path=p, status=sc)
    return items, results


# Fakes 0.9, 0.4; reals 0.6, 0.1.
FOUR = [
    ("f1", 1, 0.9, "a", "M"),
    ("f2", 1, 0.4, "a", "M"),
    ("r1", 0, 0.6, "a", ""),
    ("r2", 0, 0.1, "a", ""),
]


# ------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------


def test_four_videos_by_hand():
    items, results = _case(FOUR)
    m = compute_metrics(items, results, threshold=0.5)
    assert m["n"] == 4 and m["n_scored"] == 4
    # AUC: fake>real pairs (0.9>0.6, 0.9>0.1, 0.4>0.1) = 3 of 4
    assert m["auc"] == pytest.approx(0.75)
    # AP: ranked F(0.9) R(0.6) F(0.4) R(0.1): 0.5*1 + 0.5*(2/3)
    assert m["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # ROC: at threshold 0.6 FPR = 0.5 and FNR = 0.5 exactly
    assert m["eer"] == pytest.approx(0.5)
    assert m["eer_threshold"] == pytest.approx(0.6)
    # At 0.5: 0.9 TP, 0.4 FN, 0.6 FP, 0.1 TN
    assert m["confusion"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["threshold"] == 0.5
    # Any flagged real means FPR 0.5 > budget: lowest safe threshold is the top fake's score.
    assert m["threshold_at_fpr"] == {"0.01": pytest.approx(0.9), "0.05": pytest.approx(0.9)}
    assert m["tpr_at_fpr"]["0.01"] == pytest.approx(0.5)
    assert m["failures"] == {}
    assert m["unscored_policy"] == UNSCORED_POLICY


def test_auc_interval_brackets_the_auc_and_narrows_with_more_clips():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 100):
        y = np.r_[np.zeros(n), np.ones(n)].astype(int)
        s = rng.normal(size=2 * n) + y
        lo, hi = auc_interval(y, s)
        assert lo < roc_auc_score(y, s) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(n)
    assert auc_interval(y[:18], s[:18]) is None  # 18 reals, no fake: no interval
    items, results = _case(FOUR)
    assert compute_metrics(items, results, threshold=0.5)["auc_ci"] is None  # 2 + 2 clips say too little


def test_compare_is_paired_and_only_counts_clips_both_scored():
    rng = np.random.default_rng(1)
    entries = [(f"c{i}", i % 2, 0.0, "s", "M" if i % 2 else "") for i in range(40)]
    items, _ = _case(entries)
    base = rng.normal(size=40)
    a = {it.path: _ok(it.path, float(base[i] + it.label)) for i, it in enumerate(items)}
    same = compare_aucs(items, a, a)
    assert same["difference"] == 0 and same["difference_ci"] == [0, 0] and same["n"] == 40
    # B: the same clips, every fake raised a little: a small gain the pairing can see.
    b = {p: _ok(p, r.score + 0.3 * (it.label == 1)) for it, (p, r) in zip(items, a.items())}
    b[items[0].path] = ScreenResult(path=items[0].path, status="no_face")
    c = compare_aucs(items, a, b)
    assert c["n"] == 39 and c["difference"] > 0 and c["difference_ci"][0] > 0
    assert c["auc_b"] == pytest.approx(roc_auc_score([it.label for it in items[1:]],
                                                     [b[it.path].score for it in items[1:]]))
    with pytest.raises(ValueError, match="at least 10 real and 10 fake"):
        compare_aucs(items[:3], a, b)


def test_sharpness_alone_is_read_from_the_person_seen_most():
    def rec(path: str, score: float, *tracks: tuple[float, int, float | None]) -> ScreenResult:
        return _ok(path, score, tracks=[TrackResult(i, s, n, 0.0, 1.0, [], detail=d)
                                        for i, (s, n, d) in enumerate(tracks)])

    entries = [("f1", 1, 0.9, 300.0), ("f2", 1, 0.4, 20.0), ("r1", 0, 0.6, 100.0), ("r2", 0, 0.1, 50.0)]
    items = [LabelledVideo(path=os.path.abspath(f"/data/{n}.mp4"), label=y) for n, y, _, _ in entries]
    results = {it.path: rec(it.path, s, (s, 8, d)) for it, (_, _, s, d) in zip(items, entries)}
    # A second person in r2, seen twice only: whatever a detector scores them, the clip's detail stays the first's.
    results[items[3].path].tracks.append(TrackResult(1, 0.95, 2, 0.0, 1.0, [], detail=9999.0))
    sharp = compute_metrics(items, results, threshold=0.5)["sharpness"]
    assert sharp["auc"] == pytest.approx(0.5)  # fakes 300, 20 against reals 100, 50: two of four pairs
    assert sharp["spearman"] == pytest.approx(0.8) and sharp["n"] == 4  # detail ranks 4,1,3,2 vs scores 4,2,3,1
    assert "sharpness alone" in format_table(compute_metrics(items, results, threshold=0.5))
    # Records written before tracks carried detail are left out; too few left, no baseline.
    for r in list(results.values())[:2]:
        r.tracks[0].detail = None
    assert compute_metrics(items, results, threshold=0.5)["sharpness"] is None


def test_eer_interpolated():
    # Fakes 0.9 0.8 0.3, reals 0.5 0.1. ROC points (fpr, fnr): (0,1/3)@0.8 -> (0.5,1/3)@0.5.
    # FNR - FPR goes 1/3 -> -1/6, crossing at t = 2/3: EER = 1/3, threshold 0.8 - 2/3*0.3 = 0.6.
    rate, thr = eer([1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.5, 0.1])
    assert rate == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.6)


def test_threshold_at_fpr_with_many_reals():
    # 100 reals at 0, 0.005, ..., 0.495; 9 fakes at 0.6..0.68 and one fake at 0.4525,
    # below the 9 reals 0.455..0.495.
    reals = [(f"r{i}", 0, i / 200, "", "") for i in range(100)]
    fakes = [(f"f{i}", 1, 0.6 + i / 100, "", "") for i in range(9)] + [("f9", 1, 0.4525, "", "")]
    items, results = _case(reals + fakes)
    m = compute_metrics(items, results, threshold=0.5)
    # FPR <= 0.01 -> at most 1 real flagged: lowest threshold 0.495, catching the 9 high fakes.
    assert m["threshold_at_fpr"]["0.01"] == pytest.approx(0.495)
    assert m["tpr_at_fpr"]["0.01"] == pytest.approx(0.9)
    # FPR <= 0.05 -> at most 5 reals (0.475..0.495): threshold 0.475, still 9 fakes.
    assert m["threshold_at_fpr"]["0.05"] == pytest.approx(0.475)
    # AUC: only the 0.4525 fake loses to the 9 reals above it
    assert m["auc"] == pytest.approx(1 - 9 / 1000)
    assert m["confusion"] == {"tn": 100, "fp": 0, "fn": 1, "tp": 9}


def test_unscored_policy():
    entries = FOUR + [
        ("nf", 1, "no_face", "a", "M"),
        ("de", 0, "decode_error", "a", ""),
        ("gone", 1, "missing", "a", "M"),
    ]
    items, results = _case(entries)
    m = compute_metrics(items, results, threshold=0.5)
    # Ranking metrics only over the 4 scored videos: unchanged from the hand case.
    assert m["n"] == 7 and m["n_scored"] == 4
    assert m["auc"] == pytest.approx(0.75)
    assert m["eer"] == pytest.approx(0.5)
    assert m["failures"] == {"decode_error": 1, "missing": 1, "no_face": 1}
    # Unscored = predicted real: two fakes become FN, the real becomes TN.
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 3, "tp": 1}
    assert m["accuracy"] == pytest.approx(3 / 7)
    assert m["recall"] == pytest.approx(1 / 4)
    assert m["precision"] == pytest.approx(1 / 2)
    assert "predicted real" in m["unscored_policy"]


def test_ok_status_without_score_and_error_with_score_are_unscored():
    items, results = _case(FOUR)
    p = items[0].path
    results[p] = ScreenResult(path=p, status="timeout", score=0.99)
    items.append(LabelledVideo(path="/data/x.mp4", label=0))
    results["/data/x.mp4"] = ScreenResult(path="/data/x.mp4", status="ok", score=None)
    m = compute_metrics(items, results, 0.5)
    assert m["failures"] == {"no_score": 1, "timeout": 1}
    assert m["n_scored"] == 3


def test_one_class_groups_give_none():
    entries = [
        ("f1", 1, 0.9, "only_fake", "M"),
        ("f2", 1, 0.7, "only_fake", "M"),
        ("r1", 0, 0.2, "mixed", ""),
        ("f3", 1, 0.8, "mixed", "N"),
    ]
    items, results = _case(entries)
    m = compute_metrics(items, results, 0.5)
    src = m["per_source"]["only_fake"]
    assert src["n"] == 2 and src["auc"] is None and src["ap"] is None and src["eer"] is None
    assert src["accuracy"] == pytest.approx(1.0)
    assert m["per_source"]["mixed"]["auc"] == pytest.approx(1.0)
    # per_method: method fakes vs the shared real pool
    assert m["per_method"]["M"]["n"] == 3 and m["per_method"]["M"]["auc"] == pytest.approx(1.0)
    assert m["per_method"]["N"]["n"] == 2


def test_all_one_class_and_empty_never_crash():
    items, results = _case([("f1", 1, 0.9, "", ""), ("f2", 1, 0.1, "", "")])
    m = compute_metrics(items, results, 0.5)
    for k in ("auc", "ap", "eer", "eer_threshold", "frame_auc"):
        assert m[k] is None
    assert m["threshold_at_fpr"] == {"0.01": None, "0.05": None}
    assert m["precision"] == 1.0 and m["recall"] == 0.5
    # no positive predictions -> precision undefined -> None
    m = compute_metrics(items, results, 0.95)
    assert m["precision"] is None and m["f1"] == pytest.approx(0.0)
    m = compute_metrics([], {}, 0.5)
    assert m["n"] == 0 and m["accuracy"] is None and m["auc"] is None
    assert m["per_source"] == {} and m["per_method"] == {}


def test_results_keyed_by_other_path_spelling():
    items, results = _case(FOUR)
    rekeyed = {f"k{i}": r for i, r in enumerate(results.values())}  # key unusable, r.path matches
    assert compute_metrics(items, rekeyed, 0.5)["auc"] == pytest.approx(0.75)


def _track(tid, times, scores):
    return TrackResult(track_id=tid, score=max(scores), faces=len(scores), first_t=times[0],
                       last_t=times[-1], top_times=[], face_scores=scores, face_times=times)


def test_frame_auc_max_over_tracks_at_same_time():
    fake = _ok("/d/f.mp4", 0.8, tracks=[_track(0, [0.0, 1.0], [0.9, 0.2]), _track(1, [1.0], [0.7])])
    real = _ok("/d/r.mp4", 0.4, tracks=[_track(0, [0.0, 1.0], [0.3, 0.8])])
    items = [LabelledVideo("/d/f.mp4", 1), LabelledVideo("/d/r.mp4", 0)]
    m = compute_metrics(items, {"/d/f.mp4": fake, "/d/r.mp4": real}, 0.5)
    # frames: fake {0.9, max(0.2,0.7)=0.7}, real {0.3, 0.8}: pairs won 0.9>0.3, 0.9>0.8, 0.7>0.3 = 3/4
    assert m["n_frames"] == 4
    assert m["frame_auc"] == pytest.approx(0.75)


def test_throughput():
    rs = {
        "a": ScreenResult(path="a", status="ok", frames_sampled=30,
                          timings={"decode": 1.0, "score": 2.0, "total": 4.0}),
        "b": ScreenResult(path="b", status="no_face", frames_sampled=10,
                          timings={"decode": 3.0, "total": 4.0}),
    }
    t = throughput(rs, 8.0)
    assert t["videos_per_s"] == pytest.approx(0.25)
    assert t["frames_per_s"] == pytest.approx(5.0)
    assert t["mean_stage_s"] == {"decode": 2.0, "score": 2.0, "total": 4.0}
    assert throughput(list(rs.values()), 0)["videos_per_s"] is None


# ------------------------------------------------------------------------------------------
# reports
# ------------------------------------------------------------------------------------------


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_write_reports(tmp_path):
    entries = [
        ("f1", 1, 0.9, "yt", "Deepfakes"),
        ("f2", 1, 0.4, "yt", "FaceSwap"),
        ("r1", 0, 0.6, "yt", ""),
        ("r2", 0, 0.1, "yt", ""),
        ("f3", 1, 0.7, "actors", "DFD"),
        ("r3", 0, 0.3, "actors", ""),
        ("nf", 1, "no_face", "only|pipe", "DFD"),
    ]
    items, results = _case(entries)
    m = compute_metrics(items, results, 0.5)
    m["throughput"] = throughput(results, 2.0)
    paths = write_reports(m, items, results, str(tmp_path / "out"))
    assert set(paths) == {"metrics", "report", "roc", "scores"}
    assert {os.path.basename(p) for p in paths.values()} == {"metrics.json", "report.md", "roc.png", "scores.png"}

    data = json.loads(_read(paths["metrics"]))
    assert data["auc"] == pytest.approx(m["auc"])
    assert data["unscored_policy"] == UNSCORED_POLICY
    assert data["per_source"]["only|pipe"]["auc"] is None

    md = _read(paths["report"])
    for heading in ("## Overall", "## Per source", "## Per method", "## Confusion matrix",
                    "## Failures", "## Throughput", "## Per video"):
        assert heading in md
    assert "| videos | scored | AUC | AP | EER |" in md
    assert "| video | label | source | method | status | score | predicted | correct |" in md
    assert "only\\|pipe" in md and "no_face" in md

    for key in ("roc", "scores"):
        assert os.path.getsize(paths[key]) > 0
        img = mpimg.imread(paths[key])
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_write_reports_degenerate(tmp_path):
    items, results = _case([("f1", 1, 0.9, "", ""), ("nf", 0, "no_face", "", "")])
    m = compute_metrics(items, results, 0.5)
    paths = write_reports(m, items, results, str(tmp_path))
    assert json.loads(_read(paths["metrics"]))["auc"] is None
    assert "## Throughput" not in _read(paths["report"])
    for key in ("roc", "scores"):
        assert mpimg.imread(paths[key]).size > 0


def test_format_table():
    items, results = _case(FOUR + [("r9", 0, 0.2, "b", "")])
    text = format_table(compute_metrics(items, results, 0.5))
    lines = text.splitlines()
    assert lines[0].split() == ["group", "n", "scored", "AUC", "AP", "EER", "acc", "real~", "fake~"]
    assert lines[2].startswith("overall")
    assert any(line.startswith("source:a") for line in lines)
    assert any(line.startswith("source:b") and " - " in line for line in lines)  # one class -> "-"
    assert any(line.startswith("method:M") for line in lines)
