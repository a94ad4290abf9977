//! How fast the host drains ticks from its inbox against the real RabbitMQ,
//! counted in ticks and in **runs** (result events the broker confirmed),
//! compared in the same run with minimal lapin consumers: one that only
//! acknowledges, and one that does the broker work the host does per tick.
//!
//! **Backlog mode** (the default). Every round, for each drainer below:
//! `-n` ticks (the consumer README's envelope) are published to the inbox
//! with confirms, then the drainer starts and a sampler inside the broker
//! (`rabbitmqctl eval`, ~1 ms resolution) times from the first delivery
//! until the inbox holds no ready and no unacknowledged message. The
//! publisher is not part of the timed region, so this is the drainer's
//! rate, not the publisher's.
//!
//! - `ack-only`: a lapin consumer in this process, same prefetch, that
//!   acknowledges each tick as it arrives: the broker's and the client
//!   library's ceiling on this machine.
//! - `same-work`: a lapin consumer in this process, same prefetch, that per
//!   tick publishes one persistent event of a host result event's size and
//!   headers on a confirm channel, on the host's key
//!   `agent.{agent}.check.completed`, and acknowledges the tick once that
//!   publish is confirmed; the event comes back through the inbox's
//!   `agent.{agent}.#` binding and is acknowledged unread, as the host does
//!   with its own. The broker does for it what it does for the host.
//! - `same-work-results`: the same, publishing on
//!   `results.{agent}.check.completed` (no return trip).
//! - `no-check`: `heartbeat-host run` on a config without checks: every
//!   tick is parsed, planned ("no check due") and acknowledged.
//! - `noop`: one no-op check due on every tick (`cadenceMs` 0, the setup of
//!   `../shared/bench/tick_throughput.py`): each run is a fresh sandboxed
//!   instance, a durable state write and a confirmed result event, which
//!   also comes back through the inbox's `agent.{name}.#` binding.
//! - `noop-results`: the same host with `--results-key-prefix results.`:
//!   the result events go to `results.{agent}.check.completed`, outside the
//!   inbox's bindings.
//!
//! **Live mode** (`--live rust,python`): the host consumes while a driver
//! publishes `-n` ticks: `heartbeat-host tick --count N --in-flight W`
//! (`rust`; timed by the same in-broker sampler, from the first tick in the
//! inbox to the inbox empty after the driver's last confirm) or
//! `../shared/bench/tick_throughput.py` (`python`, needs aio-pika; its own
//! RESULT). Each round first measures the driver's own ceiling: the same
//! publishes into a bound queue nobody consumes (`heartbeat-host tick
//! --stats`, and `tick_driver_ceiling.py` for the Python driver).
//!
//! Runs are counted on an observer queue (exclusive, not durable) bound to
//! both result keys; ticks that ran nothing, and why, from the host's JSON
//! log (`LOG_FORMAT=json`, event `no_check_due`: with `still_running`, held
//! back by a run still in flight, without, no check due). CPU is the sum
//! of utime and stime, its delta over the timed region of
//! `/proc/<pid>/stat`: the host's (also per thread name, from
//! `/proc/<pid>/task`) and the broker's (the process `rabbitmqctl eval
//! 'os:getpid().'` names; its figure includes the sampler's own loop, the
//! same for every drainer).
//!
//! ```sh
//! cargo bench -p heartbeat-host --bench amqp_throughput -- [-n 20000] [--rounds 3] [--prefetch 64] [--log-level info] [--only noop,same-work,...]
//! cargo bench -p heartbeat-host --bench amqp_throughput -- --live rust,python [-n 20000] [--in-flight 1000] [--only noop,noop-results] [--python-driver PATH]
//! ```
//!
//! Needs RabbitMQ at `--url` (default amqp://guest:guest@127.0.0.1:5672/)
//! and `rabbitmqctl` on the same machine.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use heartbeat_host::bus::{self as connect, self as topology};
use heartbeat_host::core::envelope;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};

mod common;

/// The prefix of the `*-results` drainers' result keys.
const RESULTS_PREFIX: &str = "results.";

