"""The `deepscreen` command: a thin layer over the Python API.

Exit codes: 0 the scan completed (whatever the verdicts); 1 with --fail-on-fake when a video is flagged;
2 for usage errors (bad options, missing weights, an output that cannot be written); 3 for an unexpected error
(a bug: never read as a verdict).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Iterator

import click

from . import __version__
from .confounds import ON_BLACK_P
from .inputs import WalkStats, iter_inputs
from .model import ARCHITECTURES, ModelError
from .results import ResultWriter, ScreenResult, open_results

if TYPE_CHECKING:
    from .screener import RunStats

log = logging.getLogger("deepscreen")

SCAN_EXAMPLES = """
\b
Examples:
  deepscreen scan samples/                        screen a folder, results in deepscreen-results.jsonl
  deepscreen scan a.mp4 b.mov -o out.csv          two files, CSV out
  deepscreen scan inbox/ --fps 2 --threshold 0.7  two frames per second, stricter verdicts
  deepscreen scan inbox/ --fail-on-fake           exit 1 if any video is flagged (for CI gates)
  find /data -name '*.mp4' | deepscreen scan --from-list - -o - --timeout 120 > results.jsonl
  deepscreen scan /data -o results.jsonl --resume  pick up after a crash: done files are skipped
"""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, ensure_ascii=False)


DETECT_EVERY = click.option(
    "--detect-every", type=click.IntRange(1, 100), default=4, show_default=True,
    help="Search whole frames for faces on every Nth sampled frame (and whenever frames are over 1 s apart); "
         "in between, search only around the faces found. 1: every frame.")

EARLY_EXIT = click.option(
    "--early-exit/--no-early-exit", default=True, show_default=True,
    help="Look at every 8th, then every 4th sampled frame first, and stop there when the score is clearly on one "
         "side of the threshold (the record says stopped: early); --no-early-exit looks at all --frames.")

RUNTIME = click.option(
    "--runtime", type=click.Choice(["auto", "torch", "onnx"]), default="auto", show_default=True,
    help="Where the detector runs: auto is ONNX Runtime on a CPU (same scores, faster), PyTorch on a GPU.")


class _Group(click.Group):
    """Turns an unexpected exception into exit code 3, so that a crash never reads as --fail-on-fake's 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - the last resort: say what happened, exit with its own code
            log.debug("unexpected error", exc_info=True)
            click.echo(f"deepscreen: unexpected error: {type(e).__name__}: {e} (-vv for the traceback)", err=True)
            ctx.exit(3)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepscreen")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no summary table.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines on stderr as text or as JSON objects.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, log_format: str) -> None:
    """Screen videos for face manipulation (deepfakes)."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("deepscreen")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    ctx.obj = {"quiet": quiet}


def _read_list(source: str) -> Iterator[str]:
    """Paths one per line from a file or stdin ('-'); blank lines ignored."""
    fh = sys.stdin if source == "-" else open(source, encoding="utf-8", errors="surrogateescape")
    with fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if line.strip():
                yield line


@main.command(epilog=SCAN_EXAMPLES)
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--from-list", "from_list", type=click.Path(exists=True, allow_dash=True, dir_okay=False), default=None,
              help="Also read paths from this file, one per line ('-' for stdin).")
@click.option("-o", "--output", default="deepscreen-results.jsonl", show_default=True,
              help="Results file, appended and flushed per video; '-' for JSON lines on stdout.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None,
              help="Output format [default: from the file extension, else jsonl].")
@click.option("--resume", is_flag=True,
              help="Skip files whose record is already in the output (by path, size and mtime, else by content).")
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
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Videos hashed, probed and decoded ahead of the models.")
@DETECT_EVERY
@EARLY_EXIT
@RUNTIME
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Seconds allowed per video; ffmpeg is then killed and the record says 'timeout'. "
                   "Default: sized from each video (60 s plus 4 s per second of video decoded); 0: no limit.")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Walk sub-folders.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine; ray: a Ray cluster (pip install 'deepscreen[ray]'; files on shared storage).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --engine ray: 'auto', HOST:6379 or ray://HOST:10001 [default: $RAY_ADDRESS, else local].")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a self-contained HTML evidence report for a reviewer.")
@click.option("--fail-on-fake", is_flag=True, help="Exit 1 when any video is flagged fake.")
@click.pass_context
def scan(ctx: click.Context, paths: tuple[str, ...], from_list: str | None, output: str, fmt: str | None,
         resume: bool, frames: int, fps: float | None, threshold: float | None, device: str, weights: str | None,
         batch_size: int, workers: int, detect_every: int, early_exit: bool, runtime: str, timeout: float | None,
         recursive: bool, engine: str, ray_address: str | None, report_path: str | None, fail_on_fake: bool) -> None:
    """Screen videos (files or folders) and write one record per video."""
    if not paths and not from_list:
        raise click.UsageError("give at least one PATH or --from-list")
    to_stdout = output == "-"
    fmt = fmt or ("csv" if output.endswith(".csv") else "jsonl")
    if resume and (to_stdout or fmt != "jsonl"):
        raise click.UsageError("--resume needs a JSON lines output file")
    if ray_address and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    if report_path and engine == "ray":
        raise click.UsageError("--report needs the local engine (the face crops stay on the Ray workers)")
    from .screener import RunStats, Screener  # torch and friends load only once options are valid

    options = dict(weights=weights, device=device, frames=frames, fps=fps, threshold=threshold,
                   batch_size=batch_size, workers=workers, detect_every=detect_every, early_exit=early_exit,
                   runtime=runtime, timeout=timeout)
    run_stats = RunStats()
    if engine == "ray":
        from .ray_engine import RayEngineError, screen_with_ray

        def screen(inputs, previous):
            return screen_with_ray(inputs, options, address=ray_address, previous=previous, stats=run_stats)

        setup_errors: tuple[type[Exception], ...] = (ModelError, RayEngineError)  # raised at the first record
    else:
        try:
            screener = Screener(**options, keep_evidence=report_path is not None)
        except ModelError as e:
            raise click.UsageError(str(e)) from e
        screen, setup_errors = screener.screen_many, ()
    previous: list[ScreenResult] = []
    try:
        if to_stdout:
            fh = sys.stdout
        elif resume:
            previous, fh = open_results(output)
        else:
            fh = open(output, "a", encoding="utf-8", newline="")
    except OSError as e:
        raise click.UsageError(f"cannot write the output {output}: {e.strerror or e}") from e
    stats = WalkStats()
    inputs = iter_inputs(itertools.chain(paths, _read_list(from_list) if from_list else ()), recursive, stats)
    tally = Tally()
    kept: list[ScreenResult] = []  # whole records only for the HTML report; a long run keeps just the tally
    start = time.monotonic()
    writer = ResultWriter(fh, fmt)
    progress = _progress()
    try:
        for result in screen(inputs, previous):
            writer.write(result)
            tally.add(result)
            if report_path:
                kept.append(result)
            _log_result(result)
            progress.set_postfix_str(os.path.basename(result.path)[-30:], refresh=False)
            progress.update()
    except setup_errors as e:
        raise click.UsageError(str(e)) from e
    finally:
        progress.close()
        if not to_stdout:
            fh.close()
    if engine == "local":
        run_stats = screener.stats
    if report_path:
        from .report import write_report

        write_report(report_path, kept, screener.evidence, screener.detector)
    if not ctx.obj["quiet"]:
        click.echo(summary(tally, stats, run_stats, time.monotonic() - start, output), err=True)
        if tally.warning:
            click.echo(f"note: {tally.warning}", err=True)
    if fail_on_fake and tally.verdicts["fake"]:
        sys.exit(1)


def _log_result(r: ScreenResult) -> None:
    fields = {"path": r.path, "status": r.status, "verdict": r.verdict, "score": r.score}
    if r.status in ("ok", "no_face"):
        log.info("%s: %s %s", r.path, r.status, r.verdict, extra={"fields": fields})
    else:
        log.warning("%s: %s: %s", r.path, r.status, r.message, extra={"fields": {**fields, "message": r.message}})


def _progress():
    from tqdm import tqdm

    return tqdm(unit="video", disable=not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True)


class Tally:
    """What the end-of-scan summary needs, in memory that stays small however many videos are screened."""

    TABLE_ROWS = 50

    def __init__(self) -> None:
        self.videos = 0
        self.verdicts: Counter[str] = Counter()
        self.rows: list[tuple[str, ...]] = []
        self.warning = ""

    def add(self, r: ScreenResult) -> None:
        self.videos += 1
        self.verdicts[r.verdict] += 1
        self.warning = self.warning or r.model.get("warning", "")
        if len(self.rows) < self.TABLE_ROWS:
            self.rows.append((_short(r.path), r.status, r.verdict, "" if r.score is None else f"{r.score:.3f}",
                              str(len(r.tracks)), f"{r.timings.get('total', 0):.1f}"))


def summary(tally: Tally, stats: WalkStats, run: RunStats, elapsed: float, output: str) -> str:
    """A table a person can read at the end of a scan (the first rows of a long one), then the counts."""
    rows = [("file", "status", "verdict", "score", "people", "seconds"), *tally.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if tally.videos > len(tally.rows):
        lines.append(f"... and {tally.videos - len(tally.rows)} more in {output}")
    counts = tally.verdicts
    lines.append("")
    lines.append(f"{tally.videos} videos in {elapsed:.1f} s: {counts['fake']} fake, {counts['real']} real, "
                 f"{counts['unknown']} unknown; {stats.skipped} non-video files skipped; "
                 f"{run.duplicates} duplicates; {run.resumed} already done"
                 + (f"; {stats.unreadable_dirs} folders could not be read" if stats.unreadable_dirs else "")
                 + f". Results: {output}")
    return "\n".join(lines)


def _short(path: str, width: int = 48) -> str:
    """A path fit for one table cell: control characters and undecodable bytes escaped, long ones cut."""
    path = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in path)
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
@DETECT_EVERY
@EARLY_EXIT
@RUNTIME
def bench(dataset: str, labels: str | None, out_dir: str, frames: int, threshold: float | None, device: str,
          weights: str | None, batch_size: int, detect_every: int, early_exit: bool, runtime: str) -> None:
    """Measure detection quality (AUC, AP, EER...) and speed on a labelled DATASET folder."""
    from .bench import format_table, run_bench
    from .screener import Screener

    try:
        screener = Screener(weights=weights, device=device, frames=frames, threshold=threshold,
                            batch_size=batch_size, detect_every=detect_every, early_exit=early_exit,
                            runtime=runtime)
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
Example (is the new checkpoint better on select, or is it chance?):
  deepscreen bench ../shared/data/select --weights old.pt --no-early-exit -o bench-old
  deepscreen bench ../shared/data/select --weights new.pt --no-early-exit -o bench-new
  deepscreen compare ../shared/data/select bench-old bench-new
""")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.argument("bench_a", type=click.Path(exists=True, file_okay=False))
@click.argument("bench_b", type=click.Path(exists=True, file_okay=False))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A labels CSV (file,label[,source,method]) instead of the layout's own labels.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as one JSON object.")
def compare(dataset: str, bench_a: str, bench_b: str, labels: str | None, as_json: bool) -> None:
    """Compare two bench runs (folders) on the same labelled DATASET: each AUC, and B - A with a paired 95%
    bootstrap interval. An interval that spans 0 means the clips cannot tell the two apart."""
    from .bench import compare_aucs
    from .datasets import load_dataset
    from .results import read_results

    runs = []
    for folder in (bench_a, bench_b):
        path = os.path.join(folder, "results.jsonl")
        if not os.path.isfile(path):
            raise click.UsageError(f"{folder} holds no results.jsonl: run deepscreen bench -o {folder} first")
        runs.append({r.path: r for r in read_results(path)})
    try:
        c = compare_aucs(load_dataset(dataset, labels), *runs)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    if as_json:
        click.echo(json.dumps(c))
        return
    for name, key in ((bench_a, "a"), (bench_b, "b")):
        lo, hi = c[f"auc_{key}_ci"]
        click.echo(f"{key.upper()} {name}: AUC {c[f'auc_{key}']:.4f} (95% interval {lo:.4f}-{hi:.4f})")
    lo, hi = c["difference_ci"]
    verdict = "B ranks better" if lo > 0 else "A ranks better" if hi < 0 else "no difference these clips can show"
    click.echo(f"B - A: {c['difference']:+.4f} (paired 95% interval {lo:+.4f} to {hi:+.4f}) on {c['n']} clips "
               f"scored by both ({c['n_real']} real, {c['n_fake']} fake): {verdict}")


