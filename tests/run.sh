#!/usr/bin/env bash
# Runs every test of heartbeat-host: what CI runs (.ci/run) and what a new
# user runs. Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "tests/run.sh: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

cargo test --workspace --locked
