//! `heartbeat-host new`: writes a handler project in Rust, Python,
//! JavaScript or C that builds into a component and passes `invoke` as
//! generated.
//!
//! Each project is self-contained: it carries a copy of this host's WIT
//! (`wit/handler.wit`, and the WASI packages of `wit/deps/` that its world
//! `handler-wasi` imports), a `build.sh` that finds the pinned toolchain
//! (the versions of `toolchains/versions.env`, written in at generation
//! time) and says what is missing, a starter handler that logs, emits an
//! event and, when `meta.url` is set, GETs it over `wasi:http`, and a
//! README of three commands (build, invoke, deploy). Every starter builds
//! against `handler-wasi`; the Python, C and Rust ones carry a small
//! blocking HTTP client of their own (`heartbeat_http.py`,
//! `heartbeat_http.{c,h}`, `src/http.rs`), JavaScript uses `fetch()`. The
//! Rust project generates its bindings with the `wit-bindgen` crate from
//! that WIT copy rather than depending on `handler-sdk` by path, so it
//! builds from any directory with only crates.io; the C project also gets
//! the WASI preview1 reactor adapter of the wasmtime release this host runs.
//!
//! The templates live in `host/templates/<language>/` and are compiled into
//! the binary; `@@key@@` marks a value filled in here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The WIT contract the projects implement: this host's own.
const WIT: &str = include_str!("../../../wit/handler.wit");

/// The WASI packages `wit/handler.wit`'s `handler-wasi` world imports, as
/// `wit/deps/` holds them (project path, text).
const WIT_DEPS: &[(&str, &str)] = &[
    (
        "wit/deps/README.md",
        include_str!("../../../wit/deps/README.md"),
    ),
    (
        "wit/deps/cli.wit",
        include_str!("../../../wit/deps/cli.wit"),
    ),
    (
        "wit/deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "wit/deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    (
        "wit/deps/http.wit",
        include_str!("../../../wit/deps/http.wit"),
    ),
    ("wit/deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "wit/deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "wit/deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

/// The pinned toolchain versions (`NAME=VALUE` lines).
const VERSIONS: &str = include_str!("../../../toolchains/versions.env");

/// A language `heartbeat-host new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    /// Rust, built for `wasm32-wasip2` with the `wit-bindgen` crate.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    JavaScript,
    /// C, built with clang and wasi-libc, `wit-bindgen c` and `wasm-tools`.
    C,
}

impl Language {
    /// Every language, in the order the CLI lists them.
    #[cfg(test)]
    pub const ALL: [Language; 4] = [
        Language::Rust,
        Language::Python,
        Language::JavaScript,
        Language::C,
    ];

    /// The name `--lang` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "js",
            Language::C => "c",
        }
    }

    fn templates(self) -> &'static [Template] {
        match self {
            Language::Rust => RUST,
            Language::Python => PYTHON,
            Language::JavaScript => JAVASCRIPT,
            Language::C => C,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = ScaffoldError;

    fn from_str(text: &str) -> Result<Language, ScaffoldError> {
        match text.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Language::Rust),
            "python" | "py" => Ok(Language::Python),
            "js" | "javascript" => Ok(Language::JavaScript),
            "c" => Ok(Language::C),
            _ => Err(ScaffoldError::UnknownLanguage(text.to_string())),
        }
    }
}

/// One file of a template.
struct Template {
    /// Where it goes in the project.
    path: &'static str,
    /// Its text, with `@@key@@` placeholders.
    text: &'static str,
    /// Whether it is a script to mark executable.
    executable: bool,
}

macro_rules! template {
    ($lang:literal, $file:literal => $dest:literal) => {
        Template {
            path: $dest,
            text: include_str!(concat!("../../templates/", $lang, "/", $file)),
            executable: false,
        }
    };
    ($lang:literal, $file:literal => $dest:literal, executable) => {
        Template {
            path: $dest,
            text: include_str!(concat!("../../templates/", $lang, "/", $file)),
            executable: true,
        }
    };
}

const RUST: &[Template] = &[
    template!("rust", "Cargo.toml" => "Cargo.toml"),
    template!("rust", "src/lib.rs" => "src/lib.rs"),
    template!("rust", "src/http.rs" => "src/http.rs"),
    template!("rust", "build.sh" => "build.sh", executable),
    template!("rust", "README.md" => "README.md"),
    template!("rust", "gitignore" => ".gitignore"),
];

const PYTHON: &[Template] = &[
    template!("python", "app.py" => "app.py"),
    template!("python", "heartbeat_http.py" => "heartbeat_http.py"),
    template!("python", "build.sh" => "build.sh", executable),
    template!("python", "README.md" => "README.md"),
    template!("python", "gitignore" => ".gitignore"),
];

