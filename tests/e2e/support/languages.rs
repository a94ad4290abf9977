//! Helpers of the handler-language tests: run build scripts and
//! `heartbeat-host invoke` with a bound on their time, and read what they
//! printed.

use std::collections::HashMap;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the repository")
        .to_path_buf()
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    /// Both streams, for failure messages.
    pub fn log(&self) -> String {
        format!(
            "status: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Variables of the outer `cargo test` that must not reach a nested build
/// for another target (coverage flags, wrappers, a target directory); the
/// host's build script removes the same ones.
const CARGO_LEAKS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_LLVM_COV",
    "CARGO_LLVM_COV_TARGET_DIR",
];

/// Keeps the outer `cargo test`'s build settings away from `cmd`.
pub fn clean_cargo_env(cmd: &mut Command) {
    for var in CARGO_LEAKS {
        cmd.env_remove(var);
    }
}

/// Runs `cmd` to completion, killing it (and its children) after
/// `timeout`, when it panics with what it printed so far.
pub fn run_bounded(cmd: &mut Command, what: &str, timeout: Duration) -> Finished {
    try_run_bounded(cmd, what, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_bounded`], but a command that cannot start or does not finish in
/// time is an error (with what it printed so far), not a panic.
pub fn try_run_bounded(
    cmd: &mut Command,
    what: &str,
    timeout: Duration,
) -> Result<Finished, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills the whole build.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let drain = |stream: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        let polled = child
            .try_wait()
            .map_err(|e| format!("cannot wait for {what}: {e}"))?;
        if let Some(status) = polled {
            break status;
        }
        if Instant::now() >= deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            return Err(format!(
                "{what} did not finish within {timeout:?}; it printed:\n--- stdout\n{}\n--- stderr\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// How long a build may take: a cold Rust build compiles wit-bindgen and
/// serde; componentize-py/-js take seconds to tens of seconds on 2 cores.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// How long `invoke` may take: compiling an 18 MB Python component is the
/// slowest case (about 20 s on 2 busy cores).
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a build script (`examples/handlers/<lang>/build.sh` or a generated
/// project's) writing `out`; panics with its output unless it succeeds.
pub fn build(script: &Path, out: &Path, envs: &[(&str, &Path)]) -> PathBuf {
    let mut cmd = Command::new("bash");
    cmd.arg(script).arg(out);
    clean_cargo_env(&mut cmd);
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let started = Instant::now();
    let finished = run_bounded(&mut cmd, &script.display().to_string(), BUILD_TIMEOUT);
    assert!(
        finished.status.success(),
        "{} failed:\n{}",
        script.display(),
        finished.log()
    );
    assert!(
        std::fs::metadata(out).is_ok_and(|m| m.len() > 0),
        "{} succeeded but wrote no {}:\n{}",
        script.display(),
        out.display(),
        finished.log()
    );
    eprintln!(
        "built {} in {:.1}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    out.to_path_buf()
}

/// Builds `examples/handlers/<lang>` into `out`.
pub fn build_example(lang: &str, out: &Path) -> PathBuf {
    let script = repo_root()
        .join("examples/handlers")
        .join(lang)
        .join("build.sh");
    build(&script, out, &[])
}

/// What `heartbeat-host invoke` printed, parsed.
#[derive(Debug)]
pub struct Invoked {
    /// The process's output.
    pub finished: Finished,
    /// Its stdout as JSON.
    pub json: serde_json::Value,
}

/// Runs `heartbeat-host invoke ARGS` with its compiled-code cache under
/// `cache_home` (XDG_CACHE_HOME), and parses the JSON it prints.
pub fn invoke(args: &[&str], cache_home: &Path) -> Invoked {
    invoke_with_env(args, cache_home, &[])
}

/// [`invoke`], with `envs` set in the host's environment (what a check's
/// `grants.env` may pass on to the handler, or not).
pub fn invoke_with_env(args: &[&str], cache_home: &Path, envs: &[(&str, &str)]) -> Invoked {
    let mut cmd = Command::new(crate::support::host_bin());
    cmd.arg("invoke")
        .args(args)
        .env("XDG_CACHE_HOME", cache_home)
        .env_remove("HEARTBEAT_CACHE_DIR")
        .env_remove("HANDLERS_DIR")
        .env_remove("AGENT_NAME")
        .env("LOG_LEVEL", "warn");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let finished = run_bounded(&mut cmd, "heartbeat-host invoke", INVOKE_TIMEOUT);
    let json = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|e| panic!("invoke {args:?} printed no JSON ({e}):\n{}", finished.log()));
    Invoked { finished, json }
}

/// The events of an invocation as (type, payload) pairs.
pub fn events(invoked: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    invoked["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    (
                        e["event_type"]
                            .as_str()
                            .or_else(|| e["eventType"].as_str())
                            .or_else(|| e["type"].as_str())
                            .unwrap_or_default()
                            .to_string(),
                        e["payload"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Copies `wasm` into the handler directory `dir` as `NAME.wasm` the way a
/// deploy tool does: written beside it under another name, then renamed.
pub fn deploy(wasm: &Path, dir: &Path, name: &str) {
    let staging = dir.join(format!(".{name}.wasm.part"));
    std::fs::copy(wasm, &staging)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", wasm.display(), staging.display()));
    std::fs::rename(&staging, dir.join(format!("{name}.wasm"))).expect("rename into place");
}

/// The languages of `examples/cookbook/` (its directory names).
pub const COOKBOOK_LANGUAGES: [&str; 4] = ["python", "javascript", "c", "rust"];

/// The recipes of `examples/cookbook/`, one file each per language.
pub const COOKBOOK_RECIPES: [&str; 3] = ["file_check", "http_get", "kv_counter"];

/// `examples/cookbook/<lang>/<recipe>` built with its language's
/// `build.sh` into `target/e2e-cookbook/<lang>/<recipe>.wasm`, once per
/// test process (tests asking at the same time wait for the one build; the
/// file is renamed into place whole, so another test process never reads
/// half of it).
pub fn cookbook_recipe(lang: &str, recipe: &str) -> PathBuf {
    type Slot = Arc<OnceLock<PathBuf>>;
    static BUILT: OnceLock<Mutex<HashMap<(String, String), Slot>>> = OnceLock::new();
    let slot = {
        let mut built = BUILT
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(
            built
                .entry((lang.to_string(), recipe.to_string()))
                .or_default(),
        )
    };
    slot.get_or_init(|| {
        let script = repo_root()
            .join("examples/cookbook")
            .join(lang)
            .join("build.sh");
        let dir = repo_root().join("target/e2e-cookbook").join(lang);
        let out = dir.join(format!("{recipe}.wasm"));
        let part = dir.join(format!("{recipe}.{}.wasm.part", std::process::id()));
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(recipe).arg(&part);
        clean_cargo_env(&mut cmd);
        let what = format!("{} {recipe}", script.display());
        let finished = run_bounded(&mut cmd, &what, BUILD_TIMEOUT);
        assert!(
            finished.status.success(),
            "{what} failed:\n{}",
            finished.log()
        );
        assert!(
            std::fs::metadata(&part).is_ok_and(|m| m.len() > 0),
            "{what} wrote no {}:\n{}",
            part.display(),
            finished.log()
        );
        std::fs::rename(&part, &out).expect("rename the recipe into place");
        out
    })
    .clone()
}
