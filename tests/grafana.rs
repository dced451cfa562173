//! `contrib/grafana/btcloop.json` against a real `/metrics` scrape: a btcloopd with an
//! outbound v2 peer (a second btcloopd), inbound v1 peers that answer pings and one that left,
//! scraped; every PromQL expression of the dashboard (panels and template variables) is taken
//! apart and each metric it queries must be in the scrape, with the labels it matches or
//! groups by, and each value it matches exactly. The dashboard's shape (Grafana's JSON model)
//! is checked too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use common::{Daemon, WAIT, free_port, http_request, poll_until};
use serde_json::Value;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/btcloop.json");

/// Labels Prometheus adds to every series it scrapes (not in the exposition itself).
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// What a scrape exposes: each sample name with its label names and the values seen per label,
/// and the family types from `# TYPE` lines.
#[derive(Default, Debug)]
struct Scrape {
    samples: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut w = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (w.next(), w.next()) {
                    s.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let series = line.rsplit_once(' ').map_or(line, |(series, _)| series);
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let entry = s.samples.entry(name.to_string()).or_default();
            for kv in labels.trim_end_matches('}').split(',').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                entry.entry(k.to_string()).or_default().insert(v.trim_matches('"').to_string());
            }
        }
        s
    }

    /// The labels of `name`'s samples, if it is exposed: directly, or as a histogram's or
    /// summary's `_bucket`/`_sum`/`_count` series.
    fn labels_of(&self, name: &str) -> Option<&BTreeMap<String, BTreeSet<String>>> {
        if let Some(l) = self.samples.get(name) {
            return Some(l);
        }
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s))?;
        match self.types.get(base).map(String::as_str) {
            Some("histogram" | "summary") => self.samples.get(name),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(String),
}

/// PromQL tokens; numbers, durations in `[...]` and Grafana's `$variables` are dropped.
fn tokens(expr: &str) -> Vec<Tok> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            let mut s = String::new();
            i += 1;
            while let Some(&d) = chars.get(i) {
                i += 1;
                if d == '\\' {
                    if let Some(&e) = chars.get(i) {
                        s.push(e);
                        i += 1;
                    }
                } else if d == c {
                    break;
                } else {
                    s.push(d);
                }
            }
            out.push(Tok::Str(s));
        } else if c == '[' {
            while chars.get(i).is_some_and(|d| *d != ']') {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while chars.get(i).is_some_and(|d| *d != '}') {
                    i += 1;
                }
                i += 1;
            } else {
                while chars.get(i).copied().is_some_and(ident) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while chars.get(i).is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while chars.get(i).copied().is_some_and(ident) {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            if ["=~", "!~", "!=", "==", ">=", "<="].contains(&two.as_str()) {
                out.push(Tok::Punct(two));
                i += 2;
            } else {
                out.push(Tok::Punct(c.to_string()));
                i += 1;
            }
        }
    }
    out
}

/// A metric an expression queries, with its label matchers (label, operator, value).
#[derive(Debug, Default)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String, String)>,
}

/// What one expression queries: its selectors and the labels it groups by.
#[derive(Debug, Default)]
struct Query {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

/// PromQL's aggregation operators, which may take `by (...)`/`without (...)` before their
/// parenthesis.
const AGGREGATIONS: [&str; 12] =
    ["sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group"];

const KEYWORDS: [&str; 10] =
    ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"];

fn punct(t: Option<&Tok>, p: &str) -> bool {
    matches!(t, Some(Tok::Punct(x)) if x == p)
}

/// Takes a PromQL expression apart: identifiers followed by `(` are functions or
/// aggregations, those after `by`/`without`/`on`/`ignoring` label lists, the rest metric names
/// (with their `{...}` matchers). `label_values(metric, label)` (Grafana) names a metric and a
/// label.
fn analyse(expr: &str) -> Result<Query, String> {
    let t = tokens(expr);
    let mut q = Query::default();
    let mut i = 0;
    while let Some(tok) = t.get(i) {
        let Tok::Ident(name) = tok else {
            i += 1;
            continue;
        };
        let next = t.get(i + 1);
        if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&name.as_str()) {
            i += 1;
            if punct(t.get(i), "(") {
                i += 1;
                while let Some(tok) = t.get(i) {
                    i += 1;
                    match tok {
                        Tok::Ident(l) => q.grouping.push(l.clone()),
                        Tok::Punct(p) if p == ")" => break,
                        _ => {}
                    }
                }
            }
            continue;
        }
        if name == "label_values" && punct(next, "(") {
            match (t.get(i + 2), t.get(i + 3), t.get(i + 4)) {
                (Some(Tok::Ident(m)), Some(Tok::Punct(c)), Some(Tok::Ident(l))) if c == "," => {
                    q.selectors.push(Selector { metric: m.clone(), matchers: Vec::new() });
                    q.grouping.push(l.clone());
                    i += 5;
                    continue;
                }
                _ => return Err(format!("label_values(metric, label) expected in {expr}")),
            }
        }
        let grouped_aggregation =
            AGGREGATIONS.contains(&name.as_str()) && matches!(next, Some(Tok::Ident(k)) if k == "by" || k == "without");
        if punct(next, "(") || grouped_aggregation || KEYWORDS.contains(&name.as_str()) || name == "offset" {
            i += 1;
            continue;
        }
        let mut sel = Selector { metric: name.clone(), matchers: Vec::new() };
        i += 1;
        if punct(t.get(i), "{") {
            i += 1;
            loop {
                match (t.get(i), t.get(i + 1), t.get(i + 2)) {
                    (Some(Tok::Punct(p)), _, _) if p == "}" => {
                        i += 1;
                        break;
                    }
                    (Some(Tok::Punct(p)), _, _) if p == "," => i += 1,
                    (Some(Tok::Ident(l)), Some(Tok::Punct(op)), Some(Tok::Str(v))) => {
                        sel.matchers.push((l.clone(), op.clone(), v.clone()));
                        i += 3;
                    }
                    _ => return Err(format!("cannot read the label matchers of {name} in {expr}")),
                }
            }
        }
        q.selectors.push(sel);
    }
    Ok(q)
}

