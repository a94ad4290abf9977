//! Shared helpers of the end-to-end tests: start the real `heartbeat-host`
//! binary with JSON logs (`LOG_FORMAT=json`), collect and parse its log
//! lines, wait for them with a bound or watch that something stays
//! absent over a window; write the `heartbeat.json` a test runs on; and
//! find the handlers built for `wasm32-wasip2`, building the test handlers
//! (`tests/handlers/*`) on first use. The host on a broker is
//! [`broker::start_connected`]; the sandbox in-process is [`runtime`].
//!
//! A log line is kept as a [`serde_json::Value`]: the record as the host
//! wrote it (an object: `timestamp`, `level`, `message`, `event` where the
//! line is one of the host's named events, and its fields), or, for a line
//! that is not a JSON object (a panic message, something on stdout), the
//! raw text as a JSON string, so that a failure still shows everything.
//! Match records by [`event`] and [`field`], not by their English message.

pub(crate) mod broker;
pub(crate) mod http_server;
pub(crate) mod languages;
pub(crate) mod runtime;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub fn host_bin() -> &'static str {
    env!("CARGO_BIN_EXE_heartbeat-host")
}

/// A running host whose stderr (and stdout) is collected line by line,
/// parsed; killed on drop.
pub struct RunningHost {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl RunningHost {
    /// Starts `heartbeat-host` with `args`, `LOG_FORMAT=json` and
    /// `LOG_LEVEL=info` unless `envs` says otherwise.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> RunningHost {
        Self::start_with(Command::new(host_bin()), args, envs)
    }

    /// [`RunningHost::start`] through another program that runs the host
    /// (`prlimit --nofile=300 HOST …`): `args` are that program's.
    pub fn start_program(program: &str, args: &[&str], envs: &[(&str, &str)]) -> RunningHost {
        Self::start_with(Command::new(program), args, envs)
    }

