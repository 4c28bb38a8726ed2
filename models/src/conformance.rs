//! Comparison of a run against an onnxruntime reference output, shared by the native test and
//! the in-browser check so both apply the same tolerances (../shared/models/README.md); and of
//! an operator case's output against tract's (`compare_values`), value by value.
//!
//! Two views of the same output: the raw tensor, value by value, and what a person sees — the
//! detections both outputs decode to after the same confidence filter and NMS. The second is
//! what matters for a trained detector; the random-weight graphs propose nothing, so only the
//! trained `shapes` graph exercises it.

use crate::detector::{DEFAULT_CONFIDENCE, DEFAULT_IOU, ModelInfo};
use crate::layout::OutputLayout;
use crate::nms::{Detection, iou, non_max_suppression};
use crate::npy::NpyTensor;

/// Where the reference graphs and their onnxruntime tensors are: `DISTILLERY_REFERENCE_MODELS`,
/// else `shared/models` beside the workspace (the e2e crate follows the same rule).
pub fn reference_models_dir() -> std::path::PathBuf {
    std::env::var_os("DISTILLERY_REFERENCE_MODELS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/models"))
}

/// The reference graphs every runtime must reproduce: three with random weights (op coverage,
/// numerics) and one trained on synthetic shapes (real detections).
pub const REFERENCE_MODELS: [&str; 4] = [
    "yolov8n-320-random",
    "yolov8n-640-random",
    "yolo11n-640-random",
    TRAINED_REFERENCE_MODEL,
];
/// The reference graph with trained weights, whose detections mean something.
pub const TRAINED_REFERENCE_MODEL: &str = "shapes-yolov8n-320";
/// How far a run may be from the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Largest absolute difference on box rows (`cx, cy, w, h`, input pixels).
    pub boxes: f32,
    /// Largest absolute difference on class-score rows.
    pub scores: f32,
    /// Smallest IoU between a reference detection and the run's detection paired with it.
    pub detection_iou: f32,
    /// Largest absolute difference on an operator case's output (`op_cases`, against tract), as
    /// a fraction of its largest magnitude (at least 1).
    pub values: f32,
}

impl Tolerance {
    /// Engines that compute and store in f32: tract, onnxruntime, the GPU executor's f32 plans.
    pub const F32: Tolerance = Tolerance {
        boxes: 1e-3,
        scores: 1e-5,
        detection_iou: 0.99,
        // The same sums in another order: the cases sit within 2e-6.
        values: 1e-4,
    };

    /// The GPU executor storing tensors in f16 (`shader-f16`): a stored value keeps 11
    /// significant bits (a box coordinate near 300 px to 1/8 px) and the rounding adds up over
    /// the graph's hundred steps. shapes-yolov8n-320 measured 0.69 px, 1.4e-3 and IoU 0.993 on
    /// Mesa's lavapipe; these bounds leave about three times that.
    pub const F16: Tolerance = Tolerance {
        boxes: 2.0,
        scores: 5e-3,
        detection_iou: 0.98,
        // One operator, so one or two roundings: the cases sit within 7.3e-4 (lavapipe).
        values: 2e-3,
    };

    /// What applies to a GPU plan storing its tensors as `precision`.
    #[cfg(feature = "gpu")]
    pub fn of_gpu_plan(precision: crate::gpu::Precision) -> Tolerance {
        match precision {
            crate::gpu::Precision::F16 => Tolerance::F16,
            crate::gpu::Precision::F32 => Tolerance::F32,
        }
    }
}

/// How a run compares with the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conformance {
    /// Largest absolute difference on box rows.
    pub max_box_diff: f32,
    /// Largest absolute difference on class-score rows.
    pub max_score_diff: f32,
    /// Detections the reference output decodes to (above 0.25, after NMS at 0.7).
    pub reference_detections: usize,
    /// Detections the run decodes to, the same way.
    pub detections: usize,
    /// Reference detections paired with a run detection of the same class.
    pub matched_detections: usize,
    /// Lowest IoU over those pairs; 1 when there are none.
    pub min_detection_iou: f32,
}

impl Conformance {
    /// Whether every figure is within `tolerance`: the raw rows, and the decoded detections
    /// one for one (same count, same classes, boxes overlapping at least as much).
    pub fn within(&self, tolerance: Tolerance) -> bool {
        self.max_box_diff <= tolerance.boxes
            && self.max_score_diff <= tolerance.scores
            && self.detections == self.reference_detections
            && self.matched_detections == self.reference_detections
            && self.min_detection_iou >= tolerance.detection_iou
    }
}

/// Compares an Ultralytics-layout output with the reference tensor: box rows and score rows
/// apart, then the detections both decode to.
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
    let (mut max_box_diff, mut max_score_diff) = (0.0f32, 0.0f32);
    for (i, (a, b)) in output.iter().zip(&reference.data).enumerate() {
        let diff = (a - b).abs();
        // A NaN must fail the check, so it wins over any number.
        let slot = if i / anchors < 4 {
            &mut max_box_diff
        } else {
            &mut max_score_diff
        };
        if diff.is_nan() || diff > *slot {
            *slot = diff;
        }
    }
    let expected = decoded(info.layout, &reference.data);
    let found = decoded(info.layout, output);
    let pairs = pair_by_class(&expected, &found);
    Ok(Conformance {
        max_box_diff,
        max_score_diff,
        reference_detections: expected.len(),
        detections: found.len(),
        matched_detections: pairs.len(),
        min_detection_iou: pairs.into_iter().fold(1.0, f32::min),
    })
}

