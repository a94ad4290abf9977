#!/usr/bin/env bash
# Soak bench: one host running hostile and healthy checks side by side on
# its own timer (ticks every 100 ms) for DURATION seconds, sampling the
# process's RSS, open file descriptors, threads and CPU time from /proc
# every SAMPLE_EVERY seconds, then reading the host's JSON log for how often
# each check ran and whether the healthy checks were ever late.
#
#   host/benches/soak/run.sh                  # 600 s
#   DURATION=60 host/benches/soak/run.sh      # a short trial
#
# Needs the release binary (cargo build --release -p heartbeat-host --locked)
# and the hostile test handler (found under target/, built when absent).
# Environment (all optional):
#   DURATION        seconds to run (600)
#   SAMPLE_EVERY    seconds between /proc samples (10)
#   WARMUP          seconds before the RSS drift baseline (60)
#   TICK_INTERVAL   the host's --tick-interval (100ms)
#   LATE_SLACK_MS   allowed on top of cadence + one tick before a healthy
#                   run counts as late (50)
#   MAX_LOG_MB      stop early when the host log plus the events log pass
#                   this many MiB (8192)
#   OUT_DIR         where everything is kept (a new /tmp/heartbeat-soak.* dir)
#   HEARTBEAT_HOST  the binary (target/release/heartbeat-host)
#   HOSTILE_WASM    the hostile component (found under target/)
#   CONFIG          the config to run (host/benches/soak/heartbeat.json);
#                   checks named healthy_* are the ones held to their cadence
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

DURATION="${DURATION:-600}"
SAMPLE_EVERY="${SAMPLE_EVERY:-10}"
WARMUP="${WARMUP:-60}"
TICK_INTERVAL="${TICK_INTERVAL:-100ms}"
LATE_SLACK_MS="${LATE_SLACK_MS:-50}"
MAX_LOG_MB="${MAX_LOG_MB:-8192}"
BIN="${HEARTBEAT_HOST:-$root/target/release/heartbeat-host}"
CONFIG="${CONFIG:-$here/heartbeat.json}"
OUT_DIR="${OUT_DIR:-$(mktemp -d /tmp/heartbeat-soak.XXXXXX)}"

for n in DURATION SAMPLE_EVERY WARMUP LATE_SLACK_MS MAX_LOG_MB; do
    if ! [[ "${!n}" =~ ^[0-9]+$ ]]; then
        echo "soak: $n must be a whole number, got '${!n}'" >&2
        exit 2
    fi
done
if [ "$DURATION" -eq 0 ] || [ "$SAMPLE_EVERY" -eq 0 ]; then
    echo "soak: DURATION and SAMPLE_EVERY must be positive" >&2
    exit 2
fi
case "$TICK_INTERVAL" in
    *ms) tick_ms="${TICK_INTERVAL%ms}" ;;
    *s) tick_ms="$(( ${TICK_INTERVAL%s} * 1000 ))" ;;
    *) echo "soak: TICK_INTERVAL must end in ms or s, got '$TICK_INTERVAL'" >&2; exit 2 ;;
esac

if [ ! -x "$BIN" ]; then
    echo "soak: no binary at $BIN; build it with: cargo build --release -p heartbeat-host --locked" >&2
    exit 2
fi

# The hostile handler: the newest build under target/ (the tests build it
# with the wasm-handlers profile), else build it now (bounded).
hostile="${HOSTILE_WASM:-}"
if [ -z "$hostile" ]; then
    hostile="$(find "$root/target" -name test_handler_hostile.wasm -type f -not -path '*/deps/*' \
        -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n1 | cut -d' ' -f2- || true)"
fi
if [ -z "$hostile" ] || [ ! -f "$hostile" ]; then
    echo "soak: building the hostile test handler" >&2
    timeout 1800 cargo build --manifest-path "$root/Cargo.toml" --locked \
        -p test-handler-hostile --target wasm32-wasip2 --profile wasm-handlers >&2
    hostile="$root/target/wasm32-wasip2/wasm-handlers/test_handler_hostile.wasm"
    [ -f "$hostile" ] || { echo "soak: the build wrote no $hostile" >&2; exit 2; }
