"""Hostile and odd inputs through the real CLI: scripts/make_bad_inputs.py's corpus, scanned whole.

Every file named like a video gets exactly one record with the expected status and a one-line message; nothing
reaches the network or reads a file a playlist names; an 8K clip is decoded at MAX_SIDE. Plus the folder walk:
streamed, unreadable folders counted, symlink loops harmless.
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepscreen import inputs, media
from deepscreen.cli import main
from deepscreen.results import STATUSES

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_bad_inputs", ROOT / "scripts" / "make_bad_inputs.py")
bad = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bad)

NON_UTF8 = os.fsdecode(bad.NON_UTF8)  # 'caf\udce9 ...': a lone surrogate stands for the byte 0xe9
TINY = ("1x1.mp4", "2x2.mp4", "long-10min-16x16.mp4")
SCAN_LIMIT_S = 900  # the scan takes ~15 s on 2 idle cores; past this it hangs, and the test says so


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, http_hits):
    """The corpus in <tmp>/corpus, the secret file beside it (outside the scanned folder)."""
    base = tmp_path_factory.mktemp("hostile")
    port, _ = http_hits
    secret = base / "secret.txt"
    start = time.monotonic()
    assert bad.main([str(base / "corpus"), "--http-port", str(port), "--secret", str(secret)]) == 0
    elapsed = time.monotonic() - start
    corpus = base / "corpus"
    expected = json.loads((corpus / "expected.json").read_text())
    yield corpus, expected, secret, elapsed
    os.chmod(corpus / "locked-dir", 0o755)  # let pytest clean up when not running as root


@pytest.fixture(scope="module")
def scanned(corpus, tiny_weights):
    """One CLI scan of the whole corpus, plus the non-video files given as explicit paths."""
    folder = corpus[0]
    out = folder.parent / "records.jsonl"
    explicit = [folder / name for name in bad.EXPLICIT_UNSUPPORTED]
    args = ["scan", str(folder), *map(str, explicit), "-o", str(out), "--weights", str(tiny_weights),
            "--frames", "4", "--device", "cpu"]
    res = _invoke_within(args, SCAN_LIMIT_S)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return res, out, {os.path.relpath(r["path"], folder): r for r in records}, records


def _invoke_within(args: list[str], limit: float):
    """CliRunner.invoke on a thread: a scan that hangs on a hostile file fails the test instead of blocking it."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = CliRunner().invoke(main, args, catch_exceptions=False)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True, name="hostile-scan")
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        pytest.fail(f"the scan did not finish within {limit:.0f} s: a file hangs it", pytrace=False)
    if "error" in box:
        raise box["error"]
    return box["result"]


def _matches(status: str, expected: str) -> bool:
    return status in ("ok", "no_face") if expected == bad.EITHER else status == expected


def test_corpus_is_big_enough_and_small(corpus):
    folder, expected, _, elapsed = corpus
    assert len(expected) >= 30
    size = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(folder) for f in fs)
    assert size < 20e6
    print(f"corpus: {len(expected)} cases, {size / 1e6:.1f} MB, {elapsed:.1f} s")  # ~15 s on 2 idle cores
    assert all(status in (*STATUSES, bad.EITHER) for status in expected.values())


def test_every_video_named_file_gets_exactly_one_record(scanned, corpus):
    res, _, _, records = scanned
    expected = corpus[1]
    assert res.exit_code == 0, res.output
    counts = collections.Counter(os.path.relpath(r["path"], corpus[0]) for r in records)
    wanted = set(expected) | set(bad.EXPLICIT_UNSUPPORTED)
    assert set(counts) == wanted
    assert [name for name, n in counts.items() if n != 1] == []


def test_each_case_gets_its_expected_status(scanned, corpus):
    _, _, by_name, _ = scanned
    expected = corpus[1]
    wrong = {name: (r["status"], expected.get(name, "unsupported"), r["message"]) for name, r in by_name.items()
             if not _matches(r["status"], expected.get(name, "unsupported"))}
    assert wrong == {}, "\n".join(f"{n!r}: got {g}, want {w} ({m})" for n, (g, w, m) in wrong.items())


def test_messages_are_one_clear_line(scanned):
    _, _, by_name, _ = scanned
    for name, r in by_name.items():
        if r["status"] == "ok":
            continue
        msg = r["message"]
        assert msg and msg == msg.strip() and "\n" not in msg and "\r" not in msg, (name, msg)
        assert "Traceback" not in msg and 'File "' not in msg, (name, msg)
        assert len(msg) <= 300, (name, msg)
        assert r["score"] is None and r["verdict"] == "unknown", name


