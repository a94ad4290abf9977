#!/usr/bin/env bash
# Builds build/@@name@@.wasm: this crate as a cdylib for wasm32-wasip2,
# which is a WebAssembly component already.
#
#   ./build.sh [OUT.wasm]
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-build/@@name@@.wasm}"

command -v cargo >/dev/null 2>&1 ||
    { echo "error: cargo is missing. Install Rust with rustup (https://rustup.rs)." >&2; exit 1; }
sysroot="$(rustc --print sysroot)"
if [ ! -d "$sysroot/lib/rustlib/wasm32-wasip2" ]; then
    echo "error: the wasm32-wasip2 Rust target is missing. Add it with" >&2
    echo "  rustup target add wasm32-wasip2" >&2
    exit 1
fi

cargo build --release --target wasm32-wasip2
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$(dirname "$out")"
cp "$target_dir/wasm32-wasip2/release/@@crate_file@@.wasm" "$out"
echo "built $out" >&2
