#!/usr/bin/env bash
# Builds the `error_budget` handler (handler.js) into a component with
# componentize-js, against the repository's wit/.
#
#   examples/handlers/javascript/build.sh [OUT.wasm]   (default: build/error_budget.wasm)
#
# It builds the plain `handler` world and `-d http fetch-event` leaves out
# componentize-js's wasi:http support: this handler makes no request, so
# its component imports no wasi:http. (A handler that fetch()es or imports
# WASI interfaces builds `--world-name handler-wasi -d fetch-event`, as
# `heartbeat-host new --lang js` projects and examples/cookbook/javascript do.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
componentize_js="$(find_componentize_js)"

out="${1:-$here/build/error_budget.wasm}"
mkdir -p "$(dirname "$out")"
"$componentize_js" "$here/handler.js" --wit "$repo/wit" --world-name handler \
    -d http fetch-event -o "$out"
echo "built $out" >&2