const JAVASCRIPT: &[Template] = &[
    template!("js", "handler.js" => "handler.js"),
    template!("js", "package.json" => "package.json"),
    template!("js", "build.sh" => "build.sh", executable),
    template!("js", "README.md" => "README.md"),
    template!("js", "gitignore" => ".gitignore"),
];

const C: &[Template] = &[
    template!("c", "handler.c" => "handler.c"),
    template!("c", "heartbeat_http.c" => "heartbeat_http.c"),
    template!("c", "heartbeat_http.h" => "heartbeat_http.h"),
    template!("c", "build.sh" => "build.sh", executable),
    template!("c", "README.md" => "README.md"),
    template!("c", "gitignore" => ".gitignore"),
];

/// Where the C project keeps the WASI preview1 reactor adapter.
const ADAPTER_PATH: &str = "adapter/wasi_snapshot_preview1.reactor.wasm";

/// Why a project was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The handler name cannot name a handler file.
    #[error(
        "invalid handler name {name:?}: {reason} (use lowercase letters, digits and `_`, starting with a letter, e.g. disk_usage)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--lang` named no language this host scaffolds.
    #[error("unknown language {0:?}: use rust, python, js or c")]
    UnknownLanguage(String),
    /// The target directory holds files already.
    #[error("{} already exists and is not empty; choose another --dir", .0.display())]
    NotEmpty(PathBuf),
    /// A version the templates need is missing from toolchains/versions.env.
    #[error("toolchains/versions.env has no {0} (a build of heartbeat-host from a broken tree)")]
    MissingPin(&'static str),
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What `heartbeat-host new` was asked for.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// The handler's name: its file will be `NAME.wasm`.
    pub name: String,
    /// The language.
    pub language: Language,
    /// Where to write the project (default: `./NAME`).
    pub dir: Option<PathBuf>,
}

/// A project that was written.
#[derive(Debug, Clone)]
pub struct Project {
    /// The handler's name.
    pub name: String,
    /// Its language.
    pub language: Language,
    /// The project directory.
    pub dir: PathBuf,
    /// The files written, relative to `dir`, sorted.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "what the tests check was written")
    )]
    pub files: Vec<PathBuf>,
}

impl Project {
    /// The three commands that build, try and deploy the handler, run from `dir`.
    pub fn next_steps(&self) -> String {
        format!(
            "./build.sh\nheartbeat-host invoke build/{name}.wasm --meta '{{}}'\ncp build/{name}.wasm \"$HANDLERS_DIR/\"",
            name = self.name
        )
    }
}

/// A file of a rendered project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Where it goes, relative to the project directory.
    pub path: PathBuf,
    /// Its contents.
    pub contents: Vec<u8>,
    /// Whether to mark it executable.
    pub executable: bool,
}

/// Checks that `name` can name a handler (a `NAME.wasm` file stem that is
/// also an identifier in every template language).
pub fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |reason| ScaffoldError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(invalid("it is empty")),
        Some(c) if !c.is_ascii_lowercase() => {
            return Err(invalid("it must start with a lowercase letter"));
        }
        Some(_) => {}
    }
    if name.len() > 64 {
        return Err(invalid("it is longer than 64 characters"));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(invalid("it may hold only a-z, 0-9 and _"));
    }
    Ok(())
}

/// The pinned versions, by name.
fn pins() -> BTreeMap<&'static str, &'static str> {
    VERSIONS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim().trim_matches('"')))
        .collect()
}

/// The version of the WIT package (`package heartbeat:handler@X;`).
pub fn wit_version() -> &'static str {
    WIT.lines()
        .find_map(|line| line.trim().strip_prefix("package heartbeat:handler@"))
        .map(|rest| rest.trim_end_matches(';').trim())
        .unwrap_or(crate::runtime::WIT_VERSION)
}

/// The values the `@@key@@` placeholders take for a handler `name`.
fn values(name: &str) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    let pins = pins();
    let pin = |key: &'static str| {
        pins.get(key)
            .map(|v| v.to_string())
            .ok_or(ScaffoldError::MissingPin(key))
    };
    let wit_bindgen = pin("WIT_BINDGEN_VERSION")?;
    // The crate dependency takes the release line (0.46), the CLI the exact version.
    let wit_bindgen_line = wit_bindgen
        .splitn(3, '.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    Ok(vec![
        ("name", name.to_string()),
        ("crate_name", format!("handler-{}", name.replace('_', "-"))),
        // The cdylib cargo writes: the crate name with `_` for `-`.
        ("crate_file", format!("handler_{name}")),
        ("js_package", name.replace('_', "-")),
        ("wit_version", wit_version().to_string()),
        ("componentize_py_version", pin("COMPONENTIZE_PY_VERSION")?),
        ("componentize_js_version", pin("COMPONENTIZE_JS_VERSION")?),
        ("preview2_shim_version", pin("PREVIEW2_SHIM_VERSION")?),
        ("wit_bindgen_version", wit_bindgen),
        ("wit_bindgen_crate_version", wit_bindgen_line),
        ("wasm_tools_version", pin("WASM_TOOLS_VERSION")?),
        ("c_debian_packages", pin("C_DEBIAN_PACKAGES")?),
    ])
}

