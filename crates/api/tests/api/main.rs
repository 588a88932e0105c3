//! The API as clients use it: the real app on port 0 against a real seeded database.

mod access;
mod admin;
mod enrolment;
mod errors;
mod exports;
mod faults;
mod hostile;
mod idempotency;
mod imputation;
mod killed_post;
mod lifecycle;
mod limits;
mod openapi;
mod operations;
mod outage;
mod paging;
mod process;
mod routes;
mod signin;
mod sso;
mod support;
