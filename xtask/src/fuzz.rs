//! `cargo xtask fuzz [SECONDS]`: runs every cargo-fuzz target (in `fuzz/`) for SECONDS each
//! (default 300). `cargo xtask test` does not build them (a release build of the server's
//! dependencies on nightly, minutes of CI for seconds of fuzzing); it replays each target's
//! property on its seeds and their deterministic mutations on stable instead
//! (`backend/tests/parsers_survive_mutations.rs`, sharing `fuzz/checks.rs`).
//!
//! Fuzzing needs a nightly toolchain (present on the development image; not downloaded here) and
//! cargo-fuzz, installed from crates.io on first use. Targets run without a sanitizer: the code
//! is safe Rust, so what the fuzzer hunts is panics, and an uninstrumented build is much faster.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::{setup, step};

/// Every fuzz target, by what it parses.
pub const TARGETS: [&str; 3] = ["yolo_labels", "coco_import", "zip_import"];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Runs each target for `seconds`; fails on the first crash (its input is kept under
/// `fuzz/artifacts/<target>/`).
pub fn run(root: &Path, seconds: u32) -> anyhow::Result<()> {
    let toolchains = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .context("rustup is needed for fuzzing")?;
    if !String::from_utf8_lossy(&toolchains.stdout)
        .lines()
        .any(|l| l.starts_with("nightly"))
    {
        bail!("fuzzing needs a nightly Rust toolchain (rustup toolchain install nightly)");
    }
    let has_cargo_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        step(
            &format!("install cargo-fuzz {CARGO_FUZZ_VERSION} from crates.io (once)"),
            setup::cargo_install().args(["cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION]),
        )?;
    }
    for target in TARGETS {
        // New inputs the fuzzer finds go to a scratch corpus, so the checked-in seeds stay as they are.
        let corpus = std::env::temp_dir().join("distillery-fuzz").join(target);
        let _ = std::fs::remove_dir_all(&corpus);
        std::fs::create_dir_all(&corpus)?;
        let seeds = root.join("fuzz").join("seeds").join(target);
        step(
            &format!("fuzz {target} for {seconds} s"),
            Command::new("cargo")
                .args(["+nightly", "fuzz", "run", "--sanitizer", "none", target])
                .arg(&corpus)
                .arg(&seeds)
                .args([
                    "--",
                    &format!("-max_total_time={seconds}"),
                    "-rss_limit_mb=4096",
                    "-print_final_stats=1",
                ])
                .current_dir(root),
        )?;
    }
    Ok(())
}
