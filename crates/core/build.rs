//! Rebuilds wearhouse-core when a migration is added or edited: `sqlx::migrate!` embeds
//! `migrations/` at compile time, and cargo does not watch that folder by itself, so without
//! this a binary built before a new migration keeps applying the old set.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
