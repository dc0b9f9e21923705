"""What would a generator never seen cost a committee of linear heads?  Leave-one-method-out fits.

    .venv/bin/python scripts/heads_leave_one_out.py LABELLED SELECT --member BACKBONE C [--member BACKBONE C]
                                                     [--methods A,B] [--frames 8] [--json OUT]

For each fake method of LABELLED (default: all), every member's head is fitted again without that method's
faces (`deepscreen fit-heads --exclude-method`, in memory: the backbones' features are computed once), and the
left-out method's clips (their cached training faces) are scored against SELECT's real clips (sources never
fitted on; `--frames` faces each). "seen" is the fit on everything, which saw those very clips. Video score:
the mean of the top half of the clip's face scores, as scan aggregates.

Caveat printed with the table: a backbone that was itself fine-tuned on LABELLED saw the left-out method
during fine-tuning, so only its head is refitted here and its "unseen" column is optimistic; a frozen ImageNet
backbone never saw any of it, and its column is an honest estimate.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from deepscreen.aggregate import track_score  # noqa: E402
from deepscreen.heads import face_weights, fit_head, load_tapnet, pooled_features, training_crops  # noqa: E402
from deepscreen.training import CachedFace, cache_labelled, labelled_clips, selection_clips  # noqa: E402


def _video(z: np.ndarray) -> float:
    return track_score(1 / (1 + np.exp(-z)))


def leave_one_out(feats: list[np.ndarray], records: list[CachedFace], cs: list[float],
                  real_feats: list[list[np.ndarray]], methods: list[str]) -> dict:
    """Per method: AUC of its clips against the reference reals, per member and for the committee (mean z).

    feats[m]: member m's features of every training face (rows as `records`); real_feats[m]: one array per
    reference real clip.
    """
    y = np.array([r.label for r in records])
    method = np.array([r.method if r.label else "" for r in records])
    group = np.array([r.group for r in records])

    def fit(keep: np.ndarray) -> list:
        w = face_weights([r for r, k in zip(records, keep) if k])
        return [fit_head(f[keep], y[keep], w, c) for f, c in zip(feats, cs)]

    seen = fit(np.ones(len(records), bool))
    out = {}
    for name in methods:
        rows = method == name
        clips = sorted(set(group[rows]))
        row = {"clips": len(clips), "reals": len(real_feats[0])}
        for tag, heads in (("unseen", fit(~rows)), ("seen", seen)):
            zr = [np.mean([h.z(rf[i]) for h, rf in zip(heads, real_feats)], 0) for i in range(len(real_feats[0]))]
            zf = [np.mean([h.z(f[group == g]) for h, f in zip(heads, feats)], 0) for g in clips]
            per_member = [([_video(h.z(rf[i])) for i in range(len(rf))], [_video(h.z(f[group == g])) for g in clips])
                          for h, f, rf in zip(heads, feats, real_feats)]
            scores = [_video(z) for z in zr], [_video(z) for z in zf]
            named = [("committee", scores)] + [(f"member{i}", s) for i, s in enumerate(per_member)]
            for key, (real_s, fake_s) in named:
                row[f"auc_{tag}_{key}"] = float(roc_auc_score([0] * len(real_s) + [1] * len(fake_s), real_s + fake_s))
            row[f"fake_mean_{tag}"] = float(np.mean(scores[1]))
        out[name] = row
        logging.info("%s: %s", name, row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelled", help="labelled training clips (any layout `deepscreen bench` reads)")
    ap.add_argument("select", help="labelled clips never fitted on: their reals are the reference")
    ap.add_argument("--member", nargs=2, action="append", required=True, metavar=("BACKBONE", "C"))
    ap.add_argument("--methods", help="comma-separated fake methods (default: every one)")
    ap.add_argument("--frames", type=int, default=8, help="faces per reference real clip")
    ap.add_argument("--frames-per-clip", type=int, default=16, help="cached faces per training clip")
    ap.add_argument("--cache-dir", default="cache/faces")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    items = labelled_clips([args.labelled], select_on=args.select)
    records = cache_labelled(items, args.cache_dir, args.frames_per_clip)
    methods = ([m.strip() for m in args.methods.split(",") if m.strip()] if args.methods
               else sorted({r.method for r in records if r.label}))
    crops = training_crops(records, args.cache_dir, 0.3, 224)
    sel_crops, sel_labels = selection_clips(args.select, args.frames, 0.3, 224, args.cache_dir)
    real_crops = [c for c, label in zip(sel_crops, sel_labels) if label == 0]
    nets = [load_tapnet(b) for b, _ in args.member]
    feats = [pooled_features(n, crops) for n in nets]
    real_feats = [[pooled_features(n, c) for c in real_crops] for n in nets]
    table = leave_one_out(feats, records, [float(c) for _, c in args.member], real_feats, methods)
    names = [Path(b).name for b, _ in args.member]
    print(f"{'method left out':<20}{'clips':>6}{'committee unseen':>18}{'seen':>7}"
          + "".join(f"{n[:22] + ' unseen':>30}{'seen':>7}" for n in names))
    for m, r in table.items():
        print(f"{m:<20}{r['clips']:>6}{r['auc_unseen_committee']:18.3f}{r['auc_seen_committee']:7.3f}"
              + "".join(f"{r[f'auc_unseen_member{i}']:30.3f}{r[f'auc_seen_member{i}']:7.3f}"
                        for i in range(len(names))))
    print("A backbone fine-tuned on these clips saw every method: only its head was refitted, so its 'unseen' "
          "column is optimistic; a frozen ImageNet backbone's is not.")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
