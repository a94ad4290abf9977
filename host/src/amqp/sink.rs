//! The bus as a sink: each run's emitted events, then its result event
//! `agent.{name}.check.completed`, published with confirms (see
//! [`Bus::publish_run`]). Here rather than in `publish`, so that the
//! publish room knows no transport.

use super::Bus;
use crate::publish::{FinishedRun, Receipt, Sink};

impl Sink for Bus {
    fn publish(&self, run: FinishedRun<'_>) -> Receipt {
        self.publish_run(
            &run.tick.envelope,
            &run.check.name,
            &run.check.handler,
            run.report,
            run.verdict,
        )
    }
}
