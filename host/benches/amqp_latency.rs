//! Tick published → result event received, on loopback against the real
//! RabbitMQ, one tick at a time; and the host's idle RSS.
//!
//! Starts the `heartbeat-host` built with this bench (release profile) on a
//! temporary config whose one no-op check is due on every tick
//! (`cadenceMs` 0), publishes ticks from a plain AMQP client and times each
//! until its `agent.<agent>.check.completed` event (matched by
//! `correlation_ids`) arrives on a queue bound to that key.
//!
//! ```sh
//! cargo bench -p heartbeat-host --bench amqp_latency -- [-n 2000] [--log-level info]
//! ```
//!
//! Needs RabbitMQ at `--url` (default amqp://guest:guest@127.0.0.1:5672/).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use heartbeat_host::bus as connect;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};

mod common;

struct Args {
    url: String,
    exchange: String,
    agent: String,
    n: usize,
    warmup: usize,
    log_level: String,
    idle_secs: u64,
    /// Serve the operations endpoint and scrape `/metrics` every second
    /// while measuring (`--metrics`), to compare against a run without.
    metrics: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/".into(),
        exchange: "bench.latency".into(),
        agent: format!("bench-latency-{}", std::process::id()),
        n: 2000,
        warmup: 100,
        log_level: "info".into(),
        idle_secs: 5,
        metrics: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => args.url = value()?,
            "--exchange" => args.exchange = value()?,
            "--agent" => args.agent = value()?,
            "-n" => args.n = value()?.parse().map_err(|e| format!("-n: {e}"))?,
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--log-level" => args.log_level = value()?,
            "--metrics" => args.metrics = true,
            "--idle-secs" => {
                args.idle_secs = value()?.parse().map_err(|e| format!("--idle-secs: {e}"))?
            }
            // cargo bench passes --bench.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("amqp_latency: {e}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("heartbeat.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"agent": "{}", "checks": {{"noop": {{"cadenceMs": 0, "handler": "default"}}}}}}"#,
            args.agent
        ),
    )
    .expect("write config");
    let mut host = Command::new(env!("CARGO_BIN_EXE_heartbeat-host"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--amqp-url", &args.url, "--exchange", &args.exchange])
        .args(if args.metrics {
            &["--metrics-addr", "127.0.0.1:0"][..]
        } else {
            &[][..]
        })
        .env("LOG_LEVEL", &args.log_level)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start heartbeat-host");
    let pid = host.id();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (endpoint_tx, endpoint_rx) = std::sync::mpsc::channel::<String>();
    let stderr = host.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        let mut endpoint = Some(endpoint_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("on http://").nth(1)
                && let Some(tx) = endpoint.take()
            {
                let _ = tx.send(
                    addr.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            if line.contains("connected; ticks come from the bus")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
            if line.contains("ERROR") || line.contains("WARN") {
                eprintln!("host: {line}");
            }
        }
    });
    if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = host.kill();
        let _ = host.wait();
        eprintln!("amqp_latency: the host did not connect within 60 s");
        std::process::exit(1);
    }
    std::thread::sleep(Duration::from_secs(args.idle_secs));
    let idle_rss = common::status_kib(pid, "VmRSS:");
    let idle_anon = common::status_kib(pid, "RssAnon:");
    let idle_file = common::status_kib(pid, "RssFile:");

    // A scraper at one scrape a second, as a demanding Prometheus would.
    let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(args.metrics));
    let scraper = endpoint_rx
        .recv_timeout(Duration::from_secs(if args.metrics { 10 } else { 0 }))
        .ok()
        .map(|addr| {
            let scraping = std::sync::Arc::clone(&scraping);
            std::thread::spawn(move || {
                let mut scrapes = 0u32;
                while scraping.load(std::sync::atomic::Ordering::Relaxed) {
                    use std::io::{Read as _, Write as _};
                    if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                        let _ = write!(
                            s,
                            "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
                        );
                        let _ = s.read_to_end(&mut Vec::new());
                        scrapes += 1;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                scrapes
            })
        });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let result = rt.block_on(measure(&args));
    scraping.store(false, std::sync::atomic::Ordering::Relaxed);
    if let Some(scraper) = scraper {
        println!(
            "scraped /metrics {} times during the run",
            scraper.join().unwrap_or(0)
        );
    }
    let after_rss = common::status_kib(pid, "VmRSS:");
    let peak_rss = common::status_kib(pid, "VmHWM:");
    common::terminate(&mut host);
    let _ = rt.block_on(cleanup(&args));
    let mut latencies = match result {
        Ok(l) => l,
        Err(e) => {
            eprintln!("amqp_latency: {e}");
            std::process::exit(1);
        }
    };
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "tick -> result event, n={} (after {} warm-up), LOG_LEVEL={}:",
        latencies.len(),
        args.warmup,
        args.log_level
    );
    println!(
        "  median {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  mean {:.3} ms  min {:.3} ms  max {:.3} ms",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(mean),
        ms(latencies[0]),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "host RSS: idle (connected, {} s after start, before any tick) {:.1} MiB \
         (anonymous {:.1} MiB, file-backed {:.1} MiB); after the run {:.1} MiB; peak {:.1} MiB",
        args.idle_secs,
        idle_rss as f64 / 1024.0,
        idle_anon as f64 / 1024.0,
        idle_file as f64 / 1024.0,
        after_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
}

