//! heartbeat-host: keeps an agent's periodic checks running.
//!
//! On every heartbeat tick the host reads the agent's `heartbeat.json`
//! ([`config`]), picks the most overdue check ([`schedule`]), runs its
//! handler, a WebAssembly component, in a sandbox ([`runtime`]) and records
//! the outcome in its state file ([`state`]). [`daemon`] wires these
//! together; the `heartbeat-host` binary is a thin command line over it.

#![warn(missing_docs)]

pub mod amqp;
pub mod beats;
pub mod config;
pub mod config_watch;
pub mod daemon;
pub mod explain;
pub mod grants;
pub mod handler_watch;
pub mod health;
pub mod invoke;
pub mod liveness;
pub mod preflight;
pub mod processes;
pub mod registry;
pub mod runtime;
pub mod scaffold;
pub mod schedule;
#[cfg(test)]
mod schedule_props;
pub mod state;
pub mod status;
pub mod tick;
pub mod tick_monitor;
