//! Every test of heartbeat-host, in one test binary (wasmtime and lapin are
//! linked once): one module per area. The tests run as parallel threads of
//! this one process, so none of them changes process-wide state (the
//! environment, the current directory) and each uses its own temporary
//! directory and, on the broker, its own agent and exchange names.
//!
//! Run one area with a filter: `cargo test -p heartbeat-host --test e2e -- amqp::`.

mod support;

mod agents_cli;
mod amqp;
mod builtin_checks;
mod cli;
mod clock;
mod cookbook;
mod disk;
mod endpoint;
mod fleet;
mod handler_reload;
mod house;
mod http;
mod kill;
mod kv;
mod lang_http;
mod languages;
mod liveness;
mod new;
mod probes;
mod reload;
mod sandbox;
mod schema;
mod sdk;
mod sideways;
mod special_files;
mod states;
mod systemd;
mod timer;
