"""@@name@@: a heartbeat-host check handler in Python.

`run` is called once per run of a check that names this handler, in a fresh
sandboxed instance. `check.meta` is the check's `meta` object from
heartbeat.json, as JSON text. With `meta.url` set, the handler GETs it (the
check must grant the origin: `grants.http`, or `invoke --grant-http ORIGIN`).

Import every module at the top: modules are loaded when the component is
built, and there is no file system to import from at run time.
"""

import json

import heartbeat_http
import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

# How much of a response body goes into the details.
EXCERPT_CHARS = 200


def check_once(tick: types.Tick, check: types.Check) -> types.Outcome:
    try:
        meta = json.loads(check.meta)
    except ValueError as e:
        # Raising Err(reason) makes the run `failed` with that reason.
        raise Err(f"meta is not JSON: {e}")

    host.log(
        host.Level.INFO,
        f"{check.name} runs on tick {tick.id}",
        [host.Field("metaKeys", ",".join(sorted(meta)))],
    )
    # Events go to the agent's bus; a check may emit under
    # `agent.<agent>.` unless it is granted more.
    host.emit(
        f"agent.{tick.agent}.@@name@@",
        json.dumps({"check": check.name, "tick": tick.id}),
    )

    details = {"metaKeys": len(meta)}
    url = meta.get("url")
    if url:
        # A refused origin, a connection error or a timeout raises
        # heartbeat_http.HttpError (its `code` is the WASI error code, e.g.
        # HTTP-request-denied), which `run` turns into the run's reason.
        response = heartbeat_http.get(url, timeout_ms=5000)
        details.update(status=response.status, excerpt=response.text()[:EXCERPT_CHARS])
        if response.status >= 400:
            # A failed outcome's `details.error` is the run's reason.
            details["error"] = f"GET {url}: HTTP {response.status}"
            return types.Outcome(types.Status.FAILED, json.dumps(details))
    # success / skipped move the check's lastRun; failed backs it off.
    return types.Outcome(types.Status.SUCCESS, json.dumps(details))


class WitWorld(wit_world.WitWorld):
    def run(self, tick: types.Tick, check: types.Check) -> types.Outcome:
        try:
            return check_once(tick, check)
        except Err:
            raise
        except Exception as e:
            # Any other exception would trap ("wasm `unreachable`", its
            # traceback lost with stderr): report it as the reason instead.
            raise Err(f"{type(e).__name__}: {e}")
