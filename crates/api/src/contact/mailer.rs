//! Sends e-mails to the study coordinator over SMTP (lettre on tokio). The mailer knows
//! letters, not contact requests: the outbox says what a request's e-mail reads.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

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

/// One e-mail to the study coordinator.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The left part of the `Message-ID`, unique to what the letter is about; the mailer adds
    /// the sender's domain. The same letter sent twice then carries the same id, which lets a
    /// receiving mail system drop the copy. None: a random id.
    pub message_id: Option<String>,
    pub subject: String,
    /// The name and address replies go to; left out when the address does not parse.
    pub reply_to: Option<(String, String)>,
    /// Plain text.
    pub body: String,
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

    /// E-mails one letter to the coordinator.
    pub async fn send(&self, letter: impl Into<Letter>) -> Result<(), MailError> {
        let letter = letter.into();
        let transport = self.transport.as_ref().ok_or(MailError::NotConfigured)?;
        if self.to.is_empty() {
            return Err(MailError::NoRecipient);
        }
        let mut builder = Message::builder()
            .message_id(
                letter
                    .message_id
                    .map(|left| format!("<{left}@{}>", self.from.email.domain())),
            )
            .from(self.from.clone())
            .subject(letter.subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        if let Some((name, address)) = letter.reply_to
            && let Ok(reply) = mailbox("reply_to", &address)
        {
            builder = builder.reply_to(Mailbox::new(Some(name), reply.email));
        }
        let message = builder.header(ContentType::TEXT_PLAIN).body(letter.body)?;
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