fi

mkdir -p "$OUT_DIR/handlers" "$OUT_DIR/cache"
cp "$hostile" "$OUT_DIR/handlers/hostile.wasm"
cp "$CONFIG" "$OUT_DIR/heartbeat.json"
config="$OUT_DIR/heartbeat.json"
host_log="$OUT_DIR/host.log"
events_log="$OUT_DIR/events.jsonl"
samples="$OUT_DIR/samples.csv"
clk_tck="$(getconf CLK_TCK)"

# The config must be valid before anything is measured.
timeout 60 "$BIN" check --config "$config" --handlers "$OUT_DIR/handlers" >"$OUT_DIR/check.txt" 2>&1 || {
    echo "soak: heartbeat-host check refused the config:" >&2
    cat "$OUT_DIR/check.txt" >&2
    exit 2
}

echo "soak: $DURATION s, ticks every $TICK_INTERVAL, samples every $SAMPLE_EVERY s, output in $OUT_DIR" >&2
echo "soak: machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

host_pid=""
stop_host() {
    # SIGTERM, up to 15 s for a clean stop, then SIGKILL. Sets stop_how.
    stop_how="already exited"
    [ -n "$host_pid" ] || return 0
    if kill -0 "$host_pid" 2>/dev/null; then
        kill -TERM "$host_pid" 2>/dev/null || true
        stop_how="SIGTERM"
        local waited=0
        while kill -0 "$host_pid" 2>/dev/null && [ "$waited" -lt 150 ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$host_pid" 2>/dev/null; then
            kill -KILL "$host_pid" 2>/dev/null || true
            stop_how="SIGKILL after 15 s"
        else
            stop_how="SIGTERM, exited in $((waited * 100)) ms"
        fi
    fi
    host_rc=0
    wait "$host_pid" 2>/dev/null || host_rc=$?
    host_pid=""
}
trap 'stop_host' EXIT
trap 'exit 130' INT TERM

LOG_FORMAT=json LOG_LEVEL=info HEARTBEAT_CACHE_DIR="$OUT_DIR/cache" \
    "$BIN" run --config "$config" --handlers "$OUT_DIR/handlers" \
    --tick-interval "$TICK_INTERVAL" --events-log "$events_log" \
    >"$host_log" 2>&1 </dev/null &
host_pid=$!

# Wait (at most 30 s) for the "started" line, so that sample 0 is a running host.
for _ in $(seq 300); do
    grep -q '"event":"started"' "$host_log" 2>/dev/null && break
    kill -0 "$host_pid" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q '"event":"started"' "$host_log"; then
    echo "soak: the host did not start; its log:" >&2
    tail -n 20 "$host_log" >&2
    exit 1
fi

size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

sample() { # $1 = elapsed seconds; one CSV row, or nothing when the process is gone
    local status stat rss anon file threads fds ut st
    status="$(cat "/proc/$host_pid/status" 2>/dev/null)" || return 1
    stat="$(cat "/proc/$host_pid/stat" 2>/dev/null)" || return 1
    rss="$(awk '/^VmRSS:/ {print $2}' <<<"$status")"
    anon="$(awk '/^RssAnon:/ {print $2}' <<<"$status")"
    file="$(awk '/^RssFile:/ {print $2}' <<<"$status")"
    threads="$(awk '/^Threads:/ {print $2}' <<<"$status")"
    fds="$(find "/proc/$host_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
    # Fields after the command name: utime and stime are the 12th and 13th.
    read -r ut st < <(sed 's/^.*) //' <<<"$stat" | awk '{print $12, $13}')
    printf '%s,%s,%s,%s,%s,%s,%.2f,%s,%s,%s\n' "$1" "$rss" "$anon" "$file" "$fds" "$threads" \
        "$(awk -v u="$ut" -v s="$st" -v hz="$clk_tck" 'BEGIN {print (u + s) / hz}')" \
        "$(size_of "$host_log")" "$(size_of "$events_log")" "$(cut -d' ' -f1 /proc/loadavg)" >>"$samples"
}

echo "elapsed_s,rss_kb,rss_anon_kb,rss_file_kb,fds,threads,cpu_s,host_log_bytes,events_log_bytes,load1" >"$samples"
start="$(date +%s)"
aborted=""
k=0
while :; do
    now="$(date +%s)"
    elapsed=$((now - start))
    if ! sample "$elapsed"; then
        aborted="the host exited after $elapsed s"
        break
    fi
    logs=$(( ($(size_of "$host_log") + $(size_of "$events_log")) / 1048576 ))
    if [ "$logs" -gt "$MAX_LOG_MB" ]; then
        aborted="stopped early after $elapsed s: logs reached $logs MiB (MAX_LOG_MB $MAX_LOG_MB)"
        break
    fi
    [ "$elapsed" -ge "$DURATION" ] && break
    k=$((k + 1))
    next=$((k * SAMPLE_EVERY))
    [ "$next" -gt "$DURATION" ] && next="$DURATION"
    wait_s=$((start + next - $(date +%s)))
    [ "$wait_s" -gt 0 ] && sleep "$wait_s"
done
ran_s=$(( $(date +%s) - start ))
stop_host
trap - EXIT
[ -n "$aborted" ] && echo "soak: $aborted" >&2

python3 - "$OUT_DIR" "$config" "$DURATION" "$ran_s" "$tick_ms" "$LATE_SLACK_MS" "$WARMUP" \
    "$stop_how" "$host_rc" "$aborted" <<'PY' | tee "$OUT_DIR/summary.md"
import csv, json, os, re, sys
from collections import Counter, defaultdict
from datetime import datetime

out, config_path, duration, ran_s, tick_ms, slack_ms, warmup, stop_how, host_rc, aborted = sys.argv[1:]
duration, ran_s, tick_ms, slack_ms, warmup = map(int, (duration, ran_s, tick_ms, slack_ms, warmup))
config = json.load(open(config_path))
checks = config["checks"]
healthy = [n for n in checks if n.startswith("healthy_")]
hostile = [n for n in checks if n not in healthy]

def ts(text):
    # RFC 3339 with up to nanoseconds; Python keeps microseconds.
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", text)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = m.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}").timestamp()

