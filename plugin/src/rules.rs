//! Matches and filters of route rules in short words
//! (`PathPrefix /login, header env=canary, GET`).

use serde_json::Value;

use crate::model::{RouteKind, Rule};

/// A rule's matches, `; `-separated (`*` when it matches everything).
pub fn matches(kind: RouteKind, rule: &Rule) -> String {
    match_list(kind, rule).join("; ")
}

/// A rule's matches, one string each (`*` alone when it matches everything).
pub fn match_list(kind: RouteKind, rule: &Rule) -> Vec<String> {
    if rule.matches.is_empty() {
        return vec![match kind {
            RouteKind::Http | RouteKind::Grpc => "*".to_owned(),
            _ => "(all connections)".to_owned(),
        }];
    }
    rule.matches.iter().map(|m| one_match(kind, m)).collect()
}

fn one_match(kind: RouteKind, m: &Value) -> String {
    let mut parts = Vec::new();
    if kind == RouteKind::Grpc {
        if let Some(method) = m.get("method") {
            let service = str_of(method, "service").unwrap_or("*");
            let name = str_of(method, "method").unwrap_or("*");
            let type_ = str_of(method, "type").unwrap_or("Exact");
            parts.push(format!("{type_} /{service}/{name}"));
        }
    } else if let Some(path) = m.get("path") {
        let type_ = str_of(path, "type").unwrap_or("PathPrefix");
        let value = str_of(path, "value").unwrap_or("/");
        parts.push(format!("{type_} {value}"));
    }
    for (field, word) in [("headers", "header"), ("queryParams", "query")] {
        for h in m.get(field).and_then(Value::as_array).into_iter().flatten() {
            let op = match str_of(h, "type") {
                Some("RegularExpression") => "~",
                _ => "=",
            };
            parts.push(format!(
                "{word} {}{op}{}",
                str_of(h, "name").unwrap_or_default(),
                str_of(h, "value").unwrap_or_default()
            ));
        }
    }
    if let Some(method) = m.get("method").and_then(Value::as_str) {
        parts.push(method.to_owned());
    }
    if parts.is_empty() {
        "*".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A rule's filters, `; `-separated (`-` when none).
pub fn filters(rule: &Rule) -> String {
    if rule.filters.is_empty() {
        return "-".to_owned();
    }
    rule.filters
        .iter()
        .map(filter)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One filter in short words.
pub fn filter(f: &Value) -> String {
    let type_ = str_of(f, "type").unwrap_or("?");
    let key = {
        let mut k = type_.to_owned();
        if let Some(first) = k.get_mut(0..1) {
            first.make_ascii_lowercase();
        }
        k
    };
    let body = f.get(key.as_str());
    let detail = match (type_, body) {
        ("RequestHeaderModifier" | "ResponseHeaderModifier", Some(b)) => {
            let mut parts = Vec::new();
            for op in ["set", "add"] {
                for h in b.get(op).and_then(Value::as_array).into_iter().flatten() {
                    parts.push(format!(
                        "{op} {}={}",
                        str_of(h, "name").unwrap_or_default(),
                        str_of(h, "value").unwrap_or_default()
                    ));
                }
            }
            for h in b
                .get("remove")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                parts.push(format!("remove {}", h.as_str().unwrap_or_default()));
            }
            parts.join(", ")
        }
        ("RequestMirror", Some(b)) => {
            let backend = b.get("backendRef").cloned().unwrap_or_default();
            let mut text = str_of(&backend, "name").unwrap_or_default().to_owned();
            if let Some(port) = backend.get("port").and_then(Value::as_i64) {
                text.push_str(&format!(":{port}"));
            }
            if let Some(p) = b.get("percent").and_then(Value::as_i64) {
                text.push_str(&format!(" {p}%"));
            }
            text
        }
        (_, Some(b)) => compact(b),
        (_, None) => String::new(),
    };
    if detail.is_empty() {
        type_.to_owned()
    } else {
        format!("{type_}({detail})")
    }
}

/// A JSON value on one line, without quotes around keys and strings.
fn compact(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", compact(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(items) => items.iter().map(compact).collect::<Vec<_>>().join(","),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}
