//! Staff users: their role, the studies they work on, their password hash and single-sign-on
//! identity. Passwords are hashed by the caller (the API crate); nothing here sees one.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::store::studies;

/// What a user may do; the permission matrix is the API's (`auth::permits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, in every study: users, studies, the audit trail.
    Admin,
    /// Their studies' participants, contact details included; enrolment and withdrawal.
    Coordinator,
    /// Their studies' data, exports, imputation jobs and the contact form.
    Researcher,
    /// Their studies' data, read only; never contact details.
    Analyst,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::Coordinator,
        Role::Researcher,
        Role::Analyst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Coordinator => "coordinator",
            Role::Researcher => "researcher",
            Role::Analyst => "analyst",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "role",
                    format!("{s:?} is not a role; use admin, coordinator, researcher or analyst"),
                )
            })
    }
}

/// A user with the studies they work on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
    /// The studies granted to the user (an admin works on all of them whatever is listed).
    pub studies: Vec<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub sso: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

struct Row {
    user_id: i64,
    email: String,
    role: String,
    studies: Vec<String>,
    password_hash: Option<String>,
    sso: bool,
    disabled_at: Option<DateTime<Utc>>,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<Row> for User {
    type Error = Error;

    fn try_from(r: Row) -> Result<User> {
        Ok(User {
            user_id: r.user_id,
            email: r.email,
            role: r.role.parse()?,
            studies: r.studies,
            password_hash: r.password_hash,
            sso: r.sso,
            disabled_at: r.disabled_at,
            last_login_at: r.last_login_at,
            created_at: r.created_at,
        })
    }
}

/// A new user.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub role: Role,
    pub studies: &'a [String],
    /// argon2id PHC string, or none for a single-sign-on-only user.
    pub password_hash: Option<&'a str>,
}

/// Checks the shape of an e-mail address (something@somewhere, no spaces).
pub fn check_email(email: &str) -> Result<&str> {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace) =>
        {
            Ok(email)
        }
        _ => Err(Error::invalid(
            "email",
            format!("{email:?} is not an e-mail address"),
        )),
    }
}

async fn check_studies(conn: &mut PgConnection, ids: &[String]) -> Result<()> {
    let missing = studies::missing(conn, ids).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "study",
            format!(
                "no such study: {}; list them with `wearhouse-api study list`",
                missing.join(", ")
            ),
        ))
    }
}

/// Creates a user with their studies. An e-mail already in use (in any letter case) is an
/// error that says so.
pub async fn add(conn: &mut PgConnection, new: &NewUser<'_>) -> Result<User> {
    let email = check_email(new.email)?;
    check_studies(conn, new.studies).await?;
    let id = sqlx::query_scalar!(
        "insert into users (email, role, password_hash) values ($1, $2, $3)
         on conflict do nothing returning user_id",
        email,
        new.role.name(),
        new.password_hash
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| {
        Error::invalid(
            "email",
            format!("a user with e-mail {email} exists already"),
        )
    })?;
    grant(conn, id, new.studies).await?;
    get(conn, id).await
}

/// The user with this id.
pub async fn get(conn: &mut PgConnection, user_id: i64) -> Result<User> {
    find(conn, Some(user_id), None, None)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound {
            what: "user",
            id: user_id.to_string(),
        })
}

/// The user with this e-mail (any letter case), if there is one.
pub async fn by_email(conn: &mut PgConnection, email: &str) -> Result<Option<User>> {
    Ok(find(conn, None, Some(email.trim()), None)
        .await?
        .into_iter()
        .next())
}

/// The user with this e-mail, or an error naming it.
pub async fn require(conn: &mut PgConnection, email: &str) -> Result<User> {
    by_email(conn, email).await?.ok_or_else(|| Error::NotFound {
        what: "user",
        id: email.trim().to_owned(),
    })
}

