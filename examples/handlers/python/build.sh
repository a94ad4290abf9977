#!/usr/bin/env bash
# Builds the `deadlines` handler (app.py) into a component with
# componentize-py, against the repository's wit/.
#
#   examples/handlers/python/build.sh [OUT.wasm]   (default: build/deadlines.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
componentize_py="$(find_componentize_py)"

out="${1:-$here/build/deadlines.wasm}"
mkdir -p "$(dirname "$out")"
cd "$here"
"$componentize_py" --quiet -d "$repo/wit" -w handler componentize app -o "$out"
echo "built $out" >&2
