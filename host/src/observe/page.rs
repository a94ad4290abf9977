//! `/`: the status page, rendered on the server from the same
//! [`StatusReply`] `/status` serialises. Plain HTML, readable without
//! JavaScript, with a `<meta>` refresh every 5 s. Every value from the
//! config or a handler is escaped.

use std::fmt::Write as _;

use super::status::{AgentStatus, StatusReply};

/// The page for a `/status` reply: one agent's, or the list of a host
/// serving several (each linking to its own page).
pub fn render(status: &StatusReply) -> String {
    match status {
        StatusReply::Host(host) => render_index(&host.agents),
        StatusReply::Agent(agent) => render_agent(agent),
    }
}

/// The index of a host serving several agents: name, health, checks by state.
fn render_index(agents: &[AgentStatus]) -> String {
    let mut out = String::with_capacity(256 + agents.len() * 160);
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>heartbeat-host: {n} agents</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: left; }}
th {{ background: #f4f4f4; }}
.degraded, .hard {{ color: #b00020; font-weight: 600; }}
.healthy {{ color: #1b5e20; }}
</style></head><body>
<h1>heartbeat-host: {n} agents</h1>
<table id="agents"><tr><th>agent</th><th>health</th><th>checks</th><th>failing (hard)</th></tr>
"#,
        n = agents.len()
    );
    for agent in agents {
        let name = agent.agent.as_str();
        let health = agent.health.status.as_str();
        let checks = agent.checks.len();
        let hard = agent
            .checks
            .iter()
            .filter(|c| c.state.starts_with("hard"))
            .count();
        let link: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let _ = writeln!(
            out,
            "<tr><td><a href=\"/?agent={link}\">{name}</a></td><td class=\"{health}\">{health}</td><td>{checks}</td><td class=\"{cls}\">{hard}</td></tr>",
            name = escape(name),
            health = escape(health),
            cls = if hard > 0 { "hard" } else { "" },
        );
    }
    out.push_str("</table>\n<p>JSON: <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a></p>\n</body></html>\n");
    out
}

/// One agent's page.
fn render_agent(status: &AgentStatus) -> String {
    let text = |v: &str| escape(v);
    let optional = |v: &Option<String>| v.as_deref().map(escape).unwrap_or_default();
    let agent = text(&status.agent);
    let health = text(&status.health.status);
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>heartbeat-host: {agent} ({health})</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; }}
.failed, .degraded, .state-hard {{ color: #b00020; font-weight: 600; }}
.state-soft {{ color: #a15c00; }}
.success, .healthy {{ color: #1b5e20; }}
.muted {{ color: #777; }}
</style></head><body>
<h1>heartbeat-host: agent {agent}</h1>
<p id="health">Health: <span class="{health}">{health}</span> <span class="muted">at {at}</span></p>
"#,
        at = text(&status.at),
    );
    let reasons = &status.health.reasons;
    if !reasons.is_empty() {
        out.push_str("<ul id=\"health-reasons\">");
        for reason in reasons {
            let _ = write!(out, "<li>{}</li>", text(reason));
        }
        out.push_str("</ul>\n");
    }

    out.push_str(
        "<h2>Checks</h2>\n<table id=\"checks\"><tr><th>check</th><th>handler</th><th>status</th><th>state</th><th>why</th><th>last run</th><th>last outcome</th><th>next due</th><th>ratio</th></tr>\n",
    );
    for check in &status.checks {
        let outcome = optional(&check.last_status);
        let error = optional(&check.last_error);
        let ratio = match check.ratio {
            Some(r) => format!("{r:.2}"),
            None => "inf".to_string(),
        };
        let _ = writeln!(
            out,
            "<tr data-check=\"{name}\" data-state=\"{state}\"><td>{name}</td><td>{handler}</td><td>{st}</td><td class=\"state-{state}\">{state_text}</td><td>{why}</td><td>{last}</td><td class=\"{outcome}\">{outcome}{sep}{error}</td><td>{next}</td><td>{ratio}</td></tr>",
            name = text(&check.name),
            handler = text(&check.handler),
            st = text(&check.status),
            state = text(&check.state),
            state_text = text(&check.state_text),
            why = text(&check.reason),
            last = optional(&check.last_run),
            sep = if error.is_empty() { "" } else { ": " },
            next = optional(&check.next_due),
        );
    }
    out.push_str("</table>\n");

    out.push_str(
        "<h2>Recent runs</h2>\n<table id=\"runs\"><tr><th>at</th><th>check</th><th>handler</th><th>outcome</th><th>ms</th><th>error</th></tr>\n",
    );
    for run in &status.recent_runs {
        let outcome = text(&run.status);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{outcome}\">{outcome}</td><td>{:.3}</td><td>{}</td></tr>",
            text(&run.at),
            text(&run.check),
            text(&run.handler),
            run.duration_ms,
            optional(&run.error),
        );
    }
    out.push_str("</table>\n");

    let processes = &status.processes;
    out.push_str("<h2>Watched processes</h2>\n");
    if processes.is_empty() {
        out.push_str("<p class=\"muted\">none</p>\n");
    } else {
        out.push_str("<table id=\"processes\"><tr><th>process</th><th>status</th><th>last message</th><th>last seen</th></tr>\n");
        for p in processes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                text(&p.name),
                text(&p.status),
                text(&p.last_message),
                text(&p.last_seen),
            );
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>Bus</h2>\n");
    match &status.bus {
        None => out
            .push_str("<p id=\"bus\" class=\"muted\">no broker: the host's own timer ticks</p>\n"),
        Some(bus) => {
            out.push_str("<table id=\"bus\">");
            for (key, value) in bus.rows() {
                let _ = write!(
                    out,
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape(key),
                    text(&value)
                );
            }
            out.push_str("</table>\n");
        }
    }
    out.push_str("<p class=\"muted\">JSON: <a href=\"/status\">/status</a> · <a href=\"/metrics\">/metrics</a> · <a href=\"/readyz\">/readyz</a></p>\n</body></html>\n");
    out
}

/// `text` with `& < > " '` as entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_handler_or_config_says_is_escaped() {
        let status: StatusReply = serde_json::from_value(serde_json::json!({
            "agent": "a<b",
            "health": {"status": "healthy", "reasons": []},
            "checks": [{"name": "x", "handler": "h", "status": "due", "reason": "",
                        "lastStatus": "failed", "lastError": "<script>alert(1)</script>"}],
            "recentRuns": [], "processes": [], "bus": null,
        }))
        .expect("a /status reply");
        let page = render(&status);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("agent a&lt;b"));
    }
}
