"""@@name@@: a heartbeat-host check handler in Python.

`run` is called once per run of a check that names this handler, in a fresh
sandboxed instance. `check.meta` is the check's `meta` object from
heartbeat.json, as JSON text.

Import every module at the top: modules are loaded when the component is
built, and there is no file system to import from at run time.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types


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
    # success / skipped move the check's lastRun; failed backs it off.
    return types.Outcome(types.Status.SUCCESS, json.dumps({"metaKeys": len(meta)}))


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
