"""How well does a training recipe catch a generator it has never seen?  Leave-one-method-out runs.

    .venv/bin/python scripts/leave_one_out.py RUN_DIR --methods Hallo3,DeepFaceLive [--steps 300] [--json OUT]
    .venv/bin/python scripts/leave_one_out.py RUN_DIR --methods EchoMimic+EchoMimicV2+EchoMimicV3

RUN_DIR is a finished `deepscreen train` run with labelled clips: its config.json is the recipe. For each
method, the same recipe is trained again with that method's fakes left out (`--exclude-method`), for `--steps`
steps, in RUN_DIR/leave-out/<method>/ (resumable: run the command again after an interruption). Then the
left-out method's clips (from the labelled training set) are scored against the real clips of the selection
set (`select_on`: sources never trained on) by the model that never saw the method and by a control model
trained the same way for as many steps with nothing left out (RUN_DIR/leave-out/none/), which did. The gap
between the two is what a new generator costs; the first number is the estimate for one.
Methods joined by `+` are left out together: a family of generators (EchoMimic and its later versions) shares
so much that leaving out one member while training on its siblings does not show what a new family costs.
Video score: the mean of the top half of the largest face's scores in `--frames` evenly spaced frames.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402

from deepscreen.clips import face_crops, video_scores  # noqa: E402
from deepscreen.datasets import load_dataset, method_groups  # noqa: E402
from deepscreen.training import load_recipe, train  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a finished `deepscreen train` run with --labelled and --select-on")
    ap.add_argument("--methods", required=True,
                    help="comma-separated fake methods to leave out, one at a time; A+B leaves A and B out together")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--init", help="the checkpoint the runs start from, when RUN_DIR's --init file has since changed")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run = Path(args.run_dir)
    base, inputs = load_recipe(args.run_dir)
    base = replace(base, init=args.init or base.init)
    if not base.labelled or not base.select_on:
        ap.error(f"{run} was not trained with --labelled and --select-on")
    items = [it for root in base.labelled for it in load_dataset(root)]
    reals = [it for it in load_dataset(base.select_on) if it.label == 0]
    cache = Path(base.cache_dir) / "leave-out"
    margin, size = base.margin, base.input_size
    real_crops = [c for c in face_crops(reals, args.frames, margin, size, cache) if len(c)]
    groups = method_groups(args.methods)
    for method in (m for g in groups for m in g):
        if not any(it.label == 1 and it.method == method for it in items):
            ap.error(f"no fake of method {method!r} in {base.labelled}")

    def trained(excluded: list[str], name: str) -> str:
        where = run / "leave-out" / name
        where.mkdir(parents=True, exist_ok=True)
        cfg = replace(base, exclude_methods=excluded, steps=args.steps, run_dir=str(where),
                      out=str(where / "model.pt"), val_every=min(base.val_every, args.steps))
        train(cfg, inputs)
        return cfg.out

    control = trained([], "none")
    results = {}
    for group in groups:
        method = "+".join(group)
        left_out = [it for it in items if it.label == 1 and it.method in group]
        unseen = trained(group, method)
        fake_crops = [c for c in face_crops(left_out, args.frames, margin, size, cache) if len(c)]
        y = [0] * len(real_crops) + [1] * len(fake_crops)
        row = {"clips": len(fake_crops), "select_reals": len(real_crops), "steps": args.steps}
        for name, weights in (("unseen", unseen), ("seen", control)):
            s = video_scores(weights, real_crops + fake_crops)
            row[f"auc_{name}"] = float(roc_auc_score(y, s))
            row[f"fake_mean_{name}"] = float(np.mean(s[len(real_crops):]))
        results[method] = row
        logging.info("%s: %s", method, row)
    w = max([18, *(len(m) + 2 for m in results)])
    print(f"{'method left out':<{w}}{'clips':>6}{'AUC unseen':>12}{'AUC seen':>10}{'fake mean unseen':>18}{'seen':>7}")
    for m, r in results.items():
        print(f"{m:<{w}}{r['clips']:>6}{r['auc_unseen']:12.3f}{r['auc_seen']:10.3f}"
              f"{r['fake_mean_unseen']:18.3f}{r['fake_mean_seen']:7.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
