//! The docs' tables and the man page held to the clap definitions: a flag
//! added without its row, or a row naming no flag, fails here.

use super::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository's root (the host crate is `host/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the host crate lives in the workspace")
        .to_path_buf()
}

/// `docs/*.md`, each file's name and text.
fn docs() -> Vec<(String, String)> {
    let dir = repo_root().join("docs");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("a doc");
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (format!("docs/{name}"), text)
        })
        .collect();
    files.sort();
    files
}

/// One row of a flag table: `| flag of `run` | environment | default | meaning |`.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    /// Where it is, `docs/operations.md:12`.
    place: String,
    /// The long flag without `--`, or `None` for an environment-only row.
    flag: Option<String>,
    /// The environment cell's variable, or `None` when the cell is empty.
    env: Option<String>,
    /// The default cell as written.
    default: String,
}

/// The cells of a Markdown table row, split at `|` not escaped `\|`.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '|' if !escaped => cells.push(String::new()),
            _ => {
                escaped = c == '\\';
                if let Some(last) = cells.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The text of a cell that is one code span (`` `X` ``), else `None`.
fn code(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')
        .and_then(|rest| rest.split_once('`'))
        .filter(|(_, after)| after.is_empty())
        .map(|(inside, _)| inside)
}

/// Every flag table of `text`, by subcommand: a table whose header is
/// `| flag of `SUB` | environment | default | meaning |`.
fn flag_tables(file: &str, text: &str) -> Result<BTreeMap<String, Vec<Row>>, String> {
    let mut tables: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let place = format!("{file}:{}", index + 1);
        if !line.trim_start().starts_with('|') {
            current = None;
            continue;
        }
        let row = cells(line);
        if let Some(sub) = row
            .first()
            .and_then(|c| c.strip_prefix("flag of "))
            .and_then(code)
        {
            if row[1..] != ["environment", "default", "meaning"] {
                return Err(format!(
                    "{place}: a flag table's header is `| flag of `{sub}` | environment | default | meaning |`"
                ));
            }
            current = Some(sub.to_string());
            tables.entry(sub.to_string()).or_default();
            continue;
        }
        let Some(sub) = &current else { continue };
        if row
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        if row.len() != 4 {
            return Err(format!(
                "{place}: {} cells, not 4 (a `|` inside a cell is written `\\|`)",
                row.len()
            ));
        }
        let flag = match row[0].as_str() {
            "" => None,
            cell => {
                let long = cell
                    .strip_prefix("`--")
                    .map(|rest| rest.split([' ', '`']).next().unwrap_or_default())
                    .filter(|long| !long.is_empty())
                    .ok_or_else(|| {
                        format!("{place}: the flag cell {cell:?} does not start with `--NAME")
                    })?;
                Some(long.to_string())
            }
        };
        let env = match row[1].as_str() {
            "" => None,
            cell => Some(
                code(cell)
                    .ok_or_else(|| {
                        format!("{place}: the environment cell {cell:?} is not one `VARIABLE`")
                    })?
                    .to_string(),
            ),
        };
        tables.entry(sub.clone()).or_default().push(Row {
            place,
            flag,
            env,
            default: row[2].clone(),
        });
    }
    Ok(tables)
}

/// What the tables get wrong about `command`'s subcommands: every
/// visible subcommand with flags has a table, every flag a row (one)
/// with its `env` and default, every row a flag, every
/// environment-only row a variable of [`PROCESS_ENVIRONMENT`].
fn drift(command: &clap::Command, tables: &BTreeMap<String, Vec<Row>>) -> Vec<String> {
    let mut wrong = Vec::new();
    let subs: BTreeMap<&str, &clap::Command> = command
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| (s.get_name(), s))
        .collect();
    for sub_name in tables.keys() {
        if !subs.contains_key(sub_name.as_str()) {
            wrong.push(format!(
                "a flag table names `{sub_name}`, which is no subcommand"
            ));
        }
    }
    for (name, sub) in &subs {
        let flags: BTreeMap<&str, &clap::Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_positional() && !a.is_hide_set())
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .filter_map(|a| a.get_long().map(|long| (long, a)))
            .collect();
        let Some(rows) = tables.get(*name) else {
            if !flags.is_empty() {
                wrong.push(format!(
                    "`{name}` has flags but no table `| flag of `{name}` | …`"
                ));
            }
            continue;
        };
        for (long, arg) in &flags {
            let found: Vec<&Row> = rows
                .iter()
                .filter(|r| r.flag.as_deref() == Some(*long))
                .collect();
            let [row] = found.as_slice() else {
                wrong.push(format!(
                    "`{name} --{long}` has {} rows, not one",
                    found.len()
                ));
                continue;
            };
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            if row.env != env {
                wrong.push(format!(
                    "{}: `{name} --{long}`'s environment is {env:?} in clap, {:?} in the doc",
                    row.place, row.env
                ));
            }
            let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            let expected = if switch {
                Some("off".to_string())
            } else {
                (!defaults.is_empty()).then(|| format!("`{}`", defaults.join(",")))
            };
            match expected {
                Some(expected) if !row.default.starts_with(&expected) => wrong.push(format!(
                    "{}: `{name} --{long}`'s default is {expected} in clap, {:?} in the doc",
                    row.place, row.default
                )),
                None if row.default.is_empty() => wrong.push(format!(
                    "{}: `{name} --{long}` has no default in clap: say what happens without it",
                    row.place
                )),
                _ => {}
            }
        }
        for row in rows {
            match &row.flag {
                Some(long) if !flags.contains_key(long.as_str()) => {
                    wrong.push(format!("{}: `{name} --{long}` is not a flag of clap's", row.place));
                }
                Some(_) => {}
                None => match &row.env {
                    Some(env) if PROCESS_ENVIRONMENT.iter().any(|(n, _)| n == env) => {}
                    other => wrong.push(format!(
                        "{}: a row with no flag names {other:?}, not a variable of PROCESS_ENVIRONMENT",
                        row.place
                    )),
                },
            }
        }
    }
    wrong
}

