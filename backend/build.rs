//! `sqlx::migrate!` embeds the migration files when the crate compiles; this makes a new or
//! changed migration rebuild the crate (what `sqlx migrate build-script` writes).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
