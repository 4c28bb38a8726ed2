//! Detection metrics computed as Ultralytics computes them, so a number shown in Distillery
//! matches what `yolo val` (Ultralytics 8.4) prints for the same predictions: per-class AP from
//! the precision envelope sampled at 101 recall points and integrated with the trapezoid rule,
//! mAP50 and mAP50-95 (IoU thresholds 0.50, 0.55 … 0.95). `tests/matches_ultralytics.rs` holds
//! the proof: a case computed by Ultralytics' own code, reproduced to 1e-6.

/// The IoU thresholds of mAP50-95: 0.50, 0.55 … 0.95 (`torch.linspace(0.5, 0.95, 10)`).
pub const IOU_THRESHOLDS: [f32; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

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
/// (Ultralytics leaves such classes out of the mean), `Some(0)` when it has truths but no
/// prediction.
///
/// As Ultralytics 8.4 computes it (`match_predictions`, `ap_per_class`, `compute_ap`): per image,
/// predictions in descending confidence each claim the unclaimed truth of their class they
/// overlap most, a hit when that IoU reaches the threshold; precision and recall accumulate over
/// all predictions by descending confidence; the precision envelope drops to 0 right after the
/// last recall reached, and is sampled at 101 recall points and integrated with the trapezoid rule.
pub fn average_precision(
    ground_truth: &[GroundTruth],
    predictions: &[Prediction],
    class_index: usize,
    iou_threshold: f32,
) -> Option<f64> {
    let ranked = RankedHits::of(ground_truth, predictions, class_index, iou_threshold)?;
    Some(ranked.average_precision())
}

/// One class's predictions matched at one IoU threshold, in descending confidence: what every
/// per-class figure (AP, the precision–recall curve, precision and recall at a confidence) is
/// read from.
pub(crate) struct RankedHits {
    /// `(confidence, hit)` per prediction, highest confidence first.
    pub(crate) hits: Vec<(f32, bool)>,
    /// How many truths the class has (at least one).
    pub(crate) truths: usize,
}

impl RankedHits {
    /// `None` when the class has no ground truth.
    pub(crate) fn of(
        ground_truth: &[GroundTruth],
        predictions: &[Prediction],
        class_index: usize,
        iou_threshold: f32,
    ) -> Option<Self> {
        let truths: Vec<&GroundTruth> = ground_truth.iter().filter(|g| g.class_index == class_index).collect();
        if truths.is_empty() {
            return None;
        }
        let mut preds: Vec<&Prediction> = predictions.iter().filter(|p| p.class_index == class_index).collect();
        // Stable, so equal scores keep their given order.
        preds.sort_by(|a, b| b.score.total_cmp(&a.score));

        let mut claimed = vec![false; truths.len()];
        let mut hits = Vec::with_capacity(preds.len());
        for pred in &preds {
            // The best unclaimed truth of this image (the first on ties, as numpy's argmax).
            let mut best: Option<(usize, f32)> = None;
            for (i, truth) in truths.iter().enumerate() {
                if truth.image != pred.image || claimed[i] {
                    continue;
                }
                let overlap = box_iou(truth.bbox, pred.bbox);
                if best.is_none_or(|(_, b)| overlap > b) {
                    best = Some((i, overlap));
                }
            }
            let hit = best.filter(|(_, overlap)| *overlap >= iou_threshold);
            if let Some((i, _)) = hit {
                claimed[i] = true;
            }
            hits.push((pred.score, hit.is_some()));
        }
        Some(Self {
            hits,
            truths: truths.len(),
        })
    }

    /// Recall and precision after each prediction, in rank order.
    pub(crate) fn recall_precision(&self) -> (Vec<f64>, Vec<f64>) {
        let truth_count = self.truths as f64 + 1e-16;
        let mut tp = 0.0;
        self.hits
            .iter()
            .enumerate()
            .map(|(rank, &(_, hit))| {
                if hit {
                    tp += 1.0;
                }
                (tp / truth_count, tp / (rank + 1) as f64)
            })
            .unzip()
    }

    /// Ultralytics' precision envelope over recall (`compute_ap`'s `mrec`, `mpre`): sentinels
    /// (0, 1) before, then the last recall reached and 1.0, both with precision 0, and precision
    /// made non-increasing from the right.
    pub(crate) fn envelope(&self) -> (Vec<f64>, Vec<f64>) {
        let (recalls, precisions) = self.recall_precision();
        let last_recall = recalls.last().copied().unwrap_or(0.0);
        let mut recall = vec![0.0];
        recall.extend(recalls);
        recall.extend([last_recall, 1.0]);
        let mut precision = vec![1.0];
        precision.extend(precisions);
        precision.extend([0.0, 0.0]);
        for i in (0..precision.len() - 1).rev() {
            precision[i] = precision[i].max(precision[i + 1]);
        }
        (recall, precision)
    }

    /// The envelope sampled at 101 recall points and integrated with the trapezoid rule.
    pub(crate) fn average_precision(&self) -> f64 {
        if self.hits.is_empty() {
            return 0.0;
        }
        let values = self.precision_at_recalls();
        values.windows(2).map(|y| 0.01 * (y[0] + y[1]) / 2.0).sum()
    }

    /// The envelope at recall 0, 0.01 … 1: the precision–recall curve Ultralytics plots (all zero
    /// when the class has no prediction).
    pub(crate) fn precision_at_recalls(&self) -> Vec<f64> {
        if self.hits.is_empty() {
            return vec![0.0; RECALL_SAMPLES];
        }
        let (recall, precision) = self.envelope();
        (0..RECALL_SAMPLES)
            .map(|i| interpolate(&recall, &precision, i as f64 / (RECALL_SAMPLES - 1) as f64))
            .collect()
    }
}

/// How many recall points AP and the precision–recall curve are sampled at: 0, 0.01 … 1.
pub const RECALL_SAMPLES: usize = 101;

/// IoU as Ultralytics' `box_iou` computes it: with 1e-7 added to the union, which decides hits
/// that sit exactly on a threshold.
pub(crate) fn box_iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let inter = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter + 1e-7)
}

/// `(mAP50, mAP50-95)` over the classes that have ground truth; `(0, 0)` when none has.
pub fn mean_average_precision(
    ground_truth: &[GroundTruth],
    predictions: &[Prediction],
    class_count: usize,
) -> (f64, f64) {
    let mut ap50 = Vec::new();
    let mut ap50_95 = Vec::new();
    for class_index in 0..class_count {
        let per_threshold: Option<Vec<f64>> = IOU_THRESHOLDS
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

/// `numpy.interp(x, xs, ys)` for ascending `xs`: linear between points, clamped at the ends
/// (where `xs` repeats a value, the last point with it wins, as in numpy).
pub(crate) fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
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
