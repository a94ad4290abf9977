// file_check: the most common handler. Reads its settings from meta, reads
// a file in a granted directory, logs with fields, and when something is
// wrong emits an event and returns `failed` (it never traps).
//
//   "meta": {"file": "/data/status.txt", "mustContain": "OK"},
//   "grants": {"dirs": {"/data": {"path": "data", "readOnly": true}}}

import { emit, log } from 'heartbeat:handler/host@0.1.1';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

// There is no `fs` module: a granted directory is a wasi:filesystem
// descriptor, and a failed call throws an error whose `payload` is the
// WASI error code ('no-entry', 'access', ...).
function readFile(path) {
  for (const [dir, guestPath] of getDirectories()) {
    const prefix = guestPath.endsWith('/') ? guestPath : `${guestPath}/`;
    if (!path.startsWith(prefix)) continue;
    const file = dir.openAt({ symlinkFollow: false }, path.slice(prefix.length), {}, { read: true });
    const chunks = [];
    let size = 0;
    for (let end = false; !end; ) {
      const [chunk, atEnd] = file.read(65536n, BigInt(size));
      chunks.push(chunk);
      size += chunk.length;
      end = atEnd || chunk.length === 0;
    }
    const bytes = new Uint8Array(size);
    chunks.reduce((at, chunk) => (bytes.set(chunk, at), at + chunk.length), 0);
    return new TextDecoder().decode(bytes);
  }
  throw { payload: 'not in a granted directory' };
}

export function run(tick, check) {
  const meta = JSON.parse(check.meta);
  if (typeof meta.file !== 'string') throw 'meta.file must be a path in a granted directory';
  let text = '';
  let problem = null;
  try {
    text = readFile(meta.file);
    if (!text.includes(meta.mustContain ?? '')) problem = `${meta.file} does not contain "${meta.mustContain}"`;
  } catch (e) {
    problem = `cannot read ${meta.file}: ${e?.payload ?? e}`;
  }
  log(problem ? 'warn' : 'info', 'file checked', [
    { key: 'file', value: meta.file },
    { key: 'chars', value: String(text.length) },
  ]);
  if (problem) {
    emit(`agent.${tick.agent}.file_check`, JSON.stringify({ file: meta.file, problem }));
    return { status: 'failed', details: JSON.stringify({ file: meta.file, error: problem }) };
  }
  return { status: 'success', details: JSON.stringify({ file: meta.file, chars: text.length }) };
}
