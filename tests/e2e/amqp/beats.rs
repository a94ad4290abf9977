//! Liveness on the bus: the host's own beats, beatit's beats driving the sub-process table, a silent tick source handing over to the timer.

use super::*;

/// The host's own beats (beatit convention) on `heartbeat.<process>`: `start/<warmup>`
/// once connected, `beat/<period>` while healthy, `degraded/<period>` while the config
/// on disk is invalid, and `stop` on SIGTERM, with exactly those raw bodies.
#[test]
fn the_host_beats_start_beat_degraded_and_stop_on_the_bus() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("beats", |_| "heartbeat.#".to_string());

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &agent,
        json!({"later": {"cadenceMs": 3_600_000, "handler": "default", "lastRun": now_ms()}}),
    );
    let mut host = start_connected(
        &config,
        &exchange,
        &["--beat-period", "1s", "--beat-warmup", "2s"],
    );
    // start + two beats.
    client.wait_count(&observer, 3, Duration::from_secs(20));
    // An invalid config on disk: degraded from the next beat.
    std::fs::write(
        &config,
        r#"{"$schema": "heartbeat.v1", "checks": {"a": {"cadenceMs": "soon"}}}"#,
    )
    .expect("write config");
    host.wait_for_event("config_refused", &[], WAIT);
    let before = client.count(&observer);
    client.wait_count(&observer, before + 2, Duration::from_secs(20));
    let status = host.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let messages = client.drain(&observer);
    let key = format!("heartbeat.heartbeat-host.{agent}");
    let bodies: Vec<String> = messages
        .iter()
        .map(|(routing_key, properties, body)| {
            assert_eq!(routing_key, &key);
            assert!(header(properties, heartbeat_host::bus::OWN_HEADER).is_some());
            match body {
                Value::String(s) => s.clone(),
                other => panic!("not a raw beat body: {other}"),
            }
        })
        .collect();
    assert_eq!(
        bodies.first().map(String::as_str),
        Some("start/2"),
        "{bodies:?}"
    );
    assert_eq!(
        bodies.last().map(String::as_str),
        Some("stop"),
        "{bodies:?}"
    );
    let middle = &bodies[1..bodies.len() - 1];
    let first_degraded = middle
        .iter()
        .position(|b| b == "degraded/1")
        .unwrap_or_else(|| panic!("no degraded/1: {bodies:?}"));
    assert!(first_degraded >= 2, "{bodies:?}");
    assert!(
        middle[..first_degraded].iter().all(|b| b == "beat/1"),
        "{bodies:?}"
    );
    assert!(
        middle[first_degraded..].iter().all(|b| b == "degraded/1"),
        "{bodies:?}"
    );
}