/// Every PromQL expression of the dashboard, with where it is: panel targets and query
/// template variables.
fn expressions(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dash["panels"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    while let Some(p) = panels.pop() {
        if let Some(nested) = p["panels"].as_array() {
            panels.extend(nested);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default().to_string();
            out.push((format!("panel {:?} target {}", p["title"], t["refId"]), expr));
        }
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or_default();
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    out
}

/// What is wrong with the dashboard's queries against `scrape`; empty when every metric,
/// label and exactly matched value exists.
fn query_problems(dash: &Value, scrape: &Scrape) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, expr) in expressions(dash) {
        let q = match analyse(&expr) {
            Ok(q) => q,
            Err(e) => {
                problems.push(format!("{place}: {e}"));
                continue;
            }
        };
        if q.selectors.is_empty() {
            problems.push(format!("{place}: queries no metric: {expr}"));
        }
        let mut seen_labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        for sel in &q.selectors {
            let Some(labels) = scrape.labels_of(&sel.metric) else {
                problems.push(format!("{place}: metric {} is not in the scrape ({expr})", sel.metric));
                continue;
            };
            seen_labels.extend(labels.keys().map(String::as_str));
            for (label, op, value) in &sel.matchers {
                if TARGET_LABELS.contains(&label.as_str()) {
                    continue;
                }
                match labels.get(label) {
                    None => problems.push(format!("{place}: {} has no label {label}", sel.metric)),
                    Some(values) if op == "=" && !values.contains(value) => problems.push(format!(
                        "{place}: {}{{{label}=\"{value}\"}} matches nothing (values: {values:?})",
                        sel.metric
                    )),
                    Some(_) => {}
                }
            }
        }
        for label in &q.grouping {
            if !seen_labels.contains(label.as_str()) {
                problems.push(format!("{place}: groups by {label}, which none of its metrics has ({expr})"));
            }
        }
    }
    problems
}

/// Grafana's dashboard model: the top-level fields, a datasource variable, and panels with an
/// id, a type, a place on the 24-column grid that overlaps no other, and Prometheus targets
/// (an `expr` and a unique `refId` each) on that datasource.
fn shape_problems(dash: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for key in ["title", "uid"] {
        if dash[key].as_str().is_none_or(|s| s.is_empty()) {
            problems.push(format!("no {key}"));
        }
    }
    if dash["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push("schemaVersion missing or older than 36".into());
    }
    let vars = dash["templating"]["list"].as_array().cloned().unwrap_or_default();
    if !vars.iter().any(|v| v["type"] == "datasource" && v["name"] == "datasource" && v["query"] == "prometheus") {
        problems.push("no Prometheus datasource variable".into());
    }
    let Some(panels) = dash["panels"].as_array() else {
        problems.push("no panels".into());
        return problems;
    };
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, u64, u64, u64, u64)> = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        if !p["id"].as_u64().is_some_and(|id| ids.insert(id)) {
            problems.push(format!("{title}: missing or repeated id"));
        }
        let g = &p["gridPos"];
        let (Some(x), Some(y), Some(w), Some(h)) = (g["x"].as_u64(), g["y"].as_u64(), g["w"].as_u64(), g["h"].as_u64())
        else {
            problems.push(format!("{title}: no gridPos"));
            continue;
        };
        if w == 0 || h == 0 || x + w > 24 {
            problems.push(format!("{title}: gridPos {g} off the 24-column grid"));
        }
        for (other, ox, oy, ow, oh) in &boxes {
            if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                problems.push(format!("{title} overlaps {other}"));
            }
        }
        boxes.push((title.clone(), x, y, w, h));
        let kind = p["type"].as_str().unwrap_or_default();
        if kind == "row" {
            continue;
        }
        if !["timeseries", "stat", "gauge", "bargauge", "table"].contains(&kind) {
            problems.push(format!("{title}: panel type {kind:?}"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{title}: no targets"));
        }
        let mut refs = BTreeSet::new();
        for t in targets {
            if t["expr"].as_str().is_none_or(|e| e.is_empty()) {
                problems.push(format!("{title}: a target without expr"));
            }
            if !t["refId"].as_str().is_some_and(|r| refs.insert(r.to_string())) {
                problems.push(format!("{title}: missing or repeated refId"));
            }
            for ds in [&t["datasource"], &p["datasource"]] {
                if ds["type"] != "prometheus" || ds["uid"] != "${datasource}" {
                    problems.push(format!("{title}: datasource {ds}, not the Prometheus variable"));
                }
            }
        }
    }
    problems
}

