//! Class-wise non-maximum suppression, the last step of decoding a detector's output.

/// One detected object in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index into the model's class list.
    pub class_index: usize,
    /// Confidence of the chosen class, 0..1.
    pub score: f32,
    /// `[x0, y0, x1, y1]`, x0 ≤ x1 and y0 ≤ y1.
    pub bbox: [f32; 4],
    /// Confidence of every class the model knows (uncertainty ranking needs the runners-up).
    pub class_scores: Vec<f32>,
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes; 0 when either is empty.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let inter = area([a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])]);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Keeps, per class, the highest-scoring detections and drops any that overlaps a kept one of the
/// same class by more than `iou_threshold` (Ultralytics' default is 0.7). Returns them by
/// descending score; ties keep their input order so the result is deterministic.
pub fn non_max_suppression(mut detections: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(detections.len());
    for candidate in detections {
        let suppressed = kept
            .iter()
            .any(|k| k.class_index == candidate.class_index && iou(k.bbox, candidate.bbox) > iou_threshold);
        if !suppressed {
            kept.push(candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_index: usize, score: f32, bbox: [f32; 4]) -> Detection {
        Detection {
            class_index,
            score,
            bbox,
            class_scores: vec![score],
        }
    }

    #[test]
    fn iou_table() {
        let cases = [
            ([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], 1.0),
            ([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], 50.0 / 150.0),
            ([0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0], 0.0),
            ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], 0.0),
        ];
        for (a, b, expected) in cases {
            assert!((iou(a, b) - expected).abs() < 1e-6, "{a:?} {b:?}");
        }
    }

    #[test]
    fn suppresses_within_a_class_only() {
        let input = vec![
            det(0, 0.6, [0.5, 0.5, 10.5, 10.5]), // IoU 0.82 with the 0.9 box of class 0: dropped
            det(0, 0.9, [0.0, 0.0, 10.0, 10.0]),
            det(1, 0.8, [0.0, 0.0, 10.0, 10.0]),   // same place, other class: kept
            det(0, 0.5, [50.0, 50.0, 60.0, 60.0]), // elsewhere: kept
        ];
        let kept = non_max_suppression(input, 0.7);
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, [0.9, 0.8, 0.5]);
    }

    #[test]
    fn threshold_is_strict() {
        // IoU exactly 0.5 is not above a 0.5 threshold, so both stay.
        let a = det(0, 0.9, [0.0, 0.0, 10.0, 10.0]);
        let b = det(0, 0.8, [0.0, 0.0, 10.0, 5.0]);
        assert_eq!(non_max_suppression(vec![a, b], 0.5).len(), 2);
    }
}