/// Drives `tests/scripts/beatit_publisher.py` (the real `beatit` package over pika).
struct BeatitProcess {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl BeatitProcess {
    fn start(exchange: &str, process: &str) -> BeatitProcess {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scripts/beatit_publisher.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([URL, exchange, process])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 (tests/run.sh installs beatit and pika)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        BeatitProcess {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command and waits for its confirm (`ok`).
    fn send(&mut self, command: &str) {
        use std::io::{BufRead as _, Write as _};
        writeln!(self.stdin, "{command}").expect("write to the beatit driver");
        self.stdin.flush().expect("flush");
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .expect("read the beatit driver");
        assert_eq!(answer.trim(), "ok", "beatit driver: {command}: {answer:?}");
    }
}

impl Drop for BeatitProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Beats published by the real beatit package take a sub-process through
/// starting → alive → degraded → late → dead and → stopped, as the
/// `sub_health` built-in sees it through the host's table; a malformed body
/// is acknowledged (not dead-lettered) and the host's own beats are not tracked.
#[test]
fn beatit_beats_drive_the_sub_process_table_seen_by_sub_health() {
    let _broker = shared_broker();
    let (agent, exchange, client, observer, _cleanup) =
        observed_agent("subs", |agent| format!("agent.{agent}.sub_health"));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    // The watched-by-pattern process lives outside heartbeat.<agent>.#.
    let other = format!("{agent}-other");
    std::fs::write(
        &config,
        json!({"$schema": "heartbeat.v1", "agent": agent,
               "checks": {"subs": {"cadenceMs": 0, "handler": "sub_health"}},
               "watch": [format!("heartbeat.{other}")]})
        .to_string(),
    )
    .expect("write config");
    let live = dir.path().join("host.liveness.json");
    let mut host = start_connected(
        &config,
        &exchange,
        &[
            "--beat-period",
            "1s",
            "--liveness-file",
            live.to_str().expect("utf-8"),
            "--liveness-period",
            "100ms",
        ],
    );
    let worker = format!("{agent}.worker");
    let mut beats = BeatitProcess::start(&exchange, &worker);
    let mut watched = BeatitProcess::start(&exchange, &other);
    let mut n = 0;
    // One bus tick; the sub_health event's processes, by name.
    let mut tick = || -> BTreeMap<String, String> {
        n += 1;
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("subs-{n}-{agent}")),
        );
        client.wait_count(&observer, 1, WAIT);
        let events = client.drain(&observer);
        assert_eq!(events.len(), 1, "{events:?}");
        let payload = &events[0].2["payload"];
        payload["processes"]
            .as_array()
            .unwrap_or_else(|| panic!("no processes: {payload}"))
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let status = |table: &BTreeMap<String, String>, name: &str| {
        table
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {table:?}"))
    };

    beats.send("start 2");
    watched.send("start 60");
    let table = tick();
    assert_eq!(status(&table, &worker), "starting");
    assert_eq!(status(&table, &other), "starting");
    assert!(
        !table.keys().any(|k| k.starts_with("heartbeat-host.")),
        "the host's own beats are not tracked: {table:?}"
    );
    assert_eq!(table.len(), 2, "{table:?}");

    beats.send("beat 2");
    assert_eq!(status(&tick(), &worker), "alive");
    // Malformed: counted, acknowledged, not dead-lettered, the entry unchanged.
    beats.send("raw pulse/5");
    beats.send("degraded 2");
    let degraded_at = Instant::now();
    assert_eq!(status(&tick(), &worker), "degraded");
    // Next message due within 2 s × 1.5; dead after 3 × 2 s.
    std::thread::sleep(Duration::from_millis(4000).saturating_sub(degraded_at.elapsed()));
    assert_eq!(status(&tick(), &worker), "late");
    std::thread::sleep(Duration::from_millis(7000).saturating_sub(degraded_at.elapsed()));
    assert_eq!(status(&tick(), &worker), "dead");
    beats.send("stop");
    let table = tick();
    assert_eq!(status(&table, &worker), "stopped");
    assert_eq!(status(&table, &other), "starting");

    let dlq = format!("agent.{agent}.dlq");
    assert_eq!(
        client.count(&dlq),
        0,
        "a malformed beat is not dead-lettered"
    );

    // `heartbeat-host status` shows the table from the liveness file.
    let deadline = Instant::now() + WAIT;
    let shown = loop {
        let out = Command::new(support::host_bin())
            .args(["status", live.to_str().expect("utf-8")])
            .output()
            .expect("status");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success()
            && text
                .lines()
                .any(|l| l.starts_with(&worker) && l.contains(" stopped "))
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed {worker} stopped: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        shown.starts_with(&format!("agent {agent} (pid ")),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&other) && l.contains(" starting ") && l.contains("start/60")),
        "{shown}"
    );
    assert!(host.terminate(WAIT).success());
    let lines = host.lines();
    let stopped = records(&lines, "bus_stopped", &[]);
    let stopped = stopped.last().expect("a bus_stopped record");
    assert_eq!(number(stopped, "malformed_beats"), Some(1), "{stopped}");
}

/// The tick-source monitor: connected but no bus tick within 2 × the tick
/// interval → degraded (the beats say so) and the host's own timer takes
/// over; bus ticks coming back silence the timer again, logged both ways.
#[test]
fn a_silent_tick_source_degrades_and_the_timer_takes_over_until_bus_ticks_return() {
    let _broker = shared_broker();
    let (agent, exchange, client, beats, _cleanup) = observed_agent("silent", |agent| {
        format!("heartbeat.heartbeat-host.{agent}")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &agent, json!({"ping": {"cadenceMs": 0}}));
    let mut host = start_connected(
        &config,
        &exchange,
        &["--tick-interval", "500ms", "--beat-period", "1s"],
    );
    let lines = host.wait_for("the timer taking over", WAIT, |l| {
        !records(l, "tick_source_silent", &[]).is_empty()
            && l.iter().filter(|x| run_on(x, "timer-")).count() >= 2
    });
    assert!(
        !records(&lines, "fallback_tick", &[("cause", "tick_source_silent")]).is_empty(),
        "{}",
        render(&lines)
    );
    // The host's beats say degraded.
    wait_for_beat(&client, &beats, "degraded/1", |_| {});

    // Bus ticks again, every 200 ms: the timer falls silent.
    let mut i = 0;
    let mut tick = |client: &Client| {
        i += 1;
        client.publish_json(
            &exchange,
            "system.heartbeat.tick",
            &readme_tick(&format!("back-{i}")),
        );
    };
    tick(&client);
    let lines = host.wait_for_event("bus_ticks_back", &[], WAIT);
    let back_at = lines.len();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        tick(&client);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Healthy again: beats, not degraded.
    client.drain(&beats);
    wait_for_beat(&client, &beats, "beat/1", tick);
    let lines = host.lines();
    let timer_after_back: Vec<&Value> = records(&lines[back_at..], "fallback_tick", &[]);
    assert!(
        timer_after_back.is_empty(),
        "timer ticks while bus ticks flow:\n{}",
        shown(&timer_after_back)
    );
    assert!(host.terminate(WAIT).success());
}