def ms(text):
    return float(text[:-2]) if text.endswith("ms") else float("nan")

runs = defaultdict(Counter)        # check -> status -> n
durations = defaultdict(list)      # check -> [ms]
successes = defaultdict(list)      # check -> [timestamp of run_finished]
selected_at = {}                   # (tick, check) -> timestamp of "selected"
success_selected = defaultdict(list)
errors = defaultdict(Counter)      # check -> error (first 120 chars) -> n
levels = Counter()
other_warn_error = Counter()       # messages at WARN/ERROR other than run_finished
handler_logs = Counter()
events_seen = Counter()
ticks = set()
max_tick = 0
first_ts = last_ts = None
unparsed = 0
lines = 0
with open(os.path.join(out, "host.log"), "rb") as f:
    for raw in f:
        lines += 1
        if b'"handler_log"' in raw:
            # Cheap path for the flood: count, do not parse.
            handler_logs[raw.split(b'"check":"', 1)[-1].split(b'"', 1)[0].decode()] += 1
            continue
        try:
            o = json.loads(raw)
        except ValueError:
            unparsed += 1
            continue
        level = o.get("level", "?")
        levels[level] += 1
        event = o.get("event", "")
        events_seen[event or "(none)"] += 1
        t = ts(o["timestamp"]) if "timestamp" in o else None
        if t is not None:
            first_ts = t if first_ts is None else first_ts
            last_ts = t
        tick = o.get("tick")
        if tick:
            ticks.add(tick)
            m = re.match(r"timer-(\d+)$", tick)
            if m:
                max_tick = max(max_tick, int(m.group(1)))
        if event == "selected":
            selected_at[(tick, o.get("check"))] = t
        elif event == "run_finished":
            check = o.get("check")
            status = o.get("status")
            runs[check][status] += 1
            durations[check].append(ms(o.get("duration", "nanms")))
            if status in ("success", "skipped"):
                successes[check].append(t)
                sel = selected_at.pop((tick, check), None)
                if sel is not None:
                    success_selected[check].append(sel)
            else:
                e = o.get("error") or ""
                errors[check][e if len(e) <= 120 else e[:50] + "…" + e[-60:]] += 1
                selected_at.pop((tick, check), None)
        elif level in ("WARN", "ERROR") or level.upper().startswith(("WARN", "ERR")):
            other_warn_error[f"{level} {event or '-'}: {str(o.get('message', ''))[:160]}"] += 1

