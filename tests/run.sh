#!/usr/bin/env bash
# Runs every test of heartbeat-host: what CI runs (.ci/run) and what a new
# user runs. Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "tests/run.sh: adding the wasm32-wasip2 target" >&2
    rustup target add wasm32-wasip2
fi

# RabbitMQ at 127.0.0.1:5672 (guest/guest) for tests/e2e/amqp.rs: installed
# and started when missing, waited for with a bound.
if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "tests/run.sh: installing RabbitMQ" >&2
    apt-get update -q && apt-get install -y -q rabbitmq-server
fi
if ! timeout 30 rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
    if timeout 30 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        echo "tests/run.sh: starting the stopped RabbitMQ app" >&2
        timeout 120 rabbitmqctl -q start_app
    else
        echo "tests/run.sh: starting RabbitMQ" >&2
        rabbitmq-server -detached
    fi
    for attempt in $(seq 1 30); do
        if timeout 30 rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then
            break
        fi
        if [ "$attempt" = 30 ]; then
            echo "tests/run.sh: RabbitMQ did not start" >&2
            exit 1
        fi
        sleep 2
    done
fi

# The management plugin's HTTP API at 127.0.0.1:15672 (guest/guest) for the
# rabbitmq_queue built-in's tests (tests/e2e/builtin_checks.rs): enabled
# when it is not, then waited for with a bound. The tests drive the API
# with curl too.
if ! command -v curl >/dev/null 2>&1; then
    echo "tests/run.sh: installing curl" >&2
    timeout 600 apt-get update -q && timeout 600 apt-get install -y -q curl
fi
if ! timeout 10 curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
    echo "tests/run.sh: enabling the RabbitMQ management plugin" >&2
    timeout 120 rabbitmq-plugins enable rabbitmq_management
    for attempt in $(seq 1 30); do
        if timeout 10 curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
            break
        fi
        if [ "$attempt" = 30 ]; then
            echo "tests/run.sh: the RabbitMQ management API did not answer at 127.0.0.1:15672" >&2
            exit 1
        fi
        sleep 2
    done
fi

# tests/e2e/amqp.rs drives the real beatit package (PyPI) over pika.
if ! python3 -c 'import beatit, pika' >/dev/null 2>&1; then
    echo "tests/run.sh: installing beatit and pika for tests/e2e/amqp.rs" >&2
    python3 -m pip install -q beatit==2022.3.1 pika==1.4.4
fi
# tests/e2e/liveness.rs checks interop with kstlib's Heartbeat.
if ! python3 -c 'import kstlib.resilience.heartbeat' >/dev/null 2>&1; then
    echo "tests/run.sh: installing kstlib for tests/e2e/liveness.rs" >&2
    python3 -m pip install -q kstlib==3.8.2
fi

# The throughput benchmark's driver (BENCHMARKS.md, RabbitMQ) needs aio-pika.
if ! python3 -c 'import aio_pika' >/dev/null 2>&1; then
    echo "tests/run.sh: installing aio-pika for the benchmarks" >&2
    python3 -m pip install -q aio-pika==10.2.1 || echo "tests/run.sh: aio-pika not installed; only the benchmarks need it" >&2
fi

# tests/e2e/endpoint.rs opens the status page in Debian's headless Chromium.
if [ ! -x /usr/bin/chromium ]; then
    echo "tests/run.sh: installing Debian's chromium for tests/e2e/endpoint.rs" >&2
    apt-get update -q && apt-get install -y -q chromium
fi

# tests/e2e/clock.rs steps the host's wall clock with Debian's libfaketime;
# tests/e2e/sideways.rs lowers its descriptor limit with prlimit (util-linux).
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || ! command -v prlimit >/dev/null 2>&1; then
    echo "tests/run.sh: installing faketime and util-linux for tests/e2e/clock.rs and sideways.rs" >&2
    timeout 600 apt-get update -q && timeout 600 apt-get install -y -q faketime util-linux
fi

# tests/e2e/cli.rs renders the man page with groff, every warning on.
if ! command -v groff >/dev/null 2>&1; then
    echo "tests/run.sh: installing groff for tests/e2e/cli.rs" >&2
    timeout 600 apt-get update -q && timeout 600 apt-get install -y -q groff-base
fi

# Handler toolchains for tests/e2e/languages.rs and tests/e2e/new.rs
# (componentize-py, componentize-js, clang/wasi-libc, wit-bindgen,
# wasm-tools, the WASI adapter; pinned in toolchains/versions.env).
toolchains/install.sh all

cargo test --workspace --locked

# Coverage-guided fuzzing of heartbeat-core's parsers (host/core/fuzz/),
# short: each target replays the repository's corpus and fuzzes for 10 s.
# The long run is documented in CONTRIBUTING.md (Fuzzing).
tests/fuzz.sh 10
