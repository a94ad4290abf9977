// The no-op handler in JavaScript: the per-run cost of the language runtime itself.
export function run(_tick, _check) {
  return { status: 'success', details: '{}' };
}