/// The host's own way in (URL parsing, vhost, frame size).
async fn connect(url: &str) -> Result<Connection, String> {
    let uri = connect::parse_url(url).map_err(|e| e.to_string())?;
    connect::connect(&uri, "amqp_latency bench")
        .await
        .map_err(|e| format!("connect: {e}"))
}

async fn measure(args: &Args) -> Result<Vec<Duration>, String> {
    let err = |e: lapin::Error| e.to_string();
    let connection = connect(&args.url).await?;
    let channel = connection.create_channel().await.map_err(err)?;
    connect::declare_exchange(&channel, &args.exchange)
        .await
        .map_err(err)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(err)?;
    let observer = channel
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
        .map_err(err)?;
    channel
        .queue_bind(
            observer.name().as_str(),
            &args.exchange,
            &format!("agent.{}.check.completed", args.agent),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    let mut results = channel
        .basic_consume(
            observer.name().as_str(),
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    let mut latencies = Vec::with_capacity(args.n);
    for i in 0..args.warmup + args.n {
        let event_id = format!("lat-{}-{i}", std::process::id());
        let body = serde_json::json!({
            "event_id": event_id, "event_type": "system.heartbeat.tick",
            "timestamp": "2025-01-01T00:00:00+00:00", "version": "1.0.0",
            "source": {"host": "bench", "type": "manual", "app": "amqp_latency"},
            "payload": {"tick_id": format!("{i:08}")}
        })
        .to_string();
        let started = Instant::now();
        channel
            .basic_publish(
                &args.exchange,
                "system.heartbeat.tick",
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .map_err(err)?;
        let deadline = started + Duration::from_secs(10);
        loop {
            let next = tokio::time::timeout_at(deadline.into(), results.next())
                .await
                .map_err(|_| format!("no result event for {event_id} within 10 s"))?;
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("observer consumer cancelled".into()),
            };
            let event: serde_json::Value =
                serde_json::from_slice(&delivery.data).map_err(|e| e.to_string())?;
            if event["correlation_ids"][0].as_str() == Some(event_id.as_str()) {
                if i >= args.warmup {
                    latencies.push(started.elapsed());
                }
                break;
            }
        }
    }
    let _ = connection.close(200, "done").await;
    Ok(latencies)
}

async fn cleanup(args: &Args) -> Result<(), String> {
    let err = |e: lapin::Error| e.to_string();
    let connection = connect(&args.url).await?;
    let channel = connection.create_channel().await.map_err(err)?;
    for queue in [
        format!("agent.{}.inbox", args.agent),
        format!("agent.{}.dlq", args.agent),
    ] {
        channel
            .queue_delete(&queue, QueueDeleteOptions::default())
            .await
            .map_err(err)?;
    }
    channel
        .exchange_delete(&args.exchange, ExchangeDeleteOptions::default())
        .await
        .map_err(err)?;
    connection.close(200, "done").await.map_err(err)
}
