#!/usr/bin/env bash
# Set up napari-stackalign in ./.venv on a fresh Debian machine (Python >= 3.11).
#   bash scripts/setup.sh          core + CLI (headless)
#   bash scripts/setup.sh testing  also napari, Qt and the test tools, plus the system
#                                  libraries napari needs to draw headless (Xvfb, Mesa, xcb)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PYTHON="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null || { echo "setup: apt-get not found; install these yourself: $*" >&2; return 0; }
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "setup: Python >= 3.11 is needed (found: $("$PYTHON" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    ver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install "python${ver}-venv" || apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi

if [ "$extras" = "testing" ]; then
  # what napari needs to draw without a screen (see docs/headless.md)
  apt_install xvfb xauth libgl1 libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 \
    libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
    libxcb-xinerama0 libxcb-xinput0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 \
    libdbus-1-3 libfontconfig1 libglib2.0-0 libxkbcommon0 libxrender1 libxi6 libsm6 libice6 libx11-xcb1
  spec=".[testing]"
else
  # libGL for OpenCV-free matplotlib is not needed; the core is headless
  spec="."
fi

stamp=".venv/.stackalign-${extras:-core}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e "$spec"
  touch "$stamp"
fi
echo "setup: ready (.venv, extras: ${extras:-none})"
