#!/usr/bin/env bash
# Set up (or reuse) everything deepscreen needs on a fresh Debian-like machine with Python 3.11:
# ffmpeg/ffprobe from apt when missing, and a virtual environment at .venv with the package installed.
# --test also installs what the test suite needs: Debian's chromium and chromium-driver (the HTML report is
# tested in a real headless browser), pytest, selenium and scikit-image.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0; [ "${1:-}" = "--test" ] && TEST=1

apt_missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || apt_missing+=(ffmpeg)
if [ "$TEST" = 1 ]; then
    command -v chromium >/dev/null || apt_missing+=(chromium)
    command -v chromedriver >/dev/null || apt_missing+=(chromium-driver)
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${apt_missing[*]} (Debian packages)" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extra=""; [ "$TEST" = 1 ] && extra="[test]"
stamp=.venv/.deepscreen-installed$extra
[ "$TEST" = 0 ] && [ -f "$stamp[test]" ] && stamp="$stamp[test]"  # a test install has everything a plain one has
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/bootstrap.sh -nt "$stamp" ]; then
    echo "bootstrap: installing Python packages into .venv (first time: a few minutes)" >&2
    .venv/bin/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
    .venv/bin/pip install -q --disable-pip-version-check -e ".$extra"
    # facenet-pytorch 2.6.0 declares torch<2.3 and numpy<2 but works with current releases:
    # --no-deps keeps pip from downgrading them (so `pip check` complains: expected).
    .venv/bin/pip install -q --disable-pip-version-check --no-deps facenet-pytorch==2.6.0
    touch "$stamp"
fi
