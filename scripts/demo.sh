#!/usr/bin/env bash
# Set up (headless, no napari needed) and run the main job on the bundled sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/stackalign demo "$@"
