"""Quality measurement for `deepscreen bench`: labelled data sets in, metrics and reports out.

The pipeline run and the CLI live elsewhere; they call `load_dataset` to find the labelled videos,
run the screen, then hand the results to `compute_metrics`, `throughput` and `write_reports`.
All ranking and threshold metrics come from scikit-learn so the numbers match what papers report;
only the equal error rate is derived here (sklearn has no EER), on top of `roc_curve`.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.stats import bootstrap, mannwhitneyu, spearmanr
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from .datasets import LabelledVideo, load_dataset
from .results import ScreenResult

# Operating points reported as "threshold at FPR": 1 % and 5 % of real videos wrongly flagged.
FPR_TARGETS: tuple[float, ...] = (0.01, 0.05)

UNSCORED_POLICY = (
    "Videos without a score (status other than 'ok': no_face, decode_error, unsupported, timeout, "
    "error, or no result at all = 'missing') are excluded from the ranking metrics (AUC, AP, EER, "
    "threshold_at_fpr, frame_auc) and counted in 'failures'. For the metrics at the threshold "
    "(accuracy, precision, recall, F1, confusion) they count as predicted real: a detector that "
    "finds no face flags nothing. A video is predicted fake when score >= threshold."
)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def _result_index(results: Mapping[str, ScreenResult]) -> dict[str, ScreenResult]:
    """Look results up by normalised path, via both the dict key and the record's own path."""
    idx: dict[str, ScreenResult] = {}
    for key, r in results.items():
        idx.setdefault(_norm(key), r)
        if r.path:
            idx.setdefault(_norm(r.path), r)
    return idx


def _usable_score(r: ScreenResult | None) -> float | None:
    if r is None or r.status != "ok" or r.score is None:
        return None
    s = float(r.score)
    return s if math.isfinite(s) else None


def _failure_status(r: ScreenResult | None) -> str:
    if r is None:
        return "missing"
    return r.status if r.status != "ok" else "no_score"


def _f(x: Any) -> float | None:
    """Plain float for JSON; NaN/inf (sklearn's 'undefined') become None."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _two_classes(y: np.ndarray) -> bool:
    return y.size > 0 and 0 < int(y.sum()) < y.size


def eer(y_true: Any, y_score: Any) -> tuple[float | None, float | None]:
    """Equal error rate and its threshold, where FPR = FNR on sklearn's ROC, linearly interpolated.

    Returns (None, None) with only one class, where the EER is undefined.
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(y_score, dtype=float)
    if not _two_classes(y):
        return None, None
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    diff = (1.0 - tpr) - fpr  # starts at +1 (nothing flagged), ends at -1 (everything flagged)
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0 or i == 0:
        return float(fpr[i]), _f(thr[i])
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    rate = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    if math.isfinite(thr[i - 1]):
        threshold = thr[i - 1] + t * (thr[i] - thr[i - 1])
    else:  # segment starts at sklearn's synthetic "flag nothing" point (threshold inf)
        threshold = thr[i]
    return float(rate), float(threshold)


