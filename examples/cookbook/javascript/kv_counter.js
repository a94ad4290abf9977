// kv_counter: counts its check's runs in the check's key-value store
// (heartbeat:handler/kv), which outlives the run and the host's restarts.
// Over the store's cap (maxKvBytes) kvSet throws: the run fails with the
// host's reason.

import { kvGet, kvKeys, kvSet } from 'heartbeat:handler/kv@0.1.1';

export function run(tick, check) {
  const runs = Number(kvGet('runs') ?? '0') + 1; // undefined when never set
  kvSet('runs', String(runs));
  kvSet('lastTick', tick.id);
  return { status: 'success', details: JSON.stringify({ runs, keys: kvKeys() }) };
}
