"""kv_counter: counts its check's runs in the check's key-value store
(heartbeat:handler/kv), which outlives the run and the host's restarts.
Over the store's cap (maxKvBytes) kv_set raises Err: the run fails with
the host's reason.
"""

import json

import wit_world
from wit_world.imports import kv, types


class WitWorld(wit_world.WitWorld):
    def run(self, tick: types.Tick, check: types.Check) -> types.Outcome:
        runs = int(kv.kv_get("runs") or "0") + 1  # None when never set
        kv.kv_set("runs", str(runs))
        kv.kv_set("lastTick", tick.id)
        return types.Outcome(types.Status.SUCCESS, json.dumps({"runs": runs, "keys": kv.kv_keys()}))