struct Args {
    url: String,
    n: usize,
    rounds: usize,
    prefetch: u16,
    log_level: String,
    /// Only these drainers (`--only ack-only,same-work,noop`).
    only: Option<Vec<String>>,
    /// Live mode: these drivers publish while the host consumes.
    live: Option<Vec<Driver>>,
    /// The Rust driver's window of confirms (`tick --in-flight`).
    in_flight: usize,
    /// heartbeat-consumer's driver.
    python_driver: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/".into(),
        n: 20_000,
        rounds: 3,
        prefetch: heartbeat_host::bus::DEFAULT_PREFETCH,
        log_level: "info".into(),
        only: None,
        live: None,
        in_flight: 1000,
        python_driver: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/bench/tick_throughput.py"
        )),
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
            "--live" => {
                args.live = Some(
                    value()?
                        .split(',')
                        .map(|d| match d {
                            "rust" => Ok(Driver::Rust),
                            "python" => Ok(Driver::Python),
                            other => Err(format!("--live: unknown driver {other} (rust, python)")),
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            "--in-flight" => {
                args.in_flight = value()?.parse().map_err(|e| format!("--in-flight: {e}"))?
            }
            "--python-driver" => args.python_driver = PathBuf::from(value()?),
            // cargo bench passes --bench.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.n == 0 || args.rounds == 0 || args.prefetch == 0 || args.in_flight == 0 {
        return Err("-n, --rounds, --prefetch and --in-flight must be at least 1".into());
    }
    Ok(args)
}

/// Who drains the inbox.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Drainer {
    AckOnly,
    SameWork,
    SameWorkResults,
    HostNoCheck,
    HostNoop,
    HostNoopResults,
}

impl Drainer {
    const ALL: [Drainer; 6] = [
        Drainer::AckOnly,
        Drainer::SameWork,
        Drainer::SameWorkResults,
        Drainer::HostNoCheck,
        Drainer::HostNoop,
        Drainer::HostNoopResults,
    ];

    /// The name `--only` takes.
    fn key(self) -> &'static str {
        match self {
            Drainer::AckOnly => "ack-only",
            Drainer::SameWork => "same-work",
            Drainer::SameWorkResults => "same-work-results",
            Drainer::HostNoCheck => "no-check",
            Drainer::HostNoop => "noop",
            Drainer::HostNoopResults => "noop-results",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Drainer::AckOnly => "ack-only lapin consumer",
            Drainer::SameWork => "same-work lapin consumer",
            Drainer::SameWorkResults => "same-work, results.* key",
            Drainer::HostNoCheck => "host, no check",
            Drainer::HostNoop => "host, cadenceMs 0 no-op check",
            Drainer::HostNoopResults => "host, no-op, --results-key-prefix",
        }
    }

    fn is_host(self) -> bool {
        matches!(
            self,
            Drainer::HostNoCheck | Drainer::HostNoop | Drainer::HostNoopResults
        )
    }

    /// Whether its result events go to `results.{agent}.…` (no return trip).
    fn results_prefixed(self) -> bool {
        matches!(self, Drainer::SameWorkResults | Drainer::HostNoopResults)
    }

    /// The same-work baseline the drainer is compared with.
    fn same_work_baseline(self) -> Option<Drainer> {
        match self {
            Drainer::HostNoop => Some(Drainer::SameWork),
            Drainer::HostNoopResults => Some(Drainer::SameWorkResults),
            _ => None,
        }
    }
}

/// Who publishes the ticks in live mode.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Driver {
    Rust,
    Python,
}

impl Driver {
    fn label(self) -> &'static str {
        match self {
            Driver::Rust => "heartbeat-host tick",
            Driver::Python => "tick_throughput.py",
        }
    }
}

/// What the host's log says about ticks that ran nothing.
#[derive(Default)]
struct LogCounts {
    /// `no_check_due` with `still_running`: the only due check was still
    /// running from an earlier tick.
    held_back: AtomicU64,
    /// `no_check_due` without: nothing was due.
    no_check_due: AtomicU64,
}

/// A driver's own figures in one live round.
#[derive(Clone, Copy)]
struct DriverFigures {
    /// Its publish rate while the host consumed.
    publish_per_s: f64,
    /// Its publish rate into a queue nobody consumes.
    ceiling_per_s: f64,
    /// Its CPU per publish in the ceiling run.
    ceiling_cpu_us: Option<f64>,
}

/// Every round's drain of one drainer (with one driver, in live mode).
type Series = ((Option<Driver>, Drainer), Vec<Drain>);

/// One timed drain.
struct Drain {
    ticks: usize,
    seconds: f64,
    /// Result events confirmed (counted on the observer queue).
    runs: Option<u64>,
    /// Ticks that ran nothing: (held back by a run in flight, no check due).
    idle: Option<(u64, u64)>,
    host_cpu_s: Option<f64>,
    /// The broker's CPU seconds over the drain (the sampler's own loop,
    /// which runs inside the broker, included).
    broker_cpu_s: Option<f64>,
    /// The host's CPU seconds over the drain by thread name.
    host_threads: Vec<(String, f64)>,
    driver: Option<DriverFigures>,
}