def test_nothing_is_fetched_and_the_secret_never_shows(scanned, corpus, http_hits):
    res, out, _, _ = scanned
    secret = corpus[2]
    _, hits = http_hits
    assert hits == []
    assert secret.read_text().strip() == bad.SECRET_TEXT
    assert bad.SECRET_TEXT not in out.read_text(encoding="utf-8")
    assert bad.SECRET_TEXT not in res.output


def test_playlists_and_lists_are_refused_as_containers(scanned):
    _, _, by_name, _ = scanned
    for name in ("hls-remote.mp4", "hls-secret.mkv", "hls-remote.ts", "playlist.m3u8"):
        assert by_name[name]["message"].startswith("hls input refused"), by_name[name]["message"]
    for name in ("concat-remote.mp4", "concat-secret.mkv", "concat-relative-secret.mov", "concat-local-video.mp4"):
        assert by_name[name]["message"].startswith("concat input refused"), by_name[name]["message"]


def test_8k_completes_with_frames_capped(scanned):
    r = scanned[2]["8k-7680x4320.mp4"]
    assert r["status"] == "ok" and (r["video"]["width"], r["video"]["height"]) == (7680, 4320)
    assert r["frames_sampled"] == 2  # both frames of the clip, though 4 were asked for
    # face boxes are reported in source pixels: the face sits in the middle 4320 columns
    box = r["tracks"][0]["box"]
    assert 1680 <= box[0] < box[2] <= 1680 + 4320


def test_partial_files_give_the_frames_they_have(scanned):
    _, _, by_name, _ = scanned
    for name in ("faststart-cut-half.mp4", "mpegts-cut.ts"):
        assert by_name[name]["status"] == "ok" and 1 <= by_name[name]["frames_sampled"] <= 4, name
    assert by_name["faststart-cut-half.mp4"]["frames_sampled"] < 4  # the second half is gone
    assert 1 <= by_name["long-10min-cut.mp4"]["frames_sampled"] < 4  # sampled by seeking: seeks past the cut miss
    assert by_name["single-frame.mp4"]["frames_sampled"] == 1
    assert by_name["anim.gif"]["frames_sampled"] == 4  # 5 frames, 4 asked: the last target lands on the last one
    assert by_name["h264.ts"]["frames_sampled"] == 4  # the stream starts at 1.6 s: times count from there


def test_rotation_and_names(scanned):
    _, _, by_name, _ = scanned
    for deg in (90, 180, 270):
        r = by_name[f"rotate-{deg}.mp4"]
        assert r["video"]["rotation"] == deg and r["frames_with_faces"] == 4, deg
    for name in ("-i.mp4", "--help.mp4", "new\nline.mp4", "http:notaurl.mp4", "%d-pattern.mp4"):
        assert by_name[name]["frames_with_faces"] == 4, name


def test_a_non_utf8_name_keeps_its_bytes(scanned):
    r = scanned[2][NON_UTF8]
    assert r["status"] == "ok" and r["frames_sampled"] == 4
    assert os.fsencode(os.path.basename(r["path"])) == bad.NON_UTF8  # the record names the very file


def test_tiny_frames_have_no_face(scanned):
    for name in TINY:
        r = scanned[2][name]
        assert (r["status"], r["frames_sampled"]) == ("no_face", 4), (name, r["message"])


# -- media level ------------------------------------------------------------------------------------------------


def test_8k_decode_never_holds_a_full_size_frame(corpus):
    path = str(corpus[0] / "8k-7680x4320.mp4")
    info = media.probe(path)
    assert (info.width, info.height) == (7680, 4320)
    tracemalloc.start()
    try:
        frames = [(f.t, f.image.shape, f.scale) for f in media.read_frames(path, info, [0.5, 1.5])]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [shape for _, shape, _ in frames] == [(1080, 1920, 3)] * 2
    assert max(frames[0][1][:2]) == media.MAX_SIDE and frames[0][2] == pytest.approx(0.25)
    assert [t for t, _, _ in frames] == [0.0, 1.0]  # 2 frames at 1 fps: 1.5 s is past the last, moved onto it
    one_8k_frame = 7680 * 4320 * 3  # 99.5 MB
    assert peak < one_8k_frame / 2  # Python only ever held MAX_SIDE frames (6.2 MB each), a few at a time


