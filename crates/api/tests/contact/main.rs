//! The contact form as a researcher uses it, against the real app, a real database and a local
//! SMTP sink: stored, e-mailed, bad input refused with messages, failed sends retried.

mod client_address;
mod form;
mod outbox;
mod sink;
mod support;
