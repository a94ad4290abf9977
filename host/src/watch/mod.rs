//! Hot reload: the file-system watchers. [`config`] watches
//! `heartbeat.json` and only signals (the daemon reads the file, the pure
//! `heartbeat_core::config::reload` decides what it means); [`handlers`]
//! watches the handler directory, compiling changed files off the tick
//! path and swapping them into the registry, and tells its caller what
//! each file came to. Both collapse bursts of events with the one
//! [`debounce`]r. Neither records metrics: the daemon does, from what they
//! say.

pub mod config;
pub mod debounce;
pub mod handlers;
