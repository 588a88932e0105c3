//! Sends a contact request to the study coordinator over SMTP (lettre on tokio).

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::outbox::StoredRequest;
use super::settings::{ContactArgs, SmtpTls};

/// Why the mailer could not be set up or a message not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address {address:?} in {setting}: {source}")]
    Address {
        setting: &'static str,
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("cannot read the SMTP password file {path}: {source}")]
    PasswordFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no SMTP server configured (WEARHOUSE_SMTP_HOST)")]
    NotConfigured,
    #[error("no recipient configured (WEARHOUSE_CONTACT_TO)")]
    NoRecipient,
    #[error("cannot build the message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// An SMTP transport and the addresses it sends from and to.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

fn mailbox(setting: &'static str, address: &str) -> Result<Mailbox, MailError> {
    address.trim().parse().map_err(|source| MailError::Address {
        setting,
        address: address.to_owned(),
        source,
    })
}

impl Mailer {
    /// Builds the transport from the settings; connects only when sending.
    pub fn new(args: &ContactArgs) -> Result<Self, MailError> {
        let from = mailbox("WEARHOUSE_SMTP_FROM", &args.smtp_from)?;
        let to = args
            .contact_to
            .iter()
            .filter(|a| !a.trim().is_empty())
            .map(|a| mailbox("WEARHOUSE_CONTACT_TO", a))
            .collect::<Result<Vec<_>, _>>()?;
        let transport = match &args.smtp_host {
            None => None,
            Some(host) => {
                let mut builder = match args.smtp_tls {
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                    SmtpTls::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
                }
                .port(args.smtp_port)
                .timeout(Some(Duration::from_secs(20)));
                if let Some(user) = args.smtp_username.as_deref().filter(|u| !u.is_empty()) {
                    let password = password(args)?;
                    builder = builder.credentials(Credentials::new(
                        user.to_owned(),
                        password.expose_secret().to_owned(),
                    ));
                }
                Some(builder.build())
            }
        };
        Ok(Mailer {
            transport,
            from,
            to,
        })
    }

    /// E-mails one stored request to the coordinator, with the requester as Reply-To.
    pub async fn send(&self, r: &StoredRequest) -> Result<(), MailError> {
        let transport = self.transport.as_ref().ok_or(MailError::NotConfigured)?;
        if self.to.is_empty() {
            return Err(MailError::NoRecipient);
        }
        let mut builder = Message::builder().from(self.from.clone()).subject(format!(
            "[wearhouse] Contact request for participant {}: {}",
            r.participant_id, r.subject
        ));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        if let Ok(reply) = mailbox("requester_email", &r.requester_email) {
            builder = builder.reply_to(Mailbox::new(Some(r.requester_name.clone()), reply.email));
        }
        let body = format!(
            "A researcher asked to contact participant {participant}.\n\n\
             Request: #{id}\nFrom: {name} <{email}>\nSubject: {subject}\n\n{message}\n",
            participant = r.participant_id,
            id = r.id,
            name = r.requester_name,
            email = r.requester_email,
            subject = r.subject,
            message = r.message,
        );
        let message = builder.header(ContentType::TEXT_PLAIN).body(body)?;
        transport.send(message).await?;
        Ok(())
    }
}

fn password(args: &ContactArgs) -> Result<SecretString, MailError> {
    if let Some(path) = &args.smtp_password_file {
        let text = std::fs::read_to_string(path).map_err(|source| MailError::PasswordFile {
            path: path.display().to_string(),
            source,
        })?;
        return Ok(SecretString::from(
            text.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    Ok(args
        .smtp_password
        .clone()
        .unwrap_or_else(|| SecretString::from(String::new())))
}
