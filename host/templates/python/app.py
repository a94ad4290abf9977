"""@@name@@: a heartbeat-host check handler in Python.

`run` is called once per run of a check that names this handler, in a fresh
sandboxed instance. `check.meta` is the check's `meta` object from
heartbeat.json, as JSON text.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    def run(self, tick: types.Tick, check: types.Check) -> types.Outcome:
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
