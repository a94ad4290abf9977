//! `handler-sdk` used the way a handler author outside this repository uses
//! it: a crate of its own in a temporary directory, depending on the SDK by
//! path (a git dependency resolves to the same files), built for
//! wasm32-wasip2 with plain `cargo build`, then run by `invoke` with grants:
//! one HTTP request to a real local server, a key-value counter across two
//! runs, and a granted variable.

use std::path::Path;
use std::time::Duration;

use crate::support::http_server::TestServer;
use crate::support::languages::{invoke, repo_root, run_bounded};

const LIB: &str = r#"
use handler_sdk::{Check, Handler, Outcome, Status, Tick};

struct Outside;

impl Handler for Outside {
    fn run(_tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: serde_json::Value = serde_json::from_str(&check.meta).map_err(|e| e.to_string())?;
        let url = meta["url"].as_str().ok_or("meta.url is missing")?;
        let response = handler_sdk::http::get(url)?;
        let runs = handler_sdk::kv::get("runs")?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        handler_sdk::kv::set("runs", &runs.to_string())?;
        let region = handler_sdk::env::var("REGION");
        handler_sdk::log::info(&format!("GET {url}: {}", response.status));
        Ok(Outcome::with_details(
            if response.status == 200 { Status::Success } else { Status::Failed },
            serde_json::json!({
                "status": response.status,
                "body": response.text(),
                "runs": runs,
                "region": region,
            })
            .to_string(),
        ))
    }
}

handler_sdk::export_handler!(Outside);
"#;

#[test]
fn the_sdk_builds_from_a_crate_outside_the_repository_and_its_http_kv_and_env_work() {
    let work = tempfile::tempdir().expect("tempdir");
    let project = work.path().join("outside");
    std::fs::create_dir_all(project.join("src")).expect("mkdir");
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            r#"[package]
name = "outside"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
handler-sdk = {{ path = "{}" }}
serde_json = "1"

[profile.release]
opt-level = "s"
"#,
            repo_root().join("handler-sdk").display()
        ),
    )
    .expect("manifest");
    std::fs::write(project.join("src/lib.rs"), LIB).expect("lib.rs");
    // Shared with the `new --lang rust` test, so the SDK's dependencies are
    // compiled once.
    let target = repo_root().join("target/scaffold-rust");
    let mut build =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    crate::support::languages::clean_cargo_env(&mut build);
    build
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target);
    let built = run_bounded(
        &mut build,
        "cargo build (outside crate)",
        Duration::from_secs(900),
    );
    assert!(built.status.success(), "{}", built.log());
    let wasm = target.join("wasm32-wasip2/release/outside.wasm");
    assert!(wasm.exists(), "{}", built.log());

    let server = TestServer::start();
    let kv = work.path().join("kv");
    let meta = format!(r#"{{"url": "{}"}}"#, server.url("/ok"));
    let run = |cache: &Path| {
        let mut args = vec![
            wasm.to_str().expect("utf-8"),
            "--meta",
            meta.as_str(),
            "--grant-http",
        ];
        let origin = server.origin();
        let kv_dir = kv.to_str().expect("utf-8").to_string();
        let (origin, kv_dir) = (origin.as_str(), kv_dir.as_str());
        args.extend([origin, "--grant-env", "REGION=HOME", "--kv-dir", kv_dir]);
        invoke(&args, cache)
    };
    let first = run(&work.path().join("cache"));
    assert!(first.finished.status.success(), "{}", first.finished.log());
    assert_eq!(
        first.json["details"]["body"], "hello from the test server",
        "{}",
        first.json
    );
    assert_eq!(first.json["details"]["runs"], 1, "{}", first.json);
    assert_eq!(
        first.json["details"]["region"],
        std::env::var("HOME").expect("HOME"),
        "{}",
        first.json
    );
    let second = run(&work.path().join("cache"));
    assert_eq!(second.json["details"]["runs"], 2, "{}", second.json);
}
