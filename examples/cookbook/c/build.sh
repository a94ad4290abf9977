#!/usr/bin/env bash
# Builds one recipe of the cookbook (docs/handlers.md) into a component, as
# `heartbeat-host new --lang c` projects build (world `handler-wasi`, with
# the template's heartbeat_http.c):
#   1. `wit-bindgen c` generates gen/handler_wasi.{c,h} from the repository's wit/,
#   2. clang compiles a wasm32-wasi reactor module against wasi-libc,
#   3. `wasm-tools component new --adapt` wraps it with the WASI preview1
#      reactor adapter.
#
#   examples/cookbook/c/build.sh RECIPE [OUT.wasm]   (RECIPE: file_check, http_get, kv_counter)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
clang="$(find_wasi_clang)"
wit_bindgen="$(find_wit_bindgen)"
wasm_tools="$(find_wasm_tools)"
adapter="$(find_wasi_adapter)"

recipe="${1:?usage: build.sh RECIPE [OUT.wasm]}"
out="${2:-$here/build/$recipe.wasm}"
[ -f "$here/$recipe.c" ] || { echo "error: no recipe $here/$recipe.c" >&2; exit 1; }
template="$repo/host/templates/c"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

"$wit_bindgen" c "$repo/wit" --world handler-wasi --out-dir "$work/gen" >/dev/null
sysroot=()
[ -z "${WASI_SYSROOT:-}" ] || sysroot=(--sysroot "$WASI_SYSROOT")
"$clang" --target=wasm32-wasi "${sysroot[@]}" -mexec-model=reactor -O2 -Wall -Wextra \
    -I "$work/gen" -I "$template" -I "$here" -o "$work/core.wasm" \
    "$here/$recipe.c" "$template/heartbeat_http.c" \
    "$work/gen/handler_wasi.c" "$work/gen/handler_wasi_component_type.o"
"$wasm_tools" component new "$work/core.wasm" \
    --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
echo "built $out" >&2
