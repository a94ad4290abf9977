"""file_check: the most common handler. Reads its settings from meta, reads
a file in a granted directory, logs with fields, and when something is
wrong emits an event and returns `failed` (it never traps).

    "meta": {"file": "/data/status.txt", "mustContain": "OK"},
    "grants": {"dirs": {"/data": {"path": "data", "readOnly": true}}}
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    def run(self, tick: types.Tick, check: types.Check) -> types.Outcome:
        meta = json.loads(check.meta)
        path, needle = meta.get("file"), meta.get("mustContain", "")
        if not isinstance(path, str):
            raise Err("meta.file must be a path in a granted directory")  # a failed run, this reason
        try:
            with open(path, "rb") as f:
                data = f.read()
            problem = None if needle.encode() in data else f"{path} does not contain {needle!r}"
        except OSError as e:  # not granted, missing, unreadable: an ordinary error
            data, problem = b"", f"cannot read {path}: {e.strerror}"
        host.log(
            host.Level.WARN if problem else host.Level.INFO,
            "file checked",
            [host.Field("file", path), host.Field("bytes", str(len(data)))],
        )
        if problem:
            host.emit(f"agent.{tick.agent}.file_check", json.dumps({"file": path, "problem": problem}))
            return types.Outcome(types.Status.FAILED, json.dumps({"file": path, "error": problem}))
        return types.Outcome(types.Status.SUCCESS, json.dumps({"file": path, "bytes": len(data)}))
