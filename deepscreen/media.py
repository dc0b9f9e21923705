"""Probe and sample frames: the one module that runs ffprobe and ffmpeg.

Inputs are untrusted. Every call opens the file through the `file:` protocol only (so a name starting with
`-` or looking like a URL is just a name), restricts the demuxers to real video containers (so a playlist,
a concat list or an image sequence is refused before it can reference anything else), and runs from an
argument list, never a shell. Frames are streamed out of an ffmpeg pipe one at a time.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

# Demuxers for real video containers. Not here, on purpose: hls, concat, image2 (image sequences), the single
# image pipes, and everything else that can name another file or a URL inside its content.
DEMUXERS = "mov,matroska,webm,avi,mpeg,mpegts,mpegvideo,flv,asf,m4v,h264,hevc,ivf,ogg,gif,mxf,nut,rm,dv,yuv4mpegpipe"
# Clips longer than this are sampled by input seeking (one short decode per frame) instead of one pass
# through the select filter, which must decode everything up to the last sampled frame. scripts/measure_seek.py
# (32 frames of 720p30 H.264, 2 cores): seeking wins from ~109 s with a keyframe every 2 s, and not yet at 120 s
# with one every 8 s (select 5.3 s vs seek 10.8 s); on a 10-minute clip the select pass costs ~40 s.
SEEK_AFTER_S = 120.0
MAX_SIDE = 1920  # frames are scaled down to this long side inside ffmpeg, before Python allocates anything
MAX_FRAMES = 2000


class MediaError(Exception):
    """A file ffmpeg cannot use; `status` is the record status it maps to, `message` one line for a person."""

    def __init__(self, status: str, message: str):
        message = _one_line(message)
        super().__init__(message)
        self.status = status
        self.message = message


MAX_MESSAGE = 240


def _one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed to single spaces, and cut to MAX_MESSAGE characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _without_path(stderr: bytes, path: str) -> bytes:
    """ffmpeg's messages name the input; drop the name (it may hold newlines or bytes that are not UTF-8)."""
    raw = os.fsencode(path)
    for name in (b"file:" + raw, raw):
        stderr = stderr.replace(name + b": ", b"").replace(name, b"the input")
    return stderr


@dataclass
class VideoInfo:
    duration: float
    fps: float
    frame_count: int
    width: int  # as displayed: after rotation
    height: int
    rotation: int
    codec: str
    container: str
    start_time: float = 0.0  # where the video stream starts after the file's start (ffmpeg's t = 0)
    stream_index: int = -1  # the stream probed, so that decoding reads that very stream (-1: ffmpeg's pick)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Frame:
    index: int  # position among the sampled frames
    t: float  # seconds from the start of the video
    image: np.ndarray  # HxWx3 uint8 RGB, at most MAX_SIDE on its long side
    scale: float = 1.0  # frame pixels per displayed-video pixel (below 1 when ffmpeg scaled it down)


INPUT_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": DEMUXERS}


def _ffmpeg_input(path: str, loglevel: str = "error", seek: float | None = None) -> list[str]:
    """ffmpeg's arguments up to and including the one input, opened as a plain file in an accepted container.

    Built by hand rather than with ffmpeg-python, which hashes its graph as UTF-8 and so cannot take a file
    name that is not (a Linux name is bytes: os.fsdecode gives it lone surrogates, os.fsencode gives it back).
    """
    args = [FFMPEG, "-nostdin", "-nostats", "-hide_banner", "-loglevel", loglevel]
    for key, value in INPUT_OPTIONS.items():
        args += [f"-{key}", value]
    if seek is not None:
        args += ["-ss", f"{seek:.4f}"]
    return args + ["-i", "file:" + path]


def _video_label(info: "VideoInfo") -> str:
    """The filtergraph input for the probed stream (ffmpeg's first video stream if the index is unknown)."""
    return f"[0:{info.stream_index}]" if info.stream_index >= 0 else "[0:v:0]"


def _escape(filter_arg: str) -> str:
    return filter_arg.replace("\\", "\\\\").replace("'", "\\'").replace(",", "\\,").replace(":", "\\:")


RAW_OUT = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-an", "-sn", "-dn", "-y", "pipe:"]


