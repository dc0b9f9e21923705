"""Scale-out engine: the same per-video work as `Screener.screen_many`, spread over a Ray cluster with Ray Data.

Optional: `pip install "deepscreen[ray]"`. Ray is imported only when `screen_with_ray` runs, never when this
module (or the CLI) is imported.

    paths -> ray.data.from_items -> map_batches(_ScreenActor, fixed actor pool) -> iter_rows -> ScreenResult

Each actor builds one `Screener(**screener_kwargs)` (models load once per actor) and screens its batches of
paths with `screen_many`, so decoding still overlaps the models inside an actor. Records travel back as JSON
text (one string column): Arrow never sees the nested, ragged, sometimes-null record fields, and paths that are
not valid UTF-8 (surrogate-escaped names) survive the trip.
"""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Iterable, Iterator

from .results import ScreenResult
from .screener import RunStats, duplicate_record, recorded_unchanged

log = logging.getLogger("deepscreen")

INSTALL_HINT = 'the ray engine needs Ray: pip install "deepscreen[ray]"'
_FATAL = "__deepscreen_model_error__"  # a row that is not a record: an actor could not load the models


class RayEngineError(RuntimeError):
    """The Ray engine cannot run (Ray missing, no GPU for --device cuda, actors that cannot start)."""


def _enc_path(p: str) -> str:
    # ensure_ascii turns lone surrogates (undecodable file names) into \\udcXX escapes: valid UTF-8 for Arrow.
    return json.dumps([p, os.path.abspath(p)], ensure_ascii=True)


class _ScreenActor:
    """A Ray Data callable class: one Screener per actor process, reused for every batch it is handed."""

    def __init__(self, screener_kwargs: dict[str, Any], torch_threads: int | None = None,
                 previous_ref: list | None = None):
        from .model import ModelError
        from .screener import Screener

        # A bad checkpoint is the caller's error, not this actor's: it goes back as a row the driver raises as
        # ModelError (raised here, Ray would restart the actor first, then lose the exception type on the way).
        self.error: ModelError | None = None
        try:
            self.screener = Screener(**screener_kwargs)
        except ModelError as e:
            self.error = e
            return
        if torch_threads and self.screener.device.type == "cpu":
            import torch

            torch.set_num_threads(torch_threads)  # several actors share a node: do not oversubscribe it
        # Earlier records under the driver's absolute paths (what actors screen), and the paths as they were given.
        self.previous: list[ScreenResult] = []
        self.previous_given: dict[str, str] = {}
        if previous_ref:
            import ray

            for d, absolute in ray.get(previous_ref[0]):
                r = ScreenResult.from_dict(d)
                self.previous_given[absolute], r.path = r.path, absolute
                self.previous.append(r)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        if self.error is not None:
            return {"record": np.array([json.dumps({_FATAL: str(self.error)})], dtype=object)}
        # Each item: [path as given, absolute path on the driver]. Workers do not run in the driver's cwd, so
        # they screen the absolute path; records name the path as it was given.
        given, absolute = zip(*(json.loads(p) for p in batch["path"]))
        as_given = {**self.previous_given, **dict(zip(absolute, given))}
        out: list[str] = []
        done: set[str] = set()
        try:
            for r in self.screener.screen_many(absolute, self.previous):
                done.add(r.path)
                out.append(_enc_record(_rename(r, as_given)))
        except Exception as e:  # noqa: BLE001 - screen_many handles bad files itself; this is a last resort
            for a, p in zip(absolute, given):
                if a not in done:
                    out.append(_enc_record(ScreenResult(path=p, status="error", message=f"{type(e).__name__}: {e}")))
        return {"record": np.array(out, dtype=object)}


def _rename(r: ScreenResult, as_given: dict[str, str]) -> ScreenResult:
    r.path = as_given.get(r.path, r.path)
    if r.duplicate_of in as_given:
        original = as_given[r.duplicate_of]
        r.message = r.message.replace(f"same content as {r.duplicate_of}", f"same content as {original}", 1)
        r.duplicate_of = original
    return r


def _enc_record(r: ScreenResult) -> str:
    return json.dumps(r.to_dict(), ensure_ascii=True)


