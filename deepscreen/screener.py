"""The Python API: `Screener` loads the models once and screens videos, top to bottom.

probe and sample frames (media) -> find faces (faces) -> score faces (model) -> aggregate -> ScreenResult.

`screen_many` overlaps work: while the models run on one video, worker threads already hash, probe and
decode the next ones (ffmpeg runs as a subprocess, so those threads mostly wait on pipes). Each worker hands
frames through a small bounded queue, so memory stays flat however long the videos are.
"""
from __future__ import annotations

import errno
import math
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Container, Iterable, Iterator

import numpy as np

from . import __version__, media
from .aggregate import build_tracks, video_score
from .faces import Face, FaceFinder, crop_face, detail, link_tracks
from .model import Detector, ModelProfile, default_weights, resolve_device, sha256_file
from .report import Evidence
from .results import ScreenResult

_END = object()
PROBE_TIMEOUT_S = 30.0  # ffprobe reads headers only; when it takes this long, the file is hostile or the disk is gone
TIMEOUT_BASE_S = 60.0  # a default limit's allowance for hashing, probing and a busy machine...
TIMEOUT_PER_S = 4.0  # ...plus this many seconds per second of video decoded (a 4K h264 clip decodes at ~3.5x real time here)
# Early exit: look at every 8th sampled frame, then every 4th, and stop after a pass whose video score lies a
# margin or more (in logits) from the threshold. A pass over fewer than EARLY_PASS_FRAMES frames is skipped.
# Logits spread differently for each detector, so the margins are chosen for the weights, on the set their
# threshold was calibrated on (scripts/early_exit_check.py --set), and kept in the profile; these are for weights
# that carry none (chosen for version 5).
EARLY_PASSES = ((8, 2.5), (4, 1.5))  # (stride, margin)
EARLY_PASS_FRAMES = 4
SEEK_SPAN_S = 5.0  # video decoded per seek (up to a keyframe interval) when a long video is sampled by seeking


def early_passes(profile: ModelProfile) -> tuple[tuple[int, float], ...]:
    """The (stride, margin) early passes for a detector: its profile's margins, else EARLY_PASSES'."""
    margins = profile.extra.get("early_exit_margins")
    if not margins:
        return EARLY_PASSES
    return tuple((stride, float(m)) for (stride, _), m in zip(EARLY_PASSES, margins))


def default_timeout(info: media.VideoInfo, times: list[float]) -> float:
    """The per-video limit when none is set: generous for any honest file, finite for a hostile one.

    A short clip is decoded whole (one select pass), so the limit grows with its duration; a long one is sampled
    by seeking, so it grows with the frames asked for, not with hours of video.
    """
    decoded = info.duration if info.duration <= media.SEEK_AFTER_S else min(info.duration, SEEK_SPAN_S * len(times))
    return TIMEOUT_BASE_S + TIMEOUT_PER_S * max(0.0, decoded)


@dataclass
class _Decoded:
    """What a decode worker produces for one path, before the models see it."""

    path: str
    result: ScreenResult
    info: media.VideoInfo | None = None
    frames: "queue.Queue" = field(default_factory=lambda: queue.Queue(maxsize=16))
    timings: dict[str, float] = field(default_factory=dict)
    after: "_Decoded | None" = None  # the job before this one: content claims are made in input order
    claimed: threading.Event = field(default_factory=threading.Event)
    same_as: ScreenResult | None = None  # a previous record with the same content (resume)
    copy_of: "_Decoded | None" = None  # an earlier job in this run with the same content (dedupe)
    times: list[float] = field(default_factory=list)  # the sample times asked of the decoder
    cancel: threading.Event = field(default_factory=threading.Event)  # the main thread needs no more frames
    skip: bool = False  # already recorded under this very path: nothing to write
    final: ScreenResult | None = None  # the finished record, for later copies to repeat


@dataclass
class RunStats:
    resumed: int = 0  # files skipped because their record is already in the output
    duplicates: int = 0  # files whose content was already screened in this run or a previous one


def recorded_unchanged(path: str, recorded: Container[tuple]) -> bool:
    """Resume's fast path: same path, size and mtime as a previous record, so no need to hash."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (path, st.st_size, st.st_mtime) in recorded


def duplicate_record(original: ScreenResult, path: str, mtime: float | None, hash_s: float) -> ScreenResult:
    """A copy's record: the original's findings under the copy's path, naming the original."""
    d = original.to_dict()
    d.update(path=path, mtime=mtime, duplicate_of=original.path, timings={"hash": round(hash_s, 4)},
             message=f"same content as {original.path}" + (f"; {original.message}" if original.message else ""))
    return ScreenResult.from_dict(d)


