//! The contact form: its fields, their validation with messages for people, and the HTML
//! (maud templates, which escape every value they insert).

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

/// Longest accepted value per field, in characters (the e-mail address in bytes).
pub const MAX_PARTICIPANT: usize = wearhouse_core::ParticipantId::MAX_LEN;
pub const MAX_NAME: usize = 100;
pub const MAX_EMAIL: usize = 254;
pub const MAX_SUBJECT: usize = 150;
pub const MAX_MESSAGE: usize = 5_000;

/// Bytes one character may take in a form body: the longest UTF-8 character (4 bytes), each
/// byte percent-encoded (`%F0%9F%98%80`).
const MAX_ENCODED_CHAR: usize = 4 * 3;

/// Every field of the form body with the most characters it may hold.
const FIELDS: [(&str, usize); 6] = [
    ("participant_id", MAX_PARTICIPANT),
    ("requester_name", MAX_NAME),
    ("requester_email", MAX_EMAIL),
    ("subject", MAX_SUBJECT),
    ("message", MAX_MESSAGE),
    ("csrf_token", super::csrf::TOKEN_MAX_LEN),
];

/// The largest body a valid submission can have: every field at its limit, each character
/// of it encoded as long as a character can be, with the names, `=` and `&`. Derived from the
/// limits, so a changed limit changes it: a message that passes validation always fits.
pub const MAX_BODY_LEN: usize = {
    let mut total = 0;
    let mut i = 0;
    while i < FIELDS.len() {
        total += FIELDS[i].0.len() + 1 + FIELDS[i].1 * MAX_ENCODED_CHAR + 1;
        i += 1;
    }
    total
};

/// The submitted fields, as typed (missing ones empty).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContactForm {
    pub participant_id: String,
    pub requester_name: String,
    pub requester_email: String,
    pub subject: String,
    pub message: String,
    pub csrf_token: String,
}

/// A request that passed validation, trimmed.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub participant_id: String,
    pub requester_name: String,
    pub requester_email: String,
    pub subject: String,
    pub message: String,
}

/// A problem with one field: the field's name and a sentence for the person filling it in.
pub type FieldError = (&'static str, String);

fn required_line(
    field: &'static str,
    label: &str,
    value: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) {
    let n = value.chars().count();
    if n == 0 {
        errors.push((field, format!("{label} is required.")));
    } else if n > max {
        errors.push((
            field,
            format!("{label} must be at most {max} characters (it has {n})."),
        ));
    } else if value.contains('\0') {
        errors.push((field, format!("{label} must not contain a NUL character.")));
    } else if value.chars().any(char::is_control) {
        errors.push((field, format!("{label} must be on one line.")));
    }
}

/// Whether `s` looks like an e-mail address: one `@`, a local part, and a dotted domain of
/// letters, digits and hyphens.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(['@', ' ', '<', '>', '(', ')', ',', ';', ':', '"', '\\'])
        && !local.chars().any(char::is_control)
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks every field and returns the request, or every problem found.
pub fn validate(form: &ContactForm) -> Result<ValidRequest, Vec<FieldError>> {
    let r = ValidRequest {
        participant_id: form.participant_id.trim().to_owned(),
        requester_name: form.requester_name.trim().to_owned(),
        requester_email: form.requester_email.trim().to_owned(),
        subject: form.subject.trim().to_owned(),
        message: form.message.trim().to_owned(),
    };
    let mut errors = Vec::new();
    required_line(
        "participant_id",
        "Participant",
        &r.participant_id,
        MAX_PARTICIPANT,
        &mut errors,
    );
    required_line(
        "requester_name",
        "Your name",
        &r.requester_name,
        MAX_NAME,
        &mut errors,
    );
    if r.requester_email.is_empty() {
        errors.push((
            "requester_email",
            "Your e-mail address is required.".to_owned(),
        ));
    } else if r.requester_email.len() > MAX_EMAIL || !is_email(&r.requester_email) {
        errors.push((
            "requester_email",
            "Your e-mail address does not look like name@example.org.".to_owned(),
        ));
    }
    required_line("subject", "Subject", &r.subject, MAX_SUBJECT, &mut errors);
    let n = r.message.chars().count();
    if n == 0 {
        errors.push(("message", "Message is required.".to_owned()));
    } else if n > MAX_MESSAGE {
        errors.push((
            "message",
            format!("Message must be at most {MAX_MESSAGE} characters (it has {n})."),
        ));
    } else if r.message.contains('\0') {
        errors.push((
            "message",
            "Message must not contain a NUL character.".to_owned(),
        ));
    }
    if errors.is_empty() {
        Ok(r)
    } else {
        Err(errors)
    }
}

/// The page style: inline, as the Content-Security-Policy allows no style sheet.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;\
                     padding:0 1rem}label{display:block;margin-top:1rem;font-weight:600}\
                     input,textarea{width:100%;padding:.4rem;box-sizing:border-box}\
                     .error{color:#b00020}.notice{background:#fff4e5;padding:.5rem}";

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// The messages about `field`.
fn field_errors(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @for (_, message) in errors.iter().filter(|(f, _)| *f == field) {
            p.error id=(format!("{field}-error")) { (message) }
        }
    }
}

