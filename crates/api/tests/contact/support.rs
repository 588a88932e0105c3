//! The app with contact settings pointing at a sink, a database with participants, and a
//! browser-like client that keeps the CSRF cookie.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wearhouse_api::contact::settings::{ContactArgs, SmtpTls};
use wearhouse_api::startup::{Application, ServeArgs};
use wearhouse_core::config::{DatabaseArgs, ListenArgs};
use wearhouse_core::testing::{TEST_ADMIN_TOKEN, TestBackend, TestDb, grant_test_admin};

/// The study coordinator's address in the tests.
pub const COORDINATOR: &str = "coordinator@example.org";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Contact settings sending to `smtp_port` on localhost without TLS, retrying after a second.
pub fn settings(smtp_port: u16) -> ContactArgs {
    ContactArgs {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port,
        smtp_tls: SmtpTls::None,
        smtp_from: "wearhouse <noreply@example.org>".into(),
        contact_to: vec![COORDINATOR.into()],
        contact_retry_secs: 1,
        ..ContactArgs::default()
    }
}

/// The app on port 0 against a fresh database with participants P001 and P002.
pub async fn spawn(contact: ContactArgs) -> TestApp {
    spawn_with(ServeArgs {
        contact,
        ..ServeArgs::default()
    })
    .await
}

/// [`spawn`] with these settings.
pub async fn spawn_with(args: ServeArgs) -> TestApp {
    let db = TestDb::new(TestBackend::Postgres).await;
    sqlx::query(
        "insert into participants (participant_id, timezone) values ('P001', 'Europe/London'),
                                                                   ('P002', 'UTC')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    grant_test_admin(&db.pool).await;
    let mut database = DatabaseArgs::from_url(db.url.clone());
    database.db_max_connections = 5;
    let listen = ListenArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let app = Application::build(&database, &listen, &args).await.unwrap();
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {TEST_ADMIN_TOKEN}").parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        db,
        shutdown,
    }
}

/// A loaded form: its CSRF token and the cookie that goes with it.
pub struct LoadedForm {
    pub html: String,
    pub token: String,
    pub cookie: String,
}

impl TestApp {
    /// GET /contact as a browser would.
    pub async fn load_form(&self, participant: &str) -> (u16, LoadedForm) {
        let r = self
            .client
            .get(format!(
                "{}/contact?participant_id={participant}",
                self.base
            ))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let cookie = r
            .headers()
            .get("set-cookie")
            .expect("the form sets the CSRF cookie")
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let html = r.text().await.unwrap();
        let token = field_value(&html, "csrf_token").expect("a CSRF token in the form");
        (
            status,
            LoadedForm {
                html,
                token,
                cookie,
            },
        )
    }

    /// POST /contact with `fields`, sending `cookie` when given; status and page.
    pub async fn submit(&self, fields: &[(&str, &str)], cookie: Option<&str>) -> (u16, String) {
        self.submit_with(fields, cookie, &[]).await.0
    }

    /// [`Self::submit`] with more headers (`X-Real-IP` as a proxy or a client may send it,
    /// `Idempotency-Key`); status, page and headers.
    pub async fn submit_with(
        &self,
        fields: &[(&str, &str)],
        cookie: Option<&str>,
        headers: &[(&str, &str)],
    ) -> ((u16, String), reqwest::header::HeaderMap) {
        let mut request = self
            .client
            .post(format!("{}/contact", self.base))
            .form(fields);
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let r = request.send().await.unwrap();
        let headers = r.headers().clone();
        ((r.status().as_u16(), r.text().await.unwrap()), headers)
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// (status, attempts, last_error) of every stored request, oldest first.
    pub async fn requests(&self) -> Vec<(String, i32, Option<String>)> {
        sqlx::query_as("select status, attempts, last_error from contact_requests order by id")
            .fetch_all(self.pool())
            .await
            .unwrap()
    }
}

/// The `value` of the input named `name` in `html`.
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + "value=\"".len();
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_owned())
}

/// A local port nothing listens on (for a mail server that is down).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
