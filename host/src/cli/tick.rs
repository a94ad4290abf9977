//! `heartbeat-host tick`: publishes heartbeat ticks in heartbeat-consumer's
//! envelope, with publisher confirms, and says when no queue was bound.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::amqp::{BusError, DEFAULT_EXCHANGE};

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
}

/// Publishes the ticks; prints each confirmed tick's `event_id` on stdout
/// and a summary on stderr.
async fn run_tick(args: &TickArgs) -> Result<(), BusError> {
    let report =
        crate::amqp::ticker::publish_ticks(&args.amqp_url, &args.exchange, args.count).await?;
    for id in &report.event_ids {
        println!("{id}");
    }
    eprintln!(
        "heartbeat-host: {} tick(s) published to {} as system.heartbeat.tick",
        report.event_ids.len(),
        args.exchange
    );
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
