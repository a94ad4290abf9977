//! The state file on a file system that refuses writes: full (a small
//! tmpfs filled up) or read-only (remounted so under the running host). The
//! host keeps running its checks, says each time that the state was not
//! saved, never leaves a torn or emptied state file, and saves again once
//! the file system takes writes. These mount file systems: run as root
//! (as `tests/run.sh` does in CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{self, RunningHost, records};

const WAIT: Duration = Duration::from_secs(60);

/// A tmpfs of `size` mounted at a new directory; unmounted on drop.
struct Mounted {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Mounted {
    fn tmpfs(size: &str) -> Mounted {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).expect("mkdir");
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            path(&dir),
        ]);
        Mounted {
            dir,
            _parent: parent,
        }
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}"), path(&self.dir)]);
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

fn mount(args: &[&str]) {
    let mut cmd = Command::new("mount");
    cmd.args(args);
    let done = crate::support::languages::run_bounded(&mut cmd, "mount", Duration::from_secs(30));
    assert!(
        done.status.success(),
        "mount {args:?} failed (these tests mount a tmpfs: run them as root): {}",
        done.log()
    );
}

/// The host on its own timer (50 ms ticks), its state file `state`, with
/// one check that runs on every tick.
fn host(dir: &Path, state: &Path) -> RunningHost {
    let config = dir.join("heartbeat.json");
    std::fs::write(
        &config,
        r#"{"agent": "disk", "checks": {"every_tick": {"cadenceMs": 0}}}"#,
    )
    .expect("write config");
    support::start_on_timer(
        &config,
        "50ms",
        &["--state", path(state)],
        &[("HEARTBEAT_CACHE_DIR", path(&dir.join("cache")))],
    )
}

fn runs(lines: &[serde_json::Value]) -> usize {
    records(lines, "run_finished", &[("check", "every_tick")]).len()
}

/// Waits for three refused saves after `from`, with runs going on, and
/// checks the state file on disk is still the whole last good one.
fn refused_while_running(host: &mut RunningHost, from: usize, state: &Path, why: &str) -> usize {
    let lines = host.wait_for("three refused saves", WAIT, |l| {
        l.len() > from
            && records(&l[from..], "state_not_saved", &[]).len() >= 3
            && runs(&l[from..]) >= 3
    });
    let refused = records(&lines[from..], "state_not_saved", &[]);
    let said = support::message(refused[0]);
    assert!(said.contains(why), "{said}");
    let on_disk = support::read_json(state);
    assert!(
        on_disk["checks"]["every_tick"]["lastRun"]
            .as_u64()
            .is_some(),
        "the last good state stays whole: {on_disk}"
    );
    lines.len()
}

/// After the file system takes writes again: the state on disk moves on.
fn saved_again(host: &mut RunningHost, from: usize, state: &Path) {
    let before = support::read_json(state)["checks"]["every_tick"]["lastRun"].as_u64();
    host.wait_for("runs after the fix", WAIT, |l| {
        l.len() > from && runs(&l[from..]) >= 3
    });
    let deadline = std::time::Instant::now() + WAIT;
    while support::read_json(state)["checks"]["every_tick"]["lastRun"].as_u64() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the state was never saved again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The host with its state file on a tmpfs of `size`: after two saved
/// runs `refuse` makes the file system refuse writes (saying `why`), and
/// after three refused saves `fix` makes it take them again.
fn survives(size: &str, refuse: impl FnOnce(&Mounted), why: &str, fix: impl FnOnce(&Mounted)) {
    let mounted = Mounted::tmpfs(size);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = mounted.dir.join("heartbeat.state.json");
    let mut host = host(dir.path(), &state);
    host.wait_for("a saved state", WAIT, |l| runs(l) >= 2);
    refuse(&mounted);
    let from = host.lines().len();
    let at = refused_while_running(&mut host, from, &state, why);
    fix(&mounted);
    saved_again(&mut host, at, &state);
}

#[test]
fn a_full_disk_under_the_state_file_loses_no_run_and_no_good_state() {
    let filler = |m: &Mounted| m.dir.join("filler");
    survives(
        "64k",
        // Fill what is left.
        |m| {
            let _ = std::fs::write(filler(m), vec![b'x'; 64 * 1024]);
        },
        "No space left on device",
        |m| std::fs::remove_file(filler(m)).expect("free the space"),
    );
}

#[test]
fn a_read_only_file_system_under_the_state_file_loses_no_run_and_no_good_state() {
    survives(
        "1m",
        |m| m.remount("ro"),
        "Read-only file system",
        |m| m.remount("rw"),
    );
}