    /// [`RunningHost::start`] with `cwd` as the working directory.
    pub fn start_in(cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> RunningHost {
        let mut cmd = Command::new(host_bin());
        cmd.current_dir(cwd);
        Self::start_with(cmd, args, envs)
    }

    fn start_with(mut cmd: Command, args: &[&str], envs: &[(&str, &str)]) -> RunningHost {
        cmd.args(args)
            .env("LOG_LEVEL", "info")
            .env("LOG_FORMAT", "json")
            .env_remove("HEARTBEAT_PATH")
            .env_remove("AGENT_NAME")
            .env_remove("HANDLERS_DIR")
            .env_remove("RABBIT_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start heartbeat-host");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(parse_line(line));
                }
            });
        }
        RunningHost { child, lines }
    }

    /// A copy of every line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().expect("lines").clone()
    }

    /// The log so far, one line per record.
    pub fn log(&self) -> String {
        render(&self.lines())
    }

    /// Waits until `done` holds for the lines so far; panics with the log after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines();
            if done(&lines) {
                return lines;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "heartbeat-host exited ({status}) before {what}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; log:\n{}",
                render(&lines)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a record of `name` whose string fields are `fields` (see
    /// [`is`]); returns the lines so far.
    pub fn wait_for_event(
        &mut self,
        name: &str,
        fields: &[(&str, &str)],
        timeout: Duration,
    ) -> Vec<Value> {
        let what = format!("event {name} with {fields:?}");
        self.wait_for(&what, timeout, |l| l.iter().any(|r| is(r, name, fields)))
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.wait(timeout)
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "heartbeat-host did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Watches the lines for `window`: panics with the log the moment
    /// `holds` stops holding for them (or the process exits), naming
    /// `what`. The negative check of something that must not happen,
    /// failing as soon as it does instead of looking once after a sleep.
    pub fn holds_for(&mut self, window: Duration, what: &str, holds: impl Fn(&[Value]) -> bool) {
        let started = Instant::now();
        loop {
            let lines = self.lines();
            assert!(
                holds(&lines),
                "{what} stopped holding {:?} into {window:?}; log:\n{}",
                started.elapsed(),
                render(&lines)
            );
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "heartbeat-host exited ({status}) while {what} was to hold; log:\n{}",
                    self.log()
                );
            }
            if started.elapsed() >= window {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`RunningHost::holds_for`]: no record of event `name` with the
    /// string fields `fields` (see [`is`]) comes for `window`.
    pub fn assert_no_event_for(&mut self, window: Duration, name: &str, fields: &[(&str, &str)]) {
        let what = format!("no event {name} with {fields:?}");
        self.holds_for(window, &what, |l| records(l, name, fields).is_empty());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `heartbeat-host run --config CONFIG ARGS…` with `envs` (see
/// [`RunningHost::start`]).
pub fn start_run(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> RunningHost {
    let config = config.to_str().expect("utf-8 config path");
    RunningHost::start(&[&["run", "--config", config], args].concat(), envs)
}

/// `heartbeat-host run --config CONFIG --tick-interval INTERVAL EXTRA…`
/// with `envs`: the host on its own timer (no broker unless `extra` names
/// one).
pub fn start_on_timer(
    config: &Path,
    interval: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> RunningHost {
    start_run(
        config,
        &[&["--tick-interval", interval], extra].concat(),
        envs,
    )
}

/// A JSON object as it is; anything else as the raw text.
fn parse_line(line: String) -> Value {
    match serde_json::from_str::<Value>(&line) {
        Ok(record @ Value::Object(_)) => record,
        _ => Value::String(line),
    }
}

/// The `event` of a log record; `None` for a record without one and for raw text.
pub fn event(line: &Value) -> Option<&str> {
    field(line, "event")
}

/// The string value of field `key` of a log record (fields the host
/// writes with `%` and the `message`); `None` when it is absent or not a
/// string (see [`number`]).
pub fn field<'a>(line: &'a Value, key: &str) -> Option<&'a str> {
    line.get(key)?.as_str()
}

/// The integer value of field `key` of a log record (`events`, `checks`,
/// the counters of `bus_stopped`, ...).
pub fn number(line: &Value, key: &str) -> Option<u64> {
    line.get(key)?.as_u64()
}

/// The message of a log record; "" for raw text.
pub fn message(line: &Value) -> &str {
    field(line, "message").unwrap_or("")
}

/// The `details` of a `run_finished` record: a string holding JSON, parsed.
pub fn details(line: &Value) -> Option<Value> {
    serde_json::from_str(field(line, "details")?).ok()
}

/// Whether `line` is a record of event `name` whose string fields `key`
/// equal `value` for each of `fields`.
pub fn is(line: &Value, name: &str, fields: &[(&str, &str)]) -> bool {
    event(line) == Some(name) && fields.iter().all(|(k, v)| field(line, k) == Some(*v))
}

/// The records of event `name` with the string fields `fields` (see [`is`]).
pub fn records<'a>(lines: &'a [Value], name: &str, fields: &[(&str, &str)]) -> Vec<&'a Value> {
    lines.iter().filter(|l| is(l, name, fields)).collect()
}

/// The value of field `key` in every record of `name`, in order.
pub fn values<'a>(lines: &'a [Value], name: &str, key: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| event(l) == Some(name))
        .filter_map(|l| field(l, key))
        .collect()
}

/// The line as the host wrote it: the record's JSON text, or the raw text.
pub fn text(line: &Value) -> String {
    match line {
        Value::String(raw) => raw.clone(),
        record => record.to_string(),
    }
}

/// One readable line per record: time, level, `[event]`, message, then
/// the other fields as `key=value`; raw text as it came.
pub fn render(lines: &[Value]) -> String {
    lines.iter().map(render_line).collect::<Vec<_>>().join("\n")
}

/// One record as [`render`] shows it.
pub fn render_line(line: &Value) -> String {
    let Value::Object(record) = line else {
        return text(line);
    };
    let plain = |v: &Value| match v {
        Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.clone(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let mut out = String::new();
    for key in ["timestamp", "level"] {
        if let Some(v) = record.get(key) {
            out.push_str(&plain(v));
            out.push(' ');
        }
    }
    if let Some(name) = record.get("event") {
        out.push_str(&format!("[{}] ", plain(name)));
    }
    out.push_str(record.get("message").and_then(Value::as_str).unwrap_or(""));
    for (key, value) in record {
        if !matches!(key.as_str(), "timestamp" | "level" | "event" | "message") {
            out.push_str(&format!(" {key}={}", plain(value)));
        }
    }
    out
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Writes `value` to `path` as pretty-printed JSON.
pub fn write_json(path: &Path, value: &Value) {
    let text = serde_json::to_vec_pretty(value).expect("serialise");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `dir/heartbeat.json` for agent `agent` with `checks` (a JSON object of
/// check name to check), marked with the schema (`$schema`); its path.
pub fn write_config(dir: &Path, agent: &str, checks: Value) -> PathBuf {
    write_config_as(&dir.join("heartbeat.json"), agent, checks)
}

/// [`write_config`] at `path`, for a test that keeps several configs
/// side by side.
pub fn write_config_as(path: &Path, agent: &str, checks: Value) -> PathBuf {
    let config = serde_json::json!({"$schema": "heartbeat.v1", "agent": agent, "checks": checks});
    write_json(path, &config);
    path.to_path_buf()
}

/// The wasm target and profile the host's build script builds handlers with.
const WASM_TARGET: &str = "wasm32-wasip2";
const WASM_PROFILE: &str = "wasm-handlers";

/// How long building the test handlers may take: their dependencies are
/// compiled already (by the host's build script, into the same target
/// directory); a few minutes covers a cold start on 2 busy cores.
const TEST_HANDLER_BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// `NAME.wasm` of a handler built for `wasm32-wasip2`: the built-ins
/// (`handler_default.wasm`, built by the host's build script) or the test
/// handlers (`test_handler_hostile.wasm`), which the first call builds.
pub fn test_handler(file: &str) -> PathBuf {
    test_handlers_dir().join(file)
}

/// `dir/handlers`, created if need be, holding the built handler `file`
/// (see [`test_handler`]) as handler `name` (`name.wasm`); the directory.
pub fn handlers_with(dir: &Path, file: &str, name: &str) -> PathBuf {
    let handlers = dir.join("handlers");
    std::fs::create_dir_all(&handlers).expect("create the handler directory");
    std::fs::copy(test_handler(file), handlers.join(format!("{name}.wasm")))
        .unwrap_or_else(|e| panic!("copy {file} as {name}.wasm: {e}"));
    handlers
}

/// The directory of the handlers built for `wasm32-wasip2`, with the test
/// handlers (`tests/handlers/*`) built into it on the first call; panics
/// naming the build command when that build fails.
pub fn test_handlers_dir() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build_test_handlers) {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// Builds every crate of `tests/handlers/` with the build script's
/// profile, target and target directory, so that the dependencies it
/// compiled are reused; the directory of the artifacts.
fn build_test_handlers() -> Result<PathBuf, String> {
    let workspace = crate::support::languages::repo_root();
    let target_dir = PathBuf::from(env!("HEARTBEAT_WASM_TARGET_DIR"));
    let packages = test_handler_packages(&workspace.join("tests/handlers"))?;
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--profile")
        .arg(WASM_PROFILE)
        .arg("--target")
        .arg(WASM_TARGET)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for package in &packages {
        cmd.arg("-p").arg(package);
    }
    crate::support::languages::clean_cargo_env(&mut cmd);
    let shown = format!("{cmd:?}");
    let started = Instant::now();
    let finished =
        crate::support::languages::try_run_bounded(&mut cmd, &shown, TEST_HANDLER_BUILD_TIMEOUT)
            .map_err(|e| format!("building the test handlers failed: {e}"))?;
    if !finished.status.success() {
        return Err(format!(
            "building the test handlers failed: {shown}\n{}",
            finished.log()
        ));
    }
    let dir = target_dir.join(WASM_TARGET).join(WASM_PROFILE);
    for package in &packages {
        let artifact = dir.join(format!("{}.wasm", package.replace('-', "_")));
        if !artifact.exists() {
            return Err(format!(
                "{shown} succeeded but wrote no {}:\n{}",
                artifact.display(),
                finished.log()
            ));
        }
    }
    eprintln!(
        "built the test handlers {packages:?} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(dir)
}

/// The packages under `dir`: `tests/handlers/hostile` holds
/// `test-handler-hostile`, as the host's build script names its crates.
fn test_handler_packages(dir: &Path) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut packages: Vec<String> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").exists())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.replace('_', "-");
            Some(format!("test-handler-{name}"))
        })
        .collect();
    packages.sort();
    if packages.is_empty() {
        return Err(format!("no test handlers under {}", dir.display()));
    }
    Ok(packages)
}
