"""Probe and sample with real ffprobe/ffmpeg on rendered clips."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from deepscreen import media
from conftest import ffmpeg, mean_abs_diff


def test_probe_reads_stream_facts(face_clip):
    info = media.probe(str(face_clip))
    assert (info.width, info.height, info.rotation, info.codec) == (640, 480, 0, "h264")
    assert info.fps == pytest.approx(25)
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert info.frame_count == 75


def test_sample_times_evenly_spaced_or_per_second(face_clip):
    info = media.probe(str(face_clip))
    assert media.sample_times(info, frames=4) == [0.375, 1.125, 1.875, 2.625]
    assert media.sample_times(info, fps=2) == [0.25, 0.75, 1.25, 1.75, 2.25, 2.75]
    assert len(media.sample_times(info, frames=500)) == 75  # never more than the clip has


def test_frames_come_at_the_sampled_times(face_clip):
    info = media.probe(str(face_clip))
    times = media.sample_times(info, frames=6)
    frames = list(media.read_frames(str(face_clip), info, times))
    assert [f.index for f in frames] == list(range(6))
    # the first frame at or after each target: within one frame period after it
    for f, t in zip(frames, times):
        assert t - 1e-3 <= f.t <= t + 1 / 25 + 1e-3
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype == np.uint8
    # the camera moves, so sampled frames differ
    assert mean_abs_diff(frames[0].image, frames[2].image) > 2


def test_seeking_gives_the_same_frames_as_selecting(face_clip, monkeypatch):
    info = media.probe(str(face_clip))
    times = [0.4, 1.6, 2.8]  # on frame boundaries at 25 fps
    selected = list(media.read_frames(str(face_clip), info, times))
    monkeypatch.setattr(media, "SEEK_AFTER_S", 0.0)
    seeked = list(media.read_frames(str(face_clip), info, times))
    assert len(selected) == len(seeked) == 3
    for a, b in zip(selected, seeked):
        assert a.t == pytest.approx(b.t, abs=0.041)
        assert mean_abs_diff(a.image, b.image) < 3


def test_a_long_clip_seeks_to_the_early_frames_first(face_clip, monkeypatch):
    # An early look at a long clip should not wait for every frame before its last: the frames asked for first
    # come first, the rest follow in time order, and each keeps its index among the sampled times.
    info = media.probe(str(face_clip))
    times = [0.4, 0.8, 1.2, 1.6, 2.0, 2.4]
    monkeypatch.setattr(media, "SEEK_AFTER_S", 0.0)
    in_order = {f.index: f for f in media.read_frames(str(face_clip), info, times)}
    early_first = list(media.read_frames(str(face_clip), info, times, first=[0, 3, 5]))
    assert [f.index for f in early_first] == [0, 3, 5, 1, 2, 4]
    for f in early_first:
        assert f.t == in_order[f.index].t and np.array_equal(f.image, in_order[f.index].image)


def test_a_short_clip_is_read_in_time_order_whatever_comes_first(face_clip):
    info = media.probe(str(face_clip))
    frames = list(media.read_frames(str(face_clip), info, [0.4, 0.8, 1.2, 1.6], first=[0, 2]))
    assert [f.index for f in frames] == [0, 1, 2, 3]


def test_rotation_is_applied(rotated_clip):
    info = media.probe(str(rotated_clip))
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (640, 480)  # stored 480x640, displayed upright
    frame = next(media.read_frames(str(rotated_clip), info, [0.5]))
    assert frame.image.shape == (480, 640, 3)
    # the picture sits in the middle 480 columns, with black pads left and right, as rendered before rotating
    assert frame.image[:, :60].mean() < 10 and frame.image[:, 100:540].mean() > 60


def test_large_frames_are_scaled_inside_ffmpeg(media_dir):
    big = media_dir / "big.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=3840x2160:rate=5", "-t", "1", "-pix_fmt", "yuv420p", str(big))
    info = media.probe(str(big))
    frame = next(media.read_frames(str(big), info, [0.5]))
    assert frame.image.shape == (1080, 1920, 3) and frame.scale == pytest.approx(0.5)


def test_names_that_look_like_options_or_urls_are_just_names(face_clip, media_dir):
    for name in ("-i.mp4", "http:x.mp4", "with space.mp4"):
        target = media_dir / name
        shutil.copy(face_clip, target)
        assert media.probe(str(target)).frame_count == 75


def test_playlists_and_concat_lists_are_refused(media_dir, face_clip, http_hits):
    port, hits = http_hits
    secret = media_dir / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    cases = {
        "remote.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:{port}/seg.ts\n#EXT-X-ENDLIST\n",
        "local.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{face_clip}\n#EXT-X-ENDLIST\n",
        "remote.mp4": f"ffconcat version 1.0\nfile 'http://127.0.0.1:{port}/a.mp4'\n",
        "secret.mp4": f"ffconcat version 1.0\nfile '{secret}'\n",
    }
    for name, text in cases.items():
        path = media_dir / name
        path.write_text(text)
        with pytest.raises(media.MediaError) as err:
            media.probe(str(path))
        assert err.value.status == "unsupported", name
        assert "TOP-SECRET" not in err.value.message
    assert hits == []


def test_truncated_and_non_video_files_get_clear_statuses(media_dir, face_clip, astronaut_png):
    truncated = media_dir / "truncated.mp4"
    truncated.write_bytes(face_clip.read_bytes()[: face_clip.stat().st_size // 3])
    audio = media_dir / "audio.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio))
    text = media_dir / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    image = media_dir / "photo.mp4"
    image.write_bytes(astronaut_png.read_bytes())
    expected = {truncated: ("decode_error", "truncated"), audio: ("unsupported", "no video stream"),
                text: ("unsupported", "not a video"), image: ("unsupported", "refused")}
    for path, (status, words) in expected.items():
        with pytest.raises(media.MediaError) as err:
            media.probe(str(path))
        assert err.value.status == status, path.name
        assert words in err.value.message, err.value.message


def test_an_ffmpeg_that_crashes_is_named_as_the_cause(face_clip, tmp_path, monkeypatch):
    # A static ffmpeg 6.0 build segfaults on every MPEG-TS file; stand-in tools that die the same way.
    for tool in ("ffprobe", "ffmpeg"):
        crasher = tmp_path / tool
        crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
        crasher.chmod(0o755)
    info = media.probe(str(face_clip))
    monkeypatch.setattr(media, "FFPROBE", str(tmp_path / "ffprobe"))
    monkeypatch.setattr(media, "FFMPEG", str(tmp_path / "ffmpeg"))
    with pytest.raises(media.MediaError) as err:
        media.probe(str(face_clip))
    assert err.value.status == "decode_error" and "ffprobe crashed (SIGSEGV)" in err.value.message
    with pytest.raises(media.MediaError) as err:
        list(media.read_frames(str(face_clip), info, [0.0]))
    assert "ffmpeg crashed (SIGSEGV)" in err.value.message
