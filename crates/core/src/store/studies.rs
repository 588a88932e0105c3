//! Studies: every participant belongs to exactly one, and staff see the studies they work on.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::error::{Error, Result};

/// A study row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Study {
    pub study_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Participants in the study.
    pub participants: i64,
}

/// Whether `id` may name a study: a letter or digit, then up to 63 letters, digits, `_`, `.`
/// or `-` (the same rule as the table's check).
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "id",
            format!(
                "{id:?} is not a study id: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            ),
        ))
    }
}

/// Creates a study; an existing id is an error that says so.
pub async fn add(conn: &mut PgConnection, id: &str, name: &str) -> Result<Study> {
    check_id(id)?;
    if name.trim().is_empty() {
        return Err(Error::invalid("name", "a study needs a name"));
    }
    let created = sqlx::query_scalar!(
        "insert into studies (study_id, name) values ($1, $2)
         on conflict (study_id) do nothing returning created_at",
        id,
        name.trim()
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(created_at) = created else {
        return Err(Error::invalid("id", format!("study {id:?} exists already")));
    };
    Ok(Study {
        study_id: id.to_owned(),
        name: name.trim().to_owned(),
        created_at,
        participants: 0,
    })
}

/// Every study with its participant count, ordered by id.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<Study>> {
    Ok(sqlx::query_as!(
        Study,
        r#"select s.study_id, s.name, s.created_at,
                  (select count(*) from participants p where p.study_id = s.study_id) as "participants!"
           from studies s order by s.study_id"#
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Every study's id, ordered.
pub async fn ids(conn: &mut PgConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar!("select study_id from studies order by study_id")
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Which of `ids` do not name a study.
pub async fn missing(conn: &mut PgConnection, ids: &[String]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        r#"select id as "id!" from unnest($1::text[]) as id
           where not exists (select 1 from studies where study_id = id) order by id"#,
        ids
    )
    .fetch_all(&mut *conn)
    .await?)
}
