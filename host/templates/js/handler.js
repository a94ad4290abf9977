// @@name@@: a heartbeat-host check handler in JavaScript.
//
// `run` is called once per run of a check that names this handler, in a
// fresh sandboxed instance. `check.meta` is the check's `meta` object from
// heartbeat.json, as JSON text; u64 fields (tick.timeMs, check.cadenceMs,
// check.lastRunMs) arrive as BigInt.

import { emit, log } from 'heartbeat:handler/host@@@wit_version@@';

function checkOnce(tick, check) {
  let meta;
  try {
    meta = JSON.parse(check.meta);
  } catch (e) {
    // Throwing a string makes the run `failed` with that reason.
    throw `meta is not JSON: ${e.message}`;
  }

  log('info', `${check.name} runs on tick ${tick.id}`, [
    { key: 'metaKeys', value: Object.keys(meta).sort().join(',') },
  ]);
  // Events go to the agent's bus; a check may emit under `agent.<agent>.`
  // unless it is granted more.
  emit(`agent.${tick.agent}.@@name@@`, JSON.stringify({ check: check.name, tick: tick.id }));

  // success / skipped move the check's lastRun; failed backs it off.
  return { status: 'success', details: JSON.stringify({ metaKeys: Object.keys(meta).length }) };
}

export function run(tick, check) {
  try {
    return checkOnce(tick, check);
  } catch (e) {
    // Only a thrown string becomes the failure's reason; anything else
    // (an Error from a bug) would trap as "wasm `unreachable`".
    throw typeof e === 'string' ? e : `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
  }
}
