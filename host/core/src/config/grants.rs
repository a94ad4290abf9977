//! Capability grants of a check (`"grants"` in `heartbeat.json`): what a
//! handler may touch beyond its own memory. Nothing is granted by default.
//!
//! ```json
//! "grants": {
//!   "dirs": {"/data": {"path": "/var/lib/agent/memory", "readOnly": false}},
//!   "emit": ["alerts.#"]
//! }
//! ```

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use super::objects_only::objects_only;

/// The validated grants of one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Directories the handler sees, in file order.
    pub dirs: Vec<DirGrantConfig>,
    /// Event-type patterns (AMQP topic syntax) the handler may emit beyond
    /// its own `agent.<agent>.` namespace.
    pub emit: Vec<String>,
    /// Host environment variables the handler sees, in file order.
    pub env: Vec<EnvGrant>,
    /// Secrets the handler sees as environment variables, read from files
    /// at each run; their values never reach a log, an event or the state.
    pub secrets: Vec<SecretGrant>,
    /// TCP/UDP peers the handler may connect or send to.
    pub net: Vec<crate::net::NetPattern>,
    /// Origins the handler may send HTTP requests to (`wasi:http`).
    pub http: Vec<HttpGrant>,
}

impl Grants {
    /// `own` (a check's grants) on top of these (the file's
    /// `defaults.grants`): the check gets both. Where both name the same
    /// guest path, variable or secret, the check's own wins; patterns, peers
    /// and origins are the union, each once.
    pub fn under(&self, own: Grants) -> Grants {
        let named = |name: &str| {
            own.env.iter().any(|e| e.guest == name) || own.secrets.iter().any(|s| s.name == name)
        };
        let mut merged = Grants {
            dirs: self
                .dirs
                .iter()
                .filter(|d| !own.dirs.iter().any(|o| o.guest_path == d.guest_path))
                .cloned()
                .collect(),
            emit: self.emit.clone(),
            env: self
                .env
                .iter()
                .filter(|e| !named(&e.guest))
                .cloned()
                .collect(),
            secrets: self
                .secrets
                .iter()
                .filter(|s| !named(&s.name))
                .cloned()
                .collect(),
            net: self.net.clone(),
            http: self.http.clone(),
        };
        merged.dirs.extend(own.dirs);
        merged.env.extend(own.env);
        merged.secrets.extend(own.secrets);
        for pattern in own.emit {
            if !merged.emit.contains(&pattern) {
                merged.emit.push(pattern);
            }
        }
        for peer in own.net {
            if !merged.net.contains(&peer) {
                merged.net.push(peer);
            }
        }
        for origin in own.http {
            if !merged.http.contains(&origin) {
                merged.http.push(origin);
            }
        }
        merged
    }
}

/// One granted HTTP origin, with the extra CA bundle its TLS connections
/// also trust, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// The origin pattern.
    pub origin: crate::http_origin::HttpOrigin,
    /// A PEM file of CA certificates trusted for this origin besides the
    /// bundled web roots and the system's, as written (relative to the
    /// config's directory, as for `dirs`).
    pub ca_file: Option<PathBuf>,
}

impl HttpGrant {
    /// The CA file, resolving a relative path against `config_dir`.
    pub fn ca_file_from(&self, config_dir: &Path) -> Option<PathBuf> {
        self.ca_file.as_ref().map(|file| {
            if file.is_absolute() {
                file.clone()
            } else {
                config_dir.join(file)
            }
        })
    }
}

/// One `grants.http` entry as written: an origin, or
/// `{"origin": ..., "caFile": ...}`.
#[derive(Debug)]
enum RawHttp {
    Origin(String),
    WithCa(RawHttpWithCa),
}

