//! The whole picture of one model on one labelled set, as Ultralytics' `val` reports it: mAP50 and
//! mAP50-95, per class AP, precision and recall, the precision–recall curve, and the confusion
//! matrix. Precision and recall are read at the one confidence that maximises the mean F1 over
//! classes (`ap_per_class`), so they describe the model at its best operating point, not at an
//! arbitrary threshold.

use crate::confusion::ConfusionMatrix;
use crate::evaluate::{GroundTruth, IOU_THRESHOLDS, Prediction, RankedHits, interpolate};

/// How many confidences the precision/recall/F1-vs-confidence curves are sampled at
/// (`np.linspace(0, 1, 1000)`).
const CONFIDENCE_SAMPLES: usize = 1000;

/// Every figure of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean over classes with ground truth of AP at IoU 0.5.
    pub map50: f64,
    /// Mean over classes with ground truth of AP averaged over IoU 0.50 … 0.95.
    pub map50_95: f64,
    /// Mean precision over classes with ground truth, at the best-F1 confidence.
    pub precision: f64,
    /// Mean recall over classes with ground truth, at the best-F1 confidence.
    pub recall: f64,
    /// The confidence where the mean F1 peaks, where `precision` and `recall` are read.
    pub best_f1_confidence: f64,
    /// One entry per class index below `class_count`.
    pub classes: Vec<ClassQuality>,
    /// Detections above `ConfusionMatrix::CONFIDENCE` against the truths, background included.
    pub confusion: ConfusionMatrix,
}

/// One class's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassQuality {
    /// Class index.
    pub class_index: usize,
    /// How many truths it has.
    pub truths: usize,
    /// How many predictions of it there are.
    pub predictions: usize,
    /// AP at IoU 0.5; `None` without ground truth (left out of every mean).
    pub ap50: Option<f64>,
    /// AP averaged over IoU 0.50 … 0.95.
    pub ap50_95: Option<f64>,
    /// Precision at the best-F1 confidence.
    pub precision: Option<f64>,
    /// Recall at the best-F1 confidence.
    pub recall: Option<f64>,
    /// Precision at recall 0, 0.01 … 1 (IoU 0.5, the envelope); empty without ground truth.
    pub pr_curve: Vec<f64>,
}

/// Evaluates `predictions` (best kept at a very low confidence, 0.001 as `yolo val` does, so the
/// curves reach high recall) against `ground_truth`, for classes `0..class_count`.
pub fn evaluate(ground_truth: &[GroundTruth], predictions: &[Prediction], class_count: usize) -> Evaluation {
    let confidences: Vec<f64> = (0..CONFIDENCE_SAMPLES)
        .map(|i| i as f64 / (CONFIDENCE_SAMPLES - 1) as f64)
        .collect();
    let mut classes = Vec::with_capacity(class_count);
    // Precision and recall against confidence, per class with ground truth.
    let mut curves: Vec<(usize, Vec<f64>, Vec<f64>)> = Vec::new();
    for class_index in 0..class_count {
        let predicted = predictions.iter().filter(|p| p.class_index == class_index).count();
        let per_threshold: Option<Vec<RankedHits>> = IOU_THRESHOLDS
            .iter()
            .map(|&t| RankedHits::of(ground_truth, predictions, class_index, t))
            .collect();
        let Some(per_threshold) = per_threshold else {
            classes.push(ClassQuality {
                class_index,
                truths: 0,
                predictions: predicted,
                ap50: None,
                ap50_95: None,
                precision: None,
                recall: None,
                pr_curve: Vec::new(),
            });
            continue;
        };
        let aps: Vec<f64> = per_threshold.iter().map(RankedHits::average_precision).collect();
        let at_50 = &per_threshold[0];
        let (precision_curve, recall_curve) = confidence_curves(at_50, &confidences);
        curves.push((classes.len(), precision_curve, recall_curve));
        classes.push(ClassQuality {
            class_index,
            truths: at_50.truths,
            predictions: predicted,
            ap50: Some(aps[0]),
            ap50_95: Some(aps.iter().sum::<f64>() / aps.len() as f64),
            precision: None,
            recall: None,
            pr_curve: at_50.precision_at_recalls(),
        });
    }

    // The confidence of the best mean F1, smoothed as Ultralytics smooths it.
    let best = if curves.is_empty() {
        0
    } else {
        let mean_f1: Vec<f64> = (0..CONFIDENCE_SAMPLES)
            .map(|i| curves.iter().map(|(_, p, r)| f1(p[i], r[i])).sum::<f64>() / curves.len() as f64)
            .collect();
        first_argmax(&smooth(&mean_f1, 0.1))
    };
    for (at, precision_curve, recall_curve) in &curves {
        classes[*at].precision = Some(precision_curve[best]);
        classes[*at].recall = Some(recall_curve[best]);
    }

    let with_truth: Vec<&ClassQuality> = classes.iter().filter(|c| c.ap50.is_some()).collect();
    let mean = |value: fn(&ClassQuality) -> Option<f64>| {
        if with_truth.is_empty() {
            0.0
        } else {
            with_truth.iter().filter_map(|c| value(c)).sum::<f64>() / with_truth.len() as f64
        }
    };
    Evaluation {
        map50: mean(|c| c.ap50),
        map50_95: mean(|c| c.ap50_95),
        precision: mean(|c| c.precision),
        recall: mean(|c| c.recall),
        best_f1_confidence: confidences[best],
        confusion: ConfusionMatrix::of(ground_truth, predictions, class_count),
        classes,
    }
}

