"""http_get: GETs meta.url (its origin granted in grants.http), with the
token of grants.env (API_TOKEN) when the check has one, and reports the
status and the start of the body; a refused or failed request is a
`failed` outcome naming the WASI error code.

    "meta": {"url": "http://127.0.0.1:8080/health"},
    "grants": {"http": ["http://127.0.0.1:8080"], "env": ["API_TOKEN"]}
"""

import json
import os

import heartbeat_http
import wit_world
from wit_world.imports import types


class WitWorld(wit_world.WitWorld):
    def run(self, tick: types.Tick, check: types.Check) -> types.Outcome:
        url = json.loads(check.meta)["url"]
        token = os.environ.get("API_TOKEN")  # present only when granted
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            response = heartbeat_http.get(url, headers=headers, timeout_ms=5000)
        except heartbeat_http.HttpError as e:  # e.code: HTTP-request-denied, connection-refused, ...
            return types.Outcome(types.Status.FAILED, json.dumps({"error": str(e), "code": e.code}))
        details = {"status": response.status, "tokenSent": bool(token), "excerpt": response.text()[:200]}
        ok = response.status < 400
        return types.Outcome(types.Status.SUCCESS if ok else types.Status.FAILED, json.dumps(details))