def thresholds_at_fpr(
    y_true: Any, y_score: Any, targets: Iterable[float] = FPR_TARGETS
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Lowest threshold whose FPR stays <= each target (most fakes caught within that false-alarm budget).

    Returns ({"0.01": threshold}, {"0.01": tpr}); None when undefined (one class) or when even the
    highest score already exceeds the budget (only "flag nothing" qualifies).
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(y_score, dtype=float)
    thr_out: dict[str, float | None] = {}
    tpr_out: dict[str, float | None] = {}
    keys = [(f"{t:g}", float(t)) for t in targets]
    if not _two_classes(y):
        return {k: None for k, _ in keys}, {k: None for k, _ in keys}
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    for key, target in keys:
        i = int(np.nonzero(fpr <= target + 1e-12)[0][-1])  # fpr is non-decreasing; fpr[0] == 0
        thr_out[key] = _f(thr[i]) if i > 0 else None
        tpr_out[key] = float(tpr[i]) if i > 0 else 0.0
    return thr_out, tpr_out


def _core(ys: list[int], scores: list[float | None], threshold: float) -> dict[str, Any]:
    """Metrics for one group; `scores[i] is None` marks an unscored video (see UNSCORED_POLICY)."""
    y_all = np.asarray(ys, dtype=int)
    scored = [i for i, s in enumerate(scores) if s is not None]
    y = y_all[scored]
    s = np.asarray([scores[i] for i in scored], dtype=float)
    pred = np.asarray([1 if (sc is not None and sc >= threshold) else 0 for sc in scores], dtype=int)
    two = _two_classes(y)
    e, _ = eer(y, s)
    return {
        "n": int(y_all.size),
        "n_scored": int(y.size),
        "n_real": int((y_all == 0).sum()),
        "n_fake": int((y_all == 1).sum()),
        "auc": float(roc_auc_score(y, s)) if two else None,
        "ap": float(average_precision_score(y, s)) if two else None,
        "eer": e,
        "accuracy": float((pred == y_all).mean()) if y_all.size else None,
        # Mean scores per class: a group of reals scoring high is a source the detector mistakes for fake.
        "mean_real": float(s[y == 0].mean()) if (y == 0).any() else None,
        "mean_fake": float(s[y == 1].mean()) if (y == 1).any() else None,
    }


CONFIDENCE = 0.95
RESAMPLES = 2000
MIN_PER_CLASS = 10  # below this a bootstrap resamples too few clips to say anything (3 + 3 perfect: "1.0-1.0")


def _auc(fakes: np.ndarray, reals: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(a fake outscores a real), ties counted half: the ROC AUC, over batches of resamples."""
    return mannwhitneyu(fakes, reals, axis=axis).statistic / (fakes.shape[axis] * reals.shape[axis])


def auc_interval(y: np.ndarray, s: np.ndarray, seed: int = 0) -> list[float] | None:
    """A 95% bootstrap interval for the video AUC; None with fewer than MIN_PER_CLASS clips of a class.

    Why: the held-out sets here hold tens of clips, and a reader must see how far an AUC moves by chance.
    Reals and fakes are resampled separately (their counts stay fixed); percentile interval.
    """
    y, s = np.asarray(y), np.asarray(s, dtype=float)
    fakes, reals = s[y == 1], s[y == 0]
    if min(len(fakes), len(reals)) < MIN_PER_CLASS:
        return None
    ci = bootstrap((fakes, reals), _auc, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                   method="percentile", rng=seed).confidence_interval
    return [float(ci.low), float(ci.high)]


def compare_aucs(items: list[LabelledVideo], a: Mapping[str, ScreenResult], b: Mapping[str, ScreenResult],
                 seed: int = 0) -> dict[str, Any]:
    """Two runs on the same labelled clips: each AUC and the difference b - a with a paired 95% interval.

    Only clips both runs scored count. The same resampled clips score both runs, so what the clips have in
    common (an easy source, a hard one) cancels out of the difference: the test a reviewer asks for when a
    new checkpoint is said to be better.
    """
    ia, ib = _result_index(a), _result_index(b)
    rows = [(int(it.label), _usable_score(ia.get(_norm(it.path))), _usable_score(ib.get(_norm(it.path))))
            for it in items]
    rows = [r for r in rows if r[1] is not None and r[2] is not None]
    y = np.array([r[0] for r in rows], dtype=int)
    both = np.array([[r[1] for r in rows], [r[2] for r in rows]], dtype=float)  # (run, clip)
    out: dict[str, Any] = {"n": len(rows), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
    if min(out["n_real"], out["n_fake"]) < MIN_PER_CLASS:
        raise ValueError(f"comparing needs at least {MIN_PER_CLASS} real and {MIN_PER_CLASS} fake clips scored "
                         f"by both runs ({out['n_real']} and {out['n_fake']} here)")

    def diff(fakes: np.ndarray, reals: np.ndarray, axis: int = -1) -> np.ndarray:
        return _auc(fakes[1], reals[1], axis) - _auc(fakes[0], reals[0], axis)

    fakes, reals = both[:, y == 1], both[:, y == 0]
    ci = bootstrap((fakes, reals), diff, confidence_level=CONFIDENCE, n_resamples=RESAMPLES, axis=-1,
                   method="percentile", rng=seed).confidence_interval
    out.update({"auc_a": float(_auc(fakes[0], reals[0])), "auc_b": float(_auc(fakes[1], reals[1])),
                "auc_a_ci": auc_interval(y, both[0], seed), "auc_b_ci": auc_interval(y, both[1], seed),
                "difference": float(diff(fakes, reals)), "difference_ci": [float(ci.low), float(ci.high)]})
    return out


def _frame_auc(
    pairs: list[tuple[int, ScreenResult]],
) -> tuple[float | None, int]:
    """AUC over sampled frames: a frame's score is the max face score at that time over all tracks."""
    ys: list[int] = []
    ss: list[float] = []
    for label, r in pairs:
        per_time: dict[float, float] = {}
        for tr in r.tracks:
            for t, sc in zip(tr.face_times, tr.face_scores):
                if sc is None or not math.isfinite(float(sc)):
                    continue
                key = round(float(t), 3)  # same sampled frame seen by several tracks
                per_time[key] = max(per_time.get(key, -math.inf), float(sc))
        ys += [label] * len(per_time)
        ss += list(per_time.values())
    y = np.asarray(ys, dtype=int)
    auc = float(roc_auc_score(y, np.asarray(ss))) if _two_classes(y) else None
    return auc, len(ys)


def sharpness_baseline(scored: list[tuple[int, ScreenResult]]) -> dict[str, Any] | None:
    """What the fine detail of the faces alone ranks on this set (no model), and how closely the video scores
    follow it.

    Why: on a small set, whole sources differ in sharpness (sharp generated heads against soft webcam reals, or
    the reverse), and a detector can rank such a set by reading sharpness without detecting anything. A near-
    untrained texture network ranked this project's select set above the shipped detector that way and its dev
    set far below chance (weights/README.md). Read a detector's AUC against this one: an AUC near it with scores
    that follow detail closely (Spearman near 1) says little about manipulation. Each video's detail is that of
    its longest track (the person seen most, whatever any model scores), so that the baseline is the same for
    every detector benched on the same clips; records written before tracks carried it are left out.
    """
    rows = []
    for y, r in scored:
        track = max(r.tracks, key=lambda t: t.faces, default=None)  # the first of equals
        if track is not None and track.detail is not None:
            rows.append((y, track.detail, float(r.score)))
    if len(rows) < 3:
        return None
    y, d, s = (np.asarray(v, dtype=float) for v in zip(*rows))
    if not _two_classes(y.astype(int)):
        return None
    rho = spearmanr(d, s)[0]
    return {"auc": float(roc_auc_score(y, d)), "spearman": None if math.isnan(rho) else float(rho), "n": len(rows)}


def compute_metrics(
    items: list[LabelledVideo], results: Mapping[str, ScreenResult], threshold: float
) -> dict[str, Any]:
    """Video-level quality of a screen run against ground truth, JSON-ready.

    Unscored policy (also stored as metrics["unscored_policy"]): a video without a score (status
    not "ok", e.g. no_face or decode_error, or no result at all = "missing") is EXCLUDED from
    AUC/AP/EER/threshold_at_fpr/frame_auc and counted by status in "failures"; for accuracy,
    precision, recall, F1 and the confusion matrix it counts as predicted real, because a detector
    that finds no face flags nothing. Predicted fake means score >= threshold.

    per_source groups videos by source; per_method scores each manipulation method's fakes against
    all real videos (the FaceForensics++ convention), since a method alone holds one class only. Any metric undefined for lack of a class is None.
    """
    idx = _result_index(results)
    ys: list[int] = []
    scores: list[float | None] = []
    failures: Counter[str] = Counter()
    scored_pairs: list[tuple[int, ScreenResult]] = []
    for it in items:
        r = idx.get(_norm(it.path))
        sc = _usable_score(r)
        ys.append(int(it.label))
        scores.append(sc)
        if sc is None:
            failures[_failure_status(r)] += 1
        else:
            scored_pairs.append((int(it.label), r))  # type: ignore[arg-type]

    out = _core(ys, scores, threshold)
    y_all = np.asarray(ys, dtype=int)
    pred = np.asarray([1 if (s is not None and s >= threshold) else 0 for s in scores], dtype=int)
    sel = [i for i, s in enumerate(scores) if s is not None]
    y_sc = y_all[sel]
    s_sc = np.asarray([scores[i] for i in sel], dtype=float)

    e, e_thr = eer(y_sc, s_sc)
    out["auc_ci"] = auc_interval(y_sc, s_sc)
    at_fpr, tpr_at = thresholds_at_fpr(y_sc, s_sc)
    if y_all.size:
        tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_all, pred, labels=[0, 1]).ravel())
        p, rc, f1, _ = precision_recall_fscore_support(
            y_all, pred, average="binary", pos_label=1, zero_division=np.nan
        )
    else:
        tn = fp = fn = tp = 0
        p = rc = f1 = None
    frame_auc, n_frames = _frame_auc(scored_pairs)

    out.update(
        {
            "eer": e,
            "eer_threshold": e_thr,
            "precision": _f(p),
            "recall": _f(rc),
            "f1": _f(f1),
            "threshold": float(threshold),
            "threshold_at_fpr": at_fpr,
            "tpr_at_fpr": tpr_at,
            "frame_auc": frame_auc,
            "n_frames": n_frames,
            "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
            "failures": dict(sorted(failures.items())),
            "unscored_policy": UNSCORED_POLICY,
            "sharpness": sharpness_baseline(scored_pairs),
        }
    )

    by_source: dict[str, list[int]] = {}
    by_method: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        if it.source:
            by_source.setdefault(it.source, []).append(i)
        if it.method and it.label == 1:
            by_method.setdefault(it.method, []).append(i)
    shared_real = [i for i, it in enumerate(items) if it.label == 0]
    out["per_source"] = {
        name: _core([ys[i] for i in ids], [scores[i] for i in ids], threshold)
        for name, ids in sorted(by_source.items())
    }
    per_method = {}
    for name, ids in sorted(by_method.items()):
        group = sorted(set(ids) | set(shared_real))
        per_method[name] = _core([ys[i] for i in group], [scores[i] for i in group], threshold)
    out["per_method"] = per_method
    return out