def mb(kb):
    return f"{kb / 1024:.1f}"

def gaps(times):
    times = sorted(times)
    return [(b - a) * 1000 for a, b in zip(times, times[1:])]

rows = list(csv.DictReader(open(os.path.join(out, "samples.csv"))))
for r in rows:
    for k in r:
        r[k] = float(r[k])
p = print
p(f"# Soak: {ran_s} s of {duration} s asked, ticks every {tick_ms} ms, {len(rows)} samples")
p()
if aborted:
    p(f"**Run ended early: {aborted}**")
    p()
p(f"Host stop: {stop_how}; exit status {host_rc}.")
p()
p("## Process (from /proc every sample)")
p()
p("| what | first | min | max | last | after warm-up → last |")
p("| --- | --- | --- | --- | --- | --- |")
warm = next((r for r in rows if r["elapsed_s"] >= warmup), rows[-1])
for key, name, fmt in (("rss_kb", "RSS (MiB)", mb), ("rss_anon_kb", "RSS anonymous (MiB)", mb),
                       ("rss_file_kb", "RSS file-backed (MiB)", mb),
                       ("fds", "open fds", lambda v: f"{v:.0f}"), ("threads", "threads", lambda v: f"{v:.0f}")):
    vals = [r[key] for r in rows]
    drift = vals[-1] - warm[key]
    p(f"| {name} | {fmt(vals[0])} | {fmt(min(vals))} | {fmt(max(vals))} | {fmt(vals[-1])} | "
      f"{fmt(warm[key])} → {fmt(vals[-1])} ({'+' if drift >= 0 else '−'}{fmt(abs(drift))}) |")
p()
post = [r for r in rows if r["elapsed_s"] >= warm["elapsed_s"]]
if len(post) >= 3:
    n = len(post)
    xs = [r["elapsed_s"] for r in post]
    ys = [r["rss_kb"] for r in post]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    p(f"RSS trend after {warm['elapsed_s']:.0f} s (least squares over {n} samples): "
      f"{slope * 60:+.1f} KiB/min.")
# The floor: the lowest RSS in each 100 s window (a sample that lands while
# hostile runs hold their memory reads several MiB above it).
floors = []
for lo in range(0, int(rows[-1]["elapsed_s"]) + 1, 100):
    w = [r["rss_kb"] for r in rows if lo <= r["elapsed_s"] < lo + 100]
    if w:
        floors.append(f"{lo}–{lo + 100} s {mb(min(w))}")
p(f"RSS floor (MiB, lowest sample per 100 s window): {', '.join(floors)}.")
cpu = rows[-1]["cpu_s"] - rows[0]["cpu_s"]
span = rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]
if span > 0:
    p(f"CPU: {cpu:.1f} s over {span:.0f} s ({100 * cpu / span:.0f} % of one core); "
      f"load average (1 min) {min(r['load1'] for r in rows):.2f}–{max(r['load1'] for r in rows):.2f}.")
