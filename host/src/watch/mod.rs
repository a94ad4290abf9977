//! Hot reload: the file-system watchers, which only signal. [`config`]
//! watches `heartbeat.json` (the pure `heartbeat_core::config::reload`
//! decides what a re-read means), [`handlers`] the handler directory
//! (compiling off the tick path and swapping into the registry); both
//! collapse bursts of events with the one [`debounce`]r. The notify crate
//! is used here and nowhere else.

pub mod config;
pub mod debounce;
pub mod handlers;
