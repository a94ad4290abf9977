#!/usr/bin/env bash
# Builds build/@@name@@.wasm from handler.js with componentize-js @@componentize_js_version@@.
#
#   ./build.sh [OUT.wasm]
#
# componentize-js is looked up in $COMPONENTIZE_JS, then where the
# heartbeat-host repository's toolchains/install.sh puts it
# ($HEARTBEAT_TOOLCHAINS, default ~/.cache/heartbeat-host-toolchains), then
# in ./node_modules (`npm install`), then on PATH.
#
# The `handler-wasi` world is `handler` plus the WASI interfaces a check
# reaches under its grants (wit/deps/): fetch() goes out through
# wasi:http, and `import ... from 'wasi:filesystem/preopens@0.2.12'` reads
# granted directories. `-d fetch-event` leaves out the incoming-request
# handler, which a check handler does not export.
set -euo pipefail
cd "$(dirname "$0")"
version=@@componentize_js_version@@
toolchains="${HEARTBEAT_TOOLCHAINS:-$HOME/.cache/heartbeat-host-toolchains}"
out="${1:-build/@@name@@.wasm}"

command -v node >/dev/null 2>&1 || {
    echo "error: node (Node.js 18 or newer) is missing; componentize-js runs on it." >&2
    exit 1
}
componentize_js="${COMPONENTIZE_JS:-}"
if [ -z "$componentize_js" ]; then
    for candidate in \
        "$toolchains/componentize-js-$version/node_modules/.bin/componentize-js" \
        node_modules/.bin/componentize-js; do
        if [ -x "$candidate" ]; then
            componentize_js="$candidate"
            break
        fi
    done
fi
if [ -z "$componentize_js" ] && command -v componentize-js >/dev/null 2>&1; then
    componentize_js="$(command -v componentize-js)"
fi
if [ -z "$componentize_js" ]; then
    echo "error: componentize-js $version is missing. Install it here with" >&2
    echo "  npm install" >&2
    echo "(package.json pins @bytecodealliance/componentize-js $version), or set COMPONENTIZE_JS." >&2
    exit 1
fi
found="$("$componentize_js" --version 2>/dev/null || true)"
[ "$found" = "$version" ] ||
    echo "warning: built with componentize-js ${found:-of unknown version}, not $version" >&2

mkdir -p "$(dirname "$out")"
"$componentize_js" handler.js --wit wit --world-name handler-wasi -d fetch-event -o "$out"
echo "built $out" >&2