def throughput(
    results: Mapping[str, ScreenResult] | Iterable[ScreenResult], wall_seconds: float
) -> dict[str, Any]:
    """Speed of a run: videos and sampled frames per wall-clock second, and mean seconds per stage.

    Stage means are over the videos that recorded that stage, so a stage skipped by failures
    (e.g. no "score" after no_face) is not diluted by zeros.
    """
    rs = list(results.values()) if isinstance(results, Mapping) else list(results)
    frames = int(sum(r.frames_sampled or 0 for r in rs))
    stages: dict[str, list[float]] = {}
    for r in rs:
        for stage, sec in (r.timings or {}).items():
            if sec is not None and math.isfinite(float(sec)):
                stages.setdefault(stage, []).append(float(sec))
    ok_wall = wall_seconds is not None and wall_seconds > 0
    return {
        "videos": len(rs),
        "frames": frames,
        "wall_s": float(wall_seconds) if wall_seconds is not None else None,
        "videos_per_s": len(rs) / wall_seconds if ok_wall else None,
        "frames_per_s": frames / wall_seconds if ok_wall else None,
        "mean_stage_s": {k: float(np.mean(v)) for k, v in stages.items()},
    }


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


_TABLE_COLS = ("n", "n_scored", "auc", "ap", "eer", "accuracy", "mean_real", "mean_fake")