impl<'de> Deserialize<'de> for RawHttp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawHttp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "an origin such as \"https://api.example.com\", or {\"origin\": ..., \"caFile\": ...}",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawHttp, E> {
                Ok(RawHttp::Origin(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawHttp, A::Error> {
                RawHttpWithCa::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawHttp::WithCa)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHttpWithCa {
    origin: String,
    #[serde(default)]
    ca_file: Option<String>,
}

/// One granted secret: the handler reads the content of `file` (trailing
/// newline removed) as the environment variable `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretGrant {
    /// The variable the handler reads.
    pub name: String,
    /// The file holding the value, as written (relative paths are relative
    /// to the config's directory, as for `dirs`).
    pub file: PathBuf,
}

impl SecretGrant {
    /// The file, resolving a relative path against `config_dir`.
    pub fn file_from(&self, config_dir: &Path) -> PathBuf {
        if self.file.is_absolute() {
            self.file.clone()
        } else {
            config_dir.join(&self.file)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    file: String,
}

/// One granted environment variable: the handler sees the host's `host`
/// under the name `guest` (the same name unless the grant renames it).
/// Only the names are configuration; the value is read at each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvGrant {
    /// The name the handler reads.
    pub guest: String,
    /// The host variable it comes from.
    pub host: String,
}

/// `grants.env` as written: `["API_TOKEN"]`, or `{"TOKEN": "ACME_API_TOKEN"}`
/// (guest name → host name).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawEnv {
    Names(Vec<String>),
    Renamed(IndexMap<String, String>),
}

impl Default for RawEnv {
    fn default() -> RawEnv {
        RawEnv::Names(Vec::new())
    }
}

/// Whether `name` is a portable environment variable name
/// (`[A-Za-z_][A-Za-z0-9_]*`).
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One granted directory, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrantConfig {
    /// The absolute path the handler opens, e.g. `/data`.
    pub guest_path: String,
    /// The host directory, as written (relative paths are relative to the
    /// config file's directory; see [`DirGrantConfig::host_path_from`]).
    pub host_path: PathBuf,
    /// Whether writes are refused.
    pub read_only: bool,
}

impl DirGrantConfig {
    /// The host directory, resolving a relative path against `config_dir`.
    pub fn host_path_from(&self, config_dir: &Path) -> PathBuf {
        if self.host_path.is_absolute() {
            self.host_path.clone()
        } else {
            config_dir.join(&self.host_path)
        }
    }
}

objects_only!(RawGrants, RawDirGrant);

/// `grants` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", remote = "Self")]
pub(crate) struct RawGrants {
    #[serde(default)]
    dirs: IndexMap<String, RawDirGrant>,
    #[serde(default)]
    emit: Vec<String>,
    #[serde(default)]
    env: RawEnv,
    #[serde(default)]
    secrets: IndexMap<String, RawSecret>,
    #[serde(default)]
    net: Vec<String>,
    #[serde(default)]
    http: Vec<RawHttp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", remote = "Self")]
struct RawDirGrant {
    path: String,
    #[serde(default)]
    read_only: bool,
    /// The one way to grant the whole file system (`"path": "/"`).
    #[serde(default)]
    allow_root: bool,
}

/// System directories a read-write grant is warned about: a handler can
/// change the host machine through them. Their subdirectories count too.
const SYSTEM_DIRS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root", "/sbin", "/sys",
    "/usr",
];
/// Directories warned about only as themselves (`/var/lib/agent` is the
/// usual home of an agent's data; `/var` whole is not).
const SYSTEM_DIRS_EXACT: &[&str] = &["/home", "/opt", "/run", "/srv", "/tmp", "/var"];

/// `path` resolved lexically (`//`, `.`, `..` and trailing `/` removed),
/// when it is absolute; relative paths are relative to the config's
/// directory, which only the host knows.
fn normalized(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Whether `path` (normalized) is a system directory a read-write grant
/// should be warned about.
fn is_system_dir(path: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
        || SYSTEM_DIRS_EXACT.iter().any(|dir| path == Path::new(dir))
}

impl RawGrants {
    /// Validates; errors are (field path below `grants`, message), and so
    /// are the warnings pushed to `warnings` (a read-write grant of a
    /// system directory).
    pub(crate) fn validate(
        self,
        warnings: &mut Vec<(String, String)>,
    ) -> Result<Grants, (String, String)> {
        let mut dirs = Vec::with_capacity(self.dirs.len());
        for (guest, raw) in self.dirs {
            if !guest.starts_with('/') || guest.split('/').any(|part| part == "..") {
                return Err((
                    format!("dirs.{guest}"),
                    format!("expected an absolute guest path such as \"/data\", found {guest:?}"),
                ));
            }
            if raw.path.is_empty() {
                return Err((
                    format!("dirs.{guest}.path"),
                    "expected a host directory, found \"\"".into(),
                ));
            }
            if let Some(host) = normalized(Path::new(&raw.path)) {
                if host == Path::new("/") && !raw.allow_root {
                    return Err((
                        format!("dirs.{guest}.path"),
                        format!(
                            "{:?} grants the whole file system; name a directory, or add \"allowRoot\": true if that is really meant",
                            raw.path
                        ),
                    ));
                }
                if !raw.read_only && (host == Path::new("/") || is_system_dir(&host)) {
                    warnings.push((
                        format!("dirs.{guest}.path"),
                        format!(
                            "DANGER: {:?} is a system directory granted read-write: the handler can change the host machine through it; set \"readOnly\": true unless it must write there",
                            raw.path
                        ),
                    ));
                }
            }
            dirs.push(DirGrantConfig {
                guest_path: guest,
                host_path: PathBuf::from(raw.path),
                read_only: raw.read_only,
            });
        }
        for (i, pattern) in self.emit.iter().enumerate() {
            if !crate::topic::is_pattern(pattern) {
                return Err((
                    format!("emit[{i}]"),
                    format!(
                        "expected a routing-key pattern such as \"alerts.#\", found {pattern:?}"
                    ),
                ));
            }
        }
        let pairs: Vec<(String, String, String)> = match self.env {
            RawEnv::Names(names) => names
                .into_iter()
                .enumerate()
                .map(|(i, n)| (format!("env[{i}]"), n.clone(), n))
                .collect(),
            RawEnv::Renamed(map) => map
                .into_iter()
                .map(|(guest, host)| (format!("env.{guest}"), guest, host))
                .collect(),
        };
        let mut env = Vec::with_capacity(pairs.len());
        for (field, guest, host) in pairs {
            for name in [&guest, &host] {
                if !is_env_name(name) {
                    return Err((
                        field,
                        format!(
                            "expected an environment variable name such as \"API_TOKEN\", found {name:?}"
                        ),
                    ));
                }
            }
            env.push(EnvGrant { guest, host });
        }
        let mut secrets = Vec::with_capacity(self.secrets.len());
        for (name, raw) in self.secrets {
            if !is_env_name(&name) {
                return Err((
                    format!("secrets.{name}"),
                    format!(
                        "expected an environment variable name such as \"DB_PASSWORD\", found {name:?}"
                    ),
                ));
            }
            if raw.file.is_empty() {
                return Err((
                    format!("secrets.{name}.file"),
                    "expected the path of the file holding the secret, found \"\"".into(),
                ));
            }
            if env.iter().any(|e| e.guest == name) {
                return Err((
                    format!("secrets.{name}"),
                    format!("{name} is granted in env too; a name comes from one place"),
                ));
            }
            secrets.push(SecretGrant {
                name,
                file: PathBuf::from(raw.file),
            });
        }
        let mut net = Vec::with_capacity(self.net.len());
        for (i, text) in self.net.iter().enumerate() {
            net.push(crate::net::NetPattern::parse(text).map_err(|e| (format!("net[{i}]"), e))?);
        }
        let mut http = Vec::with_capacity(self.http.len());
        for (i, raw) in self.http.into_iter().enumerate() {
            let (text, ca_file, field) = match raw {
                RawHttp::Origin(text) => (text, None, format!("http[{i}]")),
                RawHttp::WithCa(RawHttpWithCa { origin, ca_file }) => {
                    (origin, ca_file, format!("http[{i}].origin"))
                }
            };
            let origin = crate::http_origin::HttpOrigin::parse(&text).map_err(|e| (field, e))?;
            if ca_file.as_deref() == Some("") {
                return Err((
                    format!("http[{i}].caFile"),
                    "expected the path of a PEM file of CA certificates, found \"\"".into(),
                ));
            }
            if ca_file.is_some() && !origin.https {
                return Err((
                    format!("http[{i}].caFile"),
                    format!("{text:?} is plain http: a CA bundle applies to https origins only"),
                ));
            }
            http.push(HttpGrant {
                origin,
                ca_file: ca_file.map(PathBuf::from),
            });
        }
        Ok(Grants {
            dirs,
            emit: self.emit,
            env,
            secrets,
            net,
            http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Grants, (String, String)> {
        serde_json::from_str::<RawGrants>(json)
            .expect("shape")
            .validate(&mut Vec::new())
    }

    fn warnings_of(json: &str) -> Vec<(String, String)> {
        let mut warnings = Vec::new();
        serde_json::from_str::<RawGrants>(json)
            .expect("shape")
            .validate(&mut warnings)
            .expect("valid");
        warnings
    }

    #[test]
    fn http_grants_are_origins_or_an_origin_with_a_ca_bundle() {
        let g = validate(
            r#"{"http": ["http://127.0.0.1:8080", {"origin": "https://*.internal", "caFile": "ca.pem"}]}"#,
        )
        .expect("valid");
        assert_eq!(g.http.len(), 2);
        assert_eq!(g.http[0].origin.to_string(), "http://127.0.0.1:8080");
        assert_eq!(g.http[0].ca_file, None);
        assert_eq!(g.http[1].origin.to_string(), "https://*.internal");
        assert_eq!(
            g.http[1].ca_file_from(Path::new("/etc/agent")),
            Some(PathBuf::from("/etc/agent/ca.pem"))
        );
        let (field, message) =
            validate(r#"{"http": ["https://ok.example", "example.com"]}"#).expect_err("no scheme");
        assert_eq!(field, "http[1]");
        assert!(message.contains("expected an origin"), "{message}");
        let (field, _) = validate(r#"{"http": [{"origin": "ftp://x"}]}"#).expect_err("scheme");
        assert_eq!(field, "http[0].origin");
        let (field, message) =
            validate(r#"{"http": [{"origin": "http://x", "caFile": "ca.pem"}]}"#)
                .expect_err("plain http with a CA");
        assert_eq!(field, "http[0].caFile");
        assert!(message.contains("https origins only"), "{message}");
        let shape = serde_json::from_str::<RawGrants>(r#"{"http": [42]}"#)
            .expect_err("a number is no origin")
            .to_string();
        assert!(shape.contains("an origin such as"), "{shape}");
    }

    #[test]
    fn env_grants_are_names_or_a_renaming_map_of_valid_names() {
        let g = validate(r#"{"env": ["API_TOKEN", "HOME"]}"#).expect("valid");
        assert_eq!(
            g.env,
            [
                EnvGrant {
                    guest: "API_TOKEN".into(),
                    host: "API_TOKEN".into()
                },
                EnvGrant {
                    guest: "HOME".into(),
                    host: "HOME".into()
                },
            ]
        );
        let g = validate(r#"{"env": {"TOKEN": "ACME_API_TOKEN"}}"#).expect("valid");
        assert_eq!(
            g.env,
            [EnvGrant {
                guest: "TOKEN".into(),
                host: "ACME_API_TOKEN".into()
            }]
        );
        let (field, message) = validate(r#"{"env": ["OK", "NOT=OK"]}"#).expect_err("refused");
        assert_eq!(field, "env[1]");
        assert!(message.contains("\"NOT=OK\""), "{message}");
        assert_eq!(
            validate(r#"{"env": {"A": "1X"}}"#).expect_err("refused").0,
            "env.A"
        );
        assert!(validate(r#"{}"#).expect("valid").env.is_empty());
    }

    #[test]
    fn secret_grants_name_a_variable_and_a_file() {
        let g = validate(r#"{"secrets": {"DB_PASSWORD": {"file": "/run/secrets/db"}}}"#)
            .expect("valid");
        assert_eq!(
            g.secrets,
            [SecretGrant {
                name: "DB_PASSWORD".into(),
                file: "/run/secrets/db".into()
            }]
        );
        assert_eq!(
            validate(r#"{"secrets": {"DB PASSWORD": {"file": "/x"}}}"#)
                .expect_err("name")
                .0,
            "secrets.DB PASSWORD"
        );
        assert_eq!(
            validate(r#"{"secrets": {"A": {"file": ""}}}"#)
                .expect_err("file")
                .0,
            "secrets.A.file"
        );
        assert!(validate(r#"{"env": ["A"], "secrets": {"A": {"file": "/x"}}}"#).is_err());
        assert!(
            serde_json::from_str::<RawGrants>(
                r#"{"secrets": {"A": {"file": "/x", "value": "s"}}}"#
            )
            .is_err(),
            "a value written in the config is refused: secrets come from files"
        );
    }

    #[test]
    fn grants_and_a_dir_grant_given_as_arrays_are_refused() {
        assert!(
            serde_json::from_str::<RawGrants>(r#"[{"/data": {"path": "m"}}, ["a.#"]]"#).is_err()
        );
        assert!(serde_json::from_str::<RawGrants>(r#"{"dirs": {"/data": ["m", true]}}"#).is_err());
    }

    #[test]
    fn the_whole_file_system_is_refused_unless_allowed_explicitly() {
        for root in ["/", "//", "/etc/..", "/./"] {
            let json =
                format!(r#"{{"dirs": {{"/host": {{"path": "{root}", "readOnly": true}}}}}}"#);
            let (field, message) = validate(&json).expect_err("refused");
            assert_eq!(field, "dirs./host.path");
            assert!(
                message.contains("grants the whole file system"),
                "{message}"
            );
        }
        let allowed = r#"{"dirs": {"/host": {"path": "/", "readOnly": true, "allowRoot": true}}}"#;
        assert!(warnings_of(allowed).is_empty());
        let writable = r#"{"dirs": {"/host": {"path": "/", "allowRoot": true}}}"#;
        assert_eq!(warnings_of(writable).len(), 1);
    }

    #[test]
    fn a_system_directory_granted_read_write_is_warned_about_loudly() {
        for dir in ["/etc", "/etc/", "/usr/lib", "/var", "/root/.ssh", "/home"] {
            let json = format!(r#"{{"dirs": {{"/x": {{"path": "{dir}"}}}}}}"#);
            let warnings = warnings_of(&json);
            assert_eq!(warnings.len(), 1, "{dir}");
            assert_eq!(warnings[0].0, "dirs./x.path");
            assert!(warnings[0].1.starts_with("DANGER: "), "{:?}", warnings[0]);
        }
        for fine in [
            r#"{"dirs": {"/x": {"path": "/etc", "readOnly": true}}}"#,
            r#"{"dirs": {"/x": {"path": "/var/lib/agent/memory"}}}"#,
            r#"{"dirs": {"/x": {"path": "/home/agent/data"}}}"#,
            r#"{"dirs": {"/x": {"path": "mem"}}}"#,
        ] {
            assert!(warnings_of(fine).is_empty(), "{fine}");
        }
    }

    #[test]
    fn dirs_and_emit_patterns_are_read() {
        let g = validate(
            r#"{"dirs": {"/data": {"path": "mem", "readOnly": true}}, "emit": ["alerts.#"]}"#,
        )
        .expect("valid");
        assert_eq!(g.dirs[0].guest_path, "/data");
        assert!(g.dirs[0].read_only);
        assert_eq!(
            g.dirs[0].host_path_from(Path::new("/etc/agent")),
            Path::new("/etc/agent/mem")
        );
        assert_eq!(g.emit, ["alerts.#"]);
    }

    #[test]
    fn relative_or_escaping_guest_paths_are_refused() {
        assert_eq!(
            validate(r#"{"dirs": {"data": {"path": "/x"}}}"#)
                .expect_err("relative")
                .0,
            "dirs.data"
        );
        assert!(validate(r#"{"dirs": {"/a/../b": {"path": "/x"}}}"#).is_err());
        assert!(validate(r#"{"emit": ["alerts..x"]}"#).is_err());
    }
}