fn scrape(addr: SocketAddr) -> Scrape {
    let r = http_request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    Scrape::parse(&r.text())
}

#[test]
fn every_metric_the_dashboard_queries_is_in_a_real_scrape() {
    let text = std::fs::read_to_string(DASHBOARD).expect("read the dashboard");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(shape_problems(&dash), Vec::<String>::new());
    let queries = expressions(&dash);
    assert!(queries.len() >= 25, "{queries:?}");
    // The issue's panels: peers by direction and network, traffic by message type, queue
    // depths, disconnect reasons, sync progress, ping times.
    for needle in [
        "by (direction, network) (btcloop_peers",
        "by (message_type) (rate(btcloop_messages_total",
        "btcloop_queue_bytes",
        "by (reason) (increase(btcloop_disconnects_total",
        "btcloop_sync_progress",
        "btcloop_header_height",
        "btcloop_block_height",
        "btcloop_ping_seconds",
    ] {
        assert!(queries.iter().any(|(_, e)| e.contains(needle)), "no query with {needle}");
    }

    // A node with an outbound (manual, v2) peer, two inbound v1 peers that answered its ping,
    // one of which then left.
    let other = Daemon::start(&[]);
    let port = free_port();
    let metrics = SocketAddr::from(([127, 0, 0, 1], port));
    let d = Daemon::start_with(true, |_| {
        vec![format!("--metricsbind={metrics}"), format!("--connect=127.0.0.1:{}", other.port)]
    });
    d.wait_log_all(&["New manual peer connected", "transport: v2"], WAIT);
    let mut kept = d.connect_ready();
    let left = d.connect_ready();
    kept.ping_pong(7);
    left.close_gracefully();
    d.wait_log("socket closed by peer", WAIT);
    let mut problems = Vec::new();
    let ready = poll_until(WAIT, || {
        let s = scrape(metrics);
        problems = query_problems(&dash, &s);
        problems.is_empty()
    });
    assert!(ready, "the dashboard queries what the node does not expose:\n{}", problems.join("\n"));

    // The check can fail: a misspelt metric, label or value is each reported.
    let s = scrape(metrics);
    for (from, to, reported) in [
        ("btcloop_ping_seconds{", "btcloop_ping_second{", "metric btcloop_ping_second is not in the scrape"),
        ("by (direction, network)", "by (direction, netwrk)", "groups by netwrk"),
        ("direction=\\\"received\\\"", "direction=\\\"recv\\\"", "{direction=\"recv\"} matches nothing"),
        ("btcloop_queue_bytes{", "btcloop_queue_bytes{queue_kind=\\\"send\\\",", "has no label queue_kind"),
    ] {
        assert!(text.contains(from), "{from}");
        let bad: Value = serde_json::from_str(&text.replacen(from, to, 1)).expect("still JSON");
        let found = query_problems(&bad, &s);
        assert!(found.iter().any(|p| p.contains(reported)), "{to}: {found:?}");
    }
    drop(kept);
}

/// The expression reader on its own: functions, aggregations, grouping, matchers, ranges and
/// Grafana variables.
#[test]
fn promql_expressions_are_taken_apart() {
    let q = analyse(
        r#"sum by (direction, network) (rate(btcloop_messages_total{instance=~"$instance",direction="sent"}[$__rate_interval])) / on (instance) group_left btcloop_peers offset 5m"#,
    )
    .unwrap();
    let metrics: Vec<&str> = q.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["btcloop_messages_total", "btcloop_peers"]);
    assert_eq!(q.grouping, ["direction", "network", "instance"]);
    assert_eq!(q.selectors[0].matchers[1], ("direction".into(), "=".into(), "sent".into()));
    let q = analyse("max without (stat) (btcloop_ping_seconds) > sum(btcloop_peers)").unwrap();
    let metrics: Vec<&str> = q.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["btcloop_ping_seconds", "btcloop_peers"]);
    let q = analyse("time() - btcloop_header_time_seconds{job=\"x\"} > 3600").unwrap();
    assert_eq!(q.selectors.len(), 1);
    assert_eq!(q.selectors[0].metric, "btcloop_header_time_seconds");
    let q = analyse("label_values(btcloop_header_height, instance)").unwrap();
    assert_eq!((q.selectors[0].metric.as_str(), q.grouping[0].as_str()), ("btcloop_header_height", "instance"));
    assert!(analyse("btcloop_peers{direction=}").is_err());
}
