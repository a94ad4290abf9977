//! `heartbeat-host new NAME --lang L`: the project it writes, in a fresh
//! directory outside the workspace, builds with its own build script and
//! passes `invoke` as generated, in every language; its starter's one
//! request (`meta.url`) reaches a real local server when the origin is
//! granted and is refused when it is not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support;
use crate::support::http_server::TestServer;
use crate::support::languages::{build, events, invoke, repo_root, run_bounded};

/// A generated project, built and invoked once with `{"a": 1, "b": 2}`.
struct Built {
    /// Holds the project and the compiled-code cache.
    work: tempfile::TempDir,
    /// The component its build script wrote.
    wasm: PathBuf,
    /// What the invocation printed.
    out: serde_json::Value,
}

impl Built {
    fn cache(&self) -> PathBuf {
        self.work.path().join("cache")
    }
}

/// Creates, builds and invokes a project in `lang`.
fn new_build_invoke(lang: &str, name: &str) -> Built {
    new_edit_build_invoke(lang, name, |_| {})
}

/// [`new_build_invoke`], with `edit` applied to the project before it is
/// built (a user's own code in place of the starter's).
fn new_edit_build_invoke(lang: &str, name: &str, edit: impl FnOnce(&Path)) -> Built {
    let work = tempfile::tempdir().expect("tempdir");
    let project = work.path().join("projects").join(name);
    let mut cmd = Command::new(support::host_bin());
    cmd.args(["new", name, "--lang", lang, "--dir"])
        .arg(&project)
        .env("LOG_LEVEL", "warn");
    let created = run_bounded(&mut cmd, "heartbeat-host new", Duration::from_secs(60));
    assert!(created.status.success(), "{}", created.log());
    assert!(
        created
            .stdout
            .contains(&format!("heartbeat-host invoke build/{name}.wasm")),
        "{}",
        created.log()
    );

    // The README gives the same three commands.
    let readme = std::fs::read_to_string(project.join("README.md")).expect("README.md");
    for command in [
        "./build.sh".to_string(),
        format!("heartbeat-host invoke build/{name}.wasm"),
        format!("cp build/{name}.wasm \"$HANDLERS_DIR/\""),
    ] {
        assert!(
            readme.contains(&command),
            "{lang}: README lacks {command}:\n{readme}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(project.join("wit/handler.wit")).expect("wit"),
        std::fs::read_to_string(repo_root().join("wit/handler.wit")).expect("repo wit"),
        "the project carries the host's WIT"
    );
    for entry in std::fs::read_dir(repo_root().join("wit/deps")).expect("wit/deps") {
        let dep = entry.expect("entry").path();
        let name = dep.file_name().expect("a file name");
        assert_eq!(
            std::fs::read(project.join("wit/deps").join(name)).ok(),
            std::fs::read(&dep).ok(),
            "the project carries wit/deps/{}",
            name.to_string_lossy()
        );
    }

    edit(&project);

    // A Rust project builds into a shared target directory so repeated runs
    // do not compile wit-bindgen again.
    let rust_target = repo_root().join("target/scaffold-rust");
    let envs: Vec<(&str, &Path)> = if lang == "rust" {
        vec![("CARGO_TARGET_DIR", rust_target.as_path())]
    } else {
        Vec::new()
    };
    let wasm = build(
        &project.join("build.sh"),
        &project.join(format!("build/{name}.wasm")),
        &envs,
    );

    let invoked = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--meta",
            r#"{"a": 1, "b": 2}"#,
        ],
        &work.path().join("cache"),
    );
    // 0 or 1: the handler loaded and ran (what it returned is the caller's
    // to check).
    assert!(
        matches!(invoked.finished.status.code(), Some(0 | 1)),
        "{lang}: {}",
        invoked.finished.log()
    );
    Built {
        work,
        wasm,
        out: invoked.json,
    }
}

/// The starter's request: with `meta.url` on a granted origin its status
/// and body reach the details; without the grant the run fails, naming the
/// origin the host refused; an error status is a failed run.
fn assert_the_starter_request_is_granted_or_refused(lang: &str, built: &Built) {
    let server = TestServer::start();
    let wasm = built.wasm.to_str().expect("utf-8");
    let meta = |path: &str| serde_json::json!({ "url": server.url(path) }).to_string();
    let origin = server.origin();

    let ok = meta("/ok");
    let out = invoke(
        &[wasm, "--meta", &ok, "--grant-http", &origin],
        &built.cache(),
    )
    .json;
    assert_eq!(out["status"], "success", "{lang}: {out}");
    assert_eq!(out["details"]["status"], 200, "{lang}: {out}");
    assert_eq!(
        out["details"]["excerpt"], "hello from the test server",
        "{lang}: {out}"
    );
    assert_eq!(server.requests(), ["GET /ok"], "{lang}");

    let missing = meta("/status/503");
    let out = invoke(
        &[wasm, "--meta", &missing, "--grant-http", &origin],
        &built.cache(),
    )
    .json;
    assert_eq!(out["status"], "failed", "{lang}: {out}");
    assert_eq!(
        out["error"],
        format!("GET {}: HTTP 503", server.url("/status/503")),
        "{lang}: {out}"
    );

    let out = invoke(&[wasm, "--meta", &ok], &built.cache()).json;
    assert_eq!(out["status"], "failed", "{lang}: {out}");
    assert!(
        out["error"].as_str().is_some_and(|e| e.ends_with(&format!(
            "refused by the host: http origin {origin} is not in grants.http"
        ))),
        "{lang}: {out}"
    );
    assert_eq!(
        server.requests().len(),
        2,
        "{lang}: the refused one never left"
    );
}