def _check_file(path: str) -> tuple[int, str] | ScreenResult:
    """Stat and hash a path; a path that is not a readable regular file gets its record right here."""
    try:
        st = os.stat(path)
    except OSError as e:
        reason = "symlink loop" if e.errno == errno.ELOOP else (e.strerror or str(e)).lower()
        return ScreenResult(path=path, status="error", message=f"cannot open: {reason}")
    if os.path.isdir(path):
        return ScreenResult(path=path, status="unsupported", message="is a directory")
    if not os.path.isfile(path):
        return ScreenResult(path=path, status="unsupported", message="not a regular file")
    try:
        digest = sha256_file(path)
    except OSError as e:
        return ScreenResult(path=path, status="error", message=f"cannot read: {(e.strerror or str(e)).lower()}",
                            bytes=st.st_size)
    if st.st_size == 0:
        return ScreenResult(path=path, status="unsupported", message="empty file", bytes=0, sha256=digest)
    return st.st_size, digest


class Screener:
    """Screens videos for face manipulation. Models load once; `screen` and `screen_many` reuse them.

    >>> s = Screener(device="auto")
    >>> result = s.screen("clip.mp4")
    >>> result.verdict, result.score
    """

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "auto", frames: int = 32,
                 fps: float | None = None, threshold: float | None = None, batch_size: int = 32,
                 min_face: int = 40, detect_every: int = 4, workers: int = 2, timeout: float | None = None,
                 keep_evidence: bool = False, early_exit: bool = True, runtime: str = "auto"):
        """`timeout`: seconds a video may take from opening to its last decoded frame (ffmpeg is then killed and
        the record says `timeout`); None sizes it from each video (`default_timeout`), 0 sets no limit.
        `early_exit`: stop after an early pass over every 8th or 4th sampled frame when the answer is clear (`_Look`).
        `runtime`: the detector's (`model.Detector`): auto runs it in ONNX Runtime on a CPU, in PyTorch on a GPU."""
        self.device = resolve_device(device)
        self.detector = Detector.load(weights or default_weights(), device=str(self.device), batch_size=batch_size,
                                      runtime=runtime)
        self.faces = FaceFinder(device=self.device, min_face=min_face, detect_every=detect_every)
        self.detector.warm_up()  # on a GPU: CUDA's start-up is paid here, not by the first video
        self.faces.warm_up()
        self.frames = frames
        self.fps = fps
        self.threshold = self.detector.profile.threshold if threshold is None else threshold
        self.workers = max(1, workers)
        self.timeout = timeout
        self.keep_evidence = keep_evidence
        self.early_exit = early_exit
        self.early_passes = early_passes(self.detector.profile)
        self.evidence: dict[str, list[Evidence]] = {}  # flagged videos' top face crops, for the HTML report

    def passes(self, n: int) -> list[tuple[int, float]]:
        """The early passes (stride, margin) for a look at `n` sampled frames: none without early exit, with
        `fps` sampling, or where a pass would see fewer than EARLY_PASS_FRAMES frames."""
        if not self.early_exit or self.fps is not None:
            return []
        return [(stride, margin) for stride, margin in self.early_passes if -(-n // stride) >= EARLY_PASS_FRAMES]

    def settings(self) -> dict:
        """What decides the scores (not the threshold, which only reads them): an earlier run's records can be
        reused only if this matches."""
        return {"detector": self.detector.scoring_key(), "frames": self.frames, "fps": self.fps,
                "min_face": self.faces.min_face, "detect_every": self.faces.detect_every,
                "early_passes": [list(p) for p in self.early_passes] if self.early_exit else []}

    # -- public API -------------------------------------------------------------------------------------

    def screen(self, path: str) -> ScreenResult:
        """Screen one file. Never raises for a bad file: the record's status and message say what happened."""
        return next(self.screen_many([path]))

    def screen_many(self, paths: Iterable[str], previous: Iterable[ScreenResult] = ()) -> Iterator[ScreenResult]:
        """Screen files in input order, yielding each record as soon as it is done.

        Identical content is screened once: a later copy's record repeats the first one's findings and names it
        in `duplicate_of`. `previous` holds records from an earlier, interrupted run (resume): a file already
        recorded under the same path, with the same size and mtime or the same content, is skipped (counted in
        `self.stats.resumed`); the same content under a new path gets a duplicate record.
        """
        self.stats = RunStats()
        previous = list(previous)  # read twice below
        self._by_hash: dict[str, ScreenResult | _Decoded] = {}
        self._recorded: dict[tuple, ScreenResult] = {}
        for r in previous:
            if r.sha256 and r.status not in ("timeout", "error"):
                self._by_hash.setdefault(r.sha256, r)
            self._recorded[(r.path, r.bytes, r.mtime)] = r
        self._recorded_paths = {r.path: r for r in previous}
        pending: deque[_Decoded] = deque()
        last: _Decoded | None = None
        it = iter(paths)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.workers:
                try:
                    path = next(it)
                except StopIteration:
                    exhausted = True
                    break
                if recorded_unchanged(path, self._recorded):
                    self.stats.resumed += 1
                    continue
                last = self._start_decode(path, last)
                pending.append(last)
            if not pending:
                return
            job = pending.popleft()
            result = self._finish(job)
            if job.skip:
                self.stats.resumed += 1
                continue
            yield result

    # -- stages -----------------------------------------------------------------------------------------

    def _start_decode(self, path: str, after: _Decoded | None) -> _Decoded:
        job = _Decoded(path=path, result=ScreenResult(path=path, status="ok"), after=after)
        threading.Thread(target=self._decode, args=(job,), daemon=True, name="deepscreen-decode").start()
        return job

    def _claim(self, job: _Decoded) -> None:
        """Record this job's content hash, in input order, and find out whether it was seen before."""
        if job.after is not None:
            job.after.claimed.wait()
        job.after = None  # let finished jobs be freed
        digest = job.result.sha256
        earlier = self._by_hash.get(digest) if digest else None
        if isinstance(earlier, ScreenResult):
            if self._recorded_paths.get(job.path) is earlier:
                job.skip = True
            job.same_as = earlier
        elif earlier is not None:
            job.copy_of = earlier
        elif digest:
            self._by_hash[digest] = job
        job.claimed.set()

    def _decode(self, job: _Decoded) -> None:
        """Worker thread: check, hash, probe, then stream sampled frames into the job's queue."""
        start = time.monotonic()
        try:
            checked = _check_file(job.path)
            if isinstance(checked, ScreenResult):
                job.result = checked
                return
            job.result.bytes, job.result.sha256 = checked
            job.result.mtime = os.stat(job.path).st_mtime
            job.timings["hash"] = time.monotonic() - start
            self._claim(job)
            if job.same_as or job.copy_of:
                return
            t0 = time.monotonic()
            limit, limit_note = self.timeout, ""
            job.info = media.probe(job.path, timeout=PROBE_TIMEOUT_S if limit is None else (limit or None))
            job.timings["probe"] = time.monotonic() - t0
            t0 = time.monotonic()
            waited = 0.0  # time blocked on a full queue (the models behind) is not decoding time
            times = media.sample_times(job.info, self.frames, self.fps)
            if limit is None:
                limit = default_timeout(job.info, times)
                limit_note = f"{limit:g} s, the default for a {job.info.duration:g} s video; see --timeout"
            else:
                limit_note = f"{limit:g} s"
            deadline = media.Deadline(limit - (time.monotonic() - start)) if limit else None
            job.times = times
            passes = self.passes(len(times))
            # each early pass's frames, pass by pass, come before the rest where decoding can order them
            first = list(dict.fromkeys(i for stride, _ in passes for i in range(0, len(times), stride)))
            frames = media.read_frames(job.path, job.info, times, deadline=deadline, first=first)
            try:
                for frame in frames:
                    if job.cancel.is_set():
                        break
                    t1 = time.monotonic()
                    if deadline:
                        deadline.pause()
                    job.frames.put(frame)
                    if deadline:
                        deadline.resume()
                    waited += time.monotonic() - t1
            finally:
                frames.close()  # kills ffmpeg when the main thread stopped early
            job.timings["decode"] = time.monotonic() - t0 - waited
        except media.MediaError as e:
            job.result.status, job.result.message = e.status, e.message
            if e.status == "timeout" and limit_note:
                job.result.message += f" ({limit_note})"
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
            job.result.status, job.result.message = "error", f"{type(e).__name__}: {e}"
        finally:
            if job.after is not None:  # a file that failed before `_claim` still claims in input order
                job.after.claimed.wait()
                job.after = None
            job.claimed.set()
            job.frames.put(_END)

    def _finish(self, job: _Decoded) -> ScreenResult:
        """Main thread: find and score faces as frames arrive, then aggregate and fill the record."""
        job.claimed.wait()
        if job.same_as or job.copy_of:
            job.frames.get()  # the worker's end marker: it decoded nothing
            self.stats.duplicates += 1
            return duplicate_record(job.same_as or job.copy_of.final, job.path, job.result.mtime,
                                    job.timings.get("hash", 0.0))
        look = _Look(self, job)
        error = None
        try:
            look.run()
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
            error = e
            look.drain()
        result = job.result  # read only now: the worker may have replaced it
        if error is not None:
            result.status, result.message = "error", f"{type(error).__name__}: {error}"
        faces, scores = look.faces, look.scores
        try:
            result.timings.update({k: round(v, 4) for k, v in job.timings.items()})
            result.timings["detect"] = round(look.detect_s, 4)
            if result.status == "ok" and look.sampled == 0:
                result.status, result.message = "decode_error", "no frame could be decoded"
            if result.status == "ok" and not faces:
                result.status, result.message = "no_face", f"no face found in {look.sampled} sampled frames"
            if result.status == "ok":
                faces, scores = look.scored()
                result.timings["score"] = round(look.score_s, 4)
                link_tracks(_by_frame(faces))
                result.tracks = build_tracks(faces, np.asarray(scores), look.scale)
                result.score = round(float(video_score(result.tracks)), 6)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
            result.status, result.message = "error", f"{type(e).__name__}: {e}"
            result.score, result.tracks = None, []
        result.frames_sampled = look.sampled
        result.frames_with_faces = len({f.frame_index for f in faces})
        result.stopped = look.stopped if look.sampled else ""
        result.threshold = self.threshold
        result.verdict = "unknown" if result.score is None else ("fake" if result.score >= self.threshold else "real")
        if self.keep_evidence and result.verdict == "fake":
            self.evidence[result.path] = _top_faces(faces, scores)
        if job.info:
            i = job.info
            result.video = {"duration": round(i.duration, 3), "fps": round(i.fps, 3), "width": i.width,
                            "height": i.height, "codec": i.codec, "rotation": i.rotation, "frame_count": i.frame_count}
        result.model = self.detector.info()
        result.deepscreen_version = __version__
        result.timings["total"] = round(sum(result.timings.values()), 4)
        job.final = result
        if result.sha256 and self._by_hash.get(result.sha256) is job:
            self._by_hash[result.sha256] = result  # keep the record, free the job
        return result


class _Look:
    """One video's frames through face finding and scoring, stopping after an early pass when the answer is clear.

    The early passes (`Screener.early_passes`) look at every 8th, then every 4th sampled frame, spread over the
    whole video and searched whole (with the default `detect_every` of 4, the very frames a full look searches
    whole). When the video's score after a pass is its margin or more (in logits) from the threshold, decoding is
    cancelled and the record says `stopped: "early"`. Otherwise the frames held back are searched as a full look
    searches them, reusing the early passes: the faces found are those found without early exit.
    """

    def __init__(self, screener: "Screener", job: _Decoded):
        self.screener, self.job = screener, job
        self.faces: list[Face] = []
        self.scores: list[float] = []  # of faces[:len(scores)]
        self.sampled, self.scale = 0, 1.0
        self.detect_s = self.score_s = 0.0
        self.stopped = "end"
        self._ended = False
        self._held: list[media.Frame] = []  # frames not yet through `find`
        self._next = 0  # the index of the first frame `find` has not had
        self._early: list[media.Frame] = []  # frames of an early pass, not yet searched
        self._known: dict[int, list[Face]] = {}  # early passes' searches, by frame index

    def run(self) -> None:
        s = self.screener
        passes: list[tuple[int, float]] | None = None
        while (frame := self.job.frames.get()) is not _END:
            self.sampled += 1
            self.scale = frame.scale
            if passes is None:
                n = len(self.job.times)
                passes = s.passes(n)
                last = {stride: (n - 1) // stride * stride for stride, _ in passes}
            self._held.append(frame)
            if passes:
                if frame.index % passes[-1][0] == 0:
                    self._early.append(frame)
                self._search_early(passes[0][0], complete=frame.index >= last[passes[0][0]])
                while passes and frame.index >= last[passes[0][0]]:
                    if self._clear(passes.pop(0)[1]):
                        self.stopped, self.sampled = "early", len(self._known)
                        self.drain()
                        return
                    if passes:
                        self._search_early(passes[0][0], complete=frame.index >= last[passes[0][0]])
                if passes:
                    continue
                self._early = []  # no pass was clear: `find` searches what is left as a full look does
            self._find_held(final=False)
        self._ended = True
        self._find_held(final=True)

    def drain(self) -> None:
        """Stop the decoder and take what it already queued (its end marker included)."""
        self.job.cancel.set()
        while not self._ended and self.job.frames.get() is not _END:
            pass
        self._ended = True

    def score_new(self) -> None:
        new = self.faces[len(self.scores):]
        if new:
            t0 = time.monotonic()
            self.scores.extend(float(x) for x in self.screener.detector.score([f.crop for f in new]))
            self.score_s += time.monotonic() - t0

    def scored(self) -> tuple[list[Face], list[float]]:
        """Every face found, in time order (the early passes' come first in `faces`), with its score."""
        self.score_new()
        order = sorted(range(len(self.faces)), key=lambda i: self.faces[i].frame_index)
        return [self.faces[i] for i in order], [self.scores[i] for i in order]

    def _crop(self, frame: media.Frame, faces: list[Face]) -> None:
        size, margin = self.screener.detector.profile.input_size, self.screener.detector.profile.margin
        for face in faces:
            face.crop = crop_face(frame.image, face.box, margin, size)
            face.detail = detail(face.crop)
        self.faces.extend(faces)

    def _search_early(self, stride: int, complete: bool) -> None:
        """Search the waiting frames of the pass over every `stride`-th frame: a batch at a time, or all once the
        pass has all its frames."""
        frames = [f for f in self._early if f.index % stride == 0]
        if not frames or (len(frames) < self.screener.faces.batch_size and not complete):
            return
        t0 = time.monotonic()
        self._early = [f for f in self._early if f.index % stride]
        found = self.screener.faces.search([f.image for f in frames], [f.t for f in frames], [f.index for f in frames])
        for frame, faces in zip(frames, found):
            self._known[frame.index] = faces
            self._crop(frame, faces)
        self.detect_s += time.monotonic() - t0

    def _find_held(self, final: bool) -> None:
        """Search the held frames as a full look does: in time order, a chunk at a time, each chunk once every
        frame before it has come (an early pass's frames may come first); at the end, whatever is held."""
        chunk = self.screener.faces.chunk
        self._held.sort(key=lambda f: f.index)
        ready = len(self._held) if final else next(
            (j for j, f in enumerate(self._held) if f.index != self._next + j), len(self._held))
        while ready >= chunk or (final and ready):
            t0 = time.monotonic()
            take = min(chunk, ready)
            frames, self._held, ready = self._held[:take], self._held[take:], ready - take
            self._next = frames[-1].index + 1
            found = self.screener.faces.find([f.image for f in frames], [f.t for f in frames],
                                             [f.index for f in frames], known=self._known)
            for frame, faces in zip(frames, found):
                if frame.index not in self._known:
                    self._crop(frame, faces)
            self.detect_s += time.monotonic() - t0

    def _clear(self, margin: float) -> bool:
        """Whether the video score from the faces found so far lies `margin` logits or more from the threshold."""
        if not self.faces:
            return False
        self.score_new()
        link_tracks(_by_frame(self.faces))
        score = video_score(build_tracks(self.faces, np.asarray(self.scores), self.scale))
        return abs(_logit(score) - _logit(self.screener.threshold)) >= margin


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _top_faces(faces: list[Face], scores, per_track: int = 3) -> list[Evidence]:
    by_track: dict[int, list[int]] = {}
    for i in sorted(range(len(faces)), key=lambda i: -scores[i]):
        by_track.setdefault(faces[i].track_id, []).append(i)
    return [Evidence(faces[i].track_id, faces[i].t, float(scores[i]), faces[i].crop)
            for tid in sorted(by_track) for i in by_track[tid][:per_track]]


def _by_frame(faces: list[Face]) -> list[list[Face]]:
    frames: dict[int, list[Face]] = {}
    for f in faces:
        frames.setdefault(f.frame_index, []).append(f)
    return [frames[k] for k in sorted(frames)]
