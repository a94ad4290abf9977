//! `heartbeat-host tick`: publishes heartbeat ticks in heartbeat-consumer's
//! envelope, with publisher confirms, and says when no queue was bound.

use std::process::ExitCode;

use std::io::Write as _;

use anyhow::Context as _;

use crate::amqp::DEFAULT_EXCHANGE;

/// `heartbeat-host tick`.
#[derive(Debug, Clone, clap::Args)]
pub struct TickArgs {
    /// RabbitMQ URL.
    #[arg(long, env = "RABBIT_URL")]
    pub amqp_url: String,
    /// The topic exchange.
    #[arg(long, env = "EXCHANGE_NAME", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// How many ticks to publish.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Most ticks awaiting the broker's confirm at once (publishes are
    /// pipelined up to this window).
    #[arg(long, default_value_t = crate::amqp::ticker::DEFAULT_IN_FLIGHT as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub in_flight: u64,
    /// Also print on stderr the publish rate achieved (confirmed ticks per
    /// second, first publish to last confirm) and this process's CPU per tick.
    #[arg(long)]
    pub stats: bool,
}

/// Publishes the ticks; prints each confirmed tick's `event_id` on stdout
/// (as its confirm arrives) and a summary on stderr.
async fn run_tick(args: &TickArgs) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut write_error = None;
    let in_flight = usize::try_from(args.in_flight).unwrap_or(usize::MAX);
    let report = crate::amqp::ticker::publish_ticks(
        &args.amqp_url,
        &args.exchange,
        args.count,
        in_flight,
        |id| {
            if write_error.is_none()
                && let Err(e) = writeln!(out, "{id}")
            {
                write_error = Some(e);
            }
        },
    )
    .await?;
    if let Some(e) = write_error {
        return Err(e).context("cannot write the ticks' event ids to stdout");
    }
    out.flush()
        .context("cannot write the ticks' event ids to stdout")?;
    eprintln!(
        "heartbeat-host: {} tick(s) published to {} as system.heartbeat.tick",
        report.confirmed, args.exchange
    );
    if args.stats {
        let cpu = report
            .cpu_us_per_tick()
            .map_or_else(|| "unknown".to_string(), |us| format!("{us:.1} µs"));
        eprintln!(
            "heartbeat-host: publish rate {:.0} ticks/s ({} confirmed in {:.3} s, at most {} in flight); CPU {cpu} per tick",
            report.ticks_per_s(),
            report.confirmed,
            report.elapsed.as_secs_f64(),
            in_flight
        );
    }
    if report.unroutable > 0 {
        eprintln!(
            "heartbeat-host: warning: {} tick(s) reached no queue (no agent inbox is bound to system.heartbeat.# on {})",
            report.unroutable, args.exchange
        );
    }
    Ok(())
}

/// Runs `tick` on a runtime of its own.
pub(super) fn execute(args: &TickArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_tick(args))?;
    Ok(ExitCode::SUCCESS)
}
