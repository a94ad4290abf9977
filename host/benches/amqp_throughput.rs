//! How fast the host drains a backlog of ticks from its inbox, against the
//! real RabbitMQ, compared in the same run with a consumer that does
//! nothing but acknowledge.
//!
//! Every round, for each consumer below: `-n` ticks (the consumer README's
//! envelope) are published to the inbox with confirms, then the consumer
//! starts and a sampler inside the broker (`rabbitmqctl eval`, ~1 ms
//! resolution) times from the first delivery until the inbox holds no ready
//! and no unacknowledged message. The publisher is not part of the timed
//! region, so this is the consumer's rate, not the publisher's.
//!
//! - `ack-only`: a lapin consumer in this process, same prefetch, that
//!   acknowledges each tick as it arrives: the broker's and the client
//!   library's ceiling on this machine (the baseline).
//! - `host, no check`: `heartbeat-host run` on a config without checks:
//!   every tick is parsed, planned ("no check due") and acknowledged.
//! - `host, cadenceMs 0`: one no-op check due on every tick (the setup of
//!   `../shared/bench/tick_throughput.py`): each run is a fresh sandboxed
//!   instance, a durable state write and a confirmed result event, which
//!   also comes back through the inbox's `agent.{name}.#` binding.
//!
//! ```sh
//! cargo bench -p heartbeat-host --bench amqp_throughput -- [-n 20000] [--rounds 3] [--prefetch 64] [--log-level info]
//! ```
//!
//! Needs RabbitMQ at `--url` (default amqp://guest:guest@127.0.0.1:5672/)
//! and `rabbitmqctl` on the same machine.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt as _;
use heartbeat_host::bus::{self as connect, self as topology};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};

mod common;

struct Args {
    url: String,
    n: usize,
    rounds: usize,
    prefetch: u16,
    log_level: String,
    /// Only these drainers (`--only ack-only,no-check,noop`).
    only: Option<Vec<String>>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/".into(),
        n: 20_000,
        rounds: 3,
        prefetch: heartbeat_host::bus::DEFAULT_PREFETCH,
        log_level: "info".into(),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => args.url = value()?,
            "-n" => args.n = value()?.parse().map_err(|e| format!("-n: {e}"))?,
            "--rounds" => args.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--prefetch" => {
                args.prefetch = value()?.parse().map_err(|e| format!("--prefetch: {e}"))?
            }
            "--log-level" => args.log_level = value()?,
            "--only" => args.only = Some(value()?.split(',').map(str::to_string).collect()),
            // cargo bench passes --bench.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.n == 0 || args.rounds == 0 {
        return Err("-n and --rounds must be at least 1".into());
    }
    Ok(args)
}

/// Who drains the inbox.
#[derive(Clone, Copy, PartialEq)]
enum Drainer {
    AckOnly,
    HostNoCheck,
    HostNoop,
}

impl Drainer {
    const ALL: [Drainer; 3] = [Drainer::AckOnly, Drainer::HostNoCheck, Drainer::HostNoop];

    /// The name `--only` takes.
    fn key(self) -> &'static str {
        match self {
            Drainer::AckOnly => "ack-only",
            Drainer::HostNoCheck => "no-check",
            Drainer::HostNoop => "noop",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Drainer::AckOnly => "ack-only lapin consumer (baseline)",
            Drainer::HostNoCheck => "host, no check",
            Drainer::HostNoop => "host, cadenceMs 0 no-op check",
        }
    }
}

