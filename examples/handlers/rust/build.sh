#!/usr/bin/env bash
# Builds the `backup_age` handler into a component: a cdylib for the
# wasm32-wasip2 target is a component already.
#
#   examples/handlers/rust/build.sh [OUT.wasm]   (default: build/backup_age.wasm)
#
# CARGO_TARGET_DIR, when set, is where cargo builds (default: the
# workspace's target/handler-examples, apart from the host's own builds).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
command -v cargo >/dev/null 2>&1 || toolchain_missing "cargo (Rust, from rustup)" rust
rustc_has_wasip2 || toolchain_missing "the wasm32-wasip2 Rust target" rust

out="${1:-$here/build/backup_age.wasm}"
target_dir="${CARGO_TARGET_DIR:-$repo/target/handler-examples}"
mkdir -p "$(dirname "$out")"
# The workspace's `wasm-handlers` profile, as for the built-in handlers:
# small (opt-level s, LTO, no debug info) and quick to instantiate.
cargo build --quiet --locked --profile wasm-handlers --target wasm32-wasip2 \
    --manifest-path "$repo/Cargo.toml" -p handler-example-backup-age --target-dir "$target_dir"
cp "$target_dir/wasm32-wasip2/wasm-handlers/handler_example_backup_age.wasm" "$out"
echo "built $out" >&2
