//! Harness for Distillery's end-to-end tests: start the real `distillery` binary on a free port
//! with a throw-away data folder, and a real headless Chromium driven through chromedriver.
//!
//! `cargo xtask test` builds the binary and the web app first and passes their paths in
//! `DISTILLERY_BIN` / `DISTILLERY_WEB_DIR`; without them the default build locations are used.

pub mod browser;
pub mod files;
pub mod fixtures;
pub mod studio;

pub use browser::Browser;
pub use studio::Studio;

use std::path::PathBuf;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}
