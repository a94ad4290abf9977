//! Builds the built-in handlers (`handlers/*`) for `wasm32-wasip2` and
//! writes `builtin_handlers.rs`, which embeds them in the host binary.
//!
//! The handlers are built by a nested `cargo build` into a target directory
//! of their own under `OUT_DIR`, so the outer build's lock is never waited
//! on. The `wasm32-wasip2` target is added with rustup when it is missing.
//!
//! The handlers only the tests use (`tests/handlers/*`) are not built here,
//! so `cargo build`, `cargo run` and `cargo install` never compile them: the
//! test binary builds them on first use (tests/e2e/support.rs), into the
//! same target directory, named to it by `HEARTBEAT_WASM_TARGET_DIR`, so
//! that it reuses the dependencies compiled here.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// The workspace profile the handlers are built with (see Cargo.toml).
const PROFILE: &str = "wasm-handlers";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // What the built-in handlers are built from: their sources, the SDK and
    // WIT they use, the lock file, and the workspace manifest, which holds
    // the `wasm-handlers` profile.
    for watched in ["handlers", "handler-sdk", "wit", "Cargo.lock", "Cargo.toml"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let handlers = handler_crates(&workspace.join("handlers"), "handler-");
    ensure_target_installed();
    let target_dir = out_dir.join("wasm-target");
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build")
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in &handlers {
        cmd.arg("-p").arg(package);
    }
    // What the outer build passes to its own rustc must not leak into a
    // build for another target (coverage flags, clippy as a wrapper, ...).
    // tests/e2e/lang_support.rs removes the same list for its nested builds.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_LLVM_COV",
        "CARGO_LLVM_COV_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the built-in handlers: {e}"));
    assert!(
        status.success(),
        "building the built-in handlers for {TARGET} failed (see the cargo output above)"
    );

    let mut generated = String::from(
        "/// The built-in handlers compiled into this binary: (name, component bytes).\n\
         pub const BUILTIN_HANDLERS: &[(&str, &[u8])] = &[\n",
    );
    for (package, name) in &handlers {
        let artifact = target_dir
            .join(TARGET)
            .join(PROFILE)
            .join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            artifact.exists(),
            "the handler build did not produce {}",
            artifact.display()
        );
        writeln!(
            generated,
            "    ({name:?}, include_bytes!({:?})),",
            artifact.display().to_string()
        )
        .expect("write to String");
    }
    generated.push_str("];\n");
    // The tests build `tests/handlers/*` into this same directory.
    println!(
        "cargo:rustc-env=HEARTBEAT_WASM_TARGET_DIR={}",
        target_dir.display()
    );
    std::fs::write(out_dir.join("builtin_handlers.rs"), generated)
        .expect("write builtin_handlers.rs");
}

/// The crates under `dir`: (package name, handler name). With prefix
/// `handler-`, `handlers/sub_health` holds package `handler-sub-health`,
/// handler `sub_health`.
fn handler_crates(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if !path.join("Cargo.toml").exists() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("handler directory name is not UTF-8: {}", path.display()))
            .to_string();
        found.push((format!("{prefix}{}", name.replace('_', "-")), name));
    }
    found.sort();
    assert!(
        !found.is_empty(),
        "no built-in handlers under {}",
        dir.display()
    );
    found
}

/// Adds the wasm32-wasip2 standard library with rustup when it is missing.
fn ensure_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists()) {
        return;
    }
    println!(
        "cargo:warning=adding the {TARGET} target with rustup (needed to build the built-in handlers)"
    );
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match added {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "`rustup target add {TARGET}` failed ({status}); install the target and build again"
        ),
        Err(e) => panic!(
            "the {TARGET} target is missing and rustup could not be run ({e}); install the target for this toolchain"
        ),
    }
}
