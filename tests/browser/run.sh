#!/usr/bin/env bash
# ComfyUI's web frontend on `cozy serve`, in Debian's chromium driven by
# playwright-core (ui.test.mjs), under node's test runner. Installs
# playwright-core from the lockfile first when it is missing or older than
# it. COZY_BINARY names the cozy program; COZY_BROWSER_ARTIFACTS the folder of
# screenshots.
set -euo pipefail
cd "$(dirname "$0")"
../../scripts/npm-ci.sh .
exec node --test --test-concurrency=1 ui.test.mjs
