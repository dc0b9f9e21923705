"""How well does a training recipe rank clips from sources it has never seen?  Cross-validation by source.

    .venv/bin/python scripts/cross_validate.py RUN_DIR [--folds 3] [--steps 600] [--out DIR]
    deepscreen compare ../shared/data/videos-train RUN_A/cross-val RUN_B/cross-val     # two recipes, paired

RUN_DIR is a `deepscreen train` run with labelled clips: its config.json is the recipe. The labelled clips are
split into folds that share no source and no fake method (`datasets.source_folds`; `--together` keeps a family
of generators in one fold). For each fold the recipe is trained again without that fold's clips
(`--exclude-source`, `--exclude-method`) for `--steps` steps, in RUN_DIR/cross-val/fold<i>/ (resumable: run the
command again after an interruption), and the fold's clips are scored by that run's last step, which nothing
chose. Every labelled clip thus gets a score from a model that never saw its source or its generator: with
videos-train's 261 clips a held-out set four times select's, holding real and fake clips of the same sources
(a swap demo's two halves), where select holds sources that differ by class.

With `--weights W --out DIR` nothing is trained: W, a checkpoint that never saw the labelled clips (an SBI-only
detector), scores them all, summarised the same way: the baseline the recipe has to beat.

Writes DIR/results.jsonl (one record per clip, as `deepscreen bench` writes them, so `deepscreen compare` pairs
two recipes clip by clip) and DIR/summary.json; prints the pooled AUC with its interval, each fold's, generated
heads and swaps against all reals, and within each source that has both reals and fakes.
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

from deepscreen.bench import auc_interval  # noqa: E402
from deepscreen.clips import face_crops, video_scores  # noqa: E402
from deepscreen.datasets import LabelledVideo, load_dataset, method_groups, source_folds  # noqa: E402
from deepscreen.results import ResultWriter, ScreenResult  # noqa: E402
from deepscreen.training import load_recipe, train  # noqa: E402

MIN_WITHIN = 3  # reals and fakes a source needs before its own AUC is printed


def auc_or_none(y: list[int], s: list[float]) -> float | None:
    return float(roc_auc_score(y, s)) if 0 < sum(y) < len(y) else None


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def summarise(items: list[LabelledVideo], scores: dict[str, float], fold_of: dict[str, int],
              blended: set[str]) -> dict:
    """AUCs of the pooled out-of-fold scores: overall, per fold, per kind of fake, within mixed sources."""
    scored = [it for it in items if it.path in scores]
    real = [it for it in scored if not it.label]

    def auc(fakes: list[LabelledVideo], reals: list[LabelledVideo]) -> float | None:
        return auc_or_none([1] * len(fakes) + [0] * len(reals), [scores[it.path] for it in fakes + reals])

    y, s = [it.label for it in scored], [scores[it.path] for it in scored]
    out = {"clips": len(scored), "real": len(real), "fake": len(scored) - len(real), "auc": auc_or_none(y, s),
           "auc_ci": auc_interval(np.array(y), np.array(s)),
           "generated_vs_reals": auc([it for it in scored if it.label and it.method not in blended], real),
           "swaps_vs_reals": auc([it for it in scored if it.label and it.method in blended], real),
           "folds": {}, "within_source": {}}
    for f in sorted(set(fold_of.values())):
        part = [it for it in scored if fold_of[it.path] == f]
        out["folds"][f] = {"clips": len(part), "auc": auc([it for it in part if it.label],
                                                           [it for it in part if not it.label])}
    for source in sorted({it.source for it in scored}):
        part = [it for it in scored if it.source == source]
        fakes = [it for it in part if it.label]
        if min(len(fakes), len(part) - len(fakes)) >= MIN_WITHIN:
            out["within_source"][source] = {"real": len(part) - len(fakes), "fake": len(fakes),
                                            "auc": auc(fakes, [it for it in part if not it.label])}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a `deepscreen train` run with --labelled: its config.json is the recipe")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--together", default="",
                    help="families of methods kept in one fold: A+B,C+D")
    ap.add_argument("--init", help="the checkpoint the runs start from, when RUN_DIR's --init file has since changed")
    ap.add_argument("--out", help="where results.jsonl and summary.json go (default RUN_DIR/cross-val)")
    ap.add_argument("--weights", help="score every clip with this one checkpoint instead of training per fold: a "
                                      "baseline that never trained on the labelled clips (an SBI-only detector)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run = Path(args.run_dir)
    base, inputs = load_recipe(args.run_dir)
    base = replace(base, init=args.init or base.init)
    if not base.labelled:
        ap.error(f"{run} was not trained with --labelled")
    out = Path(args.out or run / "cross-val")
    out.mkdir(parents=True, exist_ok=True)
    items = [it for root in base.labelled for it in load_dataset(root)]
    folds = source_folds(items, args.folds, method_groups(args.together))
    fold_of = {it.path: f for f, part in enumerate(folds) for it in part}
    crops = face_crops(items, args.frames, base.margin, base.input_size, Path(base.cache_dir) / "cross-val")
    crop_of = {it.path: c for it, c in zip(items, crops)}

    scores: dict[str, float] = {}
    weights = {}
    for f, part in enumerate(folds):
        weights[f] = args.weights
        if not args.weights:
            where = out / f"fold{f}"
            where.mkdir(parents=True, exist_ok=True)
            # Clips without a source are excluded by source "": every fold's training loses them, none leaks.
            cfg = replace(base, run_dir=str(where), out=str(where / "model.pt"), steps=args.steps,
                          val_every=args.steps, exclude_sources=sorted({it.source for it in part}),
                          exclude_methods=sorted({it.method for it in part if it.label}))
            logging.info("fold %d: %d clips (%d fake) left out", f, len(part), sum(it.label for it in part))
            train(cfg, inputs)
            weights[f] = str(where / "final.pt")
        held = [it for it in part if len(crop_of[it.path])]
        for it, s in zip(held, video_scores(weights[f], [crop_of[it.path] for it in held])):
            scores[it.path] = s

    with open(out / "results.jsonl", "w", encoding="utf-8") as fh:
        writer = ResultWriter(fh)
        for it in items:
            s = scores.get(it.path)
            writer.write(ScreenResult(path=it.path, status="ok" if s is not None else "no_face",
                                      message="" if s is not None else "no face in the sampled frames", score=s,
                                      model={"weights": weights[fold_of[it.path]], "fold": fold_of[it.path]}))
    summary = {"recipe": str(run), "weights": args.weights, "folds": args.folds, "steps": args.steps, "frames": args.frames,
               "together": args.together, **summarise(items, scores, fold_of, set(base.blended_methods))}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    ci = " [{:.3f}, {:.3f}]".format(*summary["auc_ci"]) if summary["auc_ci"] else ""
    print(f"pooled out-of-fold AUC {_f(summary['auc'])}{ci} on {summary['clips']} clips ({summary['real']} real); "
          f"generated heads vs reals {_f(summary['generated_vs_reals'])}, swaps vs reals {_f(summary['swaps_vs_reals'])}")
    for f, r in summary["folds"].items():
        print(f"  fold {f}: {r['clips']} clips, AUC {_f(r['auc'])}")
    for source, r in summary["within_source"].items():
        print(f"  within {source}: {r['fake']} fake vs {r['real']} real, AUC {_f(r['auc'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