def test_short_clips_give_one_frame_per_time(corpus):
    for name, n in (("single-frame.mp4", 1), ("8k-7680x4320.mp4", 2), ("anim.gif", 4), ("mpeg2.mpg", 4)):
        path = str(corpus[0] / name)
        info = media.probe(path)
        frames = list(media.read_frames(path, info, media.sample_times(info, frames=4)))
        assert len(frames) == n, name
        assert len({f.t for f in frames}) == n, (name, [f.t for f in frames])


def test_stream_start_offset_is_not_added_twice(corpus):
    path = str(corpus[0] / "h264.ts")  # MPEG-TS: video starts at 1.6 s in the file's clock
    info = media.probe(path)
    assert info.start_time == pytest.approx(0.0) and info.duration == pytest.approx(2.0, abs=0.05)
    times = media.sample_times(info, frames=4)
    frames = list(media.read_frames(path, info, times))
    assert len(frames) == 4
    for f, t in zip(frames, times):
        assert t - 1e-3 <= f.t <= t + 0.1 + 1e-3


def test_a_passed_deadline_kills_ffmpeg_with_a_one_line_timeout(corpus):
    path = str(corpus[0] / "long-10min-face.mp4")
    info = media.probe(path)
    with pytest.raises(media.MediaError) as err:
        list(media.read_frames(path, info, media.sample_times(info, frames=4), deadline=media.Deadline(0)))
    assert err.value.status == "timeout" and "\n" not in err.value.message


def test_time_waiting_for_the_reader_does_not_count_against_the_deadline(face_clip):
    """A video queued behind slow ones waits with ffmpeg blocked on a full pipe: that wait is not decoding."""
    info = media.probe(str(face_clip))
    times = media.sample_times(info, frames=8)

    def read(pause: bool) -> int:
        deadline = media.Deadline(1.5)
        n = 0
        for _ in media.read_frames(str(face_clip), info, times, deadline=deadline):
            n += 1
            if n == 1:  # the models are busy elsewhere for a while
                if pause:
                    deadline.pause()
                time.sleep(2.5)
                if pause:
                    deadline.resume()
        return n

    assert read(pause=True) == 8
    with pytest.raises(media.MediaError) as err:
        read(pause=False)
    assert err.value.status == "timeout"


def test_ffmpeg_messages_never_carry_the_file_name(tmp_path, corpus):
    junk = tmp_path / "bad\nname \udcff.mp4"
    junk.write_bytes(bytes(range(256)) * 40)
    header_only = tmp_path / "bad\nname \udcff 2.mp4"
    header_only.write_bytes((corpus[0] / "mp4-header-only.mp4").read_bytes())
    for path in (junk, header_only):
        with pytest.raises(media.MediaError) as err:
            info = media.probe(str(path))
            list(media.read_frames(str(path), info, [0.5]))
        msg = err.value.message
        assert "\n" not in msg and "bad" not in msg and "name" not in msg and "\ufffd" not in msg, msg


# -- the folder walk ----------------------------------------------------------------------------------------------


class _ScandirSpy:
    """Wraps os.scandir: counts the entries read; fails for the folders in `fail` ({path: entries read before
    the failure}; 0: the folder cannot be opened)."""

    def __init__(self, fail: dict[str, int] | None = None):
        self.real = os.scandir
        self.read = 0
        self.fail = fail or {}

    def __call__(self, path):
        if self.fail.get(path) == 0:
            raise PermissionError(13, "Permission denied", path)
        spy = self

        class Listing:
            def __init__(self):
                self.it = spy.real(path)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.it.close()

            def __iter__(self):
                for i, entry in enumerate(self.it):
                    if path in spy.fail and i == spy.fail[path]:
                        raise OSError(5, "Input/output error", path)
                    spy.read += 1
                    yield entry

        return Listing()


def test_a_huge_folder_streams_its_first_path_at_once(tmp_path, monkeypatch):
    big = tmp_path / "big"
    big.mkdir()
    for i in range(10_000):
        (big / f"{i:05d}.mp4").touch()
    spy = _ScandirSpy()
    monkeypatch.setattr(inputs.os, "scandir", spy)
    walk = inputs.iter_inputs([str(big)])
    first = next(walk)
    # Only the first SORTED_UP_TO + 1 names were read before the first path came out, not all 10,000.
    assert spy.read <= inputs.SORTED_UP_TO + 1 < 10_000
    rest = list(walk)
    assert spy.read == 10_000
    assert len({first, *rest}) == 10_000 and first.endswith(".mp4")