/// A labelled one-line input with its messages.
fn input(
    errors: &[FieldError],
    (field, label, kind): (&str, &str, &str),
    value: &str,
    max: usize,
) -> Markup {
    html! {
        label for=(field) { (label) }
        input id=(field) name=(field) type=(kind) maxlength=(max) required value=(value);
        (field_errors(errors, field))
    }
}

/// The form, with the values typed so far, a message per invalid field and a fresh token.
pub fn render(form: &ContactForm, errors: &[FieldError], token: &str) -> String {
    let body = html! {
        h1 { "Contact a participant" }
        p { "Your request goes to the study coordinator, who contacts the participant." }
        @if !errors.is_empty() {
            p.notice role="alert" { "Please correct the fields marked below." }
        }
        (field_errors(errors, "form"))
        form method="post" action="contact" {
            input type="hidden" name="csrf_token" value=(token);
            (input(
                errors,
                ("participant_id", "Participant", "text"),
                &form.participant_id,
                MAX_PARTICIPANT,
            ))
            (input(errors, ("requester_name", "Your name", "text"), &form.requester_name, MAX_NAME))
            (input(
                errors,
                ("requester_email", "Your e-mail address", "email"),
                &form.requester_email,
                MAX_EMAIL,
            ))
            (input(errors, ("subject", "Subject", "text"), &form.subject, MAX_SUBJECT))
            label for="message" { "Message" }
            textarea id="message" name="message" rows="8" maxlength=(MAX_MESSAGE) required {
                (form.message)
            }
            (field_errors(errors, "message"))
            p { button type="submit" { "Send request" } }
        }
    };
    page("Contact a participant", body)
}

/// The confirmation after a stored request.
pub fn render_sent(id: i64, participant_id: &str) -> String {
    let body = html! {
        h1 { "Request recorded" }
        p {
            "Your request #" (id) " about participant " (participant_id)
            " was recorded and is being e-mailed to the study coordinator."
        }
    };
    page("Request recorded", body)
}

/// A page with one message (rate limit, outage).
pub fn render_message(title: &str, message: &str) -> String {
    page(title, html! { h1 { (title) } p { (message) } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes_are_told_apart() {
        for good in ["a@example.org", "first.last+tag@sub.example.co.uk"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@example.org",
            "a@@example.org",
            "a b@example.org",
            "a@exa mple.org",
            "a@-x.org",
            "a@x..org",
            "a@example.org\r\nBcc: x@y.z",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let form = ContactForm {
            subject: "x".repeat(MAX_SUBJECT + 1),
            requester_email: "nope".into(),
            ..ContactForm::default()
        };
        let errors = validate(&form).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "participant_id",
                "requester_name",
                "requester_email",
                "subject",
                "message"
            ]
        );
        assert!(errors[3].1.contains("at most 150 characters"));
    }

    #[test]
    fn nul_and_control_characters_are_refused_where_they_cannot_belong() {
        let form = ContactForm {
            participant_id: "P00\u{0}1".into(),
            requester_name: "Ada".into(),
            requester_email: "ada@example.org".into(),
            subject: "Hello".into(),
            message: "line one\r\nline two\0".into(),
            csrf_token: String::new(),
        };
        let errors = validate(&form).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["participant_id", "message"], "{errors:?}");
        let ok = ContactForm {
            participant_id: "P001".into(),
            message: "line one\r\nline two".into(),
            ..form
        };
        assert!(validate(&ok).is_ok());
    }

    #[test]
    fn the_body_limit_holds_every_field_at_its_limit_in_four_byte_characters() {
        let wide = |n: usize| "\u{1F600}".repeat(n);
        let token = "9".repeat(super::super::csrf::TOKEN_MAX_LEN);
        let fields = [
            ("participant_id", wide(MAX_PARTICIPANT)),
            ("requester_name", wide(MAX_NAME)),
            ("requester_email", wide(MAX_EMAIL)),
            ("subject", wide(MAX_SUBJECT)),
            ("message", wide(MAX_MESSAGE)),
            ("csrf_token", token),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&fields)
            .finish();
        assert!(
            body.len() <= MAX_BODY_LEN,
            "{} > {MAX_BODY_LEN}",
            body.len()
        );
    }

    #[test]
    fn typed_values_are_escaped_in_the_page() {
        let form = ContactForm {
            requester_name: "<script>\"x\"".into(),
            ..ContactForm::default()
        };
        let html = render(&form, &[], "tok");
        assert!(html.contains("&lt;script&gt;&quot;x&quot;"));
        assert!(!html.contains("<script>"));
    }
}