/// One drain: its rate, and the host's CPU per tick when a host drained it.
struct Drain {
    ticks_per_s: f64,
    host_cpu_us_per_tick: Option<f64>,
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("amqp_throughput: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let agent = format!("bench-throughput-{}", std::process::id());
    let exchange = format!("bench.throughput.{}", std::process::id());
    let names = topology::Names::new(&agent, &exchange, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results: Vec<(Drainer, Vec<Drain>)> = Drainer::ALL
        .iter()
        .filter(|d| {
            args.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|k| k == d.key()))
        })
        .map(|d| (*d, Vec::new()))
        .collect();
    if results.is_empty() {
        eprintln!("amqp_throughput: --only names none of ack-only, no-check, noop");
        std::process::exit(2);
    }
    let outcome = rt.block_on(async {
        let bench = Bench::connect(&args, names).await?;
        for round in 1..=args.rounds {
            for (drainer, drains) in &mut results {
                let drain = bench.drain(*drainer, &agent, dir.path()).await?;
                eprintln!(
                    "round {round}: {:<32} {:>9.0} ticks/s",
                    drainer.label(),
                    drain.ticks_per_s
                );
                drains.push(drain);
            }
        }
        bench.cleanup().await
    });
    if let Err(e) = outcome {
        eprintln!("amqp_throughput: {e}");
        std::process::exit(1);
    }
    // The ratio column needs the baseline in the same run.
    let baseline = results
        .iter()
        .find(|(d, _)| *d == Drainer::AckOnly)
        .map(|(_, drains)| median(drains.iter().map(|d| d.ticks_per_s).collect()));
    println!(
        "drain of {} queued ticks, prefetch {}, LOG_LEVEL={}, {} rounds (median; each round's figure in brackets):",
        args.n, args.prefetch, args.log_level, args.rounds
    );
    for (drainer, drains) in &results {
        let rates: Vec<f64> = drains.iter().map(|d| d.ticks_per_s).collect();
        let rate = median(rates.clone());
        let cpu = drains
            .iter()
            .filter_map(|d| d.host_cpu_us_per_tick)
            .collect::<Vec<_>>();
        let cpu = if cpu.is_empty() {
            String::new()
        } else {
            format!("  host CPU {:.0} µs/tick", median(cpu))
        };
        let ratio = baseline.map_or_else(String::new, |b| format!("{:>5.2}× baseline", rate / b));
        println!(
            "  {:<32} {:>8.0} ticks/s  {ratio}  [{}]{cpu}",
            drainer.label(),
            rate,
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Bench<'a> {
    args: &'a Args,
    names: topology::Names,
    vhost: String,
    connection: Connection,
    channel: Channel,
}

impl<'a> Bench<'a> {
    async fn connect(args: &'a Args, names: topology::Names) -> Result<Bench<'a>, String> {
        let uri = connect::parse_url(&args.url).map_err(|e| e.to_string())?;
        let connection = connect::connect(&uri, "amqp_throughput bench")
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let channel = connection.create_channel().await.map_err(lapin_err)?;
        // The host's own declarations, so it takes the queue over as is.
        topology::declare(&channel, &names)
            .await
            .map_err(lapin_err)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(lapin_err)?;
        Ok(Bench {
            args,
            names,
            vhost: uri.vhost.clone(),
            connection,
            channel,
        })
    }

    /// Fills the inbox with `-n` ticks, then times `drainer` emptying it.
    async fn drain(
        &self,
        drainer: Drainer,
        agent: &str,
        dir: &std::path::Path,
    ) -> Result<Drain, String> {
        self.channel
            .queue_purge(&self.names.inbox, QueuePurgeOptions::default())
            .await
            .map_err(lapin_err)?;
        self.fill().await?;
        let sampler = Sampler::start(&self.vhost, &self.names.inbox, self.args.n).await?;
        let drain = match drainer {
            Drainer::AckOnly => {
                let consumer = self.ack_only().await?;
                let timed = sampler.finish().await;
                consumer.abort();
                Drain {
                    ticks_per_s: timed?,
                    host_cpu_us_per_tick: None,
                }
            }
            Drainer::HostNoCheck | Drainer::HostNoop => {
                let config = dir.join("heartbeat.json");
                let checks = if drainer == Drainer::HostNoop {
                    r#"{"noop": {"cadenceMs": 0, "handler": "default"}}"#
                } else {
                    "{}"
                };
                std::fs::write(
                    &config,
                    format!(r#"{{"agent": "{agent}", "checks": {checks}}}"#),
                )
                .map_err(|e| e.to_string())?;
                let _ = std::fs::remove_file(dir.join("heartbeat.state.json"));
                let mut host = self.start_host(&config)?;
                let cpu_before = cpu_seconds(host.id());
                let timed = sampler.finish().await;
                let cpu = cpu_seconds(host.id()) - cpu_before;
                common::terminate(&mut host);
                Drain {
                    ticks_per_s: timed?,
                    host_cpu_us_per_tick: Some(cpu * 1e6 / self.args.n as f64),
                }
            }
        };
        Ok(drain)
    }

    async fn fill(&self) -> Result<(), String> {
        let mut confirms = Vec::with_capacity(self.args.n);
        for i in 0..self.args.n {
            let body = serde_json::json!({
                "event_id": format!("tp-{}-{i}", std::process::id()),
                "event_type": "system.heartbeat.tick",
                "timestamp": "2026-01-01T00:00:00+00:00", "version": "1.0.0",
                "source": {"host": "bench", "type": "manual", "app": "amqp_throughput"},
                "payload": {"tick_id": format!("{i:08x}")}
            })
            .to_string();
            confirms.push(
                self.channel
                    .basic_publish(
                        &self.names.exchange,
                        "system.heartbeat.tick",
                        BasicPublishOptions::default(),
                        body.as_bytes(),
                        BasicProperties::default(),
                    )
                    .await
                    .map_err(lapin_err)?,
            );
        }
        for confirm in futures_util::future::join_all(confirms).await {
            confirm.map_err(lapin_err)?;
        }
        Ok(())
    }

    /// The baseline: acknowledges every delivery as it arrives.
    async fn ack_only(&self) -> Result<tokio::task::JoinHandle<()>, String> {
        let channel = self.connection.create_channel().await.map_err(lapin_err)?;
        channel
            .basic_qos(self.args.prefetch, BasicQosOptions::default())
            .await
            .map_err(lapin_err)?;
        let mut consumer = channel
            .basic_consume(
                &self.names.inbox,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(lapin_err)?;
        Ok(tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let _ = delivery.ack(BasicAckOptions::default()).await;
            }
            drop(channel);
        }))
    }

    fn start_host(&self, config: &std::path::Path) -> Result<Child, String> {
        let mut host = Command::new(env!("CARGO_BIN_EXE_heartbeat-host"))
            .args(["run", "--config"])
            .arg(config)
            .args([
                "--amqp-url",
                &self.args.url,
                "--exchange",
                &self.names.exchange,
                "--prefetch",
                &self.args.prefetch.to_string(),
            ])
            .env("LOG_LEVEL", &self.args.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start heartbeat-host: {e}"))?;
        // The host's log is read (and its warnings shown) for as long as it runs.
        let stderr = host.stderr.take().ok_or("no stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ERROR") || line.contains("WARN") {
                    eprintln!("host: {line}");
                }
            }
        });
        Ok(host)
    }