def format_table(metrics: dict[str, Any]) -> str:
    """Plain-text table for the terminal: overall, then one row per source and per method."""
    rows = [("overall", metrics)]
    rows += [(f"source:{k}", v) for k, v in (metrics.get("per_source") or {}).items()]
    rows += [(f"method:{k}", v) for k, v in (metrics.get("per_method") or {}).items()]
    header = ("group", "n", "scored", "AUC", "AP", "EER", "acc", "real~", "fake~")
    body = [(name, *(_fmt(m.get(c)) for c in _TABLE_COLS)) for name, m in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body]
    if metrics.get("auc_ci"):
        lo, hi = metrics["auc_ci"]
        out.append(f"overall AUC {_fmt(metrics.get('auc'))}, 95% bootstrap interval {lo:.4f}-{hi:.4f} "
                   f"({metrics['n_real']} real, {metrics['n_fake']} fake clips)")
    thr = metrics.get("threshold")
    if thr is not None:
        out.append(
            f"at threshold {thr:g}: precision {_fmt(metrics.get('precision'))}  "
            f"recall {_fmt(metrics.get('recall'))}  F1 {_fmt(metrics.get('f1'))}"
        )
    if metrics.get("sharpness"):
        out.append(_sharpness_line(metrics["sharpness"]))
    if metrics.get("failures"):
        out.append("unscored: " + ", ".join(f"{k} {v}" for k, v in metrics["failures"].items()))
    return "\n".join(out)


