#!/usr/bin/env bash
# Builds the no-op handler in each language into OUT_DIR, for
# `cargo bench --bench languages` (which runs this when they are missing):
#   noop-rust.wasm    handlers/default (the built-in no-op), wasm-handlers profile
#   noop-python.wasm  noop.py, componentize-py
#   noop-js.wasm      noop.js, componentize-js
#   noop-c.wasm       noop.c, wit-bindgen c + clang + wasm-tools component new
# and writes OUT_DIR/build-times.tsv (language, seconds to build from source).
#
#   host/benches/noop/build.sh OUT_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
out="$(mkdir -p "${1:?usage: build.sh OUT_DIR}" && cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
times="$out/build-times.tsv"
: >"$times"

timed() { # language command...
    local lang="$1" start ms
    shift
    start="$(date +%s%N)"
    "$@"
    ms=$((($(date +%s%N) - start) / 1000000))
    printf '%s\t%d.%03d\n' "$lang" $((ms / 1000)) $((ms % 1000)) >>"$times"
}

build_rust() {
    cargo build --quiet --locked --profile wasm-handlers --target wasm32-wasip2 \
        --manifest-path "$repo/Cargo.toml" -p handler-default \
        --target-dir "$repo/target/handler-examples"
    cp "$repo/target/handler-examples/wasm32-wasip2/wasm-handlers/handler_default.wasm" "$out/noop-rust.wasm"
}

build_python() {
    (cd "$here" && "$(find_componentize_py)" --quiet -d "$repo/wit" -w handler \
        componentize noop -o "$out/noop-python.wasm")
}

build_js() {
    "$(find_componentize_js)" "$here/noop.js" --wit "$repo/wit" --world-name handler \
        -d http fetch-event -o "$out/noop-js.wasm" >/dev/null
}

build_c() {
    local clang
    clang="$(find_wasi_clang)"
    "$(find_wit_bindgen)" c "$repo/wit" --world handler --out-dir "$work/gen" >/dev/null 2>&1
    "$clang" --target=wasm32-wasi -mexec-model=reactor -O2 -I "$work/gen" -o "$work/core.wasm" \
        "$here/noop.c" "$work/gen/handler.c" "$work/gen/handler_component_type.o"
    "$(find_wasm_tools)" component new "$work/core.wasm" \
        --adapt "wasi_snapshot_preview1=$(find_wasi_adapter)" -o "$out/noop-c.wasm"
}

# A clean build from source for each (the Rust one may reuse cargo's cache).
timed rust build_rust
timed python build_python
timed js build_js
timed c build_c
cat "$times" >&2
