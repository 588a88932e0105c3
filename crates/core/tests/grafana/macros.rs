//! Grafana's SQL macros and dashboard variables, expanded as Grafana's PostgreSQL datasource
//! does (https://grafana.com/docs/grafana/latest/datasources/postgres/query-editor/), for the
//! macros the dashboards use. Anything left starting with `$` fails the test, so a dashboard
//! that starts using another macro must teach this module first.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// The panel's time range and the values of dashboard variables.
pub struct Context {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub variables: BTreeMap<&'static str, String>,
}

impl Context {
    fn quoted(t: DateTime<Utc>) -> String {
        format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    /// Grafana's `$__interval_ms`: the range over the panel's width in points (about 1,000
    /// here), never below a second.
    fn interval_ms(&self) -> i64 {
        ((self.to - self.from).num_milliseconds() / 1_000).max(1_000)
    }
}

/// `sql` with every macro and variable replaced; panics on anything it does not know.
pub fn expand(sql: &str, cx: &Context) -> String {
    let mut s = expand_calls(sql, "$__timeFilter(", |arg| {
        format!(
            "{arg} BETWEEN {} AND {}",
            Context::quoted(cx.from),
            Context::quoted(cx.to)
        )
    });
    s = s
        .replace("$__timeFrom()", &Context::quoted(cx.from))
        .replace("$__timeTo()", &Context::quoted(cx.to))
        .replace("$__interval_ms", &cx.interval_ms().to_string())
        .replace("$__interval", &format!("{}ms", cx.interval_ms()));
    for (name, value) in &cx.variables {
        s = s
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(
        !s.contains('$'),
        "a macro or variable the test does not know is left in:\n{s}"
    );
    s
}

/// Replaces each `prefix…)` (parentheses balanced) by `f` of the argument inside.
fn expand_calls(sql: &str, prefix: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let mut depth = 1;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("unbalanced {prefix} in {sql}"));
        out.push_str(&f(after[..end].trim()));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Names of the variables (`$name`, `${name}`, `${name:format}`) a text refers to.
pub fn variables_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split('$').skip(1) {
        let part = part.strip_prefix('{').unwrap_or(part);
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Grafana's own variables (`$__interval`, `${__data.fields…}`, `${__url_time_range}`).
pub fn is_builtin(name: &str) -> bool {
    name.starts_with("__")
}

#[test]
fn macros_expand_like_grafana() {
    let cx = Context {
        from: "2026-01-01T00:00:00Z".parse().unwrap(),
        to: "2026-01-02T00:00:00Z".parse().unwrap(),
        variables: BTreeMap::from([("participant", "P1".to_owned())]),
    };
    assert_eq!(
        expand(
            "where p = '$participant' and $__timeFilter(date_trunc('day', t)) and $__interval_ms > 0",
            &cx
        ),
        "where p = 'P1' and date_trunc('day', t) BETWEEN '2026-01-01T00:00:00.000Z' AND \
         '2026-01-02T00:00:00.000Z' and 86400 > 0"
    );
    assert_eq!(
        variables_in("a ${web_url}/x?p=${__data.fields.id} $participant"),
        ["web_url", "__data", "participant"]
    );
}
