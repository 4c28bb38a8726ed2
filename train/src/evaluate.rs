//! Detection metrics computed as Ultralytics computes them, so a number shown in Distillery
//! matches what `yolo val` prints for the same predictions: per-class AP from the precision
//! envelope sampled at 101 recall points and integrated with the trapezoid rule, mAP50 and
//! mAP50-95 (IoU thresholds 0.50, 0.55 … 0.95).

use models::iou;

/// A labelled box of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// Which image the box belongs to.
    pub image: usize,
    /// Class index.
    pub class_index: usize,
    /// `[x0, y0, x1, y1]` in pixels.
    pub bbox: [f32; 4],
}

/// A predicted box of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Which image the box belongs to.
    pub image: usize,
    /// Class index.
    pub class_index: usize,
    /// Confidence, 0..1.
    pub score: f32,
    /// `[x0, y0, x1, y1]` in pixels.
    pub bbox: [f32; 4],
}

/// Average precision of one class at one IoU threshold; `None` when the class has no ground truth
/// (Ultralytics leaves such classes out of the mean).
pub fn average_precision(
    ground_truth: &[GroundTruth],
    predictions: &[Prediction],
    class_index: usize,
    iou_threshold: f32,
) -> Option<f64> {
    let truths: Vec<&GroundTruth> = ground_truth.iter().filter(|g| g.class_index == class_index).collect();
    if truths.is_empty() {
        return None;
    }
    let mut preds: Vec<&Prediction> = predictions.iter().filter(|p| p.class_index == class_index).collect();
    preds.sort_by(|a, b| b.score.total_cmp(&a.score));

    // Greedy matching by descending score: each truth can be claimed once.
    let mut claimed = vec![false; truths.len()];
    let mut true_positives = Vec::with_capacity(preds.len());
    for pred in &preds {
        let best = truths
            .iter()
            .enumerate()
            .filter(|(i, t)| t.image == pred.image && !claimed[*i])
            .map(|(i, t)| (i, iou(t.bbox, pred.bbox)))
            .filter(|(_, overlap)| *overlap >= iou_threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, _)) => {
                claimed[i] = true;
                true_positives.push(true);
            }
            None => true_positives.push(false),
        }
    }

    let mut recall = vec![0.0];
    let mut precision = vec![1.0];
    let mut tp = 0.0;
    for (rank, &hit) in true_positives.iter().enumerate() {
        if hit {
            tp += 1.0;
        }
        recall.push(tp / truths.len() as f64);
        precision.push(tp / (rank + 1) as f64);
    }
    recall.push(1.0);
    precision.push(0.0);
    // Precision envelope: make precision monotonically non-increasing from the right.
    for i in (0..precision.len() - 1).rev() {
        precision[i] = precision[i].max(precision[i + 1]);
    }
    let samples: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
    let values: Vec<f64> = samples.iter().map(|&r| interpolate(&recall, &precision, r)).collect();
    Some(
        samples
            .windows(2)
            .zip(values.windows(2))
            .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
            .sum(),
    )
}

