#!/usr/bin/env bash
# ComfyUI's npm clients against `cozy serve` (clients.test.mjs, crash.test.mjs;
# queue.test.mjs: with `cozy worker`s on nats-server), under node's test
# runner. Installs the clients from the lockfile first when they are missing
# or older than it. COZY_BINARY names the cozy program to test.
set -euo pipefail
cd "$(dirname "$0")"
../../scripts/npm-ci.sh .
# The files to run: those named, else the client and crash tests.
(($#)) || set -- clients.test.mjs crash.test.mjs
# A test that hangs fails, named, after 5 minutes.
exec node --test --test-timeout=300000 "$@"