fn all_tables() -> BTreeMap<String, Vec<Row>> {
    let mut all: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for (file, text) in docs() {
        for (sub, rows) in flag_tables(&file, &text).unwrap_or_else(|e| panic!("{e}")) {
            all.entry(sub).or_default().extend(rows);
        }
    }
    all
}

#[test]
fn the_flag_tables_of_the_docs_match_the_clap_definitions() {
    let tables = all_tables();
    assert!(
        tables.contains_key("run"),
        "docs/ has no `| flag of `run` |` table"
    );
    let wrong = drift(&super::super::Cli::command(), &tables);
    assert!(
        wrong.is_empty(),
        "docs/*.md flag tables drifted from clap:\n{}",
        wrong.join("\n")
    );
}

/// A command like ours with `--tick-interval` (`TICK_INTERVAL`, `60s`)
/// and the switch `--exclusive`.
fn sample(extra: Option<clap::Arg>) -> clap::Command {
    let run = clap::Command::new("run")
        .arg(
            clap::Arg::new("tick_interval")
                .long("tick-interval")
                .env("TICK_INTERVAL")
                .default_value("60s"),
        )
        .arg(
            clap::Arg::new("exclusive")
                .long("exclusive")
                .action(clap::ArgAction::SetTrue),
        );
    let run = match extra {
        Some(arg) => run.arg(arg),
        None => run,
    };
    clap::Command::new("heartbeat-host").subcommand(run)
}

const SAMPLE_DOC: &str = "\
| flag of `run` | environment | default | meaning |
| --- | --- | --- | --- |
| `--tick-interval D` | `TICK_INTERVAL` | `60s` | the timer |
| `--exclusive` | | off | one consumer |
| | `LOG_LEVEL` | `INFO` | logs |
";

fn sample_drift(command: &clap::Command, doc: &str) -> Vec<String> {
    drift(command, &flag_tables("sample.md", doc).expect("a table"))
}

#[test]
fn drift_is_none_when_doc_and_flags_agree() {
    assert_eq!(
        sample_drift(&sample(None), SAMPLE_DOC),
        Vec::<String>::new()
    );
}

#[test]
fn a_flag_added_without_a_row_is_drift() {
    let added = clap::Arg::new("prefetch").long("prefetch").env("PREFETCH");
    let wrong = sample_drift(&sample(Some(added)), SAMPLE_DOC);
    assert_eq!(wrong.len(), 1, "{wrong:?}");
    assert!(
        wrong[0].contains("`run --prefetch` has 0 rows"),
        "{wrong:?}"
    );
}

#[test]
fn a_row_for_no_flag_a_wrong_variable_or_default_and_a_stray_variable_are_drift() {
    for (doc, says) in [
        (
            SAMPLE_DOC.replace("`--exclusive`", "`--exclusiv`"),
            "`run --exclusiv` is not a flag",
        ),
        (
            SAMPLE_DOC.replace("| `TICK_INTERVAL` |", "| `TICK` |"),
            "environment is Some(\"TICK_INTERVAL\") in clap",
        ),
        (
            SAMPLE_DOC.replace("| `60s` |", "| `1m` |"),
            "default is `60s` in clap",
        ),
        (
            SAMPLE_DOC.replace("| off |", "| on |"),
            "default is off in clap",
        ),
        (
            SAMPLE_DOC.replace("`LOG_LEVEL`", "`LOG_LEVL`"),
            "not a variable of PROCESS_ENVIRONMENT",
        ),
        (
            format!("{SAMPLE_DOC}\n| flag of `walk` | environment | default | meaning |\n"),
            "names `walk`, which is no subcommand",
        ),
    ] {
        let wrong = sample_drift(&sample(None), &doc);
        assert!(
            wrong.iter().any(|w| w.contains(says)),
            "{says:?} not in {wrong:?}"
        );
    }
    let bare = sample_drift(&sample(None), "no table here");
    assert!(
        bare.iter().any(|w| w.contains("has flags but no table")),
        "{bare:?}"
    );
}