def test_a_small_folder_comes_in_name_order(tmp_path):
    for name in ("b.mp4", "a.mp4", "c.mkv", "notes.txt"):
        (tmp_path / name).touch()
    (tmp_path / "a-sub").mkdir()
    (tmp_path / "a-sub" / "z.mp4").touch()
    stats = inputs.WalkStats()
    got = [os.path.relpath(p, tmp_path) for p in inputs.iter_inputs([str(tmp_path)], stats=stats)]
    assert got == ["a.mp4", "b.mp4", "c.mkv", os.path.join("a-sub", "z.mp4")]
    assert stats.skipped == 1


def test_unreadable_folders_are_counted_not_fatal(tmp_path, monkeypatch):
    for d in ("a", "locked", "broken", "z"):
        (tmp_path / d).mkdir()
    for name in ("a/1.mp4", "locked/2.mp4", "broken/3.mp4", "broken/4.mp4", "broken/5.mp4", "z/6.mp4"):
        (tmp_path / name).touch()
    locked = tmp_path / "locked"
    os.chmod(locked, 0)
    try:
        spy = _ScandirSpy()
        if _listable(locked):  # root lists a chmod 000 folder all the same: make it fail by hand
            spy.fail[str(locked)] = 0
        monkeypatch.setattr(inputs.os, "scandir", spy)
        stats = inputs.WalkStats()
        got = sorted(os.path.relpath(p, tmp_path) for p in inputs.iter_inputs([str(tmp_path)], stats=stats))
        assert stats.unreadable_dirs == 1
        assert got == ["a/1.mp4", "broken/3.mp4", "broken/4.mp4", "broken/5.mp4", "z/6.mp4"]
        # a folder whose listing fails part way: what was read is kept, the failure counted, the walk goes on
        spy.fail[str(tmp_path / "broken")] = 2
        stats = inputs.WalkStats()
        got = sorted(os.path.relpath(p, tmp_path) for p in inputs.iter_inputs([str(tmp_path)], stats=stats))
        assert stats.unreadable_dirs == 2
        assert got == ["a/1.mp4", "broken/3.mp4", "broken/4.mp4", "z/6.mp4"]
    finally:
        os.chmod(locked, 0o755)


def _listable(path) -> bool:
    try:
        os.listdir(path)
        return True
    except OSError:
        return False


def test_symlink_loops_of_folders_terminate(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "clip.mp4").touch()
    os.symlink("..", tmp_path / "a" / "b" / "up")  # b/up -> a: a loop
    os.symlink(".", tmp_path / "self")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "again")
    os.symlink("loop2.mp4", tmp_path / "loop1.mp4")
    os.symlink("loop1.mp4", tmp_path / "loop2.mp4")
    stats = inputs.WalkStats()
    got = sorted(os.path.relpath(p, tmp_path) for p in inputs.iter_inputs([str(tmp_path)], stats=stats))
    assert got == ["a/b/clip.mp4", "loop1.mp4", "loop2.mp4"]  # the looping links are files to screen: each an error
    # an explicit symlink to a folder is walked (once), its inner links still not followed
    assert list(inputs.iter_inputs([str(tmp_path / "self")])) and \
        sorted(os.path.basename(p) for p in inputs.iter_inputs([str(tmp_path / "a" / "b" / "up")])) == ["clip.mp4"]


def test_a_tree_deeper_than_the_recursion_limit(tmp_path):
    folders = [str(tmp_path)]
    for _ in range(sys.getrecursionlimit() + 100):  # paths up to ~2,200 characters; os.makedirs would recurse
        folders.append(os.path.join(folders[-1], "d"))
        os.mkdir(folders[-1])
    clip = os.path.join(folders[-1], "clip.mp4")
    open(clip, "w").close()
    try:
        stats = inputs.WalkStats()
        assert list(inputs.iter_inputs([str(tmp_path)], stats=stats)) == [clip]
        assert stats.unreadable_dirs == 0
    finally:  # shutil.rmtree, which pytest cleans up with, recurses too
        os.remove(clip)
        for folder in reversed(folders[1:]):
            os.rmdir(folder)
