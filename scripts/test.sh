#!/usr/bin/env bash
# Set everything up (venv, package, Xvfb and Mesa) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/core -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh testing
export QT_API=pyqt6
# pytest-xvfb starts a virtual X display for the run (napari needs OpenGL to draw)
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