def _sharpness_line(sharp: dict[str, Any]) -> str:
    return (f"sharpness alone (fine detail of the faces, no model) ranks these clips at AUC {_fmt(sharp['auc'])}; "
            f"the scores follow it at Spearman {_fmt(sharp['spearman'], 2)}")


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return lines


def _group_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    return [[name, *(_fmt(m.get(c)) for c in _TABLE_COLS)] for name, m in groups.items()]


_GROUP_HEADER = ["group", "n", "scored", "AUC", "AP", "EER", "accuracy", "mean score (real)", "mean score (fake)"]


def _report_md(metrics: dict[str, Any], items: list[LabelledVideo], results: Mapping[str, ScreenResult]) -> str:
    thr = metrics.get("threshold")
    L = ["# deepscreen bench report", ""]
    L += ["## Overall", ""]
    L += _md_table(
        ["videos", "scored", "AUC", "AP", "EER", "EER threshold", "frame AUC", "accuracy", "precision", "recall", "F1", "threshold"],
        [[_fmt(metrics.get(k)) for k in ("n", "n_scored", "auc", "ap", "eer", "eer_threshold", "frame_auc",
                                          "accuracy", "precision", "recall", "f1", "threshold")]],
    )
    at = metrics.get("threshold_at_fpr") or {}
    tpr_at = metrics.get("tpr_at_fpr") or {}
    if at:
        L += ["", "Operating points from the ROC (lowest threshold keeping FPR within the target):", ""]
        L += _md_table(["target FPR", "threshold", "TPR"], [[k, _fmt(v), _fmt(tpr_at.get(k))] for k, v in at.items()])
    L += ["", f"_{metrics.get('unscored_policy', UNSCORED_POLICY)}_", ""]
    if metrics.get("sharpness"):
        L += [_sharpness_line(metrics["sharpness"]).capitalize() + " (far from 0.5 either way: the set's real and fake "
              "sources differ in sharpness, and a detector can rank it by reading that).", ""]
    if metrics.get("per_source"):
        L += ["## Per source", ""] + _md_table(_GROUP_HEADER, _group_rows(metrics["per_source"])) + [""]
    if metrics.get("per_method"):
        L += ["## Per method", "", "Each method's fakes against all real videos.", ""]
        L += _md_table(_GROUP_HEADER, _group_rows(metrics["per_method"])) + [""]
    c = metrics.get("confusion") or {}
    L += [f"## Confusion matrix (threshold {_fmt(thr)})", ""]
    L += _md_table(
        ["", "predicted real", "predicted fake"],
        [["actual real", str(c.get("tn", 0)), str(c.get("fp", 0))],
         ["actual fake", str(c.get("fn", 0)), str(c.get("tp", 0))]],
    )
    L += ["", "## Failures", ""]
    fails = metrics.get("failures") or {}
    L += _md_table(["status", "videos"], [[k, str(v)] for k, v in fails.items()]) if fails else ["None: every video was scored."]
    L.append("")
    tp = metrics.get("throughput")
    if tp:
        L += ["## Throughput", ""]
        L += _md_table(
            ["videos", "frames", "wall s", "videos/s", "frames/s"],
            [[_fmt(tp.get(k), 3) for k in ("videos", "frames", "wall_s", "videos_per_s", "frames_per_s")]],
        )
        stages = tp.get("mean_stage_s") or {}
        if stages:
            L += ["", "Mean seconds per video and stage:", ""]
            L += _md_table(["stage", "mean s"], [[k, _fmt(v, 3)] for k, v in stages.items()])
        L.append("")
    L += ["## Per video", ""]
    idx = _result_index(results)
    try:
        base = os.path.commonpath([os.path.dirname(it.path) for it in items]) if items else ""
    except ValueError:  # paths on different drives
        base = ""
    rows = []
    for it in items:
        r = idx.get(_norm(it.path))
        sc = _usable_score(r)
        pred = "fake" if (sc is not None and thr is not None and sc >= thr) else "real"
        rows.append(
            [
                os.path.relpath(it.path, base) if base else it.path,
                "fake" if it.label else "real",
                it.source or "-",
                it.method or "-",
                r.status if r is not None else "missing",
                _fmt(sc),
                pred,
                "yes" if (pred == "fake") == bool(it.label) else "no",
            ]
        )
    L += _md_table(["video", "label", "source", "method", "status", "score", "predicted", "correct"], rows)
    return "\n".join(L) + "\n"


