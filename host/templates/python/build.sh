#!/usr/bin/env bash
# Builds build/@@name@@.wasm from app.py with componentize-py @@componentize_py_version@@.
#
#   ./build.sh [OUT.wasm]
#
# componentize-py is looked up in $COMPONENTIZE_PY, then where the
# heartbeat-host repository's toolchains/install.sh puts it
# ($HEARTBEAT_TOOLCHAINS, default ~/.cache/heartbeat-host-toolchains), then
# on PATH.
set -euo pipefail
cd "$(dirname "$0")"
version=@@componentize_py_version@@
toolchains="${HEARTBEAT_TOOLCHAINS:-$HOME/.cache/heartbeat-host-toolchains}"
out="${1:-build/@@name@@.wasm}"

componentize_py="${COMPONENTIZE_PY:-}"
if [ -z "$componentize_py" ]; then
    if [ -x "$toolchains/componentize-py-$version/bin/componentize-py" ]; then
        componentize_py="$toolchains/componentize-py-$version/bin/componentize-py"
    elif command -v componentize-py >/dev/null 2>&1; then
        componentize_py="$(command -v componentize-py)"
    else
        echo "error: componentize-py $version is missing. Install it with" >&2
        echo "  pip install componentize-py==$version" >&2
        echo "or set COMPONENTIZE_PY to its path." >&2
        exit 1
    fi
fi
found="$("$componentize_py" --version 2>/dev/null || true)"
case "$found" in
*"$version"*) ;;
*) echo "warning: built with ${found:-an unknown componentize-py}, not $version" >&2 ;;
esac

# The `handler-wasi` world: `handler` plus the WASI interfaces a check
# reaches under its grants (wasi:http for heartbeat_http.py), from
# wit/deps/. Three interfaces are called `types`; the host's keeps the
# name, the others become http_types and filesystem_types.
wit_version="$(sed -n 's/^package heartbeat:handler@\(.*\);$/\1/p' wit/handler.wit)"
http_version="$(sed -n 's/^package wasi:http@\(.*\);$/\1/p' wit/deps/http.wit)"
fs_version="$(sed -n 's/^package wasi:filesystem@\(.*\);$/\1/p' wit/deps/filesystem.wit)"
mkdir -p "$(dirname "$out")"
"$componentize_py" --quiet -d wit -w handler-wasi \
    --import-interface-name "heartbeat:handler/types@$wit_version=types" \
    --import-interface-name "wasi:http/types@$http_version=http_types" \
    --import-interface-name "wasi:filesystem/types@$fs_version=filesystem_types" \
    componentize app -o "$out"
echo "built $out" >&2
