#!/usr/bin/env bash
# Set up (or reuse) everything deepscreen needs on a fresh Debian-like machine with Python 3.11:
# ffmpeg/ffprobe from apt when missing, and a virtual environment at .venv with the package installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    echo "bootstrap: installing ffmpeg (Debian package)" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.deepscreen-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/bootstrap.sh -nt "$stamp" ]; then
    echo "bootstrap: installing Python packages into .venv (first time: a few minutes)" >&2
    .venv/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
    .venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
    # facenet-pytorch 2.6.0 declares torch<2.3 and numpy<2 but works with current releases; its import
    # needs requests. --no-deps keeps pip from downgrading torch (so `pip check` complains: expected).
    .venv/bin/pip install -q --disable-pip-version-check requests
    .venv/bin/pip install -q --disable-pip-version-check --no-deps facenet-pytorch==2.6.0
    touch "$stamp"
fi