/// The files of a project for handler `name` in `language`, without writing them.
pub fn render(language: Language, name: &str) -> Result<Vec<RenderedFile>, ScaffoldError> {
    validate_name(name)?;
    let values = values(name)?;
    let mut files: Vec<RenderedFile> = language
        .templates()
        .iter()
        .map(|template| {
            let mut text = template.text.to_string();
            for (key, value) in &values {
                text = text.replace(&format!("@@{key}@@"), value);
            }
            RenderedFile {
                path: PathBuf::from(template.path),
                contents: text.into_bytes(),
                executable: template.executable,
            }
        })
        .collect();
    files.push(RenderedFile {
        path: PathBuf::from("wit/handler.wit"),
        contents: WIT.as_bytes().to_vec(),
        executable: false,
    });
    files.extend(WIT_DEPS.iter().map(|(path, text)| RenderedFile {
        path: PathBuf::from(path),
        contents: text.as_bytes().to_vec(),
        executable: false,
    }));
    if language == Language::C {
        files.push(RenderedFile {
            path: PathBuf::from(ADAPTER_PATH),
            contents:
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
                    .to_vec(),
            executable: false,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Writes the project: refuses a directory that exists and is not empty.
pub fn create(request: &NewProject) -> Result<Project, ScaffoldError> {
    let files = render(request.language, &request.name)?;
    let dir = request
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&request.name));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&dir)(e)),
    }
    for file in &files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &file.contents).map_err(io(&path))?;
        if file.executable {
            make_executable(&path).map_err(io(&path))?;
        }
    }
    tracing::debug!(dir = %dir.display(), language = %request.language, files = files.len(), "handler project written");
    Ok(Project {
        name: request.name.clone(),
        language: request.language,
        dir,
        files: files.into_iter().map(|f| f.path).collect(),
    })
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut permissions = std::fs::metadata(path)?.permissions();
    permissions.set_mode(permissions.mode() | 0o111);
    std::fs::set_permissions(path, permissions)
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The handler's name: its component will be NAME.wasm (a-z, 0-9, _).
    pub name: String,
    /// The language: rust, python, js or c.
    #[arg(long)]
    pub lang: Language,
    /// The project directory to create (default: ./NAME); must be empty or absent.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Creates the project and says what to do next.
