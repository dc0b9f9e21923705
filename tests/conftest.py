"""Clips the tests render themselves with real ffmpeg, from scikit-image's public-domain astronaut photo."""
from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepscreen.model import ModelProfile, create_model, save_checkpoint

# Where the astronaut's face is in the 512x512 photo (x1, y1, x2, y2), checked by eye.
ASTRONAUT_FACE = (175, 60, 275, 190)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """ONNX exports go to a folder of this run's own, not the user's ~/.cache (subprocesses inherit it)."""
    import os

    os.environ["DEEPSCREEN_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is required (scripts/bootstrap.sh installs it)")
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def astronaut_png(media_dir) -> Path:
    from skimage import data

    path = media_dir / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def animate(photo: Path, out: Path, seconds: int, filters: str, graph: str = "-vf") -> Path:
    """Render a still photo into an H.264 clip at 25 fps through an ffmpeg filter chain."""
    ffmpeg("-loop", "1", "-i", str(photo), "-t", str(seconds), "-r", "25", graph, filters + ",format=yuv420p",
           "-c:v", "libx264", str(out))
    return out


@pytest.fixture(scope="session")
def face_clip(media_dir, astronaut_png) -> Path:
    """3 s, 640x480: the face drifts slowly down and back (camera motion)."""
    return animate(astronaut_png, media_dir / "face.mp4", 3, "scale=640:640,crop=640:480:0:'40+30*sin(t)'")


@pytest.fixture(scope="session")
def two_face_clip(media_dir, astronaut_png) -> Path:
    """Two people side by side: the photo and a mirrored, tinted copy."""
    return animate(astronaut_png, media_dir / "two.mp4", 2,
                   "[0]scale=400:400,split[a][b];[b]hflip,hue=h=20[c];[a][c]hstack", "-filter_complex")


@pytest.fixture(scope="session")
def rotated_clip(media_dir, astronaut_png) -> Path:
    """Stored sideways with a 90-degree display rotation: upright only if rotation is applied."""
    raw = animate(astronaut_png, media_dir / "sideways.mp4", 2, "scale=480:480,pad=640:480:80:0,transpose=1")
    path = media_dir / "rotated.mp4"
    ffmpeg("-i", str(raw), "-c", "copy", "-metadata:s:v", "rotate=90", str(path))
    return path


@pytest.fixture(scope="session")
def no_face_clip(media_dir) -> Path:
    path = media_dir / "noface.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "2", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.fixture(scope="module")
def http_hits():
    """A local HTTP server that records every request: (port, hits). Nothing deepscreen does may reach it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hits
    server.shutdown()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A small random-weight detector: it exercises the machinery, never a verdict."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, create_model("tiny_cnn"), ModelProfile(name="tiny-test", arch="tiny_cnn", input_size=64,
                                                                 margin=0.3))
    return path


@pytest.fixture(scope="session")
def screener(tiny_weights):
    from deepscreen import Screener

    return Screener(weights=tiny_weights, device="cpu", frames=8)


def load_script(name: str):
    """A script under scripts/ as a module, so its functions can be tested like the package's."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def box_inside(box, region, slack: float = 0.25) -> bool:
    """True when a detected box lies on a region, allowing `slack` of the region's size."""
    x1, y1, x2, y2 = region
    sx, sy = (x2 - x1) * slack, (y2 - y1) * slack
    return box[0] >= x1 - sx and box[1] >= y1 - sy and box[2] <= x2 + sx and box[3] <= y2 + sy


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
