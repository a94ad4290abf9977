//! The `heartbeat-host` binary: everything it does is in the library's
//! command line (`heartbeat_host::cli`).

fn main() -> std::process::ExitCode {
    heartbeat_host::cli::main()
}