def _labelled_scores(
    items: list[LabelledVideo], results: Mapping[str, ScreenResult]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    idx = _result_index(results)
    ys, ss, srcs = [], [], []
    for it in items:
        sc = _usable_score(idx.get(_norm(it.path)))
        if sc is not None:
            ys.append(int(it.label))
            ss.append(sc)
            srcs.append(it.source)
    return np.asarray(ys, dtype=int), np.asarray(ss, dtype=float), srcs


def _new_figure(size: tuple[float, float]):  # -> (Figure, Axes)
    """A Figure on an explicit Agg canvas: no pyplot global state, no display needed, thread-safe."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _plot_roc(y: np.ndarray, s: np.ndarray, srcs: list[str], path: str) -> None:
    fig, ax = _new_figure((6, 6))
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    drawn = False
    if _two_classes(y):
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, color="black", linewidth=2, label=f"overall (AUC {roc_auc_score(y, s):.3f})")
        drawn = True
    src_arr = np.asarray(srcs, dtype=object)
    for name in sorted({x for x in srcs if x}):
        m = src_arr == name
        if _two_classes(y[m]):
            fpr, tpr, _ = roc_curve(y[m], s[m])
            ax.plot(fpr, tpr, linewidth=1, label=f"{name} (AUC {roc_auc_score(y[m], s[m]):.3f})")
    if not drawn:
        ax.text(0.5, 0.5, "ROC undefined: scored videos hold one class only", ha="center", va="center")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (real flagged fake)")
    ax.set_ylabel("true positive rate (fakes caught)")
    ax.set_title("ROC, video level")
    if drawn:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _plot_scores(y: np.ndarray, s: np.ndarray, threshold: float | None, path: str) -> None:
    fig, ax = _new_figure((7, 4.5))
    bins = np.linspace(0.0, 1.0, 26)
    for label, name, color in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
        vals = s[y == label]
        if vals.size:
            ax.hist(np.clip(vals, 0, 1), bins=bins, alpha=0.5, color=color, label=f"{name} (n={vals.size})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    if not s.size:
        ax.text(0.5, 0.5, "no scored videos", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_xlabel("video score (1 = fake)")
    ax.set_ylabel("videos")
    ax.set_title("Score distribution")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return _f(x)
    return x


def write_reports(
    metrics: dict[str, Any],
    items: list[LabelledVideo],
    results: Mapping[str, ScreenResult],
    out_dir: str,
) -> dict[str, str]:
    """Write metrics.json, report.md, roc.png and scores.png into out_dir; return {name: path}.

    metrics.json is strict JSON (undefined values are null) so other tools can diff runs.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "metrics": os.path.join(out_dir, "metrics.json"),
        "report": os.path.join(out_dir, "report.md"),
        "roc": os.path.join(out_dir, "roc.png"),
        "scores": os.path.join(out_dir, "scores.png"),
    }
    safe = _json_safe(metrics)
    safe.setdefault("unscored_policy", UNSCORED_POLICY)
    with open(paths["metrics"], "w", encoding="utf-8") as fh:
        json.dump(safe, fh, indent=2, allow_nan=False)
        fh.write("\n")
    with open(paths["report"], "w", encoding="utf-8") as fh:
        fh.write(_report_md(safe, items, results))
    y, s, srcs = _labelled_scores(items, results)
    _plot_roc(y, s, srcs, paths["roc"])
    _plot_scores(y, s, safe.get("threshold"), paths["scores"])
    return paths


