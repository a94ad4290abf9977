#!/usr/bin/env bash
# Builds one recipe of the cookbook (docs/handlers.md) into a component with
# componentize-js, against the repository's wit/ (world `handler-wasi`):
#
#   examples/cookbook/javascript/build.sh RECIPE [OUT.wasm]   (RECIPE: file_check, http_get, kv_counter)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
componentize_js="$(find_componentize_js)"

recipe="${1:?usage: build.sh RECIPE [OUT.wasm]}"
out="${2:-$here/build/$recipe.wasm}"
[ -f "$here/$recipe.js" ] || { echo "error: no recipe $here/$recipe.js" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
"$componentize_js" "$here/$recipe.js" --wit "$repo/wit" --world-name handler-wasi \
    -d fetch-event -o "$out"
echo "built $out" >&2
