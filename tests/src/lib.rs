//! Harness for Distillery's end-to-end tests: start the real `distillery` binary on a free port
//! with a throw-away data folder, and a real headless Chromium driven through chromedriver.
//!
//! `cargo xtask test` builds the binary and the web app first and passes their paths in
//! `DISTILLERY_BIN` / `DISTILLERY_WEB_DIR`; without them the default build locations are used.

pub mod accounts;
pub mod browser;
pub mod files;
pub mod fixtures;
pub mod live;
pub mod postgres;
pub mod routes;
pub mod s3;
pub mod studio;
pub mod worker;

pub use browser::Browser;
pub use studio::Studio;

use std::path::PathBuf;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}

/// The folder of reference ONNX graphs and onnxruntime outputs: `DISTILLERY_REFERENCE_MODELS`
/// when set, else `../shared/models` beside the workspace (where the project keeps them).
pub fn reference_models_dir() -> PathBuf {
    std::env::var_os("DISTILLERY_REFERENCE_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/models"))
}

/// One file of [`reference_models_dir`], with its path in the error when it is missing.
pub fn reference_model_file(name: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    let path = reference_models_dir().join(name);
    std::fs::read(&path).with_context(|| format!("cannot read {} (set DISTILLERY_REFERENCE_MODELS)", path.display()))
}

/// Photos `test_NNNN.jpg` of the trained shapes detector's own test set (numbered `numbers`),
/// with their names: real detections for tests that need them.
pub fn shapes_test_photos(numbers: std::ops::Range<u32>) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    numbers
        .map(|i| {
            let name = format!("test_{i:04}.jpg");
            reference_model_file(&format!("shapes/images/test/{name}")).map(|bytes| (name, bytes))
        })
        .collect()
}

/// What the `models` runtime finds in an encoded image (decoded upright-as-stored, as the server
/// decodes a file without EXIF rotation): the expectation tests hold the server's jobs to.
pub fn detect_in(
    detector: &models::Detector,
    encoded: &[u8],
    confidence: f32,
    iou: f32,
) -> anyhow::Result<models::Prediction> {
    let rgb = image::load_from_memory(encoded)?.to_rgb8();
    let pixels = models::Pixels {
        data: rgb.as_raw(),
        width_px: rgb.width(),
        height_px: rgb.height(),
        channels: 3,
    };
    Ok(detector.detect(pixels, confidence, iou)?)
}
