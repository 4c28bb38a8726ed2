//! Building the web app: Trunk (release) into `dist/`, then a `.gz` beside each text and wasm
//! file so the server sends them compressed without compressing on every request.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::setup::{self, BuildTools};
use crate::step;

const PRECOMPRESSED: [&str; 5] = ["html", "js", "wasm", "css", "svg"];

/// The relaxed-SIMD build of the inference worker: `<name>.js`, `<name>_bg.wasm` and
/// `<name>_loader.js` in `dist/` (the app starts it, `frontend/src/inference.rs`).
const RELAXED_WORKER: &str = "worker_relaxed";

/// Installs what is missing, then builds. Returns the `dist/` folder.
pub fn build(root: &Path) -> anyhow::Result<PathBuf> {
    let tools = setup::build_tools(root)?;
    build_with(root, &tools)
}

/// Builds the app with already-installed tools. Returns the `dist/` folder.
pub fn build_with(root: &Path, tools: &BuildTools) -> anyhow::Result<PathBuf> {
    step(
        "trunk build --release",
        Command::new("trunk")
            .args(["build", "--release"])
            .env("PATH", &tools.path)
            .current_dir(root),
    )?;
    let dist = root.join("dist");
    build_relaxed_simd_worker(root, tools, &dist)?;
    let mut wasm_sizes = Vec::new();
    for entry in std::fs::read_dir(&dist).context("trunk made no dist/")? {
        let path = entry?.path();
        let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !PRECOMPRESSED.contains(&extension) {
            continue;
        }
        let raw = std::fs::read(&path)?;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&raw)?;
        let gzipped = encoder.finish()?;
        let mut gz_path = path.clone().into_os_string();
        gz_path.push(".gz");
        std::fs::write(&gz_path, &gzipped)?;
        if extension == "wasm" {
            wasm_sizes.push((
                path.file_name().unwrap_or_default().to_owned(),
                raw.len(),
                gzipped.len(),
            ));
        }
    }
    for (name, raw, gzipped) in wasm_sizes {
        eprintln!(
            "{}: {} KiB, {} KiB gzipped",
            name.to_string_lossy(),
            raw / 1024,
            gzipped / 1024
        );
    }
    Ok(dist)
}

/// The inference worker again, with relaxed SIMD (the matrix kernel's multiply and add become
/// one `relaxed_madd`), for the app to start where the browser validates relaxed SIMD. Trunk
/// builds every asset with the same RUSTFLAGS, so this build is made here: in a target folder
/// of its own (other flags in the main one would rebuild it each time), then wasm-bindgen as
/// Trunk runs it for the worker (`no-modules`), and a loader like Trunk's.
fn build_relaxed_simd_worker(root: &Path, tools: &BuildTools, dist: &Path) -> anyhow::Result<()> {
    let target = crate::target_dir(root)?.join("relaxed-simd");
    step(
        "cargo build (inference worker, relaxed SIMD)",
        Command::new(crate::cargo())
            .args(["build", "--locked", "--offline", "--target", "wasm32-unknown-unknown"])
            .args([
                "--profile",
                "wasm-worker",
                "--package",
                "inference-worker",
                "--bin",
                "worker",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+simd128,+relaxed-simd")
            .current_dir(root),
    )?;
    let wasm = target
        .join("wasm32-unknown-unknown")
        .join("wasm-worker")
        .join("worker.wasm");
    step(
        "wasm-bindgen (inference worker, relaxed SIMD)",
        Command::new("wasm-bindgen")
            .args([
                "--target",
                "no-modules",
                "--no-typescript",
                "--out-name",
                RELAXED_WORKER,
                "--out-dir",
            ])
            .arg(dist)
            .arg(&wasm)
            .env("PATH", &tools.path),
    )?;
    std::fs::write(
        dist.join(format!("{RELAXED_WORKER}_loader.js")),
        format!("importScripts(\"./{RELAXED_WORKER}.js\");wasm_bindgen(\"./{RELAXED_WORKER}_bg.wasm\");"),
    )
    .context("cannot write the relaxed-SIMD worker's loader")
}
