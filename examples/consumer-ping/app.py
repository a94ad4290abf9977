"""ping: the custom handler of heartbeat-consumer's README, ported.

The consumer's version:

    @register_handler("ping")
    async def handle_ping(tick_payload: dict, check_config: CheckConfig) -> dict:
        return {"status": "success", "message": "pong"}
"""

import json

import wit_world
from wit_world.imports import types


class WitWorld(wit_world.WitWorld):
    def run(self, tick: types.Tick, check: types.Check) -> types.Outcome:
        # The returned dict's "status" becomes the outcome's status; the
        # rest of it becomes the outcome's details (JSON text).
        return types.Outcome(types.Status.SUCCESS, json.dumps({"message": "pong"}))
