"""Which files to screen: explicit paths always, folders walked lazily for video extensions.

Order and streaming: a folder of up to SORTED_UP_TO entries (nearly every real folder) is listed in name
order, so scans are reproducible. A bigger folder is not read whole and sorted, which would hold the whole
listing in memory and delay the first record until the last name is read: its entries are yielded in the order
the file system lists them, as `os.scandir` reads them (pipe sorted paths into `--from-list` when a big folder
must go in name order). Sub-folders come after their parent's files, in name order, one folder open at a time
(an explicit stack: no recursion limit however deep the tree, and one open file descriptor).
"""
from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".ts",
                    ".3gp", ".mts", ".m2ts", ".ogv", ".gif")
SORTED_UP_TO = 4096  # entries; a bigger folder streams in file system order

log = logging.getLogger("deepscreen.inputs")


@dataclass
class WalkStats:
    skipped: int = 0  # files in folders without a video extension
    unreadable_dirs: int = 0  # folders that could not be listed (or not to the end): their videos get no record


def is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def iter_inputs(paths: Iterable[str], recursive: bool = True, stats: WalkStats | None = None) -> Iterator[str]:
    """Yield files to screen, as they are found (the first result need not wait for the whole walk).

    An explicit path is always yielded, whatever it is, so it gets a record, unless it is a folder: folders are
    walked, whatever their name (`clips.mp4/` is a folder of clips, not a broken video). In folders, files named
    like videos are yielded; symlinked folders are not followed, which also makes symlink loops harmless. A
    folder that cannot be read is counted in `stats.unreadable_dirs` and the walk goes on.
    """
    stats = stats if stats is not None else WalkStats()
    for path in paths:
        if os.path.isdir(path):
            yield from _walk(path, recursive, stats)
        else:
            yield path


def _walk(top: str, recursive: bool, stats: WalkStats) -> Iterator[str]:
    pending = [top]
    while pending:
        folder = pending.pop()
        subfolders: list[str] = []
        for entry in _entries(folder, stats):
            if _is_real_dir(entry):
                subfolders.append(entry.name)
            elif is_video_name(entry.name):
                yield entry.path
            else:
                stats.skipped += 1
        if recursive:
            pending.extend(os.path.join(folder, name) for name in sorted(subfolders, reverse=True))


def _entries(folder: str, stats: WalkStats) -> Iterator[os.DirEntry]:
    """A folder's entries: sorted by name when it is small, else as listed. A folder that cannot be opened, or
    whose listing fails part way, is counted once in `stats.unreadable_dirs`; what was read still counts."""
    try:
        listing = os.scandir(folder)
    except OSError as e:
        _unreadable(folder, e, stats)
        return
    with listing:
        head: list[os.DirEntry] = []
        try:
            head.extend(itertools.islice(listing, SORTED_UP_TO + 1))
        except OSError as e:
            _unreadable(folder, e, stats)
            yield from sorted(head, key=lambda e: e.name)
            return
        if len(head) <= SORTED_UP_TO:
            yield from sorted(head, key=lambda e: e.name)
            return
        yield from head
        try:
            yield from listing
        except OSError as e:
            _unreadable(folder, e, stats)


def _unreadable(folder: str, error: OSError, stats: WalkStats) -> None:
    stats.unreadable_dirs += 1
    reason = (error.strerror or str(error)).lower()
    log.warning("cannot read folder %r: %s; videos in it get no record", folder, reason)


def _is_real_dir(entry: os.DirEntry) -> bool:
    """A folder, not a symlink to one."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