def _run(args: list[str], timeout: float | None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise MediaError("timeout", f"{args[0]} did not finish within {timeout:g} s") from e
    except FileNotFoundError as e:
        raise MediaError("error", f"{args[0]} not found: install ffmpeg (Debian: apt-get install ffmpeg)") from e


# Lines ffmpeg prints after the real error, which say nothing about the input.
_EPILOGUE = ("Conversion failed!", "Error marking filters as finished", "Cannot determine format of input stream",
             "Consider increasing the value for the 'analyzeduration'", "Error while filtering",
             "Nothing was written into output file", "Exiting normally")


def _last_error_line(stderr: bytes) -> str:
    """The last line that says something about the input, without ffmpeg's `[demuxer @ 0x...]` prefix."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(_EPILOGUE)] or lines
    line = useful[-1] if useful else "no message"
    return re.sub(r"^(\[[^\]]* @ [^\]]*\] *)+", "", line) or line


def _crash(tool: str, returncode: int | None) -> MediaError | None:
    """A tool killed by a signal crashed inside ffmpeg itself (seen: a static ffmpeg 6.0 build segfaulting on
    every MPEG-TS file), which says nothing sure about the file: name it, rather than "no message"."""
    if returncode is None or returncode >= 0:
        return None
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return MediaError("decode_error", f"{tool} crashed ({name}) on this file: a bug in the installed ffmpeg, "
                                      f"not necessarily in the file; another ffmpeg build may read it")


# ffmpeg's words for a file that ends early or holds damaged data.
_DAMAGED = (b"partial file", b"Invalid NAL unit size", b"corrupt input packet", b"moov atom not found",
            b"error reading header", b"Invalid data found when processing input", b"End of file",
            b"Packet corrupt", b"stream ends prematurely", b"Truncating packet", b"invalid frame size")


def _decode_failure(stderr: bytes, path: str) -> MediaError:
    """Why ffmpeg produced no frame at all, in one line."""
    stderr = _without_path(stderr, path)
    if any(words in stderr for words in _DAMAGED):
        return MediaError("decode_error", "no frame could be decoded: the video data is truncated or damaged")
    return MediaError("decode_error", f"no frame could be decoded (ffmpeg: {_last_error_line(stderr)})")


def _fraction(s: str | None) -> float:
    if not s or s in ("0/0", "N/A"):
        return 0.0
    num, _, den = s.partition("/")
    try:
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 0.0


def _float(s) -> float:
    try:
        v = float(s)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(round(_float(side["rotation"]))) % 360
    return int(round(_float((stream.get("tags") or {}).get("rotate", 0)))) % 360


_REFUSED_RE = re.compile(rb"\[([\w,]+) @ [^\]]*\] Format not on whitelist")


def _probe_error(path: str, stderr: bytes) -> MediaError:
    """Turn ffprobe's complaint into a status: not a video we accept, or a video we cannot read."""
    refused = _REFUSED_RE.search(stderr)
    if refused:
        fmt = refused.group(1).decode()
        return MediaError("unsupported", f"{fmt} input refused: not an accepted video container")
    stderr = _without_path(stderr, path)
    msg = _last_error_line(stderr)
    if b"moov atom not found" in stderr:
        try:
            with open(path, "rb") as fh:
                is_mp4 = fh.read(8)[4:8] == b"ftyp"
        except OSError:
            is_mp4 = False
        if is_mp4:
            return MediaError("decode_error", "truncated or incomplete MP4 (moov atom not found)")
    if "Invalid data found" in msg:
        return MediaError("unsupported", "not a video file ffmpeg can read")
    return MediaError("decode_error", f"ffprobe: {msg}")


def probe(path: str, timeout: float | None = 30.0) -> VideoInfo:
    """Read duration, frame rate, frame count, rotation and size; raise MediaError for what is not a video."""
    args = [FFPROBE, "-v", "error", "-protocol_whitelist", "file", "-format_whitelist", DEMUXERS,
            "-show_format", "-show_streams", "-of", "json", "file:" + path]
    proc = _run(args, timeout)
    if proc.returncode != 0:
        raise _crash("ffprobe", proc.returncode) or _probe_error(path, proc.stderr)
    try:
        meta = json.loads(proc.stdout.decode("utf-8", "replace") or "{}")
    except ValueError as e:
        raise MediaError("decode_error", "ffprobe's description of the file could not be read") from e
    videos = [s for s in meta.get("streams", []) if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        raise MediaError("unsupported", "no video stream")
    v = videos[0]
    fmt = meta.get("format", {})
    fps = _fraction(v.get("avg_frame_rate")) or _fraction(v.get("r_frame_rate"))
    duration = _float(v.get("duration")) or _float(fmt.get("duration"))
    frame_count = int(_float(v.get("nb_frames"))) or int(round(duration * fps))
    if duration <= 0 and frame_count and fps:
        duration = frame_count / fps
    width, height = int(v.get("width") or 0), int(v.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError("decode_error", "video stream has no frame size")
    rotation = _rotation(v)
    if rotation in (90, 270):
        width, height = height, width
    # ffmpeg (without -copyts) shifts every timestamp so that the file starts at t = 0: the file's start, the
    # earliest of its streams, not the video stream's (an MPEG-TS or MPEG-PS file often starts at 1.4 s or so).
    start = max(0.0, _float(v.get("start_time")) - _float(fmt.get("start_time")))
    return VideoInfo(duration=duration, fps=fps, frame_count=frame_count, width=width, height=height,
                     rotation=rotation, codec=str(v.get("codec_name", "")), container=str(fmt.get("format_name", "")),
                     start_time=start, stream_index=int(v.get("index", -1)))


def sample_times(info: VideoInfo, frames: int = 32, fps: float | None = None,
                 max_frames: int = MAX_FRAMES) -> list[float]:
    """Timestamps to sample: `frames` evenly spaced (each in the middle of its slice), or `fps` per second."""
    duration = info.duration
    if duration <= 0:
        return [0.0]
    if fps:
        n = max(1, min(max_frames, int(duration * fps)))
        step = 1.0 / fps
        return [round(min(duration, (i + 0.5) * step), 4) for i in range(n)]
    n = max(1, min(frames, max_frames, info.frame_count or frames))
    return [round(duration * (i + 0.5) / n, 4) for i in range(n)]


def output_size(info: VideoInfo, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The size frames come out of ffmpeg: the displayed size, scaled down to max_side on the long side."""
    scale = min(1.0, max_side / max(info.width, info.height))
    return max(2, int(round(info.width * scale / 2)) * 2), max(2, int(round(info.height * scale / 2)) * 2)


class Deadline:
    """When a video's time is up. Time spent paused (the reader not taking frames because the models are busy
    with the videos before it) does not count: waiting in line is not the file's fault."""

    def __init__(self, seconds: float):
        self._at = time.monotonic() + seconds
        self._paused_since: float | None = None
        self._lock = threading.Lock()

    def pause(self) -> None:
        with self._lock:
            if self._paused_since is None:
                self._paused_since = time.monotonic()

    def resume(self) -> None:
        with self._lock:
            if self._paused_since is not None:
                self._at += time.monotonic() - self._paused_since
                self._paused_since = None

    def remaining(self) -> float | None:
        """Seconds left (0 or less: passed); None while paused."""
        with self._lock:
            return None if self._paused_since is not None else self._at - time.monotonic()


class _Watchdog:
    """Kills an ffmpeg process when the per-video deadline passes, so a hostile file cannot hang the batch."""

    PAUSED_POLL_S = 0.5

    def __init__(self, proc: subprocess.Popen, deadline: Deadline | None):
        self.fired = False
        self._proc, self._deadline = proc, deadline
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._cancelled = False
        if deadline is not None:
            self._arm(deadline.remaining())

    def _arm(self, left: float | None) -> None:
        timer = threading.Timer(self.PAUSED_POLL_S if left is None else max(0.0, left), self._check)
        timer.daemon = True
        with self._lock:
            if self._cancelled:
                return
            self._timer = timer
            timer.start()

    def _check(self) -> None:
        left = self._deadline.remaining()
        if left is not None and left <= 0:
            self.fired = True
            self._proc.kill()
        else:  # paused, or the deadline moved on while it was
            self._arm(left)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._timer:
                self._timer.cancel()


_PTS_RE = re.compile(rb"pts_time:\s*(-?[0-9.]+)")


def _pipe_frames(args: list[str], path: str, size: tuple[int, int], deadline: Deadline | None,
                 on_stderr_line=None) -> Iterator[np.ndarray]:
    """Run ffmpeg and yield raw RGB frames from its stdout; stderr is drained on a thread."""
    w, h = size
    nbytes = w * h * 3
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail: list[bytes] = []
    count = 0

    def drain() -> None:
        for line in proc.stderr:
            if on_stderr_line:
                on_stderr_line(line)
            if b"Parsed_showinfo" not in line:
                tail[:] = (tail + [line])[-30:]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    dog = _Watchdog(proc, deadline)
    try:
        while True:
            buf = proc.stdout.read(nbytes)
            if len(buf) < nbytes:
                break
            count += 1
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()
        reader.join(timeout=5)
        dog.cancel()
    if dog.fired:
        raise MediaError("timeout", "decoding did not finish before the time limit")
    if count == 0 and proc.returncode != 0:
        raise _crash("ffmpeg", proc.returncode) or _decode_failure(b"".join(tail), path)


def _select_expr(targets: list[float]) -> str:
    """Select the first frame at or after each target time, in one pass over the stream."""
    terms = [f"gte(t,{t:.4f})*(isnan(prev_selected_t)+lt(prev_selected_t,{t:.4f}))" for t in targets]
    return "+".join(terms)


def read_frames(path: str, info: VideoInfo, times: list[float], max_side: int = MAX_SIDE,
                deadline: Deadline | None = None, first: list[int] = ()) -> Iterator[Frame]:
    """Stream the frames at `times`: one select pass for short clips, one input seek per frame for long ones.

    Each frame is the first at or after its time; times past the last frame, or so close together that they
    would fall on one frame, are moved onto the last frames, so a short clip still gives one frame per time.
    `first`: indices into `times` wanted before the others (an early look); a long clip seeks to them first, a
    short one is read in time order all the same (one pass over it is cheaper than a process per frame). Each
    frame's `index` is its position in `times`.
    """
    size = output_size(info, max_side)
    if info.duration > SEEK_AFTER_S and len(times) > 1:
        wanted = set(first)
        order = [*first, *(i for i in range(len(times)) if i not in wanted)]
        frames = _read_by_seeking(path, info, [(i, times[i]) for i in order], size, deadline)
    else:
        frames = _read_by_selecting(path, info, _onto_frames(info, times), size, deadline)
    scale = size[0] / info.width
    for i, t, image in frames:
        yield Frame(index=i, t=t, image=image, scale=scale)


def _onto_frames(info: VideoInfo, times: list[float]) -> list[float]:
    """Move targets that have no frame at or after them (past the last frame, or sharing a frame with the
    next target) back onto distinct frames, counting frames at the average rate; others are left exactly."""
    if info.fps <= 0 or info.frame_count <= 0 or not times:
        return times
    period = 1.0 / info.fps
    last = info.frame_count - 1
    if info.duration > 0:
        last = min(last, max(0, math.ceil(info.duration * info.fps - 1e-6) - 1))
    wanted = [min(last, max(0, math.ceil(t * info.fps - 1e-6))) for t in times]
    for i in range(len(wanted) - 2, -1, -1):
        wanted[i] = max(0, min(wanted[i], wanted[i + 1] - 1))
    out = []
    for t, k in zip(times, wanted):
        if math.ceil(t * info.fps - 1e-6) == k:
            out.append(t)
        else:  # a quarter period before frame k: at-or-after picks frame k, whatever the rounding
            out.append(round(max(0.0, (k - 0.25) * period), 4))
    return out


def _read_by_selecting(path: str, info: VideoInfo, times: list[float], size: tuple[int, int],
                       deadline: Deadline | None) -> Iterator[tuple[int, float, np.ndarray]]:
    shown: list[float] = []

    def on_line(line: bytes) -> None:
        m = _PTS_RE.search(line) if b"Parsed_showinfo" in line else None
        if m:
            shown.append(float(m.group(1)))

    start = info.start_time
    graph = (f"{_video_label(info)}select={_escape(_select_expr([start + t for t in times]))},showinfo,"
             f"scale={size[0]}:{size[1]}[out]")
    args = [*_ffmpeg_input(path, "info"), "-filter_complex", graph, "-map", "[out]", "-vsync", "passthrough",
            *RAW_OUT]
    for i, image in enumerate(_pipe_frames(args, path, size, deadline, on_line)):
        # showinfo prints a frame's line before the frame reaches the pipe; wait briefly if the stderr
        # thread lags, and fall back to the target time if the line never comes.
        for _ in range(50):
            if len(shown) > i:
                break
            time.sleep(0.002)
        t = shown[i] - start if len(shown) > i else times[min(i, len(times) - 1)]
        yield i, round(max(0.0, t), 4), image


def _read_by_seeking(path: str, info: VideoInfo, times: list[tuple[int, float]], size: tuple[int, int],
                     deadline: Deadline | None) -> Iterator[tuple[int, float, np.ndarray]]:
    """One short decode per (index, time), from the keyframe before it."""
    failure, count = None, 0
    for i, t in times:
        graph = f"{_video_label(info)}scale={size[0]}:{size[1]}[out]"
        args = [*_ffmpeg_input(path, seek=info.start_time + t), "-filter_complex", graph, "-map", "[out]",
                "-frames:v", "1", *RAW_OUT]
        try:
            for image in _pipe_frames(args, path, size, deadline):
                count += 1
                yield i, t, image
        except MediaError as e:  # one damaged stretch (a cut tail, say) costs its frame, not the video
            if e.status != "decode_error":
                raise
            failure = failure or e
    if count == 0 and failure:
        raise failure


def transcode(src: str, dst: str, timeout: float | None = 600, **options: str) -> None:
    """Re-encode a video (video only) with ffmpeg output options, e.g. to make low-quality training variants."""
    args = [*_ffmpeg_input(src), "-map", "0:v"]
    for key, value in options.items():  # as ffmpeg-python spelled keyword options: -key value, or -key for None
        args += [f"-{key}"] + ([] if value is None else [str(value)])
    root, ext = os.path.splitext(dst)
    part = f"{root}.part{ext}"  # the extension still names the container; `dst` appears only when complete
    args += ["file:" + part, "-y"]
    try:
        proc = _run(args, timeout)
        if proc.returncode != 0:
            raise _crash("ffmpeg", proc.returncode) or MediaError(
                "decode_error", f"ffmpeg: {_last_error_line(_without_path(proc.stderr, src))}")
        os.replace(part, dst)
    finally:
        if os.path.exists(part):
            os.remove(part)
