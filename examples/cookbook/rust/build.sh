#!/usr/bin/env bash
# Builds one Rust recipe of the cookbook (docs/handlers.md), an example of
# this crate built as a cdylib for wasm32-wasip2 (a component), with the
# workspace's `wasm-handlers` profile, as the built-in handlers are built.
#
#   examples/cookbook/rust/build.sh RECIPE [OUT.wasm]   (RECIPE: file_check, http_get, kv_counter)
#
# CARGO_TARGET_DIR, when set, is where cargo builds (default: the
# workspace's target/handler-examples, apart from the host's own builds).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
command -v cargo >/dev/null 2>&1 || toolchain_missing "cargo (Rust, from rustup)" rust
rustc_has_wasip2 || toolchain_missing "the wasm32-wasip2 Rust target" rust

recipe="${1:?usage: build.sh RECIPE [OUT.wasm]}"
out="${2:-$here/build/$recipe.wasm}"
[ -f "$here/examples/$recipe.rs" ] || { echo "error: no recipe $here/examples/$recipe.rs" >&2; exit 1; }
target_dir="${CARGO_TARGET_DIR:-$repo/target/handler-examples}"
mkdir -p "$(dirname "$out")"
cargo build --quiet --locked --profile wasm-handlers --target wasm32-wasip2 \
    --manifest-path "$repo/Cargo.toml" -p handler-cookbook --example "$recipe" --target-dir "$target_dir"
cp "$target_dir/wasm32-wasip2/wasm-handlers/examples/$recipe.wasm" "$out"
echo "built $out" >&2
