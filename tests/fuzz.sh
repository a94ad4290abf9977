#!/usr/bin/env bash
# Coverage-guided fuzzing of heartbeat-core's parsers (host/core/fuzz/, one
# libFuzzer target per parser), on stable Rust: cargo-fuzz's flags for
# `--sanitizer none`, passed by hand, so nothing beyond cargo and a C++
# compiler (for libFuzzer itself) is needed.
#
#   tests/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
#
# SECONDS_PER_TARGET defaults to 10 (what tests/run.sh runs); the long run
# is `nice -n 10 tests/fuzz.sh 600` (CONTRIBUTING.md, Fuzzing). Each target
# first replays the repository's corpus (host/core/fuzz/corpus/TARGET), then
# mutates it for that long; what it finds goes to a scratch corpus under
# host/core/fuzz/target/corpus/TARGET (kept between runs, never committed),
# crashes to host/core/fuzz/target/artifacts/TARGET/, its output to
# host/core/fuzz/target/logs/TARGET.log. Exits non-zero when any target
# crashes (a panic is a crash), runs out of memory or time, or the build
# fails.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(envelope control config state kv_store topic)
seconds="${1:-10}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: tests/fuzz.sh [SECONDS_PER_TARGET [TARGET...]] (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
fi
shift || true
targets=("$@")
if [ "${#targets[@]}" = 0 ]; then
    targets=("${ALL_TARGETS[@]}")
fi
for target in "${targets[@]}"; do
    if [ ! -f "host/core/fuzz/fuzz_targets/$target.rs" ]; then
        echo "tests/fuzz.sh: no target $target (targets: ${ALL_TARGETS[*]})" >&2
        exit 2
    fi
done

fuzz="$PWD/host/core/fuzz"
# The fuzz crate's own target dir: never the workspace's, whose lock a
# parallel build holds, and whose artifacts lack the instrumentation.
export CARGO_TARGET_DIR="$fuzz/target"

# libfuzzer-sys compiles libFuzzer's C++ with the system compiler; clang++
# where there is one, as it compiles libFuzzer faster than g++.
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
    echo "tests/fuzz.sh: installing g++ for libFuzzer" >&2
    timeout 600 apt-get update -q && timeout 600 apt-get install -y -q g++
fi
if [ -z "${CXX:-}" ] && command -v clang++ >/dev/null 2>&1; then
    export CXX=clang++
fi

# What `cargo fuzz build --sanitizer none` passes. An explicit --target keeps
# the flags off build scripts and proc macros, which would not link with
# sancov's hooks.
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0"
build_log="$CARGO_TARGET_DIR/logs/build.log"
mkdir -p "$CARGO_TARGET_DIR/logs"
echo "tests/fuzz.sh: building the fuzz targets (log: ${build_log#"$PWD/"})" >&2
build=(cargo build --release --locked --manifest-path "$fuzz/Cargo.toml" --target "$triple")
for target in "${targets[@]}"; do
    build+=(--bin "$target")
done
if ! timeout 1200 "${build[@]}" >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    if grep -q -- "--locked" "$build_log"; then
        echo "tests/fuzz.sh: host/core/fuzz/Cargo.lock is out of date (a dependency of heartbeat-core changed?):" >&2
        echo "  cargo update --manifest-path host/core/fuzz/Cargo.toml --workspace   # then commit the lock file" >&2
    fi
    echo "tests/fuzz.sh: the build failed" >&2
    exit 1
fi

failed=()
for target in "${targets[@]}"; do
    bin="$CARGO_TARGET_DIR/$triple/release/$target"
    scratch="$CARGO_TARGET_DIR/corpus/$target"
    artifacts="$CARGO_TARGET_DIR/artifacts/$target"
    log="$CARGO_TARGET_DIR/logs/$target.log"
    mkdir -p "$scratch" "$artifacts"
    before="$(find "$scratch" -type f | wc -l)"
    stamp="$CARGO_TARGET_DIR/logs/$target.start"
    touch "$stamp"
    args=(
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$artifacts/"
    )
    if [ -f "$fuzz/dict/$target.dict" ]; then
        args+=(-dict="$fuzz/dict/$target.dict")
    fi
    # New inputs go to the first directory, the scratch corpus; the
    # repository's corpus is read (replayed) only.
    status=0
    timeout --kill-after=10 "$((seconds + 120))" \
        "$bin" "${args[@]}" "$scratch" "$fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    last="$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
    after="$(find "$scratch" -type f | wc -l)"
    printf 'fuzz %-9s %s s: %s runs (%s/s), cov %s, ft %s, corpus %s (+%s files in %s)\n' \
        "$target" "$seconds" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "$((after - before))" "${scratch#"$PWD/"}"
    if [ "$status" != 0 ]; then
        failed+=("$target")
        echo "tests/fuzz.sh: $target exited $status$([ "$status" = 124 ] && echo ' (wall time exceeded)'); the end of ${log#"$PWD/"}:" >&2
        tail -n 60 "$log" >&2
        find "$artifacts" -type f -newer "$stamp" \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) |
            while read -r found; do
                echo "tests/fuzz.sh: input: ${found#"$PWD/"}; replay: ${bin#"$PWD/"} ${found#"$PWD/"}" >&2
            done
    fi
done

if [ "${#failed[@]}" != 0 ]; then
    echo "tests/fuzz.sh: failed: ${failed[*]}" >&2
    exit 1
fi