@main.command(epilog="""
\b
Example (how the shipped default's threshold was set, see weights/README.md):
  deepscreen calibrate ../shared/data/select --weights weights/deepscreen-sbi-mnv2.pt
""")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--weights", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The checkpoint whose default threshold is set (rewritten in place).")
@click.option("--max-fpr", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="The largest share of the set's real clips the threshold may flag.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A labels CSV (file,label[,source,method]) instead of the layout's own labels.")
@click.option("-o", "--out-dir", default="calibration-results", show_default=True,
              help="Bench reports, per-video results (an interrupted run resumes) and calibration.json.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
def calibrate(dataset: str, weights: str, max_fpr: float, labels: str | None, out_dir: str, device: str) -> None:
    """Set the default threshold of WEIGHTS on labelled clips (DATASET): at most --max-fpr of reals flagged.

    The clips are screened with scan's default settings, every sampled frame looked at (early exit stops around
    the threshold being chosen here); use clips kept apart from training and testing.
    """
    from .calibrate import calibrate as run_calibration
    from .screener import Screener

    try:
        screener = Screener(weights=weights, device=device, early_exit=False)
    except ModelError as e:
        raise click.UsageError(str(e)) from e
    progress = _progress()
    try:
        record = run_calibration(weights, dataset, out_dir, screener, max_fpr, labels, progress)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    finally:
        progress.close()
    click.echo(f"threshold {record['threshold']:.4f}: {record['reals_flagged']} of {record['reals']} real and "
               f"{record['fakes_caught']} of {record['fakes']} fake clips at or above it; written into {weights}")


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
@click.option("--steps", type=click.IntRange(1), default=2200, show_default=True)
@click.option("--input-size", type=click.IntRange(64, 512), default=224, show_default=True)
@click.option("--margin", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="How much the face box is enlarged for the crop (stored in the profile; scan crops the same).")
@click.option("--pairs-per-batch", type=click.IntRange(1), default=16, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Data loader processes  [default: 1 on a CPU, every core but two on a GPU]")
@click.option("--arch", type=click.Choice(sorted(ARCHITECTURES)), default="mobilenet_v2", show_default=True,
              help="The network (deepscreen.model.ARCHITECTURES): mobilenet_v2 is the default detector's; "
                   "mobilenet_v2_patches scores face patches of 75 pixels one by one (weights/README.md).")
@click.option("--select-on", type=click.Path(exists=True, file_okay=False), default=None,
              help="Labelled real and fake videos (any layout `bench` reads) to choose the checkpoint on, by "
                   "video AUC, instead of held-out self-blended pairs.  Use clips kept apart from your test set.")
@click.option("--labelled", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Labelled real and fake clips to train on too (any layout `bench` reads; repeatable).")
@click.option("--frames-per-clip", type=click.IntRange(1), default=16, show_default=True,
              help="Faces cached per labelled clip.")
@click.option("--sbi-share", type=click.FloatRange(0, 1), default=0.35, show_default=True,
              help="With --labelled: the fraction of training pairs that are self-blended.")
@click.option("--recon-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="The fraction of training pairs that are a real face and its reconstruction by --autoencoder "
                   "(a decoded face, as latent-diffusion generators draw theirs), taken from the labelled pairs.")
@click.option("--autoencoder", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The latent autoencoder for --recon-share (written by scripts/train_autoencoder.py).")
@click.option("--exclude-method", "exclude_methods", multiple=True,
              help="Leave the labelled fakes of this method out (leave-one-method-out runs; repeatable).")
@click.option("--exclude-source", "exclude_sources", multiple=True,
              help="Leave every labelled clip of this source out, real and fake (cross-validation runs; repeatable).")
@click.option("--init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Start from this deepscreen checkpoint (fine-tuning) instead of --pretrained.")
@click.option("--freeze", type=click.IntRange(0), default=0, show_default=True,
              help="Keep the first N blocks of the backbone at their starting weights (MobileNetV2 has 19).")
@click.option("--anchor", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Pull every weight back toward its starting value (--init or ImageNet) by this times the "
                   "learning rate each step (L2-SP), so that fine-tuning keeps what the start knew (0: off).")
@click.option("--blended-method", "blended_methods", multiple=True,
              help="With --arch mobilenet_v2_kinds: a labelled fake method whose faces are blended into a filmed "
                   "frame (swaps, reenactment); other methods count as generated whole (repeatable; default: "
                   "the swap methods of ../shared/data/videos-train).")
@click.option("--match-detail", is_flag=True,
              help="Blur the sharper face of each labelled (real, fake) pair down to the other's fine detail, so "
                   "that sharpness cannot tell the classes apart.")
@click.option("--same-source", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="With --labelled: the chance that a fake whose source also has real clips (the real half of a "
                   "swap demo, a generator's own driving videos) is paired with a real of that source, both degraded "
                   "alike, so that within the pair only the manipulation differs (0: reals drawn by source as usual).")
@click.option("--on-black", type=click.FloatRange(0, 1), default=ON_BLACK_P, show_default=True,
              help="The chance that a training face, real or fake alike, is shown on black (as face crops pasted "
                   "on a black frame are), so that a black surround cannot decide.")
@click.option("--occlude", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="The chance that part of a training face, real or fake alike, is hidden by a blob (a hand, a "
                   "microphone), so that no single region of the face decides.")
@click.option("--source-adversary", type=click.FloatRange(0), default=0.0, show_default=True,
              help="With --labelled: train heads to guess each face's real source or fake method, and push the "
                   "backbone against them with this strength (0: off), so that how a source looks cannot decide.")
@click.option("--adversary-objective", type=click.Choice(["confuse", "reverse"]), default="confuse", show_default=True,
              help="How --source-adversary pushes: toward features the heads are unsure on (confuse), or by "
                   "their gradient reversed (reverse).")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Move the training targets this far toward 0.5 (0 and 1 become eps/2 and 1 - eps/2), so that faces "
                   "already told apart stop pushing the network further (0: off).")
@click.option("--sharpness", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Sharpness-aware minimisation (SAM) with this radius (0.05 is usual; 0: off): each step's gradient "
                   "is taken at the worst weights that near, so training prefers flat minima. Twice the cost per step.")
@click.option("--probe-steps", type=click.IntRange(0), default=0, show_default=True,
              help="Train only the head for the first N steps, the backbone frozen with its batch statistics, then "
                   "everything (LP-FT), so that a head that does not fit the new labels yet does not bend the "
                   "starting features toward them (0: off).")
@click.option("--val-every", type=click.IntRange(1), default=250, show_default=True,
              help="Steps between held-out checks (and checkpoints).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to train (and find faces): auto takes the GPU when torch sees one.")
@click.option("--bf16/--no-bf16", default=None,
              help="bf16 autocast; by default on a CPU only where it runs bf16 natively (AVX512-BF16/AMX), on a GPU "
                   "where it has bf16 (else, and with --no-bf16, fp16 with loss scaling).")
def train(real: tuple[str, ...], out: str, pretrained: str | None, run_dir: str, cache_dir: str, steps: int,
          input_size: int, margin: float, pairs_per_batch: int, lr: float, seed: int, workers: int | None, arch: str,
          select_on: str | None, labelled: tuple[str, ...], frames_per_clip: int, sbi_share: float,
          exclude_methods: tuple[str, ...], init: str | None, blended_methods: tuple[str, ...], match_detail: bool,
          on_black: float, occlude: float, source_adversary: float, adversary_objective: str, label_smoothing: float,
          sharpness: float, probe_steps: int, val_every: int, device: str, bf16: bool | None, freeze: int, anchor: float,
          recon_share: float, autoencoder: str | None, same_source: float, exclude_sources: tuple[str, ...]) -> None:
    """Train a detector on REAL face photos and videos (Self-Blended Images), and on --labelled clips; resumable."""
    from .training import TrainConfig, train as run_training

    logging.getLogger("deepscreen").setLevel(logging.INFO)
    cfg = TrainConfig(out=out, run_dir=run_dir, cache_dir=cache_dir, arch=arch, pretrained=pretrained,
                      input_size=input_size, margin=margin, steps=steps, pairs_per_batch=pairs_per_batch, lr=lr, seed=seed,
                      workers=workers, select_on=select_on, labelled=list(labelled), frames_per_clip=frames_per_clip,
                      sbi_share=sbi_share, exclude_methods=list(exclude_methods), exclude_sources=list(exclude_sources),
                      init=init, val_every=val_every,
                      device=device, bf16=bf16, match_detail=match_detail, on_black=on_black, occlude=occlude,
                      freeze=freeze, anchor=anchor, source_adversary=source_adversary, adversary_objective=adversary_objective,
                      label_smoothing=label_smoothing, sharpness=sharpness, probe_steps=probe_steps, recon_share=recon_share,
                      autoencoder=autoencoder, same_source=same_source)
    if blended_methods:
        cfg.blended_methods = list(blended_methods)
    try:
        best = run_training(cfg, list(real))
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    click.echo(f"best held-out: {json.dumps(best)}; wrote {out}", err=True)


@main.command("fit-heads", epilog="""
\b
Example (the committee tried and not shipped, see weights/README.md):
  deepscreen fit-heads ../shared/data/videos-train --select-on ../shared/data/select \\
      --member /tmp/v5.pt 0.1 --member ../shared/weights/mobilenet_v2-b0353104.pth 1e-5 \\
      --out runs/v6/committee.pt
  deepscreen calibrate ../shared/data/select --weights runs/v6/committee.pt -o runs/cal-v6
""")
@click.argument("labelled", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--member", "members", multiple=True, required=True,
              type=(click.Path(exists=True, dir_okay=False), click.FloatRange(min=0, min_open=True)),
              help="BACKBONE C: a frozen MobileNetV2 (a deepscreen checkpoint or torchvision's ImageNet file) and "
                   "the inverse L2 strength of its head (smaller: closer to the class-mean direction). Repeat "
                   "for a committee of two.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Deployable checkpoint to write.")
@click.option("--select-on", type=click.Path(exists=True, file_okay=False), default=None,
              help="Labelled videos kept apart from training: each member's and the committee's video AUC there.")
@click.option("--cache-dir", default="cache/faces", show_default=True, help="Cached face crops (reused).")
@click.option("--frames-per-clip", type=click.IntRange(1), default=16, show_default=True,
              help="Faces cached per labelled clip.")
@click.option("--exclude-method", "exclude_methods", multiple=True,
              help="Leave the labelled fakes of this method out (repeatable).")
def fit_heads(labelled: tuple[str, ...], members: tuple[tuple[str, float], ...], out: str, select_on: str | None,
              cache_dir: str, frames_per_clip: int, exclude_methods: tuple[str, ...]) -> None:
    """Fit linear heads on frozen backbones over LABELLED real and fake clips: a one- or two-member committee."""
    from .heads import Member, fit

    if len(members) > 2:
        raise click.UsageError("a committee has one or two members")
    logging.getLogger("deepscreen").setLevel(logging.INFO)
    try:
        report = fit([Member(b, c) for b, c in members], list(labelled), out, cache_dir, frames_per_clip,
                     select_on, exclude_methods=list(exclude_methods))
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    click.echo(f"{json.dumps(report)}; wrote {out}", err=True)
