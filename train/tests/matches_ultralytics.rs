//! `train` gives the numbers Ultralytics gives: a fixed case whose AP per class and threshold,
//! mAP50 and mAP50-95, precision and recall at the best-F1 confidence, and confusion matrix were
//! computed by Ultralytics' own code (`reference/ultralytics_map.py`, output in
//! `reference/table.rs`), matched to 1e-6 (the matrix exactly).

#[path = "reference/table.rs"]
mod table;

use train::evaluate::{GroundTruth, IOU_THRESHOLDS, Prediction, average_precision, mean_average_precision};

fn case() -> (Vec<GroundTruth>, Vec<Prediction>) {
    let truth = table::TRUTH
        .iter()
        .map(|&(image, class_index, x0, y0, x1, y1)| GroundTruth {
            image,
            class_index,
            bbox: [x0, y0, x1, y1],
        })
        .collect();
    let predictions = table::PREDICTIONS
        .iter()
        .map(|&(image, class_index, score, x0, y0, x1, y1)| Prediction {
            image,
            class_index,
            score,
            bbox: [x0, y0, x1, y1],
        })
        .collect();
    (truth, predictions)
}

#[test]
fn average_precision_per_class_and_threshold() {
    let (truth, predictions) = case();
    for (class_index, expected) in table::AP {
        for (threshold, want) in IOU_THRESHOLDS.iter().zip(expected) {
            let got = average_precision(&truth, &predictions, class_index, *threshold);
            assert!(
                got.is_some_and(|ap| (ap - want).abs() < 1e-6),
                "class {class_index} at IoU {threshold}: {got:?}, Ultralytics {want}"
            );
        }
    }
    // Class 4 has predictions but no truth: Ultralytics leaves it out of the mean.
    assert_eq!(average_precision(&truth, &predictions, 4, 0.5), None);
}

#[test]
fn mean_average_precision_over_classes_with_truth() {
    let (truth, predictions) = case();
    let (map50, map50_95) = mean_average_precision(&truth, &predictions, 5);
    assert!((map50 - table::MAP50).abs() < 1e-6, "{map50} vs {}", table::MAP50);
    assert!(
        (map50_95 - table::MAP50_95).abs() < 1e-6,
        "{map50_95} vs {}",
        table::MAP50_95
    );
}

#[test]
fn precision_and_recall_at_the_best_f1_confidence() {
    let (truth, predictions) = case();
    let evaluation = train::evaluate(&truth, &predictions, 5);
    for (class_index, precision, recall) in table::PRECISION_RECALL {
        let class = &evaluation.classes[class_index];
        assert!(
            class.precision.is_some_and(|p| (p - precision).abs() < 1e-6)
                && class.recall.is_some_and(|r| (r - recall).abs() < 1e-6),
            "class {class_index}: P {:?} R {:?}, Ultralytics {precision} {recall}",
            class.precision,
            class.recall
        );
    }
    assert!((evaluation.map50 - table::MAP50).abs() < 1e-6);
    assert_eq!(evaluation.classes[4].precision, None, "class 4 has no truth");
}

#[test]
fn confusion_matrix() {
    let (truth, predictions) = case();
    let matrix = train::ConfusionMatrix::of(&truth, &predictions, 5);
    let expected: Vec<Vec<u32>> = table::CONFUSION.iter().map(|row| row.to_vec()).collect();
    assert_eq!(matrix.counts, expected);
}