def run_bench(dataset: str, out_dir: str, screener: Any, labels: str | None = None,
              progress: Any = None) -> dict[str, Any]:
    """Screen a labelled dataset with the scan pipeline and report on it; returns the metrics."""
    return bench_items(load_dataset(dataset, labels), out_dir, screener, progress)[0]


def _check_same_settings(out_dir: str, settings: dict) -> None:
    """Refuse to resume a bench whose records another model or other sampling settings made.

    Why: records are picked up by path, and a calibration fed the last checkpoint's scores would store a
    threshold that does not fit the weights it is written into.
    """
    path = os.path.join(out_dir, "settings.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            before = json.load(fh)
        diff = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if diff:
            changes = "; ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in diff)
            raise ValueError(f"{out_dir} holds records made with other settings ({changes}); "
                             f"pass another output folder, or delete {out_dir} to start over")
        return
    records = os.path.join(out_dir, "results.jsonl")
    if os.path.exists(records) and os.path.getsize(records):
        raise ValueError(f"{out_dir} holds records of an unknown model and settings; "
                         f"pass another output folder, or delete {out_dir} to start over")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(settings, fh, indent=2)


def bench_items(items: list[LabelledVideo], out_dir: str, screener: Any,
                progress: Any = None) -> tuple[dict[str, Any], dict[str, ScreenResult]]:
    """Screen labelled videos, report on them; returns the metrics and every video's record by path.

    Per-video records go to out_dir/results.jsonl as they are made, so an interrupted bench picks up where it
    stopped; throughput counts only the videos screened in this run.
    """
    from .results import ResultWriter, open_results

    os.makedirs(out_dir, exist_ok=True)
    _check_same_settings(out_dir, screener.settings())
    done, fh = open_results(os.path.join(out_dir, "results.jsonl"))
    results = {_norm(r.path): r for r in done}
    todo = [v.path for v in items if _norm(v.path) not in results]
    fresh: list[ScreenResult] = []
    start = time.monotonic()
    with fh:
        writer = ResultWriter(fh)
        for r in screener.screen_many(todo):
            writer.write(r)
            results[_norm(r.path)] = r
            fresh.append(r)
            if progress is not None:
                progress.update()
    metrics = compute_metrics(items, results, screener.threshold)
    metrics["throughput"] = throughput(fresh, time.monotonic() - start) if fresh else None
    metrics["model"] = next((r.model for r in results.values() if r.model), {})
    metrics["paths"] = write_reports(metrics, items, results, out_dir)
    return metrics, results
