//! Loading the dashboards and the provisioning, and the structural checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::macros;

/// The repository's `grafana/` folder.
pub fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grafana")
}

/// Every dashboard file and its parsed JSON, by file name.
pub fn load() -> BTreeMap<String, Value> {
    let dir = grafana_dir().join("dashboards");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("grafana/dashboards exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        out.insert(
            path.file_name().unwrap().to_string_lossy().into_owned(),
            json,
        );
    }
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// The datasource uids the provisioning file creates.
pub fn provisioned_uids() -> BTreeSet<String> {
    let path = grafana_dir().join("provisioning/datasources/datasources.yml");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uid:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
        .collect()
}

/// Every panel, with the panels nested in rows.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(inner) = p.get("panels") {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A query a dashboard sends to a datasource.
pub struct Query<'a> {
    pub dashboard: &'a str,
    pub title: String,
    pub datasource: String,
    pub target: &'a Value,
}

/// Every panel target and every query variable.
pub fn queries<'a>(file: &'a str, dashboard: &'a Value) -> Vec<Query<'a>> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        let panel_uid = p["datasource"]["uid"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            let uid = t["datasource"]["uid"].as_str().unwrap_or(panel_uid);
            out.push(Query {
                dashboard: file,
                title: format!("panel {:?} target {}", p["title"], t["refId"]),
                datasource: uid.to_owned(),
                target: t,
            });
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] == "query" {
            out.push(Query {
                dashboard: file,
                title: format!("variable {}", v["name"]),
                datasource: v["datasource"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                target: v,
            });
        }
    }
    out
}

/// The SQL of a target or query variable of the SQL datasource.
pub fn sql_of(q: &Query<'_>) -> Option<String> {
    q.target["rawSql"]
        .as_str()
        .or_else(|| q.target["query"].as_str())
        .map(str::to_owned)
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
fn dashboards_are_valid_and_refer_only_to_provisioned_datasources_and_existing_dashboards() {
    let boards = load();
    let sources = provisioned_uids();
    assert!(
        sources.contains("wearhouse-db") && sources.contains("prometheus"),
        "{sources:?}"
    );
    let uids: BTreeSet<&str> = boards
        .values()
        .map(|d| d["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), boards.len(), "dashboard uids are not unique");
    for (file, d) in &boards {
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: no title"
        );
        let mut ids = BTreeSet::new();
        for p in panels(d) {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: panel without id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            if p["type"] == "row" {
                continue;
            }
            let uid = p["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(
                sources.contains(uid),
                "{file}: panel {:?} uses datasource {uid:?}",
                p["title"]
            );
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "{file}: panel {:?} has no query",
                p["title"]
            );
        }
        let variables: BTreeSet<&str> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for q in queries(file, d) {
            assert!(
                sources.contains(&q.datasource),
                "{file}: {} uses {:?}",
                q.title,
                q.datasource
            );
            if q.datasource == "wearhouse-db" {
                let sql = sql_of(&q).unwrap_or_default();
                assert!(!sql.trim().is_empty(), "{file}: {} has no rawSql", q.title);
                if q.target.get("rawSql").is_some() {
                    assert_eq!(
                        q.target["rawQuery"], true,
                        "{file}: {} is not raw SQL",
                        q.title
                    );
                }
            } else {
                assert!(
                    q.target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                    "{file}: {} has no PromQL expression",
                    q.title
                );
            }
        }
        let mut texts = Vec::new();
        strings(d, &mut texts);
        for s in texts {
            // Links to other dashboards name an existing uid.
            for part in s.split("/d/").skip(1) {
                let uid = part.split(['/', '?']).next().unwrap();
                assert!(
                    uids.contains(uid),
                    "{file}: link to unknown dashboard {uid:?} in {s:?}"
                );
            }
            // Every dashboard variable a query or link uses is defined.
            for name in macros::variables_in(s) {
                assert!(
                    variables.contains(name.as_str()) || macros::is_builtin(&name),
                    "{file}: {s:?} uses undefined variable {name:?}"
                );
            }
        }
    }
}

#[test]
fn the_master_list_links_to_the_participant_dashboard_and_the_contact_form() {
    let boards = load();
    let cohort = boards
        .values()
        .find(|d| d["uid"] == "wearhouse-cohort")
        .unwrap();
    let list = panels(cohort)
        .into_iter()
        .find(|p| p["type"] == "table" && p["title"] == "Participant master list")
        .expect("a master list table");
    let mut texts = Vec::new();
    strings(&list["fieldConfig"], &mut texts);
    assert!(
        texts
            .iter()
            .any(|s| s.starts_with("/d/wearhouse-participant/")
                && s.contains("var-participant=${__data.fields.participant_id}"))
    );
    assert!(
        texts
            .iter()
            .any(|s| s.contains("/api/contact?participant_id=${__data.fields.participant_id}"))
    );
}
