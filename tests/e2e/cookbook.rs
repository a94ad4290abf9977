//! The cookbook of docs/handlers.md: every recipe there is a file of
//! `examples/cookbook/<lang>/`, shown verbatim (so the docs cannot drift
//! from what is tested), built by its language's build script and run here
//! with `heartbeat-host invoke --config examples/cookbook/heartbeat.json
//! --check NAME`, as the docs say to try it. (`http_get`'s requests,
//! refusals, caps and timeouts are `lang_http`'s.)

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::http_server::TestServer;
use crate::support::languages::{
    COOKBOOK_LANGUAGES, COOKBOOK_RECIPES, cookbook_recipe, events, invoke, repo_root, run_bounded,
};

/// The recipe's file in `examples/cookbook/<lang>/` and its code fence.
fn source_of(lang: &str, recipe: &str) -> (std::path::PathBuf, &'static str) {
    let dir = repo_root().join("examples/cookbook").join(lang);
    match lang {
        "python" => (dir.join(format!("{recipe}.py")), "python"),
        "javascript" => (dir.join(format!("{recipe}.js")), "js"),
        "c" => (dir.join(format!("{recipe}.c")), "c"),
        _ => (dir.join(format!("examples/{recipe}.rs")), "rust"),
    }
}

#[test]
fn every_recipe_and_the_config_are_in_the_guide_verbatim() {
    let guide = std::fs::read_to_string(repo_root().join("docs/handlers.md")).expect("guide");
    let mut shown = vec![(repo_root().join("examples/cookbook/heartbeat.json"), "json")];
    for lang in COOKBOOK_LANGUAGES {
        for recipe in COOKBOOK_RECIPES {
            shown.push(source_of(lang, recipe));
        }
    }
    shown.push((repo_root().join("examples/cookbook/c/meta.h"), "c"));

    // The world they build against, as wit/handler.wit declares it.
    let wit = std::fs::read_to_string(repo_root().join("wit/handler.wit")).expect("wit");
    let world = wit
        .find("world handler-wasi {")
        .and_then(|start| {
            wit[start..]
                .find("\n}\n")
                .map(|end| &wit[start..start + end + 3])
        })
        .expect("wit/handler.wit declares world handler-wasi");
    assert!(
        guide.contains(&format!("```wit\n{world}```")),
        "docs/handlers.md does not show the handler-wasi world as wit/handler.wit declares it"
    );
    for (file, fence) in shown {
        let code =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            guide.contains(&format!("```{fence}\n{code}```")),
            "docs/handlers.md does not show {} as it is",
            file.display()
        );
    }
}

/// Builds `lang`'s recipes into a handler directory under `work`.
fn handlers_dir(lang: &str, work: &Path) -> std::path::PathBuf {
    let dir = work.join("handlers");
    std::fs::create_dir_all(&dir).expect("handlers dir");
    for recipe in COOKBOOK_RECIPES {
        let wasm = cookbook_recipe(lang, recipe);
        std::fs::copy(&wasm, dir.join(format!("{recipe}.wasm"))).expect("copy recipe");
    }
    dir
}

/// `invoke NAME --handlers DIR --config examples/cookbook/heartbeat.json
/// --check NAME [extra]`.
fn invoke_check(check: &str, handlers: &Path, extra: &[&str], cache: &Path) -> Value {
    let config = repo_root().join("examples/cookbook/heartbeat.json");
    let mut args = vec![
        check,
        "--handlers",
        handlers.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        "--check",
        check,
    ];
    args.extend_from_slice(extra);
    invoke(&args, cache).json
}

fn the_recipes_run_as_the_guide_says(lang: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let cache = work.path().join("cache");
    let handlers = handlers_dir(lang, work.path());

    // `check` accepts the config with these handlers.
    let mut cmd = Command::new(support::host_bin());
    cmd.args(["check", "--config"])
        .arg(repo_root().join("examples/cookbook/heartbeat.json"))
        .arg("--handlers")
        .arg(&handlers)
        .env("XDG_CACHE_HOME", &cache)
        .env("LOG_LEVEL", "warn");
    let checked = run_bounded(&mut cmd, "heartbeat-host check", Duration::from_secs(300));
    assert!(checked.status.success(), "{lang}: {}", checked.log());

    // file_check: the granted file passes; a missing word is `failed` with
    // one event; without the grant the file is not there (an error, no trap).
    let out = invoke_check("file_check", &handlers, &[], &cache);
    assert_eq!(out["status"], "success", "{lang}: {out}");
    assert_eq!(out["details"]["file"], "/data/status.txt", "{lang}: {out}");
    let logs = out["logs"].as_array().cloned().unwrap_or_default();
    assert_eq!(logs.len(), 1, "{lang}: {out}");
    assert_eq!(logs[0]["message"], "file checked", "{lang}: {out}");
    assert_eq!(
        logs[0]["fields"][0],
        json!(["file", "/data/status.txt"]),
        "{lang}: {out}"
    );
    assert!(events(&out).is_empty(), "{lang}: {out}");

    let missing_word = r#"{"file": "/data/status.txt", "mustContain": "CORRUPT"}"#;
    let out = invoke_check("file_check", &handlers, &["--meta", missing_word], &cache);
    assert_eq!(out["status"], "failed", "{lang}: {out}");
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not contain")),
        "{lang}: {out}"
    );
    assert_eq!(out["logs"][0]["level"], "warn", "{lang}: {out}");
    let emitted = events(&out);
    assert_eq!(emitted.len(), 1, "{lang}: {out}");
    assert_eq!(emitted[0].0, "agent.cookbook.file_check", "{lang}: {out}");
    assert_eq!(emitted[0].1["file"], "/data/status.txt", "{lang}: {out}");

    let wasm = handlers.join("file_check.wasm");
    let ungranted = invoke(
        &[
            wasm.to_str().expect("utf-8"),
            "--meta",
            r#"{"file": "/data/status.txt"}"#,
        ],
        &cache,
    )
    .json;
    assert_eq!(ungranted["status"], "failed", "{lang}: {ungranted}");
    assert!(
        ungranted["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("cannot read /data/status.txt")),
        "{lang}: {ungranted}"
    );

    // kv_counter: the count survives from one run to the next in the store.
    let kv_dir = work.path().join("kv");
    let kv = ["--kv-dir", kv_dir.to_str().expect("utf-8")];
    for runs in 1..=2 {
        let out = invoke_check("kv_counter", &handlers, &kv, &cache);
        assert_eq!(out["status"], "success", "{lang}: {out}");
        assert_eq!(out["details"]["runs"], runs, "{lang}: {out}");
    }

    // http_get: the config's check, pointed at a live server.
    let server = TestServer::start();
    let meta = json!({"url": server.url("/ok")}).to_string();
    let origin = server.origin();
    let args = ["--meta", meta.as_str(), "--grant-http", origin.as_str()];
    let out = invoke_check("http_get", &handlers, &args, &cache);
    assert_eq!(out["status"], "success", "{lang}: {out}");
    assert_eq!(
        out["details"]["excerpt"], "hello from the test server",
        "{lang}: {out}"
    );
}

#[test]
fn python_recipes_run_as_the_guide_says() {
    the_recipes_run_as_the_guide_says("python");
}

#[test]
fn javascript_recipes_run_as_the_guide_says() {
    the_recipes_run_as_the_guide_says("javascript");
}

#[test]
fn c_recipes_run_as_the_guide_says() {
    the_recipes_run_as_the_guide_says("c");
}

#[test]
fn rust_recipes_run_as_the_guide_says() {
    the_recipes_run_as_the_guide_says("rust");
}
