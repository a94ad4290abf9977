#!/usr/bin/env bash
# Builds build/@@name@@.wasm from handler.c and heartbeat_http.c:
#   1. `wit-bindgen c` @@wit_bindgen_version@@ generates gen/handler_wasi.{c,h} from wit/
#      (the world `handler-wasi`: the host's functions plus the WASI
#      interfaces in wit/deps/, wasi:http among them),
#   2. clang compiles a wasm32-wasi reactor module against wasi-libc,
#   3. `wasm-tools component new` @@wasm_tools_version@@ makes it a component, adapting
#      wasi-libc's WASI preview1 calls to WASI 0.2 with
#      adapter/wasi_snapshot_preview1.reactor.wasm (written by `heartbeat-host new`:
#      the adapter of the wasmtime release the host runs).
#
#   ./build.sh [OUT.wasm]
#
# Tools are looked up in $WIT_BINDGEN / $WASM_TOOLS / $CC_WASI, then where
# the heartbeat-host repository's toolchains/install.sh puts them
# ($HEARTBEAT_TOOLCHAINS, default ~/.cache/heartbeat-host-toolchains), then
# on PATH.
set -euo pipefail
cd "$(dirname "$0")"
toolchains="${HEARTBEAT_TOOLCHAINS:-$HOME/.cache/heartbeat-host-toolchains}"
out="${1:-build/@@name@@.wasm}"

missing() {
    echo "error: $1 is missing. $2" >&2
    exit 1
}
find_tool() { # variable-value pinned-path command
    if [ -n "$1" ]; then
        echo "$1"
    elif [ -x "$2" ]; then
        echo "$2"
    elif command -v "$3" >/dev/null 2>&1; then
        command -v "$3"
    else
        return 1
    fi
}
wit_bindgen="$(find_tool "${WIT_BINDGEN:-}" "$toolchains/wit-bindgen-@@wit_bindgen_version@@/bin/wit-bindgen" wit-bindgen)" ||
    missing "wit-bindgen @@wit_bindgen_version@@" "Install it with: cargo install --locked wit-bindgen-cli@@@wit_bindgen_version@@"
wasm_tools="$(find_tool "${WASM_TOOLS:-}" "$toolchains/wasm-tools-@@wasm_tools_version@@/bin/wasm-tools" wasm-tools)" ||
    missing "wasm-tools @@wasm_tools_version@@" "Install it with: cargo install --locked wasm-tools@@@wasm_tools_version@@"
clang="$(find_tool "${CC_WASI:-}" "" clang)" ||
    missing "clang" "On Debian: apt-get install @@c_debian_packages@@"
command -v wasm-ld >/dev/null 2>&1 ||
    missing "wasm-ld" "On Debian: apt-get install lld"
sysroot=()
if [ -n "${WASI_SYSROOT:-}" ]; then
    sysroot=(--sysroot "$WASI_SYSROOT")
elif [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
    missing "wasi-libc" "On Debian: apt-get install wasi-libc libclang-rt-dev-wasm32; elsewhere set WASI_SYSROOT to a wasi-sdk sysroot"
fi
adapter=adapter/wasi_snapshot_preview1.reactor.wasm
[ -s "$adapter" ] || missing "$adapter" "Run heartbeat-host new again, or set it from the crate wasi-preview1-component-adapter-provider"

mkdir -p gen "$(dirname "$out")"
"$wit_bindgen" c wit --world handler-wasi --out-dir gen >/dev/null
"$clang" --target=wasm32-wasi "${sysroot[@]}" -mexec-model=reactor -O2 -Wall -Wextra \
    -I gen -I . -o build/core.wasm handler.c heartbeat_http.c \
    gen/handler_wasi.c gen/handler_wasi_component_type.o
"$wasm_tools" component new build/core.wasm --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
echo "built $out" >&2
