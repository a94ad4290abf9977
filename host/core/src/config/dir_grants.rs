//! The one rule for a directory grant whose host path is not a directory,
//! decided here for every place a config is read: `check` lists each such
//! grant as an error; `run` refuses to start on the file; a live reload
//! refuses it (`config_refused`, the last good config stays); an agents
//! directory refuses the agent's file. A grant to no directory would make
//! every run of its check fail before the handler starts, so the file is
//! wrong, not the run. (A directory that goes away after the config was
//! applied fails the runs instead, each saying so.)
//!
//! The host looks at the paths; this module only judges what it saw.

use std::path::{Path, PathBuf};

use super::{ConfigError, HeartbeatConfig, diagnostics::Locator};

/// What the host found at a granted host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathKind {
    /// A directory (or a link to one): usable.
    Directory,
    /// Something that is not a directory.
    NotADirectory,
    /// Nothing.
    Missing,
    /// It could not be looked at (the reason).
    Unreadable(String),
}

/// Every directory grant of `config` whose host path (relative paths from
/// `config_dir`) `kind_of` says is not a directory: the field
/// (`checks.NAME.grants.dirs.GUEST.path`) and what is wrong, in file order.
pub fn unusable(
    config: &HeartbeatConfig,
    config_dir: &Path,
    kind_of: impl Fn(&Path) -> PathKind,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for check in &config.checks {
        for grant in &check.grants.dirs {
            let host: PathBuf = grant.host_path_from(config_dir);
            let problem = match kind_of(&host) {
                PathKind::Directory => continue,
                PathKind::NotADirectory => "is not a directory".to_string(),
                PathKind::Missing => "does not exist".to_string(),
                PathKind::Unreadable(e) => format!("cannot be read: {e}"),
            };
            found.push((
                format!(
                    "checks.{}.grants.dirs.{}.path",
                    check.name, grant.guest_path
                ),
                format!("{} {problem}", host.display()),
            ));
        }
    }
    found
}

/// The first of [`unusable`] as a config error positioned in `text`
/// (`heartbeat.json:7:22: checks.a.grants.dirs./data.path: … does not exist`).
pub fn validate(
    text: &str,
    file: &str,
    config: &HeartbeatConfig,
    config_dir: &Path,
    kind_of: impl Fn(&Path) -> PathKind,
) -> Result<(), ConfigError> {
    match unusable(config, config_dir, kind_of).into_iter().next() {
        None => Ok(()),
        Some((field, message)) => Err(Locator::new(text, file).invalid(field, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{"checks": {"a": {"grants": {"dirs": {
        "/ok": {"path": "/srv/ok"},
        "/gone": {"path": "gone"},
        "/file": {"path": "/etc/file"}}}}}}"#;

    fn kind(path: &Path) -> PathKind {
        match path.to_str() {
            Some("/srv/ok") => PathKind::Directory,
            Some("/etc/file") => PathKind::NotADirectory,
            _ => PathKind::Missing,
        }
    }

    #[test]
    fn each_grant_to_no_directory_is_named_with_its_field_and_host_path() {
        let config = super::super::parse(TEXT, "heartbeat.json")
            .expect("valid")
            .config;
        assert_eq!(
            unusable(&config, Path::new("/agents"), kind),
            [
                (
                    "checks.a.grants.dirs./gone.path".to_string(),
                    "/agents/gone does not exist".to_string()
                ),
                (
                    "checks.a.grants.dirs./file.path".to_string(),
                    "/etc/file is not a directory".to_string()
                ),
            ]
        );
    }

    #[test]
    fn the_first_is_a_config_error_at_its_place_in_the_file() {
        let config = super::super::parse(TEXT, "heartbeat.json")
            .expect("valid")
            .config;
        let e = validate(TEXT, "heartbeat.json", &config, Path::new("/agents"), kind)
            .expect_err("refused");
        assert_eq!(
            e.to_string(),
            "heartbeat.json:3:27: checks.a.grants.dirs./gone.path: /agents/gone does not exist"
        );
        assert!(validate(TEXT, "f", &config, Path::new("/"), |_| PathKind::Directory).is_ok());
    }
}