    async fn cleanup(self) -> Result<(), String> {
        for queue in [&self.names.inbox, &self.names.dlq] {
            self.channel
                .queue_delete(queue, QueueDeleteOptions::default())
                .await
                .map_err(lapin_err)?;
        }
        self.channel
            .exchange_delete(&self.names.exchange, ExchangeDeleteOptions::default())
            .await
            .map_err(lapin_err)?;
        let _ = self.connection.close(200, "done").await;
        Ok(())
    }
}

fn lapin_err(e: lapin::Error) -> String {
    e.to_string()
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// Times a drain inside the broker: from the first sample where the queue
/// has fewer than `n` ready messages (the consumer took its first) to the
/// first where it holds none ready and none unacknowledged.
struct Sampler {
    child: tokio::process::Child,
    n: usize,
}

impl Sampler {
    /// Starts the sampler and waits until it samples.
    async fn start(vhost: &str, queue: &str, n: usize) -> Result<Sampler, String> {
        let expr = format!(
            "Q = rabbit_misc:r(<<\"{vhost}\"/utf8>>, queue, <<\"{queue}\"/utf8>>), \
             Deadline = erlang:monotonic_time(millisecond) + 300000, \
             Counts = fun() -> {{ok, Qu}} = rabbit_amqqueue:lookup(Q), \
               [{{_, R}}, {{_, U}}] = rabbit_amqqueue:info(Qu, [messages_ready, messages_unacknowledged]), {{R, U}} end, \
             Loop = fun L(T0) -> \
               Now = os:system_time(microsecond), {{R, U}} = Counts(), \
               T = case T0 of none when R < {n} -> Now; _ -> T0 end, \
               if T =/= none, R + U =:= 0 -> {{done, T, Now}}; \
                  true -> case erlang:monotonic_time(millisecond) > Deadline of \
                    true -> {{timeout, 0, 0}}; \
                    false -> timer:sleep(1), L(T) end end end, \
             io:format(\"ready~n\"), Loop(none)."
        );
        let mut child = tokio::process::Command::new("rabbitmqctl")
            .args(["eval", &expr])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("rabbitmqctl eval: {e}"))?;
        let stdout = child.stdout.take().ok_or("rabbitmqctl: no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout);
        let mut first = String::new();
        tokio::time::timeout(
            Duration::from_secs(60),
            tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first),
        )
        .await
        .map_err(|_| "the sampler did not start within 60 s".to_string())?
        .map_err(|e| e.to_string())?;
        if first.trim() != "ready" {
            return Err(format!("the sampler did not start: {}", first.trim()));
        }
        child.stdout = Some(lines.into_inner());
        Ok(Sampler { child, n })
    }

    /// Ticks per second of the drain.
    async fn finish(self) -> Result<f64, String> {
        let output = tokio::time::timeout(Duration::from_secs(330), self.child.wait_with_output())
            .await
            .map_err(|_| "the sampler did not answer within 330 s".to_string())?
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&output.stdout);
        let inner = text
            .trim()
            .strip_prefix("{done,")
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| {
                format!(
                    "sampler: {}{}",
                    text.trim(),
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
        let (t0, t1) = inner.split_once(',').ok_or("sampler: bad answer")?;
        let t0: f64 = t0.trim().parse().map_err(|e| format!("sampler: {e}"))?;
        let t1: f64 = t1.trim().parse().map_err(|e| format!("sampler: {e}"))?;
        Ok(self.n as f64 * 1e6 / (t1 - t0).max(1.0))
    }
}