/// The user the identity provider knows as `subject`, if linked.
pub async fn by_sso(conn: &mut PgConnection, issuer: &str, subject: &str) -> Result<Option<User>> {
    Ok(find(conn, None, None, Some((issuer, subject)))
        .await?
        .into_iter()
        .next())
}

/// Every user, ordered by e-mail.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<User>> {
    find(conn, None, None, None).await
}

async fn find(
    conn: &mut PgConnection,
    id: Option<i64>,
    email: Option<&str>,
    sso: Option<(&str, &str)>,
) -> Result<Vec<User>> {
    let (issuer, subject) = sso.unzip();
    let rows = sqlx::query_as!(
        Row,
        r#"select u.user_id, u.email, u.role, u.password_hash,
                  u.oidc_subject is not null as "sso!",
                  u.disabled_at, u.last_login_at, u.created_at,
                  coalesce(array(select s.study_id from user_studies s
                                 where s.user_id = u.user_id order by s.study_id),
                           '{}') as "studies!"
           from users u
           where ($1::bigint is null or u.user_id = $1)
             and ($2::text is null or lower(u.email) = lower($2))
             and ($3::text is null or (u.oidc_issuer = $3 and u.oidc_subject = $4))
           order by lower(u.email)"#,
        id,
        email,
        issuer,
        subject
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(User::try_from).collect()
}

/// Grants the user these studies (those already granted stay).
pub async fn grant(conn: &mut PgConnection, user_id: i64, studies: &[String]) -> Result<()> {
    check_studies(conn, studies).await?;
    sqlx::query!(
        "insert into user_studies (user_id, study_id) select $1, unnest($2::text[])
         on conflict do nothing",
        user_id,
        studies
    )
    .execute(&mut *conn)
    .await?;
    touch(conn, user_id).await
}

/// Takes these studies from the user.
pub async fn revoke(conn: &mut PgConnection, user_id: i64, studies: &[String]) -> Result<()> {
    sqlx::query!(
        "delete from user_studies where user_id = $1 and study_id = any($2)",
        user_id,
        studies
    )
    .execute(&mut *conn)
    .await?;
    touch(conn, user_id).await
}

/// Changes the user's role.
pub async fn set_role(conn: &mut PgConnection, user_id: i64, role: Role) -> Result<()> {
    sqlx::query!(
        "update users set role = $2, updated_at = now() where user_id = $1",
        user_id,
        role.name()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Replaces the user's password hash.
pub async fn set_password_hash(conn: &mut PgConnection, user_id: i64, hash: &str) -> Result<()> {
    sqlx::query!(
        "update users set password_hash = $2, updated_at = now() where user_id = $1",
        user_id,
        hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Disables (or enables again) the user. Disabling ends their sessions at once; their API
/// tokens stop working because every use checks the user.
pub async fn set_disabled(conn: &mut PgConnection, user_id: i64, disabled: bool) -> Result<()> {
    sqlx::query!(
        "update users set disabled_at = case when $2 then coalesce(disabled_at, now()) end,
                          updated_at = now()
         where user_id = $1",
        user_id,
        disabled
    )
    .execute(&mut *conn)
    .await?;
    if disabled {
        sqlx::query!(
            "update sessions set ended_at = now() where user_id = $1 and ended_at is null",
            user_id
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Links the user to their identity at the single-sign-on issuer.
pub async fn link_sso(
    conn: &mut PgConnection,
    user_id: i64,
    issuer: &str,
    subject: &str,
) -> Result<()> {
    sqlx::query!(
        "update users set oidc_issuer = $2, oidc_subject = $3, updated_at = now()
         where user_id = $1",
        user_id,
        issuer,
        subject
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Notes a successful sign-in.
pub async fn record_login(conn: &mut PgConnection, user_id: i64) -> Result<()> {
    sqlx::query!(
        "update users set last_login_at = now() where user_id = $1",
        user_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn touch(conn: &mut PgConnection, user_id: i64) -> Result<()> {
    sqlx::query!(
        "update users set updated_at = now() where user_id = $1",
        user_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
