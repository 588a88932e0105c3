//! Database access: migrations, backend detection, the sample writer and the series reader.

pub use sqlx::PgPool;
