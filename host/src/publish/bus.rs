//! The bus as a sink: each run's emitted events, then its result event
//! `agent.{name}.check.completed`, published with confirms (see
//! [`crate::amqp::Bus::publish_run`]).

use super::{FinishedRun, Receipt, Sink};
use crate::amqp::Bus;

impl Sink for Bus {
    fn publish(&self, run: FinishedRun<'_>) -> Receipt {
        self.publish_run(
            &run.tick.envelope,
            &run.check.name,
            &run.check.handler,
            run.report,
        )
    }
}
