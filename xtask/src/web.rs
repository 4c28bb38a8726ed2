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
