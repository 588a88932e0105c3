//! Researcher outreach: the form, its checks, the e-mail and the retries.

use std::time::Duration;

use wearhouse_api::contact::form::{MAX_BODY_LEN, MAX_MESSAGE, MAX_NAME, MAX_SUBJECT};

use crate::sink::Sink;
use crate::support::{COORDINATOR, free_port, settings, spawn};

fn fields<'a>(token: &'a str, participant: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", token),
        ("participant_id", participant),
        ("requester_name", "Dr Ada Example"),
        ("requester_email", email),
        ("subject", "Device not worn since Monday"),
        (
            "message",
            "Could you check whether the participant needs a new charger?",
        ),
    ]
}

#[tokio::test]
async fn a_request_is_stored_and_emailed_to_the_study_coordinator() {
    let mut sink = Sink::start("127.0.0.1:0").await;
    let app = spawn(settings(sink.addr.port())).await;
    let (status, form) = app.load_form("P001").await;
    assert_eq!(status, 200);
    assert!(
        form.html.contains("value=\"P001\""),
        "participant prefilled"
    );

    let (status, page) = app
        .submit(
            &fields(&form.token, "P001", "ada@example.org"),
            Some(&form.cookie),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Request recorded"), "{page}");

    let mail = sink.next(30).await;
    // Long header lines arrive folded (RFC 5322); unfold them to read.
    let text = mail.data.replace("\r\n ", " ");
    assert_eq!(mail.to, [format!("<{COORDINATOR}>")]);
    assert_eq!(mail.from, "<noreply@example.org>");
    assert!(text.contains("Subject: [wearhouse] Contact request for participant P001: Device not worn since Monday"), "{text}");
    assert!(
        mail.data
            .contains("Reply-To: \"Dr Ada Example\" <ada@example.org>"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains("needs a new charger"), "{}", mail.data);

    // The outbox marks the request sent once the server accepted it.
    let mut rows = app.requests().await;
    for _ in 0..50 {
        if rows[0].0 == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = app.requests().await;
    }
    assert_eq!(rows, [("sent".to_owned(), 1, None)]);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_per_field_and_nothing_is_stored() {
    let sink = Sink::start("127.0.0.1:0").await;
    let app = spawn(settings(sink.addr.port())).await;
    let (_, form) = app.load_form("P001").await;

    let mut bad = fields(&form.token, "P999", "not-an-address");
    bad[2] = ("requester_name", "");
    bad[5] = ("message", "");
    let (status, page) = app.submit(&bad, Some(&form.cookie)).await;
    assert_eq!(status, 400);
    for message in [
        "There is no participant &quot;P999&quot; in this study.",
        "Your name is required.",
        "Your e-mail address does not look like name@example.org.",
        "Message is required.",
    ] {
        assert!(page.contains(message), "missing {message:?} in {page}");
    }
    // What was typed is kept, and the re-rendered form carries a fresh token.
    assert!(page.contains("value=\"not-an-address\""));
    assert!(page.contains("name=\"csrf_token\""));

    let long = "x".repeat(151);
    let mut too_long = fields(&form.token, "P001", "ada@example.org");
    too_long[4] = ("subject", &long);
    let (status, page) = app.submit(&too_long, Some(&form.cookie)).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("Subject must be at most 150 characters (it has 151)."),
        "{page}"
    );

    let mut injected = fields(&form.token, "P001", "ada@example.org");
    injected[4] = ("subject", "Hello\r\nBcc: everyone@example.org");
    let (status, page) = app.submit(&injected, Some(&form.cookie)).await;
    assert_eq!(status, 400);
    assert!(page.contains("Subject must be on one line."), "{page}");

    assert!(app.requests().await.is_empty());
}

#[tokio::test]
async fn a_submission_without_the_forms_token_and_cookie_is_refused() {
    let sink = Sink::start("127.0.0.1:0").await;
    let app = spawn(settings(sink.addr.port())).await;
    let (_, form) = app.load_form("P001").await;
    let good = fields(&form.token, "P001", "ada@example.org");

    // Another site can post the fields but has neither a signed token nor the cookie.
    let (status, page) = app
        .submit(&fields("", "P001", "ada@example.org"), None)
        .await;
    assert_eq!(status, 400);
    assert!(
        page.contains("The form expired or did not come from this site."),
        "{page}"
    );
    let (status, _) = app.submit(&good, None).await;
    assert_eq!(status, 400, "the token without its cookie");
    let (_, other) = app.load_form("P001").await;
    let (status, _) = app.submit(&good, Some(&other.cookie)).await;
    assert_eq!(status, 400, "the token with another form's cookie");
    assert!(app.requests().await.is_empty());

    let (status, _) = app.submit(&good, Some(&form.cookie)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn oversized_bodies_and_floods_from_one_address_are_refused() {
    let sink = Sink::start("127.0.0.1:0").await;
    let mut contact = settings(sink.addr.port());
    contact.contact_rate_burst = 2;
    contact.contact_rate_refill_secs = 3_600;
    let app = spawn(contact).await;
    let (_, form) = app.load_form("P001").await;

    let huge = "y".repeat(MAX_BODY_LEN + 1);
    let mut big = fields(&form.token, "P001", "ada@example.org");
    big[5] = ("message", &huge);
    let (status, page) = app.submit(&big, Some(&form.cookie)).await;
    assert_eq!(status, 413);
    let body: serde_json::Value = serde_json::from_str(&page).expect("a JSON error");
    assert_eq!(body["error"]["code"], "payload_too_large");

    let good = fields(&form.token, "P001", "ada@example.org");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.submit(&good, Some(&form.cookie)).await.0);
    }
    // The oversized body spent no token: it was refused before the handler ran.
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(app.requests().await.len(), 2);
}

#[tokio::test]
async fn a_send_that_fails_is_recorded_and_retried_until_the_mail_server_accepts_it() {
    let port = free_port();
    let app = spawn(settings(port)).await;
    let (_, form) = app.load_form("P002").await;
    let (status, _) = app
        .submit(
            &fields(&form.token, "P002", "ada@example.org"),
            Some(&form.cookie),
        )
        .await;
    assert_eq!(status, 200);

    // The server is down: the failure is recorded with its error and a retry time.
    let mut failed = None;
    for _ in 0..100 {
        let rows = app.requests().await;
        if rows[0].0 == "failed" {
            failed = Some(rows[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, attempts, error) = failed.expect("the failed send is recorded");
    assert!(attempts >= 1);
    assert!(error.is_some_and(|e| !e.is_empty()));

    // The server comes up on the configured port; the outbox delivers on a later attempt.
    let mut sink = Sink::start(&format!("127.0.0.1:{port}")).await;
    let mail = sink.next(30).await;
    assert!(mail.data.contains("participant P002"), "{}", mail.data);
    let mut rows = app.requests().await;
    for _ in 0..50 {
        if rows[0].0 == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = app.requests().await;
    }
    assert_eq!(rows[0].0, "sent");
    assert!(rows[0].1 >= 2, "delivered on a retry: {rows:?}");
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn every_field_at_its_limit_in_four_byte_characters_fits_and_one_more_is_a_field_error() {
    let sink = Sink::start("127.0.0.1:0").await;
    let app = spawn(settings(sink.addr.port())).await;
    let (_, form) = app.load_form("P001").await;
    let wide = |n: usize| "\u{1F600}".repeat(n);
    let send = |message: String| {
        let all = [
            ("csrf_token", form.token.clone()),
            ("participant_id", "P001".to_owned()),
            ("requester_name", wide(MAX_NAME)),
            ("requester_email", "ada@example.org".to_owned()),
            ("subject", wide(MAX_SUBJECT)),
            ("message", message),
        ];
        let (app, cookie) = (&app, form.cookie.clone());
        async move {
            let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.submit(&all, Some(&cookie)).await
        }
    };

    let (status, page) = send(wide(MAX_MESSAGE)).await;
    assert_eq!(status, 200, "{}", &page[..page.len().min(500)]);
    let (status, page) = send("\u{4E2D}".repeat(3_700)).await;
    assert_eq!(status, 200, "{}", &page[..page.len().min(500)]);

    let (status, page) = send(wide(MAX_MESSAGE + 1)).await;
    assert_eq!(status, 400);
    assert!(
        page.contains(&format!(
            "Message must be at most {MAX_MESSAGE} characters (it has {}).",
            MAX_MESSAGE + 1
        )),
        "{}",
        &page[..page.len().min(500)]
    );
    assert_eq!(app.requests().await.len(), 2);
}

#[tokio::test]
async fn a_nul_character_in_a_field_is_a_400_naming_it_and_nothing_is_stored() {
    let sink = Sink::start("127.0.0.1:0").await;
    let app = spawn(settings(sink.addr.port())).await;
    let (_, form) = app.load_form("P001").await;
    for (index, field, value) in [
        (1, "participant_id", "P001\0"),
        (5, "message", "Please call\0 back."),
        (4, "subject", "\0"),
    ] {
        let mut bad = fields(&form.token, "P001", "ada@example.org");
        bad[index] = (field, value);
        let (status, page) = app.submit(&bad, Some(&form.cookie)).await;
        assert_eq!(status, 400, "{field}: {page}");
        let body: serde_json::Value = serde_json::from_str(&page).expect("a JSON error");
        assert_eq!(body["error"]["parameter"], field, "{page}");
    }
    assert!(app.requests().await.is_empty());
    let (status, _) = app
        .submit(
            &fields(&form.token, "P001", "ada@example.org"),
            Some(&form.cookie),
        )
        .await;
    assert_eq!(
        status, 200,
        "the rate limit was not spent on refused bodies"
    );
}

#[tokio::test]
async fn a_retried_submission_with_the_same_key_is_answered_again_and_stored_once() {
    let sink = Sink::start("127.0.0.1:0").await;
    let mut contact = settings(sink.addr.port());
    contact.contact_rate_burst = 2;
    contact.contact_rate_refill_secs = 3_600;
    let app = spawn(contact).await;
    let (_, form) = app.load_form("P001").await;
    let good = fields(&form.token, "P001", "ada@example.org");
    let key = [("idempotency-key", "form-7f3a")];

    let (first, headers) = app.submit_with(&good, Some(&form.cookie), &key).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert!(headers.get("idempotent-replayed").is_none());
    let (again, headers) = app.submit_with(&good, Some(&form.cookie), &key).await;
    assert_eq!(again, first);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(app.requests().await.len(), 1);

    // The same key with another message: refused, nothing stored.
    let mut other = good.clone();
    other[5] = ("message", "Another message");
    let ((status, page), _) = app.submit_with(&other, Some(&form.cookie), &key).await;
    assert_eq!(status, 422, "{page}");
    let body: serde_json::Value = serde_json::from_str(&page).expect("a JSON error");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(app.requests().await.len(), 1);

    // The replay spent no submission of the address's burst of two.
    let (status, _) = app.submit(&good, Some(&form.cookie)).await;
    assert_eq!(status, 200);
    let (status, _) = app.submit(&good, Some(&form.cookie)).await;
    assert_eq!(status, 429);
    assert_eq!(app.requests().await.len(), 2);
}

#[tokio::test]
async fn erasing_the_participant_forgets_the_kept_answers_that_name_them() {
    let sink = Sink::start("127.0.0.1:0").await;
    let app = spawn(settings(sink.addr.port())).await;
    let (_, form) = app.load_form("P001").await;
    let ((status, _), _) = app
        .submit_with(
            &fields(&form.token, "P001", "ada@example.org"),
            Some(&form.cookie),
            &[("idempotency-key", "before-erasure")],
        )
        .await;
    assert_eq!(status, 200);
    let kept = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from idempotency_keys")
            .fetch_one(app.pool())
            .await
            .unwrap()
    };
    assert_eq!(kept().await, 1);
    let r = app
        .client
        .post(format!("{}/participants/P001/erase", app.base))
        .json(&serde_json::json!({"confirm": "P001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(kept().await, 0);
}
