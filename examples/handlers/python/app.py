"""deadlines: a heartbeat-host handler in Python.

Warns ahead of the dates an agent must not miss. The check's `meta` lists
them; every run compares them with the tick's date (UTC) and, when one is
due within `warnDays` or already past, emits one event
`agent.<agent>.deadlines.due` listing them:

    "meta": {
      "deadlines": {"tax filing": "2027-04-15", "passport renewal": "2026-12-01"},
      "warnDays": 30
    }

Outcome: `success` with a summary in the details; `skipped` when `meta`
lists no deadlines; a `meta` it cannot read is an error (a failed run whose
reason names the field).

Every module is imported at the top: componentize-py loads modules when it
builds the component, and there is no file system to import from at run
time.
"""

import json
from datetime import date, datetime, timezone

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

DEFAULT_WARN_DAYS = 14


def read_meta(text: str) -> tuple[dict[str, date], int]:
    """The deadlines and the warning horizon from the check's meta JSON."""
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise Err(f"meta is not JSON: {e}")
    if not isinstance(meta, dict):
        raise Err("meta must be a JSON object")
    warn_days = meta.get("warnDays", DEFAULT_WARN_DAYS)
    if not isinstance(warn_days, int) or isinstance(warn_days, bool) or warn_days < 0:
        raise Err(f"meta.warnDays must be a non-negative integer, not {warn_days!r}")
    raw = meta.get("deadlines", {})
    if not isinstance(raw, dict):
        raise Err("meta.deadlines must be an object of name -> YYYY-MM-DD")
    deadlines = {}
    for name, when in raw.items():
        try:
            deadlines[name] = date.fromisoformat(when)
        except (TypeError, ValueError):
            raise Err(f"meta.deadlines.{name}: {when!r} is not a date (YYYY-MM-DD)")
    return deadlines, warn_days


def check_once(tick: types.Tick, check: types.Check) -> types.Outcome:
    deadlines, warn_days = read_meta(check.meta)
    if not deadlines:
        return types.Outcome(
            types.Status.SKIPPED, json.dumps({"reason": "no deadlines in meta"})
        )

    today = datetime.fromtimestamp(tick.time_ms / 1000, tz=timezone.utc).date()
    due_soon, overdue = [], []
    for name, when in sorted(deadlines.items(), key=lambda item: item[1]):
        days_left = (when - today).days
        entry = {"name": name, "due": when.isoformat(), "daysLeft": days_left}
        if days_left < 0:
            overdue.append(entry)
        elif days_left <= warn_days:
            due_soon.append(entry)
        else:
            continue
        host.log(
            host.Level.WARN,
            f"{name} is {'overdue' if days_left < 0 else 'due'} ({when.isoformat()})",
            [host.Field("daysLeft", str(days_left))],
        )

    if due_soon or overdue:
        payload = {
            "today": today.isoformat(),
            "dueSoon": due_soon,
            "overdue": overdue,
        }
        # Fails (raises Err) when the check may not emit under this type.
        host.emit(f"agent.{tick.agent}.deadlines.due", json.dumps(payload))

    upcoming = [d for d in deadlines.values() if d >= today]
    details = {
        "checked": len(deadlines),
        "dueSoon": len(due_soon),
        "overdue": len(overdue),
        "next": min(upcoming).isoformat() if upcoming else None,
    }
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
