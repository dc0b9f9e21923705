"""What the pipeline hands back per video, and how it is written (JSON lines or CSV), flushed per video."""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import IO, Any

STATUSES = ("ok", "no_face", "decode_error", "unsupported", "timeout", "error")
VERDICTS = ("fake", "real", "unknown")


@dataclass
class TrackResult:
    """One person: faces linked across sampled frames by box overlap."""

    track_id: int
    score: float
    faces: int
    first_t: float
    last_t: float
    top_times: list[float]
    face_scores: list[float] = field(default_factory=list)
    face_times: list[float] = field(default_factory=list)
    box: list[float] = field(default_factory=list)  # median box (x1, y1, x2, y2) in source pixels
    detail: float | None = None  # median fine detail of its face crops (Face.detail): what sharpness alone reads


@dataclass
class ScreenResult:
    """One input file's record. Every input gets one, whatever went wrong."""

    path: str
    status: str
    message: str = ""
    sha256: str | None = None
    bytes: int | None = None
    mtime: float | None = None
    duplicate_of: str | None = None
    score: float | None = None
    verdict: str = "unknown"
    threshold: float | None = None
    tracks: list[TrackResult] = field(default_factory=list)
    frames_sampled: int = 0
    frames_with_faces: int = 0
    stopped: str = ""  # "early": an early pass was clear; "end": every sampled frame was looked at; "": none decoded
    video: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    deepscreen_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScreenResult":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["tracks"] = [TrackResult(**t) for t in kw.get("tracks") or []]
        return cls(**kw)


CSV_COLUMNS = [f.name for f in fields(ScreenResult)]
_NESTED = {"tracks", "video", "model", "timings"}


def result_to_row(result: ScreenResult) -> dict[str, str]:
    """Flatten a record for CSV: nested fields become JSON text so a round trip loses nothing."""
    row = {}
    for k, v in result.to_dict().items():
        text = json.dumps(v, separators=(",", ":")) if k in _NESTED else ("" if v is None else str(v))
        # a name that is not valid UTF-8 is written with backslash escapes (CSV has no lossless way)
        row[k] = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return row


def row_to_result(row: dict[str, str]) -> ScreenResult:
    d: dict[str, Any] = {}
    for k, v in row.items():
        if k in _NESTED:
            d[k] = json.loads(v) if v else ({} if k != "tracks" else [])
        elif k in ("score", "threshold", "mtime"):
            d[k] = float(v) if v else None
        elif k in ("bytes", "frames_sampled", "frames_with_faces"):
            d[k] = int(v) if v else (None if k == "bytes" else 0)
        elif k in ("sha256", "duplicate_of"):
            d[k] = v or None
        else:
            d[k] = v
    return ScreenResult.from_dict(d)


class ResultWriter:
    """Appends one whole record per write and flushes, so a crash never leaves a half-written record behind."""

    def __init__(self, stream: IO[str], fmt: str = "jsonl"):
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"unknown format {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        if fmt == "csv" and _at_start(stream):
            self._write_csv_row(dict(zip(CSV_COLUMNS, CSV_COLUMNS)))

    def write(self, result: ScreenResult) -> None:
        if self.fmt == "jsonl":
            # ASCII escapes keep every path exact, including names that are not valid UTF-8 (lone surrogates).
            self.stream.write(json.dumps(result.to_dict()) + "\n")
        else:
            self._write_csv_row(result_to_row(result))
        self.stream.flush()

    def _write_csv_row(self, row: dict[str, str]) -> None:
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n").writerow(row)
        self.stream.write(buf.getvalue())


def _at_start(stream: IO[str]) -> bool:
    try:
        return stream.tell() == 0
    except (OSError, ValueError):
        return True


def read_results(path: str) -> list[ScreenResult]:
    """Read a results file back (JSON lines or CSV, by extension); a torn last JSON line is skipped."""
    with open(path, encoding="utf-8", newline="") as fh:
        if path.endswith(".csv"):
            return [row_to_result(r) for r in csv.DictReader(fh)]
        out = []
        for line in fh:
            try:
                out.append(ScreenResult.from_dict(json.loads(line)))
            except json.JSONDecodeError:
                continue
        return out


def open_results(path: str) -> tuple[list[ScreenResult], IO[str]]:
    """Open a JSON-lines results file for appending after a crash: drop a torn last line, return what is there.

    Records are written one whole line at a time, so only the last line can be incomplete (a kill during the
    write); it is cut off and that video is screened again.
    """
    done: list[ScreenResult] = []
    if os.path.exists(path):
        with open(path, "rb+") as fh:
            data = fh.read()
            keep = data.rfind(b"\n") + 1
            if keep < len(data):
                fh.truncate(keep)
        for line in data[:keep].decode("utf-8", "replace").splitlines():
            try:
                done.append(ScreenResult.from_dict(json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue
    return done, open(path, "a", encoding="utf-8")
