"""Which files to screen: explicit paths always, folders walked lazily for video extensions."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".ts",
                    ".3gp", ".mts", ".m2ts", ".ogv", ".gif")


@dataclass
class WalkStats:
    skipped: int = 0  # files in folders without a video extension
    unreadable_dirs: int = 0


def is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def iter_inputs(paths: Iterable[str], recursive: bool = True, stats: WalkStats | None = None) -> Iterator[str]:
    """Yield files to screen, as they are found (the first result need not wait for the whole walk).

    An explicit path is always yielded, whatever it is, so it gets a record. In folders, entries named like
    videos are yielded (a folder named `x.mp4` too: it gets an `unsupported` record); symlinked folders are
    not followed, which also makes symlink loops harmless.
    """
    stats = stats if stats is not None else WalkStats()
    for path in paths:
        if os.path.isdir(path) and not is_video_name(path):
            yield from _walk(path, recursive, stats)
        else:
            yield path


def _walk(folder: str, recursive: bool, stats: WalkStats) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        stats.unreadable_dirs += 1
        return
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_video_name(entry.name):
            yield entry.path
        elif is_dir and recursive:
            yield from _walk(entry.path, recursive, stats)
        elif not is_dir:
            stats.skipped += 1
