// @@name@@: a heartbeat-host check handler in JavaScript.
//
// `run` is called once per run of a check that names this handler, in a
// fresh sandboxed instance. `check.meta` is the check's `meta` object from
// heartbeat.json, as JSON text; u64 fields (tick.timeMs, check.cadenceMs,
// check.lastRunMs) arrive as BigInt. With `meta.url` set, the handler
// fetch()es it (the check must grant the origin: `grants.http`, or
// `invoke --grant-http ORIGIN`).
//
// `run` may be async: componentize-js runs the event loop until the
// promise settles, so `await fetch(...)` works in a synchronous export.

import { emit, log } from 'heartbeat:handler/host@@@wit_version@@';

// How much of a response body goes into the details.
const EXCERPT_CHARS = 200;

async function checkOnce(tick, check) {
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

  const details = { metaKeys: Object.keys(meta).length };
  if (typeof meta.url === 'string') {
    // A refused origin, a connection error or a timeout rejects with a
    // TypeError; the host adds the refused origin to the run's reason.
    // fetch() here returns a redirect as it is, without following it.
    const response = await fetch(meta.url);
    const text = await response.text();
    details.status = response.status;
    details.excerpt = text.slice(0, EXCERPT_CHARS);
    if (response.status >= 400) {
      // A failed outcome's `details.error` is the run's reason.
      details.error = `GET ${meta.url}: HTTP ${response.status}`;
      return { status: 'failed', details: JSON.stringify(details) };
    }
  }
  // success / skipped move the check's lastRun; failed backs it off.
  return { status: 'success', details: JSON.stringify(details) };
}

export async function run(tick, check) {
  try {
    return await checkOnce(tick, check);
  } catch (e) {
    // Only a thrown string becomes the failure's reason; anything else
    // (an Error from a bug) would trap as "wasm `unreachable`".
    throw typeof e === 'string' ? e : `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
  }
}