/// How an operator case's output compares with tract's, value by value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueConformance {
    /// Largest absolute difference (NaN when either side has one).
    pub largest_difference: f32,
    /// The reference's largest magnitude, at least 1: what the tolerance is a fraction of.
    pub scale: f32,
}

impl ValueConformance {
    /// Whether the largest difference is within `tolerance.values` of the scale.
    pub fn within(&self, tolerance: Tolerance) -> bool {
        self.largest_difference <= tolerance.values * self.scale
    }
}

/// Compares an operator case's output with its reference (tract's), value by value.
pub fn compare_values(output: &[f32], reference: &NpyTensor) -> Result<ValueConformance, String> {
    if output.len() != reference.data.len() {
        return Err(format!(
            "output has {} values, reference {:?}",
            output.len(),
            reference.shape
        ));
    }
    let largest_difference = (output.iter().zip(&reference.data))
        .map(|(a, b)| (a - b).abs())
        // A NaN must fail the check, so it wins over any number.
        .fold(
            0f32,
            |worst, diff| if diff.is_nan() || diff > worst { diff } else { worst },
        );
    let scale = (reference.data.iter()).fold(1f32, |m, v| m.max(v.abs()));
    Ok(ValueConformance {
        largest_difference,
        scale,
    })
}

/// What a raw output shows a person: candidates above Ultralytics' threshold after its NMS, in
/// model-input pixels.
fn decoded(layout: OutputLayout, output: &[f32]) -> Vec<Detection> {
    let candidates = layout.decode(output, DEFAULT_CONFIDENCE);
    let detections = candidates
        .into_iter()
        .map(|c| Detection {
            class_index: c.class_index,
            score: c.score,
            bbox: c.bbox,
            class_scores: c.class_scores,
        })
        .collect();
    non_max_suppression(detections, DEFAULT_IOU)
}

/// Pairs each expected detection, best first, with the unpaired found one of the same class it
/// overlaps most; returns the IoU of every pair. Scores that differ in the last digits may swap
/// the order of two detections, so pairs are made by overlap, not by rank.
fn pair_by_class(expected: &[Detection], found: &[Detection]) -> Vec<f32> {
    let mut taken = vec![false; found.len()];
    let mut ious = Vec::with_capacity(expected.len());
    for e in expected {
        let best = (found.iter().enumerate())
            .filter(|(j, f)| !taken[*j] && f.class_index == e.class_index)
            .map(|(j, f)| (j, iou(e.bbox, f.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((j, overlap)) = best.filter(|(_, overlap)| *overlap > 0.0) {
            taken[j] = true;
            ious.push(overlap);
        }
    }
    ious
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_index: usize, bbox: [f32; 4]) -> Detection {
        Detection {
            class_index,
            score: 0.5,
            bbox,
            class_scores: vec![],
        }
    }

    #[test]
    fn values_are_held_to_a_fraction_of_the_largest_magnitude() -> Result<(), String> {
        let reference = NpyTensor {
            shape: vec![3],
            data: vec![1.0, -2.0, 3000.0],
        };
        let off = compare_values(&[1.0, -2.25, 3000.0], &reference)?;
        assert_eq!((off.largest_difference, off.scale), (0.25, 3000.0));
        // 0.25 is within 1e-4 × 3000 but not 1e-4 × 1000.
        assert!(off.within(Tolerance::F32));
        let small = NpyTensor {
            shape: vec![3],
            data: vec![1.0, -2.0, 1000.0],
        };
        assert!(!compare_values(&[1.0, -2.25, 1000.0], &small)?.within(Tolerance::F32));
        // Small outputs are held to the tolerance itself, not a fraction of it.
        let tiny = NpyTensor {
            shape: vec![1],
            data: vec![0.001],
        };
        assert_eq!(compare_values(&[0.00105], &tiny)?.scale, 1.0);
        let nan = compare_values(&[1.0, f32::NAN, 3000.0], &reference)?;
        assert!(nan.largest_difference.is_nan() && !nan.within(Tolerance::F16));
        assert!(compare_values(&[1.0], &reference).is_err());
        Ok(())
    }

    #[test]
    fn pairs_by_class_and_overlap() {
        let expected = [det(0, [0.0, 0.0, 10.0, 10.0]), det(1, [20.0, 20.0, 30.0, 30.0])];
        // Found in the other order; the class-1 box is shifted by one pixel: IoU 90/110.
        let found = [det(1, [21.0, 20.0, 31.0, 30.0]), det(0, [0.0, 0.0, 10.0, 10.0])];
        let ious = pair_by_class(&expected, &found);
        assert_eq!(ious.len(), 2);
        assert!(
            (ious[0] - 1.0).abs() < 1e-6 && (ious[1] - 90.0 / 110.0).abs() < 1e-6,
            "{ious:?}"
        );
        // A box of another class at the same place is no match.
        assert!(pair_by_class(&expected[..1], &[det(1, [0.0, 0.0, 10.0, 10.0])]).is_empty());
    }

    #[test]
    fn detections_decide_the_verdict() {
        let good = Conformance {
            max_box_diff: 1e-4,
            max_score_diff: 1e-7,
            reference_detections: 5,
            detections: 5,
            matched_detections: 5,
            min_detection_iou: 0.999,
        };
        assert!(good.within(Tolerance::F32));
        let cases = [
            Conformance { detections: 6, ..good },
            Conformance {
                matched_detections: 4,
                ..good
            },
            Conformance {
                min_detection_iou: 0.98,
                ..good
            },
            Conformance {
                max_score_diff: f32::NAN,
                ..good
            },
        ];
        for case in cases {
            assert!(!case.within(Tolerance::F32), "{case:?}");
        }
    }
}
