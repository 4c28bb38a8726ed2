//! Turns a [`Prediction`] into what the server stores per image and model version: the kept
//! boxes and every uncertainty score. Browser and server both report through this, so a score
//! means the same thing whoever computed it.

use api::uncertainty::all_image_scores;
use api::{ImagePrediction, PredictedBox};

use crate::detector::Prediction;

/// A prediction's kept detections as the wire's boxes (by the model's class index).
pub fn predicted_boxes(prediction: &Prediction) -> Vec<PredictedBox> {
    prediction
        .detections
        .iter()
        .map(|d| PredictedBox {
            class_index: d.class_index as u32,
            score: d.score,
            x0: d.bbox[0],
            y0: d.bbox[1],
            x1: d.bbox[2],
            y1: d.bbox[3],
        })
        .collect()
}

/// The report for one image.
pub fn image_prediction(image_id: i64, prediction: &Prediction) -> ImagePrediction {
    let class_scores: Vec<&[f32]> = prediction
        .detections
        .iter()
        .map(|d| d.class_scores.as_slice())
        .collect();
    ImagePrediction {
        image_id,
        boxes: predicted_boxes(prediction),
        best_candidate_score: prediction.best_candidate_score.clamp(0.0, 1.0),
        scores: all_image_scores(&class_scores, prediction.best_candidate_score),
        embedding: prediction.embedding.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Detection;
    use api::Strategy;

    #[test]
    fn reports_boxes_and_scores() {
        let prediction = Prediction {
            detections: vec![Detection {
                class_index: 1,
                score: 0.6,
                bbox: [1.0, 2.0, 3.0, 4.0],
                class_scores: vec![0.3, 0.6],
            }],
            best_candidate_score: 0.6,
            embedding: None,
        };
        let report = image_prediction(9, &prediction);
        assert_eq!(report.boxes[0].class_index, 1);
        assert_eq!(report.boxes[0].x1, 3.0);
        let margin = report
            .scores
            .iter()
            .find(|s| s.strategy == Strategy::Margin)
            .map(|s| s.score);
        assert!(margin.is_some_and(|m| (m - 0.7).abs() < 1e-6));
        assert_eq!(report.scores.len(), 12);
    }
}