/// Precision and recall of one class if only predictions at or above each confidence were kept,
/// interpolated between predictions (`np.interp(-x, -conf, …)`, precision 1 and recall 0 above
/// the highest confidence). A class without predictions scores 0 for both.
fn confidence_curves(ranked: &RankedHits, confidences: &[f64]) -> (Vec<f64>, Vec<f64>) {
    if ranked.hits.is_empty() {
        return (vec![0.0; confidences.len()], vec![0.0; confidences.len()]);
    }
    let (recall, precision) = ranked.recall_precision();
    // Negated so the abscissae ascend, as numpy's interp needs.
    let negated: Vec<f64> = ranked.hits.iter().map(|&(score, _)| -f64::from(score)).collect();
    let at = |values: &[f64], above_all: f64, c: f64| {
        if -c < negated[0] {
            above_all
        } else {
            interpolate(&negated, values, -c)
        }
    };
    (
        confidences.iter().map(|&c| at(&precision, 1.0, c)).collect(),
        confidences.iter().map(|&c| at(&recall, 0.0, c)).collect(),
    )
}

fn f1(precision: f64, recall: f64) -> f64 {
    2.0 * precision * recall / (precision + recall + 1e-16)
}

/// Ultralytics' `smooth`: a box filter `round(2 · fraction · len) // 2 + 1` wide (odd), with the
/// ends padded by repeating the first and last values.
fn smooth(values: &[f64], fraction: f64) -> Vec<f64> {
    let width = ((values.len() as f64 * fraction * 2.0).round() as usize) / 2 + 1;
    let half = width / 2;
    let first = values.first().copied().unwrap_or(0.0);
    let last = values.last().copied().unwrap_or(0.0);
    let padded: Vec<f64> = std::iter::repeat_n(first, half)
        .chain(values.iter().copied())
        .chain(std::iter::repeat_n(last, half))
        .collect();
    padded
        .windows(width)
        .map(|w| w.iter().sum::<f64>() / width as f64)
        .collect()
}

/// The index of the first largest value, as numpy's argmax.
fn first_argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_a_padded_box_filter() {
        // Width round(5 · 0.4 · 2) // 2 + 1 = 3: one value of padding each side.
        let smoothed = smooth(&[0.0, 0.0, 6.0, 0.0, 3.0], 0.4);
        assert_eq!(smoothed, vec![0.0, 2.0, 2.0, 3.0, 2.0]);
        // 1000 values at 0.1, as Ultralytics calls it: width 101.
        let mut spike = vec![0.0; 1000];
        spike[500] = 101.0;
        let smoothed = smooth(&spike, 0.1);
        assert_eq!(smoothed.len(), 1000);
        assert_eq!(
            (smoothed[449], smoothed[450], smoothed[550], smoothed[551]),
            (0.0, 1.0, 1.0, 0.0)
        );
        let smoothed = smooth(&[1.0, 2.0, 3.0], 0.1);
        assert_eq!(smoothed, vec![1.0, 2.0, 3.0]); // width 1: unchanged
    }

    #[test]
    fn perfect_predictions_have_full_precision_and_recall() {
        let truth = [GroundTruth {
            image: 0,
            class_index: 1,
            bbox: [0.0, 0.0, 10.0, 10.0],
        }];
        let predictions = [Prediction {
            image: 0,
            class_index: 1,
            score: 0.9,
            bbox: [0.0, 0.0, 10.0, 10.0],
        }];
        let evaluation = evaluate(&truth, &predictions, 2);
        assert_eq!(evaluation.classes.len(), 2);
        assert_eq!(evaluation.classes[0].ap50, None);
        let class = &evaluation.classes[1];
        assert_eq!((class.precision, class.recall), (Some(1.0), Some(1.0)));
        assert_eq!(class.pr_curve.len(), 101);
        assert!(class.pr_curve[..100].iter().all(|&p| p == 1.0));
        // Read where the smoothed F1 is highest: within the detection's confidence.
        assert!(
            evaluation.best_f1_confidence <= 0.9,
            "{}",
            evaluation.best_f1_confidence
        );
    }
}