/// `(mAP50, mAP50-95)` over the classes that have ground truth; `(0, 0)` when none has.
pub fn mean_average_precision(
    ground_truth: &[GroundTruth],
    predictions: &[Prediction],
    class_count: usize,
) -> (f64, f64) {
    let thresholds: Vec<f32> = (0..10).map(|i| 0.5 + 0.05 * i as f32).collect();
    let mut ap50 = Vec::new();
    let mut ap50_95 = Vec::new();
    for class_index in 0..class_count {
        let per_threshold: Option<Vec<f64>> = thresholds
            .iter()
            .map(|&t| average_precision(ground_truth, predictions, class_index, t))
            .collect();
        if let Some(aps) = per_threshold {
            ap50.push(aps[0]);
            ap50_95.push(aps.iter().sum::<f64>() / aps.len() as f64);
        }
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    (mean(&ap50), mean(&ap50_95))
}

/// `numpy.interp(x, xs, ys)` for ascending `xs`: linear between points, clamped at the ends.
fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    let upper = xs.partition_point(|&v| v <= x);
    if upper == 0 {
        return ys[0];
    }
    if upper == xs.len() {
        return ys[xs.len() - 1];
    }
    let (x0, x1, y0, y1) = (xs[upper - 1], xs[upper], ys[upper - 1], ys[upper]);
    if x1 == x0 {
        y1
    } else {
        y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(image: usize, class_index: usize, bbox: [f32; 4]) -> GroundTruth {
        GroundTruth {
            image,
            class_index,
            bbox,
        }
    }
    fn pred(image: usize, class_index: usize, score: f32, bbox: [f32; 4]) -> Prediction {
        Prediction {
            image,
            class_index,
            score,
            bbox,
        }
    }
    const A: [f32; 4] = [0.0, 0.0, 10.0, 10.0];
    const B: [f32; 4] = [20.0, 20.0, 30.0, 30.0];

    /// Ultralytics' well-known ceiling: the sentinel point (recall 1, precision 0) costs the last
    /// half-step of the 101-point trapezoid, so perfect predictions score 0.995, not 1.
    const PERFECT_AP: f64 = 0.995;

    #[test]
    fn perfect_predictions_score_the_ultralytics_ceiling() {
        let truth = [gt(0, 0, A), gt(1, 0, B)];
        let preds = [pred(0, 0, 0.9, A), pred(1, 0, 0.8, B)];
        let ap = average_precision(&truth, &preds, 0, 0.5).unwrap_or_default();
        assert!((ap - PERFECT_AP).abs() < 1e-9, "{ap}");
        let (map50, map50_95) = mean_average_precision(&truth, &preds, 1);
        assert!((map50 - PERFECT_AP).abs() < 1e-9 && (map50_95 - PERFECT_AP).abs() < 1e-9);
    }

    #[test]
    fn hand_computed_curves() {
        // Two truths; predictions ranked hit, miss, hit: precision 1 up to recall 0.5, then 2/3
        // up to recall 1, so AP is close to 0.5·1 + 0.5·2/3 (the 101-point sampling blurs the steps).
        let truth = [gt(0, 0, A), gt(1, 0, B)];
        let preds = [pred(0, 0, 0.9, A), pred(0, 0, 0.8, B), pred(1, 0, 0.7, B)];
        let ap = average_precision(&truth, &preds, 0, 0.5).unwrap_or_default();
        let expected = 0.5 * 1.0 + 0.5 * (2.0 / 3.0);
        assert!((ap - expected).abs() < 0.01, "{ap} vs {expected}");

        // Missing every truth.
        let ap = average_precision(&truth, &[pred(0, 0, 0.9, B)], 0, 0.5).unwrap_or(-1.0);
        assert!(ap.abs() < 1e-9, "{ap}");
        // A class without ground truth is left out, not counted as zero.
        assert_eq!(average_precision(&truth, &preds, 1, 0.5), None);
    }

    #[test]
    fn iou_threshold_matters_for_map50_95() {
        // Shifted by 2 px: IoU = 80/120 ≈ 0.667, a hit at 0.50..0.65 and a miss from 0.70 on.
        let truth = [gt(0, 0, A)];
        let preds = [pred(0, 0, 0.9, [2.0, 0.0, 12.0, 10.0])];
        let (map50, map50_95) = mean_average_precision(&truth, &preds, 1);
        assert!((map50 - PERFECT_AP).abs() < 1e-9);
        assert!((map50_95 - 0.4 * PERFECT_AP).abs() < 1e-9, "{map50_95}");
    }

    #[test]
    fn interpolation_matches_numpy() {
        let xs = [0.0, 0.5, 1.0];
        let ys = [1.0, 1.0, 0.0];
        for (x, y) in [(0.0, 1.0), (0.25, 1.0), (0.75, 0.5), (1.0, 0.0), (2.0, 0.0)] {
            assert!((interpolate(&xs, &ys, x) - y).abs() < 1e-12, "x={x}");
        }
    }
}