p()
p("## Healthy checks")
p()
p("| check | cadence | runs | failed | max gap between successes (run_finished) | "
  "max gap (selected) | threshold | late | max run |")
p("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
late_total = 0
notes = []
for name in healthy:
    cadence = checks[name].get("cadenceMs", 900000)
    threshold = cadence + tick_ms + slack_ms
    g = gaps(successes[name])
    gs = gaps(success_selected[name])
    late = sum(1 for x in g if x > threshold)
    late_total += late
    total = sum(runs[name].values())
    failed = total - runs[name]["success"] - runs[name]["skipped"]
    d = [x for x in durations[name] if x == x]
    p(f"| {name} | {cadence} ms | {total} | {failed} | {max(g):.1f} ms (late by {max(g) - cadence:.1f} ms) |"
      f" {max(gs) if gs else float('nan'):.1f} ms | {threshold} ms | {late} | {max(d) if d else float('nan'):.3f} ms |"
      if g else f"| {name} | {cadence} ms | {total} | {failed} | – | – | {threshold} ms | – | – |")
    if g:
        first = min(successes[name]) - first_ts if first_ts else float("nan")
        sg = sorted(g)
        notes.append(f"- {name}: first success {first:.2f} s after the host's first log line; gaps between "
                     f"successes median {sg[len(sg) // 2]:.1f} ms, p99 {sg[min(len(sg) - 1, len(sg) * 99 // 100)]:.1f} ms, "
                     f"max {sg[-1]:.1f} ms; gaps over {threshold} ms: {late}")
p()
for line in notes:
    p(line)
p()
p("## Hostile checks")
p()
p("| check | mode | runs | by status | median run | max run | reason (most common) |")
p("| --- | --- | --- | --- | --- | --- | --- |")
for name in hostile:
    total = sum(runs[name].values())
    d = sorted(x for x in durations[name] if x == x)
    med = f"{d[len(d) // 2]:.3f} ms" if d else "–"
    mx = f"{d[-1]:.3f} ms" if d else "–"
    by = ", ".join(f"{s} {n}" for s, n in runs[name].most_common())
    reason = errors[name].most_common(1)[0][0].replace("|", "\\|") if errors[name] else "–"
    if len(reason) > 80:
        reason = reason[:30] + "…" + reason[-49:]
    mode = checks[name].get("meta", {}).get("mode", "?")
    p(f"| {name} | {mode} | {total} | {by} | {med} | {mx} | {reason} |")
p()
p("## Logs")
p()
events_path = os.path.join(out, "events.jsonl")
ev_size = os.path.getsize(events_path) if os.path.exists(events_path) else 0
ev_lines = 0
if ev_size:
    with open(events_path, "rb") as f:
        for _ in f:
            ev_lines += 1
host_size = os.path.getsize(os.path.join(out, "host.log"))
expected_ticks = ran_s * 1000 // tick_ms
p(f"- host log: {host_size / 1048576:.1f} MiB, {lines} lines ({sum(handler_logs.values())} handler_log lines"
  f"{', ' + ', '.join(f'{k} {v}' for k, v in handler_logs.items()) if handler_logs else ''}), "
  f"{unparsed} not JSON; by level {dict(levels)}")
p(f"- events log: {ev_size / 1048576:.1f} MiB, {ev_lines} events")
p(f"- ticks: {len(ticks)} seen in the log, last id timer-{max_tick}; "
  f"{expected_ticks} expected from {ran_s} s at {tick_ms} ms")
p(f"- log events: {dict(events_seen.most_common())}")
if other_warn_error:
    p("- WARN/ERROR lines other than run_finished:")
    for msg, n in other_warn_error.most_common(10):
        p(f"  - {n} × {msg}")
else:
    p("- no WARN/ERROR lines other than failed runs' run_finished")
p()
p(f"Healthy checks late: {late_total} gap(s) over cadence + {tick_ms} ms + {slack_ms} ms.")
PY
[ -z "$aborted" ]
