#!/usr/bin/env bash
# Builds the `disk_usage` handler (disk_usage.c) into a component:
#   1. `wit-bindgen c` generates the bindings of the `handler` world,
#   2. clang compiles a wasm32-wasi *reactor* module against wasi-libc,
#   3. `wasm-tools component new --adapt` wraps it into a component, turning
#      wasi-libc's WASI preview1 calls into WASI 0.2 with the reactor adapter.
#
#   examples/handlers/c/build.sh [OUT.wasm]   (default: build/disk_usage.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
clang="$(find_wasi_clang)"
wit_bindgen="$(find_wit_bindgen)"
wasm_tools="$(find_wasm_tools)"
adapter="$(find_wasi_adapter)"

out="${1:-$here/build/disk_usage.wasm}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

"$wit_bindgen" c "$repo/wit" --world handler --out-dir "$work/gen" >/dev/null
sysroot=()
[ -z "${WASI_SYSROOT:-}" ] || sysroot=(--sysroot "$WASI_SYSROOT")
"$clang" --target=wasm32-wasi "${sysroot[@]}" -mexec-model=reactor -O2 -Wall -Wextra \
    -I "$work/gen" -o "$work/core.wasm" \
    "$here/disk_usage.c" "$work/gen/handler.c" "$work/gen/handler_component_type.o"
"$wasm_tools" component new "$work/core.wasm" \
    --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
echo "built $out" >&2
