"""The `deepscreen` command: a thin layer over the Python API.

Exit codes: 0 the scan completed (whatever the verdicts); 1 with --fail-on-fake when a video is flagged;
2 for usage errors (bad options, missing weights).
"""
from __future__ import annotations

import json
import os
import sys
import time

import click

from . import __version__
from .inputs import WalkStats, iter_inputs
from .model import ModelError
from .results import ResultWriter, ScreenResult

SCAN_EXAMPLES = """
\b
Examples:
  deepscreen scan samples/                       screen a folder, results in deepscreen-results.jsonl
  deepscreen scan a.mp4 b.mov -o out.csv         two files, CSV out
  deepscreen scan inbox/ --fps 2 --threshold 0.7 two frames per second, stricter verdicts
  deepscreen scan inbox/ --fail-on-fake          exit 1 if any video is flagged (for CI gates)
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepscreen")
def main() -> None:
    """Screen videos for face manipulation (deepfakes)."""


@main.command(epilog=SCAN_EXAMPLES)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="deepscreen-results.jsonl", show_default=True,
              help="Results file (appended, one record per video, flushed as it goes).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None,
              help="Output format [default: from the file extension, else jsonl].")
@click.option("--frames", type=click.IntRange(1, 2000), default=32, show_default=True,
              help="Evenly spaced frames to sample per video.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Sample this many frames per second instead of --frames.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Score at or above which a video is 'fake' [default: the model's].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Detector checkpoint [default: the shipped default model].")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="Face crops scored per forward pass.")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Walk sub-folders.")
@click.option("--fail-on-fake", is_flag=True, help="Exit 1 when any video is flagged fake.")
def scan(paths: tuple[str, ...], output: str, fmt: str | None, frames: int, fps: float | None,
         threshold: float | None, device: str, weights: str | None, batch_size: int, recursive: bool,
         fail_on_fake: bool) -> None:
    """Screen videos (files or folders) and write one record per video."""
    from .screener import Screener  # torch and friends load only once options are valid

    fmt = fmt or ("csv" if output.endswith(".csv") else "jsonl")
    try:
        screener = Screener(weights=weights, device=device, frames=frames, fps=fps, threshold=threshold,
                            batch_size=batch_size)
    except ModelError as e:
        raise click.UsageError(str(e)) from e
    stats = WalkStats()
    results: list[ScreenResult] = []
    start = time.monotonic()
    with open(output, "a", encoding="utf-8", newline="") as fh:
        writer = ResultWriter(fh, fmt)
        progress = _progress()
        for result in screener.screen_many(iter_inputs(paths, recursive, stats)):
            writer.write(result)
            results.append(result)
            progress.set_postfix_str(os.path.basename(result.path)[-30:], refresh=False)
            progress.update()
        progress.close()
    click.echo(summary(results, stats, time.monotonic() - start, output), err=True)
    if fail_on_fake and any(r.verdict == "fake" for r in results):
        sys.exit(1)


def _progress():
    from tqdm import tqdm

    return tqdm(unit="video", disable=not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True)


def summary(results: list[ScreenResult], stats: WalkStats, elapsed: float, output: str) -> str:
    """A table a person can read at the end of a scan."""
    rows = [("file", "status", "verdict", "score", "people", "seconds")]
    for r in results:
        rows.append((_short(r.path), r.status, r.verdict, "" if r.score is None else f"{r.score:.3f}",
                     str(len(r.tracks)), f"{r.timings.get('total', 0):.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = {v: sum(r.verdict == v for r in results) for v in ("fake", "real", "unknown")}
    lines.append("")
    lines.append(f"{len(results)} videos in {elapsed:.1f} s: {counts['fake']} fake, {counts['real']} real, "
                 f"{counts['unknown']} unknown; {stats.skipped} non-video files skipped. Results: {output}")
    return "\n".join(lines)


def _short(path: str, width: int = 48) -> str:
    return path if len(path) <= width else "..." + path[-(width - 3):]


@main.command(epilog="""
\b
Examples:
  deepscreen bench samples/                          the shipped sample clips (labels.csv)
  deepscreen bench FaceForensics++/ -o bench-ffpp     FF++ tree: original vs manipulated_sequences
  deepscreen bench dfdc_train_part_0/                 DFDC metadata.json
  deepscreen bench Celeb-DF-v2/                       List_of_testing_videos.txt
""")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A labels CSV (file,label[,source,method]) instead of the layout's own labels.")
@click.option("-o", "--out-dir", default="bench-results", show_default=True,
              help="Reports and the per-video results file (an interrupted bench resumes from it).")
@click.option("--frames", type=click.IntRange(1, 2000), default=32, show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, help="[default: the model's]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--weights", type=click.Path(dir_okay=False), default=None)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
def bench(dataset: str, labels: str | None, out_dir: str, frames: int, threshold: float | None, device: str,
          weights: str | None, batch_size: int) -> None:
    """Measure detection quality (AUC, AP, EER...) and speed on a labelled DATASET folder."""
    from .bench import format_table, run_bench
    from .screener import Screener

    try:
        screener = Screener(weights=weights, device=device, frames=frames, threshold=threshold,
                            batch_size=batch_size)
    except ModelError as e:
        raise click.UsageError(str(e)) from e
    progress = _progress()
    try:
        metrics = run_bench(dataset, out_dir, screener, labels, progress)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    finally:
        progress.close()
    click.echo(format_table(metrics))
    if metrics.get("throughput"):
        t = metrics["throughput"]
        click.echo(f"throughput: {t['videos_per_s']:.3f} videos/s, {t['frames_per_s']:.1f} frames/s "
                   f"({t['videos']} videos screened this run)")
    click.echo(f"reports: {', '.join(metrics['paths'].values())}")


@main.command(epilog="""
\b
Example (the shipped default, see weights/README.md):
  deepscreen train ../shared/data/train-real --out weights/deepscreen-sbi-mnv2.pt \\
      --pretrained ../shared/weights/mobilenet_v2-b0353104.pth
""")
@click.argument("real", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Deployable checkpoint to write.")
@click.option("--pretrained", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ImageNet weights for the backbone (torchvision's mobilenet_v2-b0353104.pth).")
@click.option("--run-dir", default="runs/sbi", show_default=True, help="Log and resumable checkpoints.")
@click.option("--cache-dir", default="cache/faces", show_default=True, help="Cached face crops (reused).")
@click.option("--steps", type=click.IntRange(1), default=3000, show_default=True)
@click.option("--input-size", type=click.IntRange(64, 512), default=224, show_default=True)
@click.option("--pairs-per-batch", type=click.IntRange(1), default=16, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True)
@click.option("--arch", default="mobilenet_v2", show_default=True)
def train(real: tuple[str, ...], out: str, pretrained: str | None, run_dir: str, cache_dir: str, steps: int,
          input_size: int, pairs_per_batch: int, lr: float, seed: int, workers: int, arch: str) -> None:
    """Train a detector on folders of REAL face photos and videos (Self-Blended Images); resumable."""
    import logging

    from .training import TrainConfig, train as run_training

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = TrainConfig(out=out, run_dir=run_dir, cache_dir=cache_dir, arch=arch, pretrained=pretrained,
                      input_size=input_size, steps=steps, pairs_per_batch=pairs_per_batch, lr=lr, seed=seed,
                      workers=workers)
    best = run_training(cfg, list(real))
    click.echo(f"best held-out: {json.dumps(best)}; wrote {out}", err=True)
