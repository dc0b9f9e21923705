"""Make a corpus of hostile and odd inputs for `deepscreen scan`, with the status each one should get.

    .venv/bin/python scripts/make_bad_inputs.py /tmp/bad [--http-port 8000] [--secret /tmp/secret.txt]
    deepscreen scan /tmp/bad -o /tmp/bad.jsonl --frames 4

Writes the cases into OUTDIR (some in sub-folders) and OUTDIR/expected.json: {relative path: status}, one
entry per path a folder scan yields (names like videos), the path as `os.fsdecode` spells it (a non-UTF-8 byte
is a lone surrogate, which json escapes as \\udcXX and reads back as the same string). A status is one of
`deepscreen.results.STATUSES`, or "ok_or_no_face" where either is right. Files a folder scan skips (.m3u8,
.txt, .m4a ...) are in the corpus too but not in expected.json: given as explicit paths they must be
`unsupported`; EXPLICIT_UNSUPPORTED lists them.

Playlists and concat lists point at http://127.0.0.1:PORT/... (run a server there that records requests: it
must record none) and at a secret file outside OUTDIR (default: OUTDIR's sibling `<name>-secret.txt`) whose
content, SECRET_TEXT, must never show up in a record.

Content is scikit-image's public-domain astronaut photo (one face) or ffmpeg's testsrc2 (no face). Every file
is small (the whole corpus is about 2 MB) and the script takes a few seconds on 2 cores. Needs ffmpeg with
libx264, libvpx-vp9, libmp3lame; runs as any user (expected statuses follow this process's actual access: run
as root, a chmod 000 file is still readable).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET_TEXT = "SECRET-7f3a9c-do-not-leak"
OK, NO_FACE, EITHER = "ok", "no_face", "ok_or_no_face"
DECODE, UNSUPPORTED, ERROR = "decode_error", "unsupported", "error"

# Skipped by a folder walk (not named like videos); as explicit paths each must be refused.
EXPLICIT_UNSUPPORTED = ["playlist.m3u8", "concat-list.txt", "audio.m4a"]
# Non-UTF-8 file name, as bytes.
NON_UTF8 = b"caf\xe9 non-utf8.mp4"


def ffmpeg(*args: str | os.PathLike) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
                   check=True)


class Corpus:
    def __init__(self, out: Path, port: int, secret: Path):
        self.out, self.port, self.secret = out, port, secret
        self.expected: dict[str, str] = {}
        self.work = Path(tempfile.mkdtemp(prefix="bad-inputs-"))

    def add(self, name: str | bytes, status: str) -> Path | bytes:
        """Register a case; returns where to write it (bytes for a bytes name)."""
        if isinstance(name, bytes):
            self.expected[os.fsdecode(name)] = status
            return os.path.join(os.fsencode(self.out), name)
        self.expected[name] = status
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def tmp(self, name: str) -> Path:
        return self.work / name

    # -- sources ------------------------------------------------------------------------------------------

    def sources(self) -> None:
        from PIL import Image
        from skimage import data

        self.png = self.tmp("astronaut.png")
        Image.fromarray(data.astronaut()).save(self.png)
        self.jpg = self.tmp("astronaut.jpg")
        Image.fromarray(data.astronaut()).resize((128, 128)).save(self.jpg, quality=70)
        # The face clip every "ok" case is cut from: 320x240, 2 s at 10 fps, the face about 60x80 px.
        self.face = self.tmp("face.mp4")
        ffmpeg("-loop", "1", "-framerate", "10", "-i", self.png, "-t", "2", "-vf", FACE_VF,
               "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", self.face)
        # The same with camera motion and a keyframe every 5 frames: cut anywhere, the first part still decodes.
        self.moving = self.tmp("moving.mp4")
        ffmpeg("-loop", "1", "-framerate", "10", "-i", self.png, "-t", "2", "-vf",
               "scale=320:320,crop=320:240:0:'40+30*sin(2*t)'", "-c:v", "libx264", "-preset", "veryfast",
               "-g", "5", "-pix_fmt", "yuv420p", "-movflags", "+faststart", self.moving)
        self.sine = self.tmp("sine.m4a")
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", "-b:a", "32k", self.sine)

    def face_copy(self, dst, tag: str) -> None:
        """The face clip remuxed with its own title: the same pictures, but not the same bytes (deepscreen
        screens identical content once and repeats the record; these cases are about names and paths)."""
        ffmpeg("-i", self.face, "-c", "copy", "-metadata", f"title={tag}", "-f", "mp4", os.fsdecode(dst))

    def face_clip(self, dst, *opts: str, vf: str = "", seconds: float = 2) -> None:
        """The face clip re-rendered with other options (codec, pixel format, container, extra filter)."""
        ffmpeg("-loop", "1", "-framerate", "10", "-i", self.png, "-t", str(seconds),
               "-vf", FACE_VF + ("," + vf if vf else ""), *opts, os.fsdecode(dst))


FACE_VF = "scale=320:320,crop=320:240:0:20"
H264 = ("-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")


def build(c: Corpus) -> None:
    out = c.out
    c.sources()

    # -- plain references ---------------------------------------------------------------------------------
    shutil.copy(c.face, c.add("face.mp4", OK))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "2", *H264, c.add("noface-testsrc.mp4", NO_FACE))

    # -- not videos at all ----------------------------------------------------------------------------------
    c.add("zero-bytes.mp4", UNSUPPORTED).write_bytes(b"")
    c.add("random-bytes.mp4", UNSUPPORTED).write_bytes(random.Random(1234).randbytes(64 * 1024))
    c.add("text.mp4", UNSUPPORTED).write_text("this is not a video\n" * 50)
    shutil.copy(c.png, c.add("png-renamed.mp4", UNSUPPORTED))
    shutil.copy(c.jpg, c.add("jpeg-renamed.mov", UNSUPPORTED))
    # a folder named like a video is walked, not reported: the clip inside gets the record
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "1", *H264, c.add("dir.mp4/inside.mp4", NO_FACE))

    # -- broken or partial MP4 -------------------------------------------------------------------------------
    moov_end = c.tmp("moov-end.mp4")
    c.face_clip(moov_end, *H264, "-preset", "ultrafast")
    data = moov_end.read_bytes()
    face_bytes = c.face.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    c.add("truncated-moov-at-end.mp4", DECODE).write_bytes(data[: len(data) // 2])
    # moov first: the first part decodes; frames after the cut are simply missing.
    moving = c.moving.read_bytes()
    assert moving.find(b"moov") < moving.find(b"mdat")
    c.add("faststart-cut-half.mp4", OK).write_bytes(moving[: len(moving) // 2])
    c.add("mp4-header-only.mp4", DECODE).write_bytes(face_bytes[: face_bytes.find(b"mdat") + 8])

    # -- no video stream / picture-only streams ------------------------------------------------------------
    ffmpeg("-i", c.sine, "-c", "copy", "-f", "mp4", c.add("audio-only.mp4", UNSUPPORTED))
    shutil.copy(c.sine, out / "audio.m4a")  # skipped by a walk
    ffmpeg("-i", c.sine, "-i", c.jpg, "-map", "0", "-map", "1", "-c:a", "libmp3lame", "-b:a", "32k", "-c:v", "copy",
           "-disposition:v", "attached_pic", "-id3v2_version", "3", "-f", "mp3",
           c.add("mp3-cover-art.mp4", UNSUPPORTED))
    ffmpeg("-i", c.sine, "-i", c.jpg, "-map", "0", "-map", "1", "-c", "copy", "-disposition:v", "attached_pic",
           "-f", "mp4", c.add("m4a-cover-art.mp4", UNSUPPORTED))
    # A video with cover art (ffprobe lists the cover as a second, attached-picture video stream).
    ffmpeg("-i", c.face, "-i", c.jpg, "-map", "0", "-map", "1", "-c", "copy", "-disposition:v:1", "attached_pic",
           "-f", "mp4", c.add("video-with-cover-art.mp4", OK))

    # -- sizes -------------------------------------------------------------------------------------------------
    c.face_clip(c.add("single-frame.mp4", OK), *H264, "-frames:v", "1")
    ffmpeg("-f", "lavfi", "-i", "nullsrc=size=1x1:rate=5", "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
           c.add("1x1.mp4", NO_FACE))
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=2x2:r=5", "-t", "1", *H264, c.add("2x2.mp4", NO_FACE))
    # 8K: two frames; ffmpeg scales them to MAX_SIDE before Python sees a byte.
    ffmpeg("-loop", "1", "-framerate", "1", "-i", c.png, "-t", "2",
           "-vf", "scale=4320:4320:flags=neighbor,pad=7680:4320:1680:0", "-c:v", "libx264", "-preset", "ultrafast",
           "-crf", "40", "-pix_fmt", "yuv420p", c.add("8k-7680x4320.mp4", OK))
    ffmpeg("-loop", "1", "-framerate", "10", "-i", c.png, "-t", "1", "-vf", "crop=300:178:75:30,scale=333:197",
           "-c:v", "libx264", "-pix_fmt", "yuv444p", c.add("odd-333x197.mp4", OK))
    ffmpeg("-loop", "1", "-framerate", "10", "-i", c.png, "-t", "1", "-vf", "crop=300:178:75:30,scale=333:197",
           "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k",
           c.add("odd-333x197-vp9.webm", OK))

    # -- rotation: stored turned the other way, so the face is upright only if the rotation is applied --------
    for deg, turn in ((90, "transpose=1"), (180, "hflip,vflip"), (270, "transpose=2")):
        raw = c.tmp(f"raw{deg}.mp4")
        c.face_clip(raw, *H264, vf=turn)
        ffmpeg("-i", raw, "-c", "copy", "-metadata:s:v", f"rotate={deg}", c.add(f"rotate-{deg}.mp4", OK))

    # -- timing -------------------------------------------------------------------------------------------------
    # Variable frame rate: gaps grow from 0.1 s to 0.6 s.
    c.face_clip(c.add("vfr.mp4", OK), *H264, "-vsync", "vfr", vf="setpts='(N*0.1+N*N*0.025)/TB'", seconds=3)
    # Ten minutes of a 16x16 still at 1 fps: long, tiny; sampled by seeking.
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=16x16:r=1", "-t", "600", *H264, c.add("long-10min-16x16.mp4", NO_FACE))
    # Ten minutes at 1 fps with the face: the seek path on a real picture.
    ffmpeg("-i", c.png, "-vf", FACE_VF + ",loop=loop=599:size=1,setpts=N/TB", "-r", "1", *H264, "-g", "120",
           c.add("long-10min-face.mp4", OK))
    # The same, moov first, cut at 60%: the seeks into the missing part find nothing, the others decode.
    long_fs = c.tmp("long-faststart.mp4")
    ffmpeg("-i", out / "long-10min-face.mp4", "-c", "copy", "-movflags", "+faststart", long_fs)
    c.add("long-10min-cut.mp4", OK).write_bytes(long_fs.read_bytes()[: long_fs.stat().st_size * 6 // 10])
    # Two frames ten hours apart: the container says 10 h; there is a frame at each end.
    ffmpeg("-loop", "1", "-framerate", "10", "-i", c.png, "-vf", FACE_VF + ",setpts='N*36000/TB'", "-frames:v", "2",
           "-vsync", "passthrough", *H264, c.add("gap-10h.mp4", OK))
    # Matroska headers that claim an 11.5-day and a 1e290-year duration for a 1 s clip.
    mkv = c.tmp("claim.mkv")
    c.face_clip(mkv, *H264, seconds=1)
    c.add("duration-claim-11days.mkv", OK).write_bytes(_patch_mkv_duration(mkv.read_bytes(), 1e9))
    c.add("duration-claim-1e300ms.mkv", OK).write_bytes(_patch_mkv_duration(mkv.read_bytes(), 1e300))

    # -- codecs and containers ------------------------------------------------------------------------------------
    c.face_clip(c.add("h264-10bit.mp4", OK), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p10le")
    c.face_clip(c.add("h264-yuv444p.mp4", OK), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv444p")
    c.face_clip(c.add("vp9.webm", OK), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k")
    c.face_clip(c.add("vp9.mkv", OK), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k")
    c.face_clip(c.add("mpeg4.avi", OK), "-c:v", "mpeg4", "-q:v", "5")
    c.face_clip(c.add("mjpeg.avi", OK), "-c:v", "mjpeg", "-q:v", "8", "-pix_fmt", "yuvj420p")
    c.face_clip(c.add("mjpeg.mov", OK), "-c:v", "mjpeg", "-q:v", "8", "-pix_fmt", "yuvj420p")
    c.face_clip(c.add("mpeg2.mpg", OK), "-c:v", "mpeg2video", "-q:v", "5")
    c.face_clip(c.add("wmv.wmv", OK), "-c:v", "msmpeg4", "-q:v", "5")
    c.face_clip(c.add("h264.ts", OK), *H264)
    ts = c.tmp("moving.ts")
    ffmpeg("-i", c.moving, "-c", "copy", ts)
    c.add("mpegts-cut.ts", OK).write_bytes(ts.read_bytes()[: ts.stat().st_size // 2 // 188 * 188])
    # A raw H.264 elementary stream (no container, no duration) named .mp4.
    ffmpeg("-i", c.face, "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", c.add("raw-h264-stream.mp4", OK))
    c.face_clip(c.add("anim.gif", OK), "-r", "5", seconds=1, vf="scale=240:180")

    # -- files that name other files or URLs: refused before anything is opened --------------------------------
    url = f"http://127.0.0.1:{c.port}"
    hls = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{}\n#EXT-X-ENDLIST\n"
    concat = "ffconcat version 1.0\nfile '{}'\n"
    c.add("hls-remote.mp4", UNSUPPORTED).write_text(hls.format(f"{url}/hls-remote.ts"))
    c.add("hls-secret.mkv", UNSUPPORTED).write_text(hls.format(c.secret))
    c.add("hls-remote.ts", UNSUPPORTED).write_text(hls.format(f"{url}/hls-ts.ts"))
    c.add("concat-remote.mp4", UNSUPPORTED).write_text(concat.format(f"{url}/concat-remote.mp4"))
    c.add("concat-secret.mkv", UNSUPPORTED).write_text(concat.format(c.secret))
    c.add("concat-relative-secret.mov", UNSUPPORTED).write_text(concat.format(os.path.relpath(c.secret, out)))
    c.add("concat-local-video.mp4", UNSUPPORTED).write_text(concat.format(c.face))
    c.add("sdp.mp4", UNSUPPORTED).write_text(
        f"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video {c.port} RTP/AVP 96\n"
        "a=rtpmap:96 H264/90000\n")
    (out / "playlist.m3u8").write_text(hls.format(f"{url}/playlist.ts"))
    (out / "concat-list.txt").write_text(concat.format(f"{url}/concat-list.mp4"))

    # -- names -------------------------------------------------------------------------------------------------
    for name in ("with  spaces .mp4", "-i.mp4", "--help.mp4", "new\nline.mp4", "http:notaurl.mp4",
                 "ünïcødé 名前.mp4", "%d-pattern.mp4", "it's \"quoted\".mp4", NON_UTF8):
        c.face_copy(c.add(name, OK), os.fsdecode(name).encode("ascii", "backslashreplace").decode())

    # -- file system oddities ----------------------------------------------------------------------------------
    os.symlink("loop-b.mp4", c.add("loop-a.mp4", ERROR))
    os.symlink("loop-a.mp4", c.add("loop-b.mp4", ERROR))
    os.symlink("does-not-exist.mp4", c.add("dangling-link.mp4", ERROR))
    c.face_copy(out / "link-target.bin", "link target")  # not named like a video: only the link is screened
    os.symlink("link-target.bin", c.add("link-to-clip.mp4", OK))
    os.symlink(".", c.add("dir-link.mp4", UNSUPPORTED))  # a symlink to a folder, named like a video
    os.symlink(".", out / "loop-dir")  # a folder loop: not followed by the walk
    os.symlink("/dev/zero", c.add("dev-zero.mp4", UNSUPPORTED))
    os.mkfifo(c.add("fifo.mp4", UNSUPPORTED))
    unreadable = c.add("unreadable.mp4", OK)
    c.face_copy(unreadable, "unreadable")
    os.chmod(unreadable, 0)
    c.expected["unreadable.mp4"] = OK if _readable(unreadable) else ERROR
    c.face_copy(c.add("sub/deeper/nested.mp4", OK), "nested")
    locked = out / "locked-dir"
    locked.mkdir()
    c.face_copy(locked / "inside-locked.mp4", "locked")
    os.chmod(locked, 0)
    if _listable(locked):  # root: the folder is still listed and the clip inside screened
        c.expected["locked-dir/inside-locked.mp4"] = OK


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return True
    except OSError:
        return False


def _listable(path: Path) -> bool:
    try:
        os.listdir(path)
        return True
    except OSError:
        return False


def _patch_mkv_duration(data: bytes, ms: float) -> bytes:
    """Overwrite the Segment Info Duration (EBML id 0x4489) with `ms` (in the default 1 ms timecode scale)."""
    for size_byte, fmt in ((b"\x88", ">d"), (b"\x84", ">f")):
        at = data.find(b"\x44\x89" + size_byte)
        if at >= 0:
            body = struct.pack(fmt, ms)
            return data[: at + 3] + body + data[at + 3 + len(body):]
    raise ValueError("no Duration element in the Matroska header")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path, help="where to write the corpus (created; must not exist or be empty)")
    ap.add_argument("--http-port", type=int, default=9, help="port the remote references point at")
    ap.add_argument("--secret", type=Path, default=None,
                    help="secret file the local references point at [default: OUTDIR's sibling <name>-secret.txt]")
    args = ap.parse_args(argv)
    out = args.outdir.resolve()
    if out.exists() and any(out.iterdir()):
        ap.error(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    secret = (args.secret or out.with_name(out.name + "-secret.txt")).resolve()
    secret.write_text(SECRET_TEXT + "\n")
    start = time.monotonic()
    corpus = Corpus(out, args.http_port, secret)
    try:
        build(corpus)
    finally:
        shutil.rmtree(corpus.work, ignore_errors=True)
    (out / "expected.json").write_text(json.dumps(corpus.expected, indent=1, sort_keys=True) + "\n")
    size = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(out) for f in fs)
    print(f"{len(corpus.expected)} cases, {size / 1e6:.1f} MB in {out} ({time.monotonic() - start:.1f} s); "
          f"secret: {secret}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
