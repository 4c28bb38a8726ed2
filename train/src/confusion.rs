//! The detection confusion matrix as Ultralytics 8.4 builds it (`ConfusionMatrix.process_batch`):
//! per image, detections above a confidence, in descending confidence, each claim the unclaimed
//! truth they overlap most when that IoU is above 0.45 — whatever the classes, so a box of the
//! wrong class is counted as a confusion rather than as a miss plus a false alarm. The last row
//! and column are the background: missed truths and detections of nothing.

use crate::evaluate::{GroundTruth, Prediction, box_iou};

/// Counts of (predicted class, true class), background last on both axes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// `counts[predicted][truth]`, `class_count + 1` square; index `class_count` is background.
    pub counts: Vec<Vec<u32>>,
}

impl ConfusionMatrix {
    /// Detections at or below this confidence are not counted: the proposal threshold people see
    /// in the editor (Ultralytics' own default for the matrix).
    pub const CONFIDENCE: f32 = 0.25;
    /// A detection and a truth are the same object above this IoU.
    pub const IOU: f32 = 0.45;

    /// The matrix of `predictions` against `ground_truth` over classes `0..class_count`
    /// (boxes of other classes are ignored).
    pub fn of(ground_truth: &[GroundTruth], predictions: &[Prediction], class_count: usize) -> Self {
        let background = class_count;
        let mut counts = vec![vec![0u32; class_count + 1]; class_count + 1];
        let mut images: Vec<usize> = ground_truth
            .iter()
            .map(|g| g.image)
            .chain(predictions.iter().map(|p| p.image))
            .collect();
        images.sort_unstable();
        images.dedup();
        for image in images {
            let truths: Vec<&GroundTruth> = ground_truth
                .iter()
                .filter(|g| g.image == image && g.class_index < class_count)
                .collect();
            let mut detections: Vec<&Prediction> = predictions
                .iter()
                .filter(|p| p.image == image && p.class_index < class_count && p.score > Self::CONFIDENCE)
                .collect();
            detections.sort_by(|a, b| b.score.total_cmp(&a.score));

            let mut overlaps: Vec<Vec<f32>> = truths
                .iter()
                .map(|t| detections.iter().map(|d| box_iou(t.bbox, d.bbox)).collect())
                .collect();
            let mut truth_match: Vec<Option<usize>> = vec![None; truths.len()];
            let mut matched = vec![false; detections.len()];
            for (d, _) in detections.iter().enumerate() {
                // The truth this detection overlaps most (the first on ties), if above the IoU.
                let mut best: Option<(usize, f32)> = None;
                for (t, row) in overlaps.iter().enumerate() {
                    if best.is_none_or(|(_, b)| row[d] > b) {
                        best = Some((t, row[d]));
                    }
                }
                if let Some((t, _)) = best.filter(|&(_, o)| o > Self::IOU) {
                    truth_match[t] = Some(d);
                    matched[d] = true;
                    // A claimed truth overlaps nothing any more.
                    overlaps[t].iter_mut().for_each(|o| *o = 0.0);
                }
            }
            for (t, truth) in truths.iter().enumerate() {
                let predicted = truth_match[t].map_or(background, |d| detections[d].class_index);
                counts[predicted][truth.class_index] += 1;
            }
            for (d, detection) in detections.iter().enumerate() {
                if !matched[d] {
                    counts[detection.class_index][background] += 1;
                }
            }
        }
        Self { counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(class_index: usize, bbox: [f32; 4]) -> GroundTruth {
        GroundTruth {
            image: 0,
            class_index,
            bbox,
        }
    }
    fn detection(class_index: usize, score: f32, bbox: [f32; 4]) -> Prediction {
        Prediction {
            image: 0,
            class_index,
            score,
            bbox,
        }
    }

    #[test]
    fn counts_hits_confusions_misses_and_false_alarms() {
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [20.0, 20.0, 30.0, 30.0];
        let c = [40.0, 40.0, 50.0, 50.0];
        let truths = [truth(0, a), truth(1, b), truth(1, c)];
        let detections = [
            detection(0, 0.9, a),                        // hit: (0, 0)
            detection(0, 0.8, b),                        // class 0 where a 1 is: (0, 1)
            detection(1, 0.7, [60.0, 60.0, 70.0, 70.0]), // nothing there: (1, background)
            detection(1, 0.2, c),                        // below the confidence: c is missed
            detection(0, 0.6, a),                        // a duplicate of a claimed truth: (0, background)
        ];
        let matrix = ConfusionMatrix::of(&truths, &detections, 2);
        assert_eq!(matrix.counts, vec![vec![1, 1, 1], vec![0, 0, 1], vec![0, 1, 0]]);
    }
}
