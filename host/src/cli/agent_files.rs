//! The agent files of an agents directory, read as `run --agents` reads
//! them: which agent each names, and which of two files naming one agent
//! the host serves (the first by name). `check --agents` and `explain
//! --agents` both read the directory through here.

use std::path::{Path, PathBuf};

use crate::daemon::Layout;
use crate::daemon::fleet::read_agent_file;
use heartbeat_core::agents::{Identity, Roster, Scanned};

/// One file of an agents directory, read as `run --agents` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AgentFile {
    /// The file.
    pub file: PathBuf,
    /// The agent it names, or why it names none (the reason names the field).
    pub identity: Result<Identity, String>,
    /// An earlier file (by name) that names the same agent: `run` serves
    /// that one and refuses this one.
    pub named_before_by: Option<PathBuf>,
}

impl AgentFile {
    /// The agent this file serves: its name, when it names one that no
    /// earlier file names.
    pub fn agent(&self) -> Option<&str> {
        match (&self.identity, &self.named_before_by) {
            (Ok(identity), None) => Some(&identity.agent),
            _ => None,
        }
    }

    /// Whether the file names `agent`, served from here or not.
    pub fn names(&self, agent: &str) -> bool {
        self.identity.as_ref().is_ok_and(|id| id.agent == agent)
    }

    /// Why `run --agents` serves no agent from this file, naming the
    /// field; `None` when it serves one.
    pub fn problem(&self) -> Option<String> {
        match (&self.identity, &self.named_before_by) {
            (Err(reason), _) => Some(reason.clone()),
            (Ok(identity), Some(first)) => Some(format!(
                "agent: {:?} is already named by {}; two files cannot serve one agent (run serves the first and refuses this one)",
                identity.agent,
                first.display()
            )),
            (Ok(_), None) => None,
        }
    }

    /// [`AgentFile::problem`] as one line naming the file.
    pub fn problem_line(&self) -> Option<String> {
        self.problem()
            .map(|reason| naming_file(&self.file, &reason))
    }

    /// The handler directory of this file's agent: its `handlersDir`
    /// (relative to the file's directory), else `fallback` (`--handlers`).
    /// The same rule as `run --agents` (`daemon::fleet::handlers_dir`); a
    /// file that names no agent is read once more for it.
    pub fn handlers_dir(&self, fallback: Option<&Path>) -> Option<PathBuf> {
        let own = match &self.identity {
            Ok(identity) => identity.handlers_dir.clone(),
            Err(_) => crate::store::load_config(&self.file)
                .ok()
                .and_then(|loaded| loaded.config.handlers_dir),
        };
        crate::daemon::fleet::handlers_dir(&self.file, own.as_deref(), fallback)
    }
}

/// `reason` prefixed with the file, unless it names it already (a parse
/// error is positioned as `FILE:LINE:COLUMN: ...`).
pub(super) fn naming_file(file: &Path, reason: &str) -> String {
    let shown = file.display().to_string();
    if reason.starts_with(&shown) {
        reason.to_string()
    } else {
        format!("{shown}: {reason}")
    }
}

/// Marks each file naming an agent that an earlier file names already,
/// with that earlier file: the files are planned as a fresh `run --agents`
/// plans them ([`Roster::plan`], files in the order listed, by name), and a
/// file that names an agent the roster serves from another file is the one
/// `run` refuses.
pub(super) fn one_file_per_agent(mut files: Vec<AgentFile>) -> Vec<AgentFile> {
    let mut roster = Roster::new(true);
    roster.plan(
        files
            .iter()
            .enumerate()
            .map(|(index, file)| Scanned {
                key: index,
                identity: file.identity.clone(),
                digest: 0,
            })
            .collect(),
    );
    let served_from: Vec<Option<usize>> = files
        .iter()
        .map(|file| {
            let identity = file.identity.as_ref().ok()?;
            roster.serving(&identity.agent).copied()
        })
        .collect();
    for (index, serving) in served_from.into_iter().enumerate() {
        if let Some(first) = serving.filter(|first| *first != index) {
            files[index].named_before_by = Some(files[first].file.clone());
        }
    }
    files
}

/// The agent files of `layout` now, each with the agent it names: listed
/// and read as `run --agents` does (`Layout::files`, `fleet::read_agent_file`).
/// An agents directory that cannot be listed is an error.
pub(super) fn agent_files(layout: &Layout) -> anyhow::Result<Vec<AgentFile>> {
    if let Some(dir) = &layout.agents_dir {
        // `Layout::files` only logs this; here it is the answer.
        crate::daemon::fleet::json_files(dir)
            .map_err(|e| anyhow::anyhow!("--agents {}: cannot list it: {e}", dir.display()))?;
    }
    let files = layout
        .files()
        .into_iter()
        .filter_map(|file| {
            // `None`: gone since it was listed.
            let (identity, _) = read_agent_file(&file)?;
            Some(AgentFile {
                file,
                identity,
                named_before_by: None,
            })
        })
        .collect();
    Ok(one_file_per_agent(files))
}