impl Drain {
    fn ticks_per_s(&self) -> f64 {
        self.ticks as f64 / self.seconds
    }
    fn runs_per_s(&self) -> Option<f64> {
        Some(self.runs? as f64 / self.seconds)
    }
    fn cpu_us_per_tick(&self) -> Option<f64> {
        Some(self.host_cpu_s? * 1e6 / self.ticks as f64)
    }
    fn cpu_us_per_run(&self) -> Option<f64> {
        let runs = self.runs.filter(|&r| r > 0)?;
        Some(self.host_cpu_s? * 1e6 / runs as f64)
    }
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
    let live = args.live.clone();
    let default_live = [Drainer::HostNoop];
    let drainers: Vec<Drainer> = Drainer::ALL
        .iter()
        .copied()
        .filter(|d| match (&args.only, &live) {
            (Some(only), None) => only.iter().any(|k| k == d.key()),
            (Some(only), Some(_)) => d.is_host() && only.iter().any(|k| k == d.key()),
            (None, None) => true,
            (None, Some(_)) => default_live.contains(d),
        })
        .collect();
    if drainers.is_empty() {
        eprintln!(
            "amqp_throughput: --only names none of {} (live mode: host drainers only)",
            Drainer::ALL.map(Drainer::key).join(", ")
        );
        std::process::exit(2);
    }
    let mut runs: Vec<Series> = match &live {
        None => drainers.iter().map(|d| ((None, *d), Vec::new())).collect(),
        Some(drivers) => drivers
            .iter()
            .flat_map(|v| drainers.iter().map(move |d| ((Some(*v), *d), Vec::new())))
            .collect(),
    };
    let python_ok = Command::new("python3")
        .args(["-c", "import aio_pika"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python_ok && live.as_ref().is_some_and(|d| d.contains(&Driver::Python)) {
        eprintln!(
            "amqp_throughput: skipping the Python driver: `python3 -c 'import aio_pika'` fails (pip install aio-pika==10.2.1, as tests/run.sh does)"
        );
        runs.retain(|((driver, _), _)| *driver != Some(Driver::Python));
    }
    let mut event_sizes = (0usize, None);
    let outcome = rt.block_on(async {
        let bench = Bench::connect(&args, names, &agent).await?;
        event_sizes.0 = bench.result_body.len();
        for round in 1..=args.rounds {
            for ((driver, drainer), drains) in &mut runs {
                let drain = match driver {
                    None => bench.drain(*drainer, dir.path()).await?,
                    Some(driver) => bench.live(*driver, *drainer, dir.path()).await?,
                };
                eprintln!(
                    "round {round}: {:<20} {:<34} {:>7.0} ticks/s {}",
                    driver.map_or("backlog", Driver::label),
                    drainer.label(),
                    drain.ticks_per_s(),
                    drain
                        .runs_per_s()
                        .map_or_else(String::new, |r| format!("{r:>7.0} runs/s"))
                );
                drains.push(drain);
            }
        }
        event_sizes.1 = bench.host_event_size.lock().ok().and_then(|s| *s);
        bench.cleanup().await
    });
    if let Err(e) = outcome {
        eprintln!("amqp_throughput: {e}");
        std::process::exit(1);
    }
    report(&args, &runs, event_sizes);
}

/// Prints the medians, one line per drainer (and driver).
fn report(args: &Args, runs: &[Series], (same_work_size, host_size): (usize, Option<usize>)) {
    let rate_of = |drainer: Drainer| {
        runs.iter()
            .find(|((v, d), _)| v.is_none() && *d == drainer)
            .map(|(_, drains)| median(drains.iter().map(Drain::ticks_per_s).collect()))
    };
    let ack_only = rate_of(Drainer::AckOnly);
    let mode = if args.live.is_some() {
        format!("live drivers, {} ticks each", args.n)
    } else {
        format!("drain of {} queued ticks", args.n)
    };
    println!(
        "{mode}, prefetch {}, LOG_LEVEL={} LOG_FORMAT=json, {} rounds (median; each round's ticks/s in brackets):",
        args.prefetch, args.log_level, args.rounds
    );
    for ((driver, drainer), drains) in runs {
        if drains.is_empty() {
            continue;
        }
        let rates: Vec<f64> = drains.iter().map(Drain::ticks_per_s).collect();
        let rate = median(rates.clone());
        let opt_median = |values: Vec<Option<f64>>| {
            let values: Vec<f64> = values.into_iter().flatten().collect();
            (!values.is_empty()).then(|| median(values))
        };
        let mut line = format!(
            "  {:<20} {:<34} {:>7.0} ticks/s [{}]",
            driver.map_or("backlog", Driver::label),
            drainer.label(),
            rate,
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(runs) = opt_median(drains.iter().map(Drain::runs_per_s).collect()) {
            let ran: u64 = drains.iter().filter_map(|d| d.runs).sum();
            let ticks: usize = drains.iter().map(|d| d.ticks).sum();
            line += &format!(
                "  {runs:>7.0} runs/s ({:.1} % of ticks ran)",
                ran as f64 * 100.0 / ticks as f64
            );
        }
        if driver.is_none() {
            if let Some(b) = ack_only {
                line += &format!("  {:.2}× ack-only", rate / b);
            }
            // The same-work consumer runs (publishes) on every tick: its
            // runs/s is its ticks/s.
            if let Some(baseline) = drainer.same_work_baseline()
                && let Some(b) = rate_of(baseline)
            {
                let runs = opt_median(drains.iter().map(Drain::runs_per_s).collect());
                line += &format!(
                    "  × {}: ticks {:.2}, runs {}",
                    baseline.key(),
                    rate / b,
                    runs.map_or_else(|| "-".to_string(), |r| format!("{:.2}", r / b))
                );
            }
        }
        if let Some(cpu) = opt_median(drains.iter().map(Drain::cpu_us_per_tick).collect()) {
            line += &format!("\n      host CPU {cpu:.0} µs/tick");
        }
        if let Some(cpu) = opt_median(drains.iter().map(Drain::cpu_us_per_run).collect()) {
            line += &format!(", {cpu:.0} µs/run");
        }
        let mut threads: std::collections::BTreeMap<&str, f64> = Default::default();
        for drain in drains {
            for (name, cpu) in &drain.host_threads {
                *threads.entry(name.as_str()).or_insert(0.0) += cpu;
            }
        }
        if !threads.is_empty() {
            let ticks: usize = drains.iter().map(|d| d.ticks).sum();
            let mut threads: Vec<(&str, f64)> = threads.into_iter().collect();
            threads.sort_by(|a, b| b.1.total_cmp(&a.1));
            let split: Vec<String> = threads
                .iter()
                .take(5)
                .map(|(name, cpu)| format!("{name} {:.0}", cpu * 1e6 / ticks as f64))
                .collect();
            line += &format!(" (by thread, µs/tick: {})", split.join(", "));
        }
        let broker: Vec<f64> = drains
            .iter()
            .filter_map(|d| Some(d.broker_cpu_s? * 1e6 / d.ticks as f64))
            .collect();
        if !broker.is_empty() {
            line += &format!("\n      broker CPU {:.0} µs/tick", median(broker));
            if let Some(per_run) = opt_median(
                drains
                    .iter()
                    .map(|d| Some(d.broker_cpu_s? * 1e6 / d.runs.filter(|&r| r > 0)? as f64))
                    .collect(),
            ) {
                line += &format!(", {per_run:.0} µs/run");
            }
        }
        if drains.iter().any(|d| d.idle.is_some()) {
            let each: Vec<String> = drains
                .iter()
                .filter_map(|d| d.idle)
                .map(|(held, none)| format!("{held}/{none}"))
                .collect();
            line += &format!(
                "\n      ran nothing (held back by a run in flight / no check due): [{}]",
                each.join(", ")
            );
        }
        if drains.iter().any(|d| d.driver.is_some()) {
            let figures: Vec<DriverFigures> = drains.iter().filter_map(|d| d.driver).collect();
            let publish = median(figures.iter().map(|f| f.publish_per_s).collect());
            let ceiling = median(figures.iter().map(|f| f.ceiling_per_s).collect());
            let cpu = opt_median(figures.iter().map(|f| f.ceiling_cpu_us).collect())
                .map_or_else(String::new, |c| {
                    format!(", {c:.0} µs of driver CPU per publish")
                });
            line += &format!(
                "\n      driver: {publish:.0} publishes/s with the host, ceiling {ceiling:.0}/s alone{cpu} [{}]; ticks/s ÷ ceiling {:.2}",
                figures
                    .iter()
                    .map(|f| format!("{:.0}", f.ceiling_per_s))
                    .collect::<Vec<_>>()
                    .join(", "),
                rate / ceiling
            );
        }
        println!("{line}");
    }
    println!(
        "same-work event body {same_work_size} bytes; host result event body {}",
        host_size.map_or_else(|| "not seen".to_string(), |s| format!("{s} bytes"))
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Bench<'a> {
    args: &'a Args,
    agent: String,
    names: topology::Names,
    vhost: String,
    connection: Connection,
    channel: Channel,
    /// Bound to both result keys: counts the runs.
    observer: String,
    /// What `same-work` publishes per tick: a host result event's envelope.
    result_body: Vec<u8>,
    /// The size of a real host result event, once one was seen.
    host_event_size: std::sync::Mutex<Option<usize>>,
    /// Marker queues made so far (live mode).
    markers: AtomicU64,
    /// The broker's OS process, when `rabbitmqctl eval` tells it.
    broker_pid: Option<u32>,
}

impl<'a> Bench<'a> {
    async fn connect(
        args: &'a Args,
        names: topology::Names,
        agent: &str,
    ) -> Result<Bench<'a>, String> {
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
        // Not durable: the observer's copies are not written to disk, so it
        // adds routing and memory, not a second disk write, to every run.
        let observer = format!("bench.throughput.observer.{}", std::process::id());
        channel
            .queue_declare(
                &observer,
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(lapin_err)?;
        for key in [
            envelope::completed_key(agent),
            format!("{RESULTS_PREFIX}{agent}.check.completed"),
        ] {
            channel
                .queue_bind(
                    &observer,
                    &names.exchange,
                    &key,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(lapin_err)?;
        }
        Ok(Bench {
            args,
            agent: agent.to_string(),
            names,
            vhost: uri.vhost.clone(),
            connection,
            channel,
            observer,
            result_body: result_event(agent),
            host_event_size: std::sync::Mutex::new(None),
            markers: AtomicU64::new(0),
            broker_pid: broker_pid(),
        })
    }

    async fn purge(&self, queue: &str) -> Result<(), String> {
        self.channel
            .queue_purge(queue, QueuePurgeOptions::default())
            .await
            .map_err(lapin_err)
            .map(drop)
    }

    /// Fills the inbox with `-n` ticks, then times `drainer` emptying it.
    async fn drain(&self, drainer: Drainer, dir: &std::path::Path) -> Result<Drain, String> {
        self.purge(&self.names.inbox).await?;
        self.purge(&self.observer).await?;
        self.fill().await?;
        let sampler =
            Sampler::start(&self.vhost, &self.names.inbox, Window::Backlog(self.args.n)).await?;
        let broker_before = self.broker_pid.map(common::cpu_seconds);
        let mut drain = Drain {
            ticks: self.args.n,
            seconds: 0.0,
            runs: None,
            idle: None,
            host_cpu_s: None,
            broker_cpu_s: None,
            host_threads: Vec::new(),
            driver: None,
        };
        match drainer {
            Drainer::AckOnly | Drainer::SameWork | Drainer::SameWorkResults => {
                let consumer = match drainer {
                    Drainer::AckOnly => self.ack_only().await?,
                    _ => self.same_work(drainer.results_prefixed()).await?,
                };
                let timed = sampler.finish().await;
                consumer.abort();
                drain.seconds = timed?;
            }
            Drainer::HostNoCheck | Drainer::HostNoop | Drainer::HostNoopResults => {
                let mut host = self.start_host(drainer, dir)?;
                let cpu_before = common::cpu_seconds(host.child.id());
                let threads_before = thread_cpu(host.child.id());
                let timed = sampler.finish().await;
                drain.host_cpu_s = Some(common::cpu_seconds(host.child.id()) - cpu_before);
                drain.host_threads = thread_delta(&threads_before, &thread_cpu(host.child.id()));
                drain.seconds = timed?;
                drain.idle = Some(host.stop());
            }
        }
        drain.broker_cpu_s = self
            .broker_pid
            .map(common::cpu_seconds)
            .zip(broker_before)
            .map(|(after, before)| after - before);
        if drainer != Drainer::AckOnly && drainer != Drainer::HostNoCheck {
            drain.runs = Some(self.count_runs(drainer.is_host()).await?);
        }
        Ok(drain)
    }

    /// The host consumes while `driver` publishes `-n` ticks.
    async fn live(
        &self,
        driver: Driver,
        drainer: Drainer,
        dir: &std::path::Path,
    ) -> Result<Drain, String> {
        let (ceiling_per_s, ceiling_cpu_us) = self.ceiling(driver).await?;
        self.purge(&self.names.inbox).await?;
        self.purge(&self.observer).await?;
        let mut host = self.start_host(drainer, dir)?;
        self.wait_for_consumer().await?;
        let cpu_before = common::cpu_seconds(host.child.id());
        let threads_before = thread_cpu(host.child.id());
        let broker_before = self.broker_pid.map(common::cpu_seconds);
        let (seconds, publish_per_s) = match driver {
            Driver::Rust => {
                let marker = format!(
                    "bench.throughput.done.{}.{}",
                    std::process::id(),
                    self.markers.fetch_add(1, Ordering::Relaxed)
                );
                let sampler =
                    Sampler::start(&self.vhost, &self.names.inbox, Window::Live(marker.clone()))
                        .await?;
                let stats = self.rust_driver(&self.names.exchange).await?;
                // Every tick is confirmed: the sampler may now see the end.
                self.channel
                    .queue_declare(
                        &marker,
                        QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(lapin_err)?;
                let seconds = sampler.finish().await;
                let _ = self
                    .channel
                    .queue_delete(&marker, QueueDeleteOptions::default())
                    .await;
                (seconds?, stats.0)
            }
            Driver::Python => self.python_driver().await?,
        };
        let host_cpu_s = common::cpu_seconds(host.child.id()) - cpu_before;
        let host_threads = thread_delta(&threads_before, &thread_cpu(host.child.id()));
        let broker_cpu_s = self
            .broker_pid
            .map(common::cpu_seconds)
            .zip(broker_before)
            .map(|(after, before)| after - before);
        let idle = host.stop();
        Ok(Drain {
            ticks: self.args.n,
            seconds,
            runs: Some(self.count_runs(true).await?),
            idle: Some(idle),
            host_cpu_s: Some(host_cpu_s),
            broker_cpu_s,
            host_threads,
            driver: Some(DriverFigures {
                publish_per_s,
                ceiling_per_s,
                ceiling_cpu_us,
            }),
        })
    }

    /// The driver's publish rate (and CPU per publish) into a bound queue
    /// nobody consumes: the most it can show on this machine.
    async fn ceiling(&self, driver: Driver) -> Result<(f64, Option<f64>), String> {
        match driver {
            Driver::Rust => {
                let name = format!("bench.ceiling.{}", std::process::id());
                topology::declare_exchange(&self.channel, &name)
                    .await
                    .map_err(lapin_err)?;
                self.channel
                    .queue_declare(
                        &name,
                        QueueDeclareOptions {
                            exclusive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map_err(lapin_err)?;
                self.channel
                    .queue_bind(
                        &name,
                        &name,
                        envelope::TICK_KEY,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(lapin_err)?;
                let stats = self.rust_driver(&name).await;
                let _ = self
                    .channel
                    .queue_delete(&name, QueueDeleteOptions::default())
                    .await;
                let _ = self
                    .channel
                    .exchange_delete(&name, ExchangeDeleteOptions::default())
                    .await;
                stats
            }
            Driver::Python => {
                let script = concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/benches/tick_driver_ceiling.py"
                );
                let output = tokio::process::Command::new("python3")
                    .arg(script)
                    .args(["-n", &self.args.n.to_string(), "--url", &self.args.url])
                    .arg("--driver")
                    .arg(&self.args.python_driver)
                    .output()
                    .await
                    .map_err(|e| format!("tick_driver_ceiling.py: {e}"))?;
                let text = String::from_utf8_lossy(&output.stdout);
                let rate = number_before(&text, " publishes/s");
                let cpu = number_before(&text, " µs per publish");
                match rate {
                    Some(rate) if output.status.success() => Ok((rate, cpu)),
                    _ => Err(format!(
                        "tick_driver_ceiling.py: {text}{}",
                        String::from_utf8_lossy(&output.stderr)
                    )),
                }
            }
        }
    }

    /// `heartbeat-host tick --count N --in-flight W --stats` to `exchange`:
    /// its publish rate and CPU per tick, from its stats line.
    async fn rust_driver(&self, exchange: &str) -> Result<(f64, Option<f64>), String> {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat-host"))
            .args(["tick", "--amqp-url", &self.args.url, "--exchange", exchange])
            .args(["--count", &self.args.n.to_string()])
            .args(["--in-flight", &self.args.in_flight.to_string(), "--stats"])
            .env("LOG_LEVEL", "warning")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| format!("heartbeat-host tick: {e}"))?;
        let text = String::from_utf8_lossy(&output.stderr);
        match number_before(&text, " ticks/s") {
            Some(rate) if output.status.success() => {
                Ok((rate, number_before(&text, " µs per tick")))
            }
            _ => Err(format!("heartbeat-host tick: {text}")),
        }
    }

    /// `tick_throughput.py` against the inbox: its drain time and its
    /// publish rate.
    async fn python_driver(&self) -> Result<(f64, f64), String> {
        let output = tokio::process::Command::new("python3")
            .arg(&self.args.python_driver)
            .args(["--agent", &self.agent, "--url", &self.args.url])
            .args(["--exchange", &self.names.exchange])
            .args(["-n", &self.args.n.to_string(), "--timeout", "600"])
            .output()
            .await
            .map_err(|e| format!("tick_throughput.py: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let total = text
            .split("total_s=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.parse::<f64>().ok());
        let publish = number_before(&text, "/s)");
        match (total, publish) {
            (Some(total), Some(publish)) if output.status.success() => Ok((total, publish)),
            _ => Err(format!(
                "tick_throughput.py: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            )),
        }
    }

    /// Waits until the host consumes the inbox.
    async fn wait_for_consumer(&self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let queue = self
                .channel
                .queue_declare(
                    &self.names.inbox,
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(lapin_err)?;
            if queue.consumer_count() > 0 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err("the host did not consume its inbox within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The result events on the observer once its count settles; the size
    /// of one host event is kept for the report.
    async fn count_runs(&self, from_host: bool) -> Result<u64, String> {
        let count = || async {
            self.channel
                .queue_declare(
                    &self.observer,
                    QueueDeclareOptions {
                        passive: true,
                        exclusive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|q| u64::from(q.message_count()))
                .map_err(lapin_err)
        };
        let mut last = count().await?;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = count().await?;
            if now == last {
                break;
            }
            last = now;
        }
        if from_host && last > 0 {
            let got = self
                .channel
                .basic_get(&self.observer, BasicGetOptions { no_ack: true })
                .await
                .map_err(lapin_err)?;
            if let Some(message) = got
                && let Ok(mut size) = self.host_event_size.lock()
            {
                *size = Some(message.delivery.data.len());
            }
        }
        self.purge(&self.observer).await?;
        Ok(last)
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

    /// The same-work baseline: per tick, one persistent event of a host
    /// result event's size and properties, published with confirms; the
    /// tick is acknowledged once the broker confirmed it. Anything else
    /// (its own events coming back) is acknowledged unread.
    async fn same_work(
        &self,
        results_prefixed: bool,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let consume = self.connection.create_channel().await.map_err(lapin_err)?;
        consume
            .basic_qos(self.args.prefetch, BasicQosOptions::default())
            .await
            .map_err(lapin_err)?;
        let publish = self.connection.create_channel().await.map_err(lapin_err)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(lapin_err)?;
        let mut consumer = consume
            .basic_consume(
                &self.names.inbox,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(lapin_err)?;
        let key = if results_prefixed {
            format!("{RESULTS_PREFIX}{}.check.completed", self.agent)
        } else {
            envelope::completed_key(&self.agent)
        };
        let exchange = self.names.exchange.clone();
        let body = Arc::new(self.result_body.clone());
        let agent = self.agent.clone();
        Ok(tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                if delivery.routing_key.as_str() != envelope::TICK_KEY {
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                    continue;
                }
                let (publish, exchange, key, body) = (
                    publish.clone(),
                    exchange.clone(),
                    key.clone(),
                    Arc::clone(&body),
                );
                let properties = result_properties(&agent, &key);
                tokio::spawn(async move {
                    let sent = publish
                        .basic_publish(
                            &exchange,
                            &key,
                            BasicPublishOptions::default(),
                            &body,
                            properties,
                        )
                        .await;
                    if let Ok(confirm) = sent {
                        let _ = confirm.await;
                    }
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                });
            }
            drop(consume);
        }))
    }

    fn start_host(&self, drainer: Drainer, dir: &std::path::Path) -> Result<Host, String> {
        let config = dir.join("heartbeat.json");
        let checks = if drainer == Drainer::HostNoCheck {
            "{}"
        } else {
            r#"{"noop": {"cadenceMs": 0, "handler": "default"}}"#
        };
        std::fs::write(
            &config,
            format!(r#"{{"agent": "{}", "checks": {checks}}}"#, self.agent),
        )
        .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(dir.join("heartbeat.state.json"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_heartbeat-host"));
        command
            .args(["run", "--config"])
            .arg(&config)
            .args([
                "--amqp-url",
                &self.args.url,
                "--exchange",
                &self.names.exchange,
                "--prefetch",
                &self.args.prefetch.to_string(),
            ])
            .env("LOG_LEVEL", &self.args.log_level)
            .env("LOG_FORMAT", "json")
            .env_remove("RESULTS_KEY_PREFIX")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if drainer.results_prefixed() {
            command.args(["--results-key-prefix", RESULTS_PREFIX]);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("start heartbeat-host: {e}"))?;
        // The host's log is read (its warnings shown, its idle ticks
        // counted) for as long as it runs.
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let counts = Arc::new(LogCounts::default());
        let seen = Arc::clone(&counts);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("\"no_check_due\"") {
                    if line.contains("\"still_running\"") {
                        seen.held_back.fetch_add(1, Ordering::Relaxed);
                    } else {
                        seen.no_check_due.fetch_add(1, Ordering::Relaxed);
                    }
                } else if line.contains("\"ERROR\"") || line.contains("\"WARN\"") {
                    eprintln!("host: {line}");
                }
            }
        });
        Ok(Host {
            child,
            counts,
            reader: Some(reader),
        })
    }

    async fn cleanup(self) -> Result<(), String> {
        for queue in [&self.names.inbox, &self.names.dlq, &self.observer] {
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

/// A running host and what its log said.
struct Host {
    child: Child,
    counts: Arc<LogCounts>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    /// Stops the host and reads its log to the end: (ticks held back by a
    /// run in flight, ticks with no check due).
    fn stop(&mut self) -> (u64, u64) {
        common::terminate(&mut self.child);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (
            self.counts.held_back.load(Ordering::Relaxed),
            self.counts.no_check_due.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.stop();
        }
    }
}

/// A result event as the host sends it for the bench's no-op check: the
/// envelope of `agent.{agent}.check.completed`, same fields and sizes.
fn result_event(agent: &str) -> Vec<u8> {
    use heartbeat_host::core::model::CheckHealth;
    use heartbeat_host::core::soft_hard::Verdict;
    let source = envelope::Source {
        host: hostname(),
        kind: "agent".into(),
        app: "heartbeat-host".into(),
    };
    let payload = envelope::completed_payload(
        "noop",
        "default",
        "success",
        1234,
        &serde_json::json!({}),
        None,
        &Verdict {
            state: CheckHealth::Ok,
            attempt: 0,
            change: None,
        },
    );
    envelope::build(
        &uuid::Uuid::new_v4().to_string(),
        &envelope::completed_key(agent),
        jiff::Timestamp::now(),
        &source,
        // A tick id of `fill`'s form, as the host's event carries it.
        &[format!("tp-{}-{}", std::process::id(), 10_000)],
        payload,
    )
    .to_string()
    .into_bytes()
}

/// The properties the host gives a result event (persistent, its two
/// headers, message id, type, app id, timestamp).
fn result_properties(agent: &str, key: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        heartbeat_host::bus::OWN_HEADER.into(),
        AMQPValue::LongString(LongString::from(agent)),
    );
    headers.insert(
        "x-heartbeat-host-instance".into(),
        AMQPValue::LongString(LongString::from(uuid::Uuid::nil().to_string())),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_type(key.into())
        .with_app_id("heartbeat-host".into())
        .with_timestamp(1_777_593_600)
        .with_headers(headers)
}

/// The broker's OS process id (`os:getpid()` evaluated inside it).
fn broker_pid() -> Option<u32> {
    let output = Command::new("rabbitmqctl")
        .args(["eval", "os:getpid()."])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_matches('"')
        .parse()
        .ok()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The number just before the first `unit` in `text` (`2,400 ticks/s`
/// style output without thousands separators: `2400 ticks/s`).
fn number_before(text: &str, unit: &str) -> Option<f64> {
    let head = &text[..text.find(unit)?];
    head.rsplit(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .and_then(|n| n.parse().ok())
}

fn lapin_err(e: lapin::Error) -> String {
    e.to_string()
}

/// CPU seconds of each thread of a process so far, summed by thread name
/// (`/proc/<pid>/task/<tid>/stat`; tokio's workers share one name).
fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("?", |(name, _)| name)
            .to_string();
        *by_name.entry(name).or_insert(0.0) += common::stat_cpu(&stat);
    }
    by_name
}

/// Per thread name, the CPU seconds between two [`thread_cpu`] readings,
/// largest first (threads gone by the second reading are not counted).
fn thread_delta(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> Vec<(String, f64)> {
    let mut delta: Vec<(String, f64)> = after
        .iter()
        .map(|(name, cpu)| (name.clone(), cpu - before.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, cpu)| *cpu > 0.0)
        .collect();
    delta.sort_by(|a, b| b.1.total_cmp(&a.1));
    delta
}

/// What a sampler times.
enum Window {
    /// A backlog of `n` ticks: from the first sample with fewer than `n`
    /// ready (the drainer took its first) to the first with none ready and
    /// none unacknowledged.
    Backlog(usize),
    /// Live ticks: from the first sample with a message in the inbox to the
    /// first with none ready and none unacknowledged once the marker queue
    /// exists (declared when the driver's last tick is confirmed).
    Live(String),
}

/// Times a drain inside the broker.
struct Sampler {
    child: tokio::process::Child,
}

impl Sampler {
    /// Starts the sampler and waits until it samples.
    async fn start(vhost: &str, queue: &str, window: Window) -> Result<Sampler, String> {
        let (marker, started) = match &window {
            Window::Backlog(n) => (queue.to_string(), format!("R < {n}")),
            Window::Live(marker) => (marker.clone(), "R + U > 0".to_string()),
        };
        let expr = format!(
            "Q = rabbit_misc:r(<<\"{vhost}\"/utf8>>, queue, <<\"{queue}\"/utf8>>), \
             M = rabbit_misc:r(<<\"{vhost}\"/utf8>>, queue, <<\"{marker}\"/utf8>>), \
             Deadline = erlang:monotonic_time(millisecond) + 600000, \
             Counts = fun() -> {{ok, Qu}} = rabbit_amqqueue:lookup(Q), \
               [{{_, R}}, {{_, U}}] = rabbit_amqqueue:info(Qu, [messages_ready, messages_unacknowledged]), {{R, U}} end, \
             Marked = fun() -> case rabbit_amqqueue:lookup(M) of {{ok, _}} -> true; _ -> false end end, \
             Loop = fun L(T0) -> \
               Now = os:system_time(microsecond), {{R, U}} = Counts(), \
               T = case T0 of none when {started} -> Now; _ -> T0 end, \
               Done = (T =/= none) andalso (R + U =:= 0) andalso Marked(), \
               if Done -> {{done, T, Now}}; \
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
        Ok(Sampler { child })
    }

    /// Seconds from the window's start to its end.
    async fn finish(self) -> Result<f64, String> {
        let output = tokio::time::timeout(Duration::from_secs(630), self.child.wait_with_output())
            .await
            .map_err(|_| "the sampler did not answer within 630 s".to_string())?
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
        Ok((t1 - t0).max(1.0) / 1e6)
    }
}
