#!/usr/bin/env bash
# ComfyUI's npm clients against `cozy serve` (clients.test.mjs), under node's
# test runner. Installs the clients from the lockfile first when they are
# missing or older than it. COZY_BINARY names the cozy program to test.
set -euo pipefail
cd "$(dirname "$0")"
../../scripts/npm-ci.sh .
exec node --test clients.test.mjs crash.test.mjs queue.test.mjs
