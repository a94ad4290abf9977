//! `write-wasi-adapter PATH`: writes the WASI preview1 *reactor* adapter
//! (`wasi_snapshot_preview1.reactor.wasm`) to PATH.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: write-wasi-adapter PATH");
        return ExitCode::from(2);
    };
    let bytes = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    match std::fs::write(&path, bytes) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "write-wasi-adapter: cannot write {}: {e}",
                std::path::Path::new(&path).display()
            );
            ExitCode::FAILURE
        }
    }
}
