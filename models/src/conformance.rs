//! Comparison of a run against an onnxruntime reference output, shared by the native test and
//! the in-browser check so both apply the same tolerances (../shared/models/README.md).

use crate::detector::ModelInfo;
use crate::layout::OutputLayout;
use crate::npy::NpyTensor;

/// The reference graphs every runtime must reproduce.
/// Where the reference graphs and their onnxruntime tensors are: `DISTILLERY_REFERENCE_MODELS`,
/// else `shared/models` beside the workspace (the e2e crate follows the same rule).
pub fn reference_models_dir() -> std::path::PathBuf {
    std::env::var_os("DISTILLERY_REFERENCE_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/models"))
}

pub const REFERENCE_MODELS: [&str; 3] = ["yolov8n-320-random", "yolov8n-640-random", "yolo11n-640-random"];
/// Largest absolute difference allowed on box rows (`cx, cy, w, h`, input pixels).
pub const BOX_TOLERANCE: f32 = 1e-3;
/// Largest absolute difference allowed on class-score rows.
pub const SCORE_TOLERANCE: f32 = 1e-5;

/// Largest absolute differences between a run and the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conformance {
    pub max_box_diff: f32,
    pub max_score_diff: f32,
}

impl Conformance {
    pub fn within_tolerance(&self) -> bool {
        self.max_box_diff <= BOX_TOLERANCE && self.max_score_diff <= SCORE_TOLERANCE
    }
}

/// Compares an Ultralytics-layout output with the reference tensor, box rows and score rows apart.
pub fn compare(info: &ModelInfo, output: &[f32], reference: &NpyTensor) -> Result<Conformance, String> {
    let OutputLayout::Ultralytics { anchors, .. } = info.layout else {
        return Err(format!(
            "the references are Ultralytics outputs, this model is {}",
            info.layout
        ));
    };
    if output.len() != reference.data.len() {
        return Err(format!(
            "output has {} values, reference {:?}",
            output.len(),
            reference.shape
        ));
    }
    let mut result = Conformance {
        max_box_diff: 0.0,
        max_score_diff: 0.0,
    };
    for (i, (a, b)) in output.iter().zip(&reference.data).enumerate() {
        let diff = (a - b).abs();
        // A NaN must fail the check, so it wins over any number.
        let slot = if i / anchors < 4 {
            &mut result.max_box_diff
        } else {
            &mut result.max_score_diff
        };
        if diff.is_nan() || diff > *slot {
            *slot = diff;
        }
    }
    Ok(result)
}