/// The files `--agent NAME` picks, or every one without it; an error
/// (exit 2) naming the directory when no file names that agent, after the
/// files that name no agent at all (one of them may be the one meant).
pub(super) fn select<'a>(
    files: &'a [AgentFile],
    agent: Option<&str>,
    dir: &Path,
) -> anyhow::Result<Vec<&'a AgentFile>> {
    let Some(name) = agent else {
        return Ok(files.iter().collect());
    };
    let picked: Vec<&AgentFile> = files.iter().filter(|f| f.names(name)).collect();
    if picked.is_empty() {
        for line in files
            .iter()
            .filter(|f| f.identity.is_err())
            .filter_map(AgentFile::problem_line)
        {
            eprintln!("error: {line}");
        }
        anyhow::bail!(
            "--agents {}: no agent file there names agent {name:?} (its `agent` field)",
            dir.display()
        );
    }
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(file: &str, agent: Result<&str, &str>) -> AgentFile {
        AgentFile {
            file: PathBuf::from(file),
            identity: agent
                .map(|a| Identity {
                    agent: a.into(),
                    handlers_dir: None,
                })
                .map_err(String::from),
            named_before_by: None,
        }
    }

    #[test]
    fn a_second_file_naming_an_agent_is_refused_naming_the_first() {
        let files = one_file_per_agent(vec![
            named("d/a.json", Ok("a")),
            named("d/b.json", Ok("b")),
            named("d/c.json", Err("agent: required")),
            named("d/d.json", Ok("b")),
            named("d/e.json", Ok("b")),
        ]);
        let served: Vec<Option<&str>> = files.iter().map(AgentFile::agent).collect();
        assert_eq!(served, [Some("a"), Some("b"), None, None, None]);
        assert_eq!(files[3].named_before_by, Some(PathBuf::from("d/b.json")));
        assert_eq!(files[4].named_before_by, Some(PathBuf::from("d/b.json")));
        assert_eq!(
            files[3].problem_line().as_deref(),
            Some(
                "d/d.json: agent: \"b\" is already named by d/b.json; two files cannot serve one agent (run serves the first and refuses this one)"
            )
        );
        assert_eq!(
            files[2].problem_line().as_deref(),
            Some("d/c.json: agent: required")
        );
        assert!(files[3].names("b") && !files[3].names("a"));
        assert_eq!(files[0].problem(), None);
    }

    #[test]
    fn a_reason_that_names_its_file_is_not_prefixed_twice() {
        let file = Path::new("d/a.json");
        assert_eq!(
            naming_file(file, "d/a.json:1:2: agent: x"),
            "d/a.json:1:2: agent: x"
        );
        assert_eq!(naming_file(file, "agent: x"), "d/a.json: agent: x");
    }

    #[test]
    fn an_agents_handlers_dir_is_relative_to_its_file_else_the_flag() {
        let mut file = named("/srv/agents/a.json", Ok("a"));
        let flag = Path::new("/h");
        assert_eq!(file.handlers_dir(Some(flag)), Some(PathBuf::from("/h")));
        assert_eq!(file.handlers_dir(None), None);
        if let Ok(identity) = &mut file.identity {
            identity.handlers_dir = Some("handlers/a".into());
        }
        assert_eq!(
            file.handlers_dir(Some(flag)),
            Some(PathBuf::from("/srv/agents/handlers/a"))
        );
    }

    #[test]
    fn agent_files_reads_each_json_file_of_the_directory_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
        };
        write(
            "b.json",
            r#"{"agent": "b", "handlersDir": "hb", "checks": {}}"#,
        );
        write("a.json", r#"{"agent": "a", "checks": {}}"#);
        write("none.json", r#"{"checks": {}}"#);
        write("twin.json", r#"{"agent": "a", "checks": {}}"#);
        write("notes.txt", "not an agent");
        write(".hidden.json", r#"{"agent": "h", "checks": {}}"#);
        std::fs::create_dir(dir.path().join("state")).expect("state dir");
        let layout = Layout {
            agents_dir: Some(dir.path().to_path_buf()),
            ..Layout::default()
        };
        let files = agent_files(&layout).expect("listed");
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                f.file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(names, ["a.json", "b.json", "none.json", "twin.json"]);
        assert_eq!(files[1].handlers_dir(None), Some(dir.path().join("hb")));
        assert!(
            files[2]
                .problem()
                .is_some_and(|p| p.starts_with("agent: required")),
            "{:?}",
            files[2]
        );
        assert_eq!(files[3].named_before_by, Some(dir.path().join("a.json")));
        let picked = select(&files, Some("a"), dir.path()).expect("a is named");
        assert_eq!(picked.len(), 2, "the file serving a, then its twin");
        let missing = select(&files, Some("zz"), dir.path()).expect_err("no zz");
        assert!(
            missing
                .to_string()
                .contains(&format!("--agents {}: no agent file", dir.path().display())),
            "{missing}"
        );
        let gone = Layout {
            agents_dir: Some(dir.path().join("nope")),
            ..Layout::default()
        };
        assert!(agent_files(&gone).is_err());
    }
}
