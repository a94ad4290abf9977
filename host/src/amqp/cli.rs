//! Command-line pieces of broker mode: the flags `run` takes (flattened
//! into its arguments) and the `tick` subcommand.

use std::path::{Path, PathBuf};

use super::{BusError, BusOptions, DEFAULT_EXCHANGE, DEFAULT_OUTBOX_MAX, DEFAULT_PREFETCH};

/// Broker flags of `heartbeat-host run`.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/ (without one the
    /// host runs on its own timer only).
    #[arg(long, env = "RABBIT_URL")]
    pub amqp_url: Option<String>,
    /// The topic exchange ticks arrive on and events go to.
    #[arg(long, env = "EXCHANGE_NAME", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// Unacknowledged deliveries the broker may hand the host at once.
    #[arg(long, default_value_t = DEFAULT_PREFETCH, value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Where events wait while the broker is unreachable (default:
    /// `<state stem>.outbox.jsonl` beside the state file).
    #[arg(long)]
    pub outbox: Option<PathBuf>,
    /// Most events the outbox keeps; beyond it the oldest are dropped (and counted).
    #[arg(long, default_value_t = DEFAULT_OUTBOX_MAX as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub outbox_max: u64,
}

impl BusArgs {
    /// The bus options, or `None` without a URL (an empty `RABBIT_URL`
    /// counts as none).
    pub fn options(&self, state_path: &Path) -> Option<BusOptions> {
        let url = self
            .amqp_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())?;
        Some(BusOptions {
            url: url.to_string(),
            exchange: self.exchange.clone(),
            prefetch: self.prefetch,
            outbox_path: self
                .outbox
                .clone()
                .unwrap_or_else(|| super::default_outbox_path(state_path)),
            outbox_max: usize::try_from(self.outbox_max).unwrap_or(usize::MAX),
        })
    }
}

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
pub async fn run_tick(args: &TickArgs) -> Result<(), BusError> {
    let report = super::ticker::publish_ticks(&args.amqp_url, &args.exchange, args.count).await?;
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
