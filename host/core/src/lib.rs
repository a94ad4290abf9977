//! heartbeat-core: everything heartbeat-host decides, as pure functions of
//! values. No clock (times are passed in as ms since the epoch), no files,
//! no async runtime, no WebAssembly engine, no broker: Cargo enforces it,
//! since none of those is a dependency of this crate. The host
//! (`heartbeat-host`) does the I/O around it.
//!
//! The data's path through this crate, tick by tick:
//!
//! - [`config`] parses and validates `heartbeat.json` into a
//!   [`config::HeartbeatConfig`] (positioned errors, warnings), diffs two
//!   of them and decides what a re-read file means ([`config::reload`]);
//! - [`schedule`] plans a tick (which checks run, and why the others do
//!   not) and records a run's outcome in the [`state`];
//! - [`control`] applies control messages (pause, resume, run) to the state;
//!   [`envelope`] is the bus's wire format;
//! - [`health`], [`tick_monitor`], [`processes`] and [`beats`] are the
//!   host's liveness bookkeeping;
//! - [`explain`] turns a plan into what `heartbeat-host explain` prints.
//!
//! [`agents`] decides what a rescan of a many-agent host's files means.
//!
//! [`model`] holds the value types they share, [`time`] and [`topic`] the
//! rules used in more than one place.
//!
//! [`emit`] says what a handler may emit (and which result and control keys
//! only the host sends); [`wire`] holds the bounds of an AMQP message.
//!
//! [`clock_step`] tells a step of the wall clock from time passing, and
//! moves the schedule's instants with it.
//!
//! [`kv_store`] is the checks' key-value store files: their format, the
//! key rules and the caps (the host reads and writes the files).

#![warn(missing_docs)]

pub mod agents;
pub mod beats;
pub mod builtins;
pub mod clock_step;
pub mod config;
pub mod control;
pub mod emit;
pub mod envelope;
pub mod explain;
#[cfg(test)]
mod fuzz;
pub mod health;
pub mod http_origin;
pub mod kv_store;
pub mod model;
pub mod net;
pub mod processes;
pub mod schedule;
#[cfg(test)]
mod schedule_props;
pub mod soft_hard;
pub mod state;
pub mod tick_monitor;
pub mod time;
pub mod topic;
pub mod wire;
