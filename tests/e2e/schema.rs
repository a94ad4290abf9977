//! `schemas/heartbeat.v1.json` against what ships and against the host:
//! every shipped example validates; the host's own validation agrees with
//! the schema on the invalid files of `tests/fixtures/invalid/` (both
//! refuse, and the host's error names a field the schema also points at).

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the repository")
        .to_path_buf()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// The built-in `name`'s fragment `schemas/checks/<name>.json`, checked to
/// be a draft 2020-12 schema with its `$id` and no properties beyond those
/// it names, compiled. `tests/e2e/probes.rs` and `builtin_checks.rs` hold
/// each fragment to the host's own parser.
pub(crate) fn fragment(name: &str) -> jsonschema::Validator {
    let schema = read_json(&repo().join(format!("schemas/checks/{name}.json")));
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        schema["$id"],
        format!("https://example.invalid/heartbeat-host/schemas/checks/{name}.json")
    );
    assert_eq!(schema["additionalProperties"], false, "{name}");
    assert!(
        jsonschema::meta::is_valid(&schema),
        "{name}: not a valid JSON Schema"
    );
    jsonschema::validator_for(&schema).expect("the fragment compiles")
}

fn validator() -> jsonschema::Validator {
    let schema = read_json(&repo().join("schemas/heartbeat.v1.json"));
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// The schema's complaints about `instance`, as (JSON pointer, message).
fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<(String, String)> {
    validator
        .iter_errors(instance)
        .map(|e| (e.instance_path().as_str().to_string(), e.to_string()))
        .collect()
}

/// `.json` files directly in `dir`, sorted.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Every heartbeat config that ships: `examples/**/heartbeat.json`,
/// `examples/**/*.heartbeat.json` and `tests/fixtures/*.json` (the invalid
/// ones live in a subdirectory).
fn shipped_examples() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && name != "target" && name != "node_modules" {
                walk(&path, out);
            } else if name == "heartbeat.json" || name.ends_with(".heartbeat.json") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("examples"), &mut files);
    files.extend(json_files(&repo().join("tests/fixtures")));
    files.sort();
    files
}

#[test]
fn the_schema_is_valid_draft_2020_12() {
    let schema = read_json(&repo().join("schemas/heartbeat.v1.json"));
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(jsonschema::meta::is_valid(&schema));
}

#[test]
fn every_shipped_example_validates_against_the_schema_and_the_host() {
    let validator = validator();
    let examples = shipped_examples();
    assert!(
        examples
            .iter()
            .any(|p| p.ends_with("examples/heartbeat.json")),
        "{examples:?}"
    );
    assert!(
        examples.len() >= 3,
        "examples and fixtures found: {examples:?}"
    );
    for path in &examples {
        let errors = schema_errors(&validator, &read_json(path));
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let text = std::fs::read_to_string(path).expect("read");
        if let Err(e) = heartbeat_host::core::config::parse(&text, &path.display().to_string()) {
            panic!("the host refuses a shipped example: {e}");
        }
    }
}

/// `checks.a.triggerOnQuarters[0]` → `["checks", "a", "triggerOnQuarters", "0"]`.
fn host_segments(field: &str) -> Vec<String> {
    if field == "." {
        return Vec::new();
    }
    field
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(str::to_string)
        .collect()
}

/// `/checks/a/triggerOnQuarters/0` → `["checks", "a", "triggerOnQuarters", "0"]`.
fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[test]
fn the_host_and_the_schema_refuse_the_same_invalid_files() {
    let validator = validator();
    let files = json_files(&repo().join("tests/fixtures/invalid"));
    assert!(files.len() >= 30, "invalid fixtures: {}", files.len());
    let mut disagreements = Vec::new();
    for path in &files {
        let name = path.display().to_string();
        let schema = schema_errors(&validator, &read_json(path));
        let text = std::fs::read_to_string(path).expect("read");
        let host = heartbeat_host::core::config::parse(&text, &name);
        match (&host, schema.is_empty()) {
            (Ok(_), true) => disagreements.push(format!("{name}: both accept it")),
            (Ok(_), false) => {
                disagreements.push(format!("{name}: only the schema refuses it: {schema:?}"));
            }
            (Err(e), true) => disagreements.push(format!("{name}: only the host refuses it: {e}")),
            (Err(e), false) => {
                // Both refuse: the host's field must lie at or under a place
                // the schema points at (a missing field is reported on its
                // object by both).
                let field = host_segments(e.field().unwrap_or("."));
                let agrees = schema.iter().any(|(pointer, _)| {
                    let at = pointer_segments(pointer);
                    field.len() >= at.len() && field[..at.len()] == at[..]
                });
                if !agrees {
                    disagreements.push(format!(
                        "{name}: the host blames {:?}, the schema {:?}",
                        e.field(),
                        schema.iter().map(|(p, _)| p).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn an_unknown_time_zone_is_refused_by_the_host_only() {
    // Pinned: a schema cannot list the IANA zones, so this is the one
    // documented place where the host is stricter than the schema.
    let doc = r#"{"checks": {"a": {"window": {"start": "09:00", "end": "17:00", "tz": "Mars/Olympus"}}}}"#;
    let instance: Value = serde_json::from_str(doc).expect("json");
    assert!(validator().is_valid(&instance));
    let err = heartbeat_host::core::config::parse(doc, "heartbeat.json").expect_err("unknown zone");
    assert_eq!(err.field(), Some("checks.a.window.tz"));
}

#[test]
fn unknown_fields_are_allowed_by_both() {
    let doc = r#"{"owner": "ops", "checks": {"a": {"colour": "red", "window": {"start": "09:00", "end": "10:00", "tz": "UTC", "note": 1}}}}"#;
    let instance: Value = serde_json::from_str(doc).expect("json");
    assert!(validator().is_valid(&instance));
    let loaded = heartbeat_host::core::config::parse(doc, "heartbeat.json").expect("valid");
    assert_eq!(loaded.warnings.len(), 3, "{:?}", loaded.warnings);
}
