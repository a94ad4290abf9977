#!/usr/bin/env bash
# Builds one recipe of the cookbook (docs/handlers.md) into a component with
# componentize-py, against the repository's wit/ and the `new --lang python`
# template's heartbeat_http.py:
#
#   examples/cookbook/python/build.sh RECIPE [OUT.wasm]   (RECIPE: file_check, http_get, kv_counter)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
. "$repo/toolchains/find.sh"
componentize_py="$(find_componentize_py)"

recipe="${1:?usage: build.sh RECIPE [OUT.wasm]}"
out="${2:-$here/build/$recipe.wasm}"
[ -f "$here/$recipe.py" ] || { echo "error: no recipe $here/$recipe.py" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/$recipe.py" "$repo/host/templates/python/heartbeat_http.py" "$work/"
wit_version="$(sed -n 's/^package heartbeat:handler@\(.*\);$/\1/p' "$repo/wit/handler.wit")"
http_version="$(sed -n 's/^package wasi:http@\(.*\);$/\1/p' "$repo/wit/deps/http.wit")"
fs_version="$(sed -n 's/^package wasi:filesystem@\(.*\);$/\1/p' "$repo/wit/deps/filesystem.wit")"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
cd "$work"
"$componentize_py" --quiet -d "$repo/wit" -w handler-wasi \
    --import-interface-name "heartbeat:handler/types@$wit_version=types" \
    --import-interface-name "wasi:http/types@$http_version=http_types" \
    --import-interface-name "wasi:filesystem/types@$fs_version=filesystem_types" \
    componentize "$recipe" -o "$out"
echo "built $out" >&2
