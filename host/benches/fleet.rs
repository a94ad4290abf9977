//! One host for many agents (`run --agents DIR`), against the real RabbitMQ:
//! memory, start-up and one tick fanned out to every agent.
//!
//! For each fleet size `N` (`--agents 1,10,100,1000`), `N` agent files (one
//! no-op check due on every tick, the built-in `default` handler) go in a
//! fresh directory, and `heartbeat-host run --agents DIR` starts on a fresh
//! exchange with `--tick-interval 1h` (no tick but the bench's own):
//!
//! - **start-up**: from the spawn until the host logs `agents_started`
//!   (every agent's files read, its state loaded, its bus started), and
//!   until all `N` agents have logged `connected` (each consumes its
//!   inbox; `rabbitmqctl list_queues` is asked afterwards to confirm);
//!   and after the fan-out, started again on the same files, with every
//!   queue there already (a restart): until all `N` consume again;
//! - **idle RSS**: `VmRSS` of the host 2 s after the last consumer came,
//!   against `N` times the RSS of the 1-agent host of the same run (what `N`
//!   single-agent processes would take);
//! - **fan-out**: `--rounds` times, one persistent `system.heartbeat.tick`
//!   published to the exchange; timed from the publish until all `N`
//!   result events `agent.{name}.check.completed` have reached an observer
//!   queue (the host publishes each persistent and waits for its confirm;
//!   the broker routes it to the observer as it confirms). Median and p99
//!   over rounds, and the host's CPU (utime+stime) per round, over the
//!   round and the 300 ms after it (acknowledgements, state writes);
//!
//! With `--per-connection` the host runs once per value given
//! (`--agents-per-connection`, default 100).
//!
//! - **baseline** (same run, same `N`): a minimal lapin program doing the
//!   broker work of the fan-out: for each agent at once the host's
//!   topology (exchange, DLQ, inbox dead-lettering to it, three bindings),
//!   prefetch, a confirm channel and a consumer, 100 agents to a
//!   connection (its set-up time is the start-up's baseline); each tick
//!   answered by one persistent result event published with a confirm on
//!   `agent.{name}.check.completed` (which comes back through the inbox's
//!   `agent.{name}.#` binding and is acknowledged unread, as the host's
//!   does) and the tick acknowledged after the confirm. The host's fan-out
//!   time as a ratio to it.
//!
//! ```sh
//! cargo bench -p heartbeat-host --bench fleet -- [--agents 1,10,100,1000] [--rounds 10] [--per-connection 100,1000]
//! ```
//!
//! Needs RabbitMQ at `--url` (default amqp://guest:guest@127.0.0.1:5672/)
//! and `rabbitmqctl`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use heartbeat_host::core::envelope;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};

/// The baseline's agents per connection (the host's default).
const BASELINE_PER_CONNECTION: usize = 100;

/// How long any one wait may take before the bench gives up.
const BOUND: Duration = Duration::from_secs(120);

struct Args {
    url: String,
    sizes: Vec<usize>,
    rounds: usize,
    /// `--agents-per-connection` values to run the host with.
    per_connection: Vec<usize>,
    /// `--state-dir` for the host (default: `DIR/state`, on the temp dir's disk).
    state_dir: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/".into(),
        sizes: vec![1, 10, 100, 1000],
        rounds: 10,
        per_connection: vec![100],
        state_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--url" => args.url = it.next().expect("--url URL"),
            "--agents" => {
                args.sizes = it
                    .next()
                    .expect("--agents N,N")
                    .split(',')
                    .map(|n| n.parse().expect("--agents: numbers"))
                    .collect();
            }
            "--rounds" => args.rounds = it.next().expect("--rounds N").parse().expect("number"),
            "--per-connection" => {
                args.per_connection = it
                    .next()
                    .expect("--per-connection N,N")
                    .split(',')
                    .map(|n| n.parse().expect("--per-connection: numbers"))
                    .collect();
            }
            "--state-dir" => args.state_dir = Some(it.next().expect("--state-dir DIR")),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// A line of the host's JSON log, as it comes.
fn event_of(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["fields"]["event"]
        .as_str()
        .or_else(|| value["event"].as_str())
        .map(str::to_string)
}

fn consumers_ready(prefix: &str, n: usize) -> bool {
    let Ok(out) = Command::new("timeout")
        .args([
            "60",
            "rabbitmqctl",
            "-q",
            "list_queues",
            "name",
            "consumers",
        ])
        .output()
    else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix) && l.ends_with("\t1"))
        .count()
        >= n
}

