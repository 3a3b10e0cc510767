#!/usr/bin/env bash
# The main job: install what is missing, build, and run the shipped graph.
# Images are written to output/ (the paths are printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target cozy  # the program and its plugins; the test command builds the rest
build/cozy run graphs/sample.json --output-dir output "$@"