def screen_with_ray(paths: Iterable[str], screener_kwargs: dict, address: str | None = None,
                    num_actors: int | None = None, batch_size: int = 4, *,
                    previous: Iterable[ScreenResult] = (), stats: RunStats | None = None,
                    progress: bool = False) -> Iterator[ScreenResult]:
    """Screen `paths` on a Ray cluster; yield one `ScreenResult` per file as it is done, in any order.

    The records are those `Screener(**screener_kwargs).screen_many(paths, previous)` gives, except for timings
    and for which copy of duplicated content is the original (the first one done here, not the first in input
    order). Bad files get their record like in the local engine; nothing is written here: the caller writes.

    Every node must see the files under the same paths (a shared filesystem: NFS, a cluster mount, ...), and
    the same for `screener_kwargs["weights"]`; relative paths are resolved against the driver's working
    directory, and records keep the paths as given. deepscreen (with the same version) must be installed on
    every node. All paths are collected before work starts.

    address: a running cluster (`"auto"`, `"ray://head:10001"`, `"10.0.0.1:6379"`); None connects where
        `RAY_ADDRESS` says, else starts a local cluster. Ray is initialised only if it is not already, and is
        left running for later calls.
    num_actors: Screener actors (default: one per GPU in the cluster, else one per two CPUs; never more than
        there are batches). With GPUs (and device "auto" or "cuda") each actor holds one GPU (a share of one
        when num_actors exceeds the GPUs) and runs on "cuda"; else actors run on the CPU, one CPU reserved each.
    batch_size: paths handed to an actor at a time (small batches balance load and stream records sooner).
    previous: records of an earlier run (resume), as for `screen_many`: files already recorded are skipped.
    stats: a `RunStats` to fill in (resumed and duplicate counts), like `Screener.stats`.
    progress: show Ray Data's own progress output. Off by default (the caller reports progress): then this
        process's Ray Data logging is also lowered to warnings.

    Raises RayEngineError (Ray not installed, cluster unreachable, cuda asked for on a cluster without GPUs)
    and ModelError (an actor could not load the weights) from the first `next()`.
    """
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise RayEngineError(INSTALL_HINT) from e

    kwargs = dict(screener_kwargs)
    if kwargs.get("weights"):
        kwargs["weights"] = os.path.abspath(os.fspath(kwargs["weights"]))
    previous = list(previous)
    recorded = {(r.path, r.bytes, r.mtime) for r in previous}
    todo: list[str] = []
    skipped = 0
    for p in paths:
        if recorded and recorded_unchanged(p, recorded):  # resume's fast path, without touching the cluster
            skipped += 1
        else:
            todo.append(p)
    if stats is not None:
        stats.resumed += skipped
    if not todo:
        return

    if not ray.is_initialized():
        local = address is None and not os.environ.get("RAY_ADDRESS")
        try:
            # log_to_driver=False: worker output stays in the cluster's logs, off this process's stdout (which
            # may be a JSON lines stream); Ray's own messages go to stderr.
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     logging_level=logging.WARNING, **({"include_dashboard": False} if local else {}))
        except ConnectionError as e:
            raise RayEngineError(f"cannot reach the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: "
                                 f"{e}") from e
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    device = str(kwargs.get("device", "auto"))
    if device.startswith("cuda") and gpus == 0:
        raise RayEngineError("device cuda asked for, but the Ray cluster has no GPU")
    use_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
    n = num_actors or (gpus if use_gpu else max(1, cpus // 2))
    n = max(1, min(n, math.ceil(len(todo) / batch_size)))  # no idle actors holding models
    if use_gpu:
        kwargs["device"] = "cuda"  # each actor sees only the GPU Ray gave it
        remote_args: dict[str, Any] = {"num_gpus": min(1.0, gpus / n)}  # more actors than GPUs: they share
        torch_threads = None
    else:
        kwargs["device"] = "cpu"
        # One reserved CPU per actor; the node's other cores go to its ffmpeg decoders and extra torch threads.
        remote_args = {"num_cpus": min(1.0, cpus / n)}
        torch_threads = max(1, cpus // n - 1)
    previous_ref = [ray.put([(r.to_dict(), os.path.abspath(r.path)) for r in previous])] if previous else None

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    if not progress:  # the caller reports progress; keep Ray Data's chatter to warnings (it goes to stderr)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    ds = ray.data.from_items([{"path": _enc_path(p)} for p in todo],
                             override_num_blocks=min(math.ceil(len(todo) / batch_size), 100_000))
    ds = ds.map_batches(_ScreenActor, batch_size=batch_size, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=n),
                        fn_constructor_kwargs={"screener_kwargs": kwargs, "torch_threads": torch_threads,
                                               "previous_ref": previous_ref},
                        **remote_args)
    log.info("ray: %d files on %d %s actor(s), batches of %d", len(todo), n, "GPU" if use_gpu else "CPU",
             batch_size)

    # Content seen so far: a copy screened in another batch becomes a duplicate record, as in the local engine.
    seen: dict[str, ScreenResult] = {}
    for r in previous:
        if r.sha256 and r.status not in ("timeout", "error"):  # as Screener.screen_many picks them
            seen.setdefault(r.sha256, r)
    received = 0
    for row in ds.iter_rows():
        d = json.loads(row["record"])
        if _FATAL in d:
            from .model import ModelError

            raise ModelError(d[_FATAL])
        r = ScreenResult.from_dict(d)
        received += 1
        root = seen.get(r.sha256) if r.sha256 else None
        if root is None:
            if r.sha256 and not r.duplicate_of:
                seen[r.sha256] = r
        elif r.path != root.path and r.duplicate_of != root.path:
            r = duplicate_record(root, r.path, r.mtime, r.timings.get("hash", 0.0))
        if stats is not None and r.duplicate_of:
            stats.duplicates += 1
        yield r
    if stats is not None:
        stats.resumed += len(todo) - received  # skipped by the actors: same path, same content