/// A connection of the bench's own, read from the URL as the host reads it.
async fn connect(url: &str) -> Connection {
    let uri = heartbeat_host::bus::parse_url(url).expect("a usable --url");
    heartbeat_host::bus::connect(&uri, "heartbeat-host fleet bench")
        .await
        .expect("connect to RabbitMQ")
}

async fn confirm_channel(connection: &Connection) -> Channel {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    channel
}

/// An exclusive queue bound to `key`, to count what arrives.
async fn observer(channel: &Channel, exchange: &str, key: &str) -> lapin::Consumer {
    let queue = channel
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("observer queue");
    channel
        .queue_bind(
            queue.name().as_str(),
            exchange,
            key,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind observer");
    channel
        .basic_consume(
            queue.name().as_str(),
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("observer consume")
}

/// One persistent tick in the consumer README's envelope, with its confirm.
async fn publish_tick(channel: &Channel, exchange: &str, id: &str) {
    let source = envelope::Source {
        host: "bench".into(),
        kind: "scheduler".into(),
        app: "fleet-bench".into(),
    };
    let body = envelope::tick(id, id, jiff::Timestamp::now(), &source);
    channel
        .basic_publish(
            exchange,
            envelope::TICK_KEY,
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish tick")
        .await
        .expect("tick confirm");
}

/// Waits for `n` messages on `consumer`; how long that took from `since`.
async fn receive(consumer: &mut lapin::Consumer, n: usize, since: Instant) -> Duration {
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(BOUND, consumer.next()).await {
            Ok(Some(Ok(_))) => got += 1,
            other => panic!("{got} of {n} results arrived, then {other:?}"),
        }
    }
    since.elapsed()
}

struct HostFigures {
    agents_started: Duration,
    all_consuming: Duration,
    rss_kib: u64,
    fanout: Vec<Duration>,
    cpu_ms_per_round: f64,
    /// Started again with every queue there already: until all consume.
    restart_consuming: Duration,
    hwm_kib: u64,
}

/// How the bench starts the host.
struct Launch<'a> {
    dir: &'a Path,
    url: &'a str,
    exchange: &'a str,
    per_connection: usize,
    state_dir: Option<&'a str>,
    n: usize,
}

impl Launch<'_> {
    /// Starts `run --agents` and waits until it logged `agents_started`
    /// and all `n` agents logged `connected`: (the host, both times).
    fn start(&self) -> (Child, Duration, Duration) {
        let started = Instant::now();
        let mut host: Child = Command::new(env!("CARGO_BIN_EXE_heartbeat-host"))
            .args(["run", "--agents"])
            .arg(self.dir)
            .args([
                "--amqp-url",
                self.url,
                "--exchange",
                self.exchange,
                "--tick-interval",
                "1h",
            ])
            .args(["--agents-per-connection", &self.per_connection.to_string()])
            .args(
                self.state_dir
                    .map(|d| ["--state-dir", d])
                    .into_iter()
                    .flatten(),
            )
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start heartbeat-host");
        // The log (INFO, as operators run it) is read on a thread of its own.
        let stderr = host.stderr.take().expect("stderr");
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (connected_tx, connected_rx) = std::sync::mpsc::channel();
        let n = self.n;
        std::thread::spawn(move || {
            let mut connected = 0;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match event_of(&line).as_deref() {
                    Some("agents_started") => {
                        let _ = started_tx.send(Instant::now());
                    }
                    // Each agent logs `connected` once its consumer is on its inbox.
                    Some("connected") => {
                        connected += 1;
                        if connected == n {
                            let _ = connected_tx.send(Instant::now());
                        }
                    }
                    _ => {}
                }
            }
        });
        let agents_started = started_rx
            .recv_timeout(BOUND)
            .map(|at| at - started)
            .expect("the host logged agents_started");
        let all_consuming = connected_rx
            .recv_timeout(BOUND)
            .map(|at| at - started)
            .expect("every agent logged connected");
        (host, agents_started, all_consuming)
    }
}

