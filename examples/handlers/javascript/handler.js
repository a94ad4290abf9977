// error_budget: a heartbeat-host handler in JavaScript.
//
// Tracks an availability objective's error budget over a rolling window.
// The check's `meta` gives the objective and the incidents seen so far;
// every run works out how much of the window's budget the incidents inside
// the window have burned, and emits `agent.<agent>.error_budget` with the
// figures:
//
//   "meta": {
//     "objective": 99.9,            // percent of time up
//     "windowDays": 30,             // rolling window ending at the tick
//     "warnAtPercent": 75,          // "warning" once this much is burned
//     "incidents": [{"start": "2026-11-20T10:00:00Z", "minutes": 12}]
//   }
//
// Outcome: `success` while budget remains (state "ok" or "warning"),
// `failed` once it is exhausted; a `meta` it cannot read is an error (a
// failed run whose reason names the field).

import { emit, log } from 'heartbeat:handler/host@0.1.1';

const MINUTE_MS = 60 * 1000;
const DAY_MS = 24 * 60 * MINUTE_MS;

/** Reads and checks the check's meta; throws a message naming the field. */
function readMeta(text) {
  let meta;
  try {
    meta = JSON.parse(text);
  } catch (e) {
    throw `meta is not JSON: ${e.message}`;
  }
  const objective = meta.objective;
  if (typeof objective !== 'number' || !(objective > 0 && objective < 100)) {
    throw `meta.objective must be a percentage between 0 and 100, not ${JSON.stringify(objective)}`;
  }
  const windowDays = meta.windowDays ?? 30;
  if (!Number.isInteger(windowDays) || windowDays <= 0) {
    throw `meta.windowDays must be a positive integer, not ${JSON.stringify(windowDays)}`;
  }
  const warnAtPercent = meta.warnAtPercent ?? 75;
  if (typeof warnAtPercent !== 'number' || warnAtPercent < 0) {
    throw `meta.warnAtPercent must be a non-negative number, not ${JSON.stringify(warnAtPercent)}`;
  }
  const incidents = (meta.incidents ?? []).map((incident, i) => {
    const start = Date.parse(incident?.start);
    if (Number.isNaN(start)) {
      throw `meta.incidents[${i}].start must be an ISO 8601 time, not ${JSON.stringify(incident?.start)}`;
    }
    if (typeof incident.minutes !== 'number' || incident.minutes < 0) {
      throw `meta.incidents[${i}].minutes must be a non-negative number`;
    }
    return { start, minutes: incident.minutes };
  });
  return { objective, windowDays, warnAtPercent, incidents };
}

const round = (x) => Math.round(x * 100) / 100;

/** One run of the check: returns the outcome or throws a reason. */
function checkOnce(tick, check) {
  const { objective, windowDays, warnAtPercent, incidents } = readMeta(check.meta);
  const now = Number(tick.timeMs);
  const windowStart = now - windowDays * DAY_MS;

  const budgetMinutes = (windowDays * DAY_MS / MINUTE_MS) * (100 - objective) / 100;
  let consumedMinutes = 0;
  let counted = 0;
  for (const incident of incidents) {
    // Only the part of an incident inside the window counts.
    const end = incident.start + incident.minutes * MINUTE_MS;
    const overlap = Math.min(end, now) - Math.max(incident.start, windowStart);
    if (overlap > 0) {
      consumedMinutes += overlap / MINUTE_MS;
      counted += 1;
    }
  }
  const burnedPercent = (consumedMinutes / budgetMinutes) * 100;
  const state =
    burnedPercent >= 100 ? 'exhausted' : burnedPercent >= warnAtPercent ? 'warning' : 'ok';

  const figures = {
    state,
    objective,
    windowDays,
    budgetMinutes: round(budgetMinutes),
    consumedMinutes: round(consumedMinutes),
    remainingMinutes: round(Math.max(0, budgetMinutes - consumedMinutes)),
    burnedPercent: round(burnedPercent),
    incidents: counted,
  };
  if (state !== 'ok') {
    log('warn', `error budget ${state}: ${figures.burnedPercent}% burned`, [
      { key: 'check', value: check.name },
    ]);
  }
  // Throws the host's reason when the check may not emit this type.
  emit(`agent.${tick.agent}.error_budget`, JSON.stringify(figures));

  if (state === 'exhausted') {
    return {
      status: 'failed',
      details: JSON.stringify({ ...figures, error: `error budget exhausted: ${figures.burnedPercent}% burned` }),
    };
  }
  return { status: 'success', details: JSON.stringify(figures) };
}

/**
 * The `run` export. Returning an object is `ok(outcome)`; throwing a string
 * is `err(message)`, which the host records as a failed run. Anything else
 * thrown (an Error from a bug) would trap as "wasm `unreachable`", so it is
 * turned into a string first.
 */
export function run(tick, check) {
  try {
    return checkOnce(tick, check);
  } catch (e) {
    throw typeof e === 'string' ? e : `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
  }
}