pub(super) fn execute(args: NewArgs) -> anyhow::Result<std::process::ExitCode> {
    let project = create(&NewProject {
        name: args.name,
        language: args.lang,
        dir: args.dir,
    })?;
    println!(
        "created {} handler `{}` in {}\n\ncd {}\n{}",
        project.language,
        project.name,
        project.dir.display(),
        project.dir.display(),
        project.next_steps()
    );
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_in_every_language() {
        for language in Language::ALL {
            let files = render(language, "disk_usage").expect("render");
            for file in &files {
                if file.path.extension().is_some_and(|e| e == "wasm") {
                    continue;
                }
                let text = String::from_utf8(file.contents.clone()).expect("utf-8");
                let rest: Vec<&str> = text
                    .split("@@")
                    .skip(1)
                    .step_by(2)
                    .filter(|key| {
                        key.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                            && !key.is_empty()
                    })
                    .collect();
                assert!(
                    rest.is_empty(),
                    "{language}: {} keeps {rest:?}",
                    file.path.display()
                );
            }
        }
    }

    #[test]
    fn each_project_has_the_wit_a_build_script_and_a_readme() {
        for language in Language::ALL {
            let files = render(language, "ping").expect("render");
            let paths: Vec<_> = files
                .iter()
                .map(|f| f.path.to_string_lossy().into_owned())
                .collect();
            for needed in ["wit/handler.wit", "build.sh", "README.md", ".gitignore"] {
                assert!(paths.iter().any(|p| p == needed), "{language}: {paths:?}");
            }
            let build = files
                .iter()
                .find(|f| f.path == Path::new("build.sh"))
                .expect("build.sh");
            assert!(build.executable);
            let readme = files
                .iter()
                .find(|f| f.path == Path::new("README.md"))
                .expect("README");
            let readme = String::from_utf8_lossy(&readme.contents);
            assert!(
                readme.contains("heartbeat-host invoke build/ping.wasm"),
                "{readme}"
            );
            assert!(readme.contains("heartbeat:handler@0.1.1"), "{readme}");
        }
        let c = render(Language::C, "ping").expect("render");
        let adapter = c
            .iter()
            .find(|f| f.path == Path::new(ADAPTER_PATH))
            .expect("adapter");
        assert!(adapter.contents.starts_with(b"\0asm"));
    }

    #[test]
    fn every_project_carries_wit_deps_whole_and_builds_the_handler_wasi_world() {
        let deps_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps");
        let mut on_disk: Vec<String> = std::fs::read_dir(&deps_dir)
            .expect("wit/deps")
            .filter_map(|entry| entry.ok())
            .map(|entry| format!("wit/deps/{}", entry.file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = WIT_DEPS.iter().map(|(p, _)| p.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "WIT_DEPS lists every file of wit/deps/");
        for language in Language::ALL {
            let files = render(language, "ping").expect("render");
            for (path, text) in WIT_DEPS {
                let file = files
                    .iter()
                    .find(|f| f.path == Path::new(path))
                    .unwrap_or_else(|| panic!("{language}: no {path}"));
                assert_eq!(file.contents, text.as_bytes(), "{language}: {path}");
            }
            let builds_world = if language == Language::Rust {
                "src/lib.rs"
            } else {
                "build.sh"
            };
            let file = files
                .iter()
                .find(|f| f.path == Path::new(builds_world))
                .expect("the file naming the world");
            assert!(
                String::from_utf8_lossy(&file.contents).contains("handler-wasi"),
                "{language}: {builds_world} does not build the handler-wasi world"
            );
        }
    }

    #[test]
    fn pinned_versions_reach_the_templates() {
        let pins = pins();
        let py = render(Language::Python, "ping").expect("render");
        let build = py
            .iter()
            .find(|f| f.path == Path::new("build.sh"))
            .expect("build.sh");
        let text = String::from_utf8_lossy(&build.contents);
        assert!(text.contains(&format!("version={}", pins["COMPONENTIZE_PY_VERSION"])));
        let js = render(Language::JavaScript, "my_check").expect("render");
        let package = js
            .iter()
            .find(|f| f.path == Path::new("package.json"))
            .expect("package.json");
        let package: serde_json::Value =
            serde_json::from_slice(&package.contents).expect("package.json is JSON");
        assert_eq!(package["name"], "my-check");
        assert_eq!(
            package["devDependencies"]["@bytecodealliance/componentize-js"],
            pins["COMPONENTIZE_JS_VERSION"]
        );
        let rust = render(Language::Rust, "my_check").expect("render");
        let cargo = rust
            .iter()
            .find(|f| f.path == Path::new("Cargo.toml"))
            .expect("Cargo.toml");
        let cargo = String::from_utf8_lossy(&cargo.contents);
        assert!(cargo.contains("name = \"handler-my-check\""), "{cargo}");
        assert!(cargo.contains("version = \"0.46\""), "{cargo}");
    }

    #[test]
    fn names_must_be_identifiers() {
        for good in ["a", "disk_usage", "check2"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Disk", "2fast", "disk-usage", "a b", "../x", "é"] {
            assert!(
                matches!(validate_name(bad), Err(ScaffoldError::InvalidName { .. })),
                "{bad}"
            );
        }
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn languages_parse_by_their_cli_names() {
        for language in Language::ALL {
            assert_eq!(language.as_str().parse::<Language>().ok(), Some(language));
        }
        assert_eq!("python".parse::<Language>().ok(), Some(Language::Python));
        assert_eq!(
            "JavaScript".parse::<Language>().ok(),
            Some(Language::JavaScript)
        );
        assert!("cobol".parse::<Language>().is_err());
    }

    #[test]
    fn an_existing_non_empty_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("keep.txt"), "mine").expect("write");
        let request = NewProject {
            name: "ping".into(),
            language: Language::Python,
            dir: Some(dir.path().to_path_buf()),
        };
        assert!(matches!(create(&request), Err(ScaffoldError::NotEmpty(_))));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).expect("kept"),
            "mine"
        );

        let empty = dir.path().join("new");
        let project = create(&NewProject {
            dir: Some(empty.clone()),
            ..request
        })
        .expect("create");
        assert!(empty.join("app.py").is_file());
        assert!(empty.join("wit/handler.wit").is_file());
        assert!(project.files.contains(&PathBuf::from("build.sh")));
    }
}
