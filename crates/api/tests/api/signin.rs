//! Signing in with a local account: argon2id, one answer for every wrong sign-in, throttling,
//! the session cookie's attributes, idle and absolute expiry, sign-out that ends the session
//! on the server, and the audit rows of each.

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use wearhouse_api::auth::password;
use wearhouse_core::store::users::{self, NewUser, Role};

use crate::support::*;

const PASSWORD: &str = "a long enough password";

async fn add_user(app: &TestApp, email: &str, role: Role) {
    let mut conn = app.db.as_ref().unwrap().pool.acquire().await.unwrap();
    let hash = password::hash(PASSWORD).unwrap();
    users::add(
        &mut conn,
        &NewUser {
            email,
            role,
            studies: &["default".to_owned()],
            password_hash: Some(&hash),
        },
    )
    .await
    .unwrap();
}

/// POST /auth/login; status, body and the session cookie's Set-Cookie line.
async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{}/auth/login", app.base))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.json().await.unwrap(), cookie)
}

/// The `name=value` part of a Set-Cookie line.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn with_cookie(app: &TestApp, path: &str, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn actions(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("select action, actor from audit_log order by audit_id")
        .fetch_all(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_user_signs_in_reads_and_signs_out_and_the_session_ends_on_the_server() {
    let app = spawn_app().await;
    add_user(&app, "Reader@Example.org", Role::Researcher).await;

    // Wrong password and unknown account: the same answer.
    let (status, wrong, cookie) = login(&app, "reader@example.org", "not the password").await;
    assert_eq!((status, cookie), (401, None));
    let (status, unknown, _) = login(&app, "nobody@example.org", PASSWORD).await;
    assert_eq!(status, 401);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");

    // The e-mail is matched in any letter case.
    let (status, me, set_cookie) = login(&app, "READER@example.org", PASSWORD).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        json!({"email": "Reader@Example.org", "role": "researcher", "studies": ["default"]})
    );
    let set_cookie = set_cookie.expect("a session cookie");
    assert!(set_cookie.starts_with("wearhouse_session="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    // Plain HTTP to 127.0.0.1 is the local stack: not Secure there, Secure anywhere else.
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let cookie = pair(&set_cookie);

    // Only a hash of the session's secret is stored.
    let secret = cookie.split_once('=').unwrap().1.to_owned();
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from sessions where session_hash = sha256(convert_to($1, 'UTF8'))
           and position(convert_to($1, 'UTF8') in session_hash) = 0",
    )
    .bind(&secret)
    .fetch_one(&app.db.as_ref().unwrap().pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);

    assert_eq!(with_cookie(&app, "/auth/me", &cookie).await, 200);
    let q = "/data?participant_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02";
    assert_eq!(with_cookie(&app, q, &cookie).await, 200);

    let r = reqwest::Client::new()
        .post(format!("{}/auth/logout", app.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie, kept and sent again, no longer works.
    assert_eq!(with_cookie(&app, "/auth/me", &cookie).await, 401);
    assert_eq!(with_cookie(&app, q, &cookie).await, 401);

    let actions = actions(&app).await;
    let kinds: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "login_failed",
            "login_failed",
            "login",
            "read_series",
            "logout"
        ]
    );
    assert_eq!(actions[0].1, "reader@example.org");
    assert_eq!(actions[2].1, "Reader@Example.org");
}

#[tokio::test]
async fn a_session_ends_after_the_idle_time_and_after_its_lifetime() {
    let app = spawn_app().await;
    add_user(&app, "idle@example.org", Role::Analyst).await;
    let pool = &app.db.as_ref().unwrap().pool;

    let (_, _, c) = login(&app, "idle@example.org", PASSWORD).await;
    let idle = pair(&c.unwrap());
    let (_, _, c) = login(&app, "idle@example.org", PASSWORD).await;
    let old = pair(&c.unwrap());
    let (_, _, c) = login(&app, "idle@example.org", PASSWORD).await;
    let active = pair(&c.unwrap());
    let hash_of = |c: &str| c.split_once('=').unwrap().1.to_owned();

    // 14 idle minutes: still good (and the use counts as activity); 16: gone.
    sqlx::query("update sessions set last_seen_at = now() - interval '14 minutes' where session_hash = sha256(convert_to($1, 'UTF8'))")
        .bind(hash_of(&idle))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(with_cookie(&app, "/auth/me", &idle).await, 200);
    sqlx::query("update sessions set last_seen_at = now() - interval '16 minutes' where session_hash = sha256(convert_to($1, 'UTF8'))")
        .bind(hash_of(&idle))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(with_cookie(&app, "/auth/me", &idle).await, 401);

    // Active all along but signed in 12 h 1 min ago: gone.
    sqlx::query("update sessions set created_at = now() - interval '12 hours 1 minute' where session_hash = sha256(convert_to($1, 'UTF8'))")
        .bind(hash_of(&old))
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(with_cookie(&app, "/auth/me", &old).await, 401);
    assert_eq!(with_cookie(&app, "/auth/me", &active).await, 200);

    // Disabling the user ends the rest at once.
    let mut conn = pool.acquire().await.unwrap();
    let user = users::require(&mut conn, "idle@example.org").await.unwrap();
    users::set_disabled(&mut conn, user.user_id, true)
        .await
        .unwrap();
    assert_eq!(with_cookie(&app, "/auth/me", &active).await, 401);
    let (status, _, _) = login(&app, "idle@example.org", PASSWORD).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn idle_and_lifetime_limits_are_settings() {
    let scrape = ScrapeToken::new();
    let mut args = scrape.args();
    args.auth.session_idle_minutes = 1;
    let app = spawn_with(preferred_backend().await, args).await;
    add_user(&app, "short@example.org", Role::Analyst).await;
    let (_, _, c) = login(&app, "short@example.org", PASSWORD).await;
    let cookie = pair(&c.unwrap());
    sqlx::query("update sessions set last_seen_at = now() - interval '2 minutes'")
        .execute(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    assert_eq!(with_cookie(&app, "/auth/me", &cookie).await, 401);
}

#[tokio::test]
async fn repeated_sign_ins_are_throttled_per_account_with_a_retry_after() {
    let app = spawn_app().await;
    add_user(&app, "target@example.org", Role::Analyst).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(login(&app, "target@example.org", "guess").await.0);
    }
    assert_eq!(statuses, [401; 5]);
    let r = reqwest::Client::new()
        .post(format!("{}/auth/login", app.base))
        .json(&json!({"email": "target@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "even the right password waits");
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "throttled");
    // Another account is not slowed by it.
    add_user(&app, "bystander@example.org", Role::Analyst).await;
    assert_eq!(login(&app, "bystander@example.org", PASSWORD).await.0, 200);
}

#[tokio::test]
async fn the_cookie_is_secure_behind_https_and_off_localhost() {
    let app = spawn_app().await;
    add_user(&app, "tls@example.org", Role::Analyst).await;
    for (host, proto, secure) in [
        ("wearhouse.example.org", None, true),
        ("localhost:8080", Some("https"), true),
        ("localhost:8080", None, false),
    ] {
        let mut r = reqwest::Client::new()
            .post(format!("{}/auth/login", app.base))
            .header("host", host)
            .json(&json!({"email": "tls@example.org", "password": PASSWORD}));
        if let Some(p) = proto {
            r = r.header("x-forwarded-proto", p);
        }
        let r = r.send().await.unwrap();
        let c = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert_eq!(c.contains("; Secure"), secure, "{host} {proto:?}: {c}");
    }
}

/// GET `path` with the session cookie: status and the identity headers nginx passes on.
async fn check(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
) -> (u16, Option<String>, Option<String>) {
    let mut r = reqwest::Client::new().get(format!("{}{path}", app.base));
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    let r = r.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let user = header("x-wearhouse-user");
    let role = header("x-wearhouse-grafana-role");
    (r.status().as_u16(), user, role)
}

#[tokio::test]
async fn the_web_servers_sign_in_check_names_the_user_and_their_grafana_role() {
    let app = spawn_app().await;
    add_user(&app, "boss@example.org", Role::Admin).await;
    add_user(&app, "reader@example.org", Role::Researcher).await;
    add_user(&app, "helper@example.org", Role::Coordinator).await;
    let mut sessions = Vec::new();
    for email in [
        "boss@example.org",
        "reader@example.org",
        "helper@example.org",
    ] {
        sessions.push(pair(&login(&app, email, PASSWORD).await.2.unwrap()));
    }
    let [admin, researcher, coordinator] = sessions.as_slice() else {
        unreachable!()
    };
    let (admin, researcher, coordinator) =
        (admin.as_str(), researcher.as_str(), coordinator.as_str());
    let (grafana, operations) = ("/auth/check/grafana", "/auth/check/operations");

    // No session: 401 for both UIs, and no identity to pass on.
    for path in [grafana, operations] {
        assert_eq!(check(&app, path, None).await, (401, None, None), "{path}");
        let forged = "wearhouse_session=not-a-session";
        assert_eq!(
            check(&app, path, Some(forged)).await,
            (401, None, None),
            "{path}"
        );
    }

    // Grafana: an admin is Grafana's admin, a researcher a viewer, a coordinator not let in.
    assert_eq!(
        check(&app, grafana, Some(admin)).await,
        (204, Some("boss@example.org".into()), Some("Admin".into()))
    );
    assert_eq!(
        check(&app, grafana, Some(researcher)).await,
        (
            204,
            Some("reader@example.org".into()),
            Some("Viewer".into())
        )
    );
    assert_eq!(
        check(&app, grafana, Some(coordinator)).await,
        (403, None, None)
    );

    // Prometheus and AlertManager: admins only.
    assert_eq!(
        check(&app, operations, Some(admin)).await,
        (204, Some("boss@example.org".into()), None)
    );
    assert_eq!(
        check(&app, operations, Some(researcher)).await,
        (403, None, None)
    );
    assert_eq!(
        check(&app, operations, Some(coordinator)).await,
        (403, None, None)
    );

    // After signing out the session opens nothing any more.
    reqwest::Client::new()
        .post(format!("{}/auth/logout", app.base))
        .header(COOKIE, admin)
        .send()
        .await
        .unwrap();
    assert_eq!(check(&app, grafana, Some(admin)).await.0, 401);
}