#[test]
fn every_variable_the_sources_read_by_name_is_a_flag_env_or_documented() {
    let clap_envs: BTreeSet<String> = environment(&super::super::Cli::command())
        .into_keys()
        .collect();
    let listed: BTreeSet<&str> = PROCESS_ENVIRONMENT.iter().map(|(n, _)| *n).collect();
    let mut read = BTreeSet::new();
    let mut stack = vec![repo_root().join("host/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("host/src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source");
            // What tests set up is not what the host reads.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for call in ["env::var(\"", "env::var_os(\""] {
                for (at, _) in code.match_indices(call) {
                    let rest = &code[at + call.len()..];
                    if let Some((name, _)) = rest.split_once('"') {
                        read.insert(name.to_string());
                    }
                }
            }
        }
    }
    assert!(
        read.contains("LOG_LEVEL"),
        "the scan found nothing: {read:?}"
    );
    for name in &read {
        assert!(
            clap_envs.contains(name) || listed.contains(name.as_str()),
            "{name} is read by name under host/src but is neither a flag's env nor in PROCESS_ENVIRONMENT"
        );
    }
    for name in &listed {
        assert!(
            read.contains(*name),
            "PROCESS_ENVIRONMENT lists {name}, which nothing reads"
        );
    }
}

#[test]
fn docs_operations_lists_every_variable_no_flag_takes() {
    let text = std::fs::read_to_string(repo_root().join("docs/operations.md"))
        .expect("docs/operations.md");
    for (name, _) in PROCESS_ENVIRONMENT {
        assert!(
            text.lines().any(|l| l.starts_with('|')
                && cells(l)
                    .iter()
                    .take(2)
                    .any(|c| c.contains(&format!("`{name}`")))),
            "docs/operations.md has no row for {name}"
        );
    }
}

#[test]
fn docs_migration_shows_the_consumer_ping_port_as_it_is() {
    // tests/e2e/new.rs builds this file and holds the README's copy to
    // it; the migration guide shows it too.
    let port = std::fs::read_to_string(repo_root().join("examples/consumer-ping/app.py"))
        .expect("examples/consumer-ping/app.py");
    let guide =
        std::fs::read_to_string(repo_root().join("docs/migration.md")).expect("docs/migration.md");
    assert!(
        guide.contains(&format!("```python\n{port}```")),
        "docs/migration.md does not show examples/consumer-ping/app.py as it is"
    );
}

#[test]
fn the_man_page_has_environment_files_exit_status_and_signals() {
    let page = String::from_utf8(man_page().expect("rendered")).expect("UTF-8");
    let top = page
        .split(".TH heartbeat-host-")
        .next()
        .expect("the top-level page comes first");
    let mut at = 0;
    for section in [
        ".SH SUBCOMMANDS",
        ".SH \"ENVIRONMENT\"",
        ".SH \"FILES\"",
        ".SH \"EXIT STATUS\"",
        ".SH \"SIGNALS\"",
    ] {
        let found = top[at..]
            .find(section)
            .unwrap_or_else(|| panic!("no {section} after byte {at}:\n{top}"));
        at += found;
    }
    // ENVIRONMENT comes from clap's `env` attributes: each is there,
    // with the flags that take it.
    for (name, (flags, _)) in environment(&super::super::Cli::command()) {
        assert!(
            top.contains(&format!("\\fB{name}\\fR")),
            "ENVIRONMENT lacks {name}"
        );
        assert!(
            top.contains(&roff_escape(&flags[0])),
            "ENVIRONMENT lacks {}",
            flags[0]
        );
    }
    assert!(
        top.contains(
            "\\fBHEARTBEAT_PATH\\fR\nrun \\-\\-config, explain \\-\\-config, check \\-\\-config"
        ),
        "{top}"
    );
    for (name, _) in PROCESS_ENVIRONMENT {
        assert!(
            top.contains(&format!("\\fB{name}\\fR")),
            "ENVIRONMENT lacks {name}"
        );
    }
    for signal in ["SIGHUP", "SIGTERM, SIGINT"] {
        assert!(
            top.contains(&format!("\\fB{signal}\\fR")),
            "SIGNALS lacks {signal}"
        );
    }
}

#[test]
fn exit_status_names_every_subcommand() {
    let command = super::super::Cli::command();
    let named: BTreeSet<&str> = EXIT_STATUS.iter().map(|(n, _)| *n).collect();
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        assert!(
            named.contains(sub.get_name()),
            "EXIT STATUS says nothing of `{}`",
            sub.get_name()
        );
    }
    for name in named.iter().filter(|n| **n != "any command") {
        assert!(
            command.find_subcommand(name).is_some(),
            "EXIT STATUS names `{name}`, no subcommand"
        );
    }
}

#[test]
fn roff_text_cannot_start_a_request_or_an_escape() {
    assert_eq!(roff_escape(".state.json"), "\\&.state.json");
    assert_eq!(roff_escape("'quoted'"), "\\&'quoted'");
    assert_eq!(roff_escape("a\\b --c"), "a\\eb \\-\\-c");
}