fn assert_starter_ran(lang: &str, name: &str, out: &serde_json::Value) {
    assert_eq!(out["status"], "success", "{lang}: {out}");
    assert_eq!(out["handler"], name, "{lang}: {out}");
    let events = events(out);
    assert_eq!(events.len(), 1, "{lang}: {out}");
    assert_eq!(events[0].0, format!("agent.local.{name}"), "{lang}: {out}");
    let logs = out["logs"].as_array().expect("logs");
    assert_eq!(logs.len(), 1, "{lang}: {out}");
    assert!(
        logs[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("runs on tick invoke-")),
        "{lang}: {out}"
    );
}

#[test]
fn new_rust_project_builds_and_invokes() {
    let built = new_build_invoke("rust", "ping_rust");
    assert_starter_ran("rust", "ping_rust", &built.out);
    assert_eq!(built.out["details"], serde_json::json!({"emitted": 1}));
    assert_the_starter_request_is_granted_or_refused("rust", &built);
}

#[test]
fn new_python_project_builds_and_invokes() {
    let built = new_build_invoke("python", "ping_python");
    assert_starter_ran("python", "ping_python", &built.out);
    assert_eq!(built.out["details"], serde_json::json!({"metaKeys": 2}));
    assert_the_starter_request_is_granted_or_refused("python", &built);
}

#[test]
fn new_js_project_builds_and_invokes() {
    let built = new_build_invoke("js", "ping_js");
    assert_starter_ran("js", "ping_js", &built.out);
    assert_eq!(built.out["details"], serde_json::json!({"metaKeys": 2}));
    assert_the_starter_request_is_granted_or_refused("js", &built);
}

#[test]
fn new_c_project_builds_and_invokes() {
    let built = new_build_invoke("c", "ping_c");
    assert_starter_ran("c", "ping_c", &built.out);
    assert_eq!(built.out["details"], serde_json::json!({"emitted": 1}));
    assert_the_starter_request_is_granted_or_refused("c", &built);
}

#[test]
fn new_js_project_reads_a_granted_directory_as_generated() {
    // The generated world imports wasi:filesystem/preopens, so a handler
    // that imports it (the cookbook's file_check) builds with the
    // project's own build script, unedited, and reads what is granted.
    let recipe = repo_root().join("examples/cookbook/javascript/file_check.js");
    let built = new_edit_build_invoke("js", "files_js", |project| {
        std::fs::copy(&recipe, project.join("handler.js")).expect("copy the recipe");
    });
    // Run with {"a": 1, "b": 2}: no meta.file, a failed run.
    assert_eq!(built.out["status"], "failed", "{}", built.out);
    let data = built.work.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("status.txt"), "OK: granted\n").expect("write");
    let grant = format!("/data={}:ro", data.display());
    let out = invoke(
        &[
            built.wasm.to_str().expect("utf-8"),
            "--grant-dir",
            &grant,
            "--meta",
            r#"{"file": "/data/status.txt", "mustContain": "OK"}"#,
        ],
        &built.cache(),
    )
    .json;
    assert_eq!(out["status"], "success", "{out}");
    assert_eq!(
        out["details"],
        serde_json::json!({"file": "/data/status.txt", "chars": 12})
    );
}

#[test]
fn drop_in_readme_port_of_the_consumers_ping_handler_answers_pong() {
    // README, "Coming from heartbeat-consumer": the port it shows is the
    // file this test builds, and it behaves as the consumer's handler did.
    let port = repo_root().join("examples/consumer-ping/app.py");
    let code = std::fs::read_to_string(&port).expect("examples/consumer-ping/app.py");
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    assert!(
        readme.contains(&format!("```python\n{code}```")),
        "the README's port differs from {}",
        port.display()
    );
    let out = new_edit_build_invoke("python", "ping", |project| {
        std::fs::copy(&port, project.join("app.py")).expect("copy the port");
    })
    .out;
    assert_eq!(out["status"], "success", "{out}");
    assert_eq!(out["handler"], "ping", "{out}");
    assert_eq!(out["details"], serde_json::json!({"message": "pong"}));
}

#[test]
fn new_refuses_a_bad_name_and_a_non_empty_directory() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(support::host_bin());
    cmd.args(["new", "Disk-Usage", "--lang", "python", "--dir"])
        .arg(work.path().join("x"));
    let refused = run_bounded(&mut cmd, "heartbeat-host new", Duration::from_secs(60));
    assert_eq!(refused.status.code(), Some(2), "{}", refused.log());
    assert!(
        refused
            .stderr
            .contains("invalid handler name \"Disk-Usage\""),
        "{}",
        refused.log()
    );
    assert!(!work.path().join("x").exists());

    std::fs::write(work.path().join("mine.txt"), "keep").expect("write");
    let mut cmd = Command::new(support::host_bin());
    cmd.args(["new", "disk", "--lang", "c", "--dir"])
        .arg(work.path());
    let refused = run_bounded(&mut cmd, "heartbeat-host new", Duration::from_secs(60));
    assert_eq!(refused.status.code(), Some(2), "{}", refused.log());
    assert!(refused.stderr.contains("is not empty"), "{}", refused.log());
    assert!(!work.path().join("handler.c").exists());
}