/// Starts the host on `n` fresh agents and measures it.
async fn measure_host(
    url: &str,
    state_dir: Option<&str>,
    n: usize,
    per_connection: usize,
    rounds: usize,
    tag: &str,
) -> HostFigures {
    let dir = tempfile::tempdir().expect("tempdir");
    let exchange = format!("bench-fleet-{tag}-{}", std::process::id());
    let prefix = format!("agent.bf{tag}-");
    for i in 0..n {
        let name = format!("bf{tag}-{i}");
        let config = serde_json::json!({"agent": name, "checks": {"noop": {"cadenceMs": 0, "handler": "default"}}});
        std::fs::write(dir.path().join(format!("{name}.json")), config.to_string())
            .expect("write agent");
    }
    let connection = connect(url).await;
    let channel = confirm_channel(&connection).await;
    heartbeat_host::bus::declare_exchange(&channel, &exchange)
        .await
        .expect("exchange.declare");
    let mut results = observer(&channel, &exchange, "agent.*.check.completed").await;
    let launch = Launch {
        dir: dir.path(),
        url,
        exchange: &exchange,
        per_connection,
        state_dir,
        n,
    };
    let (mut host, agents_started, all_consuming) = launch.start();
    let pid = host.id();
    // The broker's own view agrees (not timed: rabbitmqctl takes ~0.5 s to start).
    let deadline = Instant::now() + BOUND;
    while !consumers_ready(&prefix, n) {
        assert!(
            Instant::now() < deadline,
            "not every agent consumed within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_kib = common::status_kib(pid, "VmRSS:");
    let cpu_before = common::cpu_seconds(pid);
    let mut fanout = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let sent = Instant::now();
        publish_tick(&channel, &exchange, &format!("fanout-{tag}-{round}")).await;
        fanout.push(receive(&mut results, n, sent).await);
        // Let the acknowledgements and state writes settle between rounds.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let cpu = common::cpu_seconds(pid) - cpu_before;
    let hwm_kib = common::status_kib(pid, "VmHWM:");
    common::terminate(&mut host);
    // Started again: the queues exist now, as at any restart.
    let (mut again, _, restart_consuming) = launch.start();
    common::terminate(&mut again);
    // The agents' queues stay by design (durable, for the next start): remove them.
    for i in 0..n {
        for queue in [
            format!("agent.bf{tag}-{i}.inbox"),
            format!("agent.bf{tag}-{i}.dlq"),
        ] {
            let _ = channel
                .queue_delete(&queue, QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = channel
        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
        .await;
    let _ = connection.close(200, "bench done").await;
    HostFigures {
        agents_started,
        all_consuming,
        rss_kib,
        fanout,
        cpu_ms_per_round: cpu * 1e3 / rounds as f64,
        restart_consuming,
        hwm_kib,
    }
}

/// The minimal lapin program doing the fan-out's broker work for `n` agents.
/// The baseline's set-up time (every agent's queues, bindings and
/// consumer) and its fan-out times.
async fn measure_baseline(
    url: &str,
    n: usize,
    rounds: usize,
    tag: &str,
) -> (Duration, Vec<Duration>) {
    let exchange = format!("bench-fleet-base-{tag}-{}", std::process::id());
    let connection = Arc::new(connect(url).await);
    // Agents spread over connections of BASELINE_PER_CONNECTION each, as
    // the host spreads them by default (lapin scans every channel of a
    // connection before each frame it writes).
    let mut lanes: Vec<Arc<Connection>> = Vec::new();
    for _ in 0..n.div_ceil(BASELINE_PER_CONNECTION) {
        lanes.push(Arc::new(connect(url).await));
    }
    let control = confirm_channel(&connection).await;
    heartbeat_host::bus::declare_exchange(&control, &exchange)
        .await
        .expect("exchange.declare");
    let mut results = observer(&control, &exchange, "agent.*.check.completed").await;
    let stop = Arc::new(AtomicBool::new(false));
    // Every agent's setup at once, as the host does them: the host's
    // topology (exchange, DLQ, inbox dead-lettering to it, three bindings),
    // the prefetch, a confirm channel, the consumer.
    let setup_started = Instant::now();
    let setups = (0..n).map(|i| {
        let lane = Arc::clone(&lanes[i / BASELINE_PER_CONNECTION]);
        let exchange = exchange.clone();
        let stop = Arc::clone(&stop);
        let queue = format!("bench-base-{tag}-{i}");
        async move {
            let consume = lane.create_channel().await.expect("channel");
            heartbeat_host::bus::declare_exchange(&consume, &exchange)
        .await
        .expect("exchange.declare");
            let durable = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let dlq = format!("{queue}.dlq");
            consume
                .queue_declare(&dlq, durable, FieldTable::default())
                .await
                .expect("dlq");
            let mut arguments = FieldTable::default();
            arguments.insert("x-dead-letter-exchange".into(), lapin::types::AMQPValue::LongString("".into()));
            arguments.insert("x-dead-letter-routing-key".into(), lapin::types::AMQPValue::LongString(dlq.as_str().into()));
            consume
                .queue_declare(&queue, durable, arguments)
                .await
                .expect("queue");
            for key in [format!("agent.base{i}.#"), "system.heartbeat.#".into(), format!("heartbeat.base{i}.#")] {
                consume
                    .queue_bind(&queue, &exchange, &key, QueueBindOptions::default(), FieldTable::default())
                    .await
                    .expect("bind");
            }
            consume.basic_qos(64, BasicQosOptions::default()).await.expect("qos");
            let publish = confirm_channel(&lane).await;
            let mut consumer = consume
                .basic_consume(&queue, "", BasicConsumeOptions::default(), FieldTable::default())
                .await
                .expect("consume");
            let key = format!("agent.base{i}.check.completed");
            let worker_exchange = exchange.clone();
            let worker = tokio::spawn(async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // Its own result, back through `agent.base{i}.#` as the
                    // host's are: acknowledged unread.
                    if delivery.routing_key.as_str() == key {
                        delivery.ack(BasicAckOptions::default()).await.expect("ack");
                        continue;
                    }
                    let body = serde_json::json!({"event_type": key, "payload": {"check": "noop", "status": "success"}});
                    let confirm = publish
                        .basic_publish(
                            &worker_exchange,
                            &key,
                            BasicPublishOptions::default(),
                            body.to_string().as_bytes(),
                            BasicProperties::default().with_delivery_mode(2),
                        )
                        .await
                        .expect("publish result");
                    confirm.await.expect("result confirm");
                    delivery.ack(BasicAckOptions::default()).await.expect("ack");
                }
            });
            ((queue, dlq, consume), worker)
        }
    });
    let (queues, workers): (Vec<_>, Vec<_>) = futures_util::future::join_all(setups)
        .await
        .into_iter()
        .unzip();
    let setup = setup_started.elapsed();
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let sent = Instant::now();
        publish_tick(&control, &exchange, &format!("base-{tag}-{round}")).await;
        times.push(receive(&mut results, n, sent).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for (queue, dlq, channel) in &queues {
        let _ = channel
            .queue_delete(queue, QueueDeleteOptions::default())
            .await;
        let _ = channel
            .queue_delete(dlq, QueueDeleteOptions::default())
            .await;
    }
    for worker in workers {
        worker.abort();
    }
    let _ = control
        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
        .await;
    let _ = connection.close(200, "bench done").await;
    for lane in lanes {
        let _ = lane.close(200, "bench done").await;
    }
    (setup, times)
}

fn main() {
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    println!(
        "fleet bench: {} rounds of one tick fanned out per size; RabbitMQ {}",
        args.rounds, args.url
    );
    println!(
        "{:>6} {:>8} {:>10} {:>12} {:>10} {:>8} {:>10} {:>8} {:>11} {:>11} {:>10} {:>7} {:>12}",
        "agents",
        "per_conn",
        "started_ms",
        "consuming_ms",
        "restart_ms",
        "rss_MiB",
        "N*rss1_MiB",
        "hwm_MiB",
        "fanout_p50",
        "fanout_p99",
        "base_p50",
        "ratio",
        "cpu_ms/round"
    );
    let mut rss_one: Option<u64> = None;
    for (i, &n) in args.sizes.iter().enumerate() {
        let (setup, base) = rt.block_on(measure_baseline(
            &args.url,
            n,
            args.rounds,
            &format!("{n}x{i}"),
        ));
        let (b50, _) = common::median_p99(base);
        println!(
            "{n:>6} baseline: set-up of every agent {:.0} ms, fan-out median {:.1} ms",
            common::ms(setup),
            common::ms(b50)
        );
        for (j, &per) in args.per_connection.iter().enumerate() {
            let tag = format!("{n}x{i}p{j}");
            let host = rt.block_on(measure_host(
                &args.url,
                args.state_dir.as_deref(),
                n,
                per,
                args.rounds,
                &tag,
            ));
            if n == 1 {
                rss_one.get_or_insert(host.rss_kib);
            }
            let (p50, p99) = common::median_p99(host.fanout.clone());
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "{:>6} {:>8} {:>10.0} {:>12.0} {:>10.0} {:>8.1} {:>10} {:>8.1} {:>9.1}ms {:>9.1}ms {:>8.1}ms {:>6.2}x {:>12.1}",
                n,
                per,
                common::ms(host.agents_started),
                common::ms(host.all_consuming),
                common::ms(host.restart_consuming),
                mib(host.rss_kib),
                rss_one.map_or("-".to_string(), |one| format!("{:.0}", mib(one) * n as f64)),
                mib(host.hwm_kib),
                common::ms(p50),
                common::ms(p99),
                common::ms(b50),
                p50.as_secs_f64() / b50.as_secs_f64().max(1e-9),
                host.cpu_ms_per_round,
            );
        }
    }
}
