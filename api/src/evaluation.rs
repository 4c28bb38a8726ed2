//! `GET /api/projects/{pid}/evaluation`: how good every registered model version is on the
//! human-approved images (the Quality page), as Ultralytics' `val` would report it.

use serde::{Deserialize, Serialize};

use crate::job::Job;
use crate::model::ModelRole;

/// The Quality page's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectEvaluation {
    /// Approved images in the chosen split (all splits when none was asked for).
    pub approved_images: u64,
    /// The evaluation job detecting on approved images some model has not seen yet; the
    /// figures are of the images done so far until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    /// Project class ids in project order: the rows and columns of every confusion matrix
    /// (then background).
    pub class_ids: Vec<u32>,
    /// One entry per model version, newest first.
    pub models: Vec<ModelEvaluation>,
    /// Teacher against student, per pair of versions that both saw some approved image.
    pub agreement: Vec<Agreement>,
}

/// One model version against the approved boxes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEvaluation {
    /// The model version.
    pub model_id: i64,
    /// Teacher or student.
    pub role: ModelRole,
    /// Its file name, for the page.
    pub file_name: String,
    /// Approved images it has detected on (the figures are over these).
    pub evaluated_images: u64,
    /// Approved images it could not read.
    pub unreadable_images: u64,
    /// Mean AP at IoU 0.5 over classes with approved boxes.
    pub map50: f64,
    /// Mean AP over IoU 0.50 … 0.95.
    pub map50_95: f64,
    /// Mean precision at the best-F1 confidence.
    pub precision: f64,
    /// Mean recall at the best-F1 confidence.
    pub recall: f64,
    /// The confidence where the mean F1 peaks.
    pub best_f1_confidence: f64,
    /// Per project class, in project order.
    pub classes: Vec<ClassEvaluation>,
    /// `confusion[predicted][true]` over `class_ids` then background, for detections above
    /// `CONFUSION_CONFIDENCE`.
    pub confusion: Vec<Vec<u32>>,
}

/// The confidence above which detections count in the confusion matrix.
pub const CONFUSION_CONFIDENCE: f32 = 0.25;

/// One class's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassEvaluation {
    /// The project class.
    pub class_id: u32,
    /// Approved boxes of the class.
    pub truths: u64,
    /// Detections of the class (at the evaluation's low confidence).
    pub predictions: u64,
    /// AP at IoU 0.5; absent without approved boxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ap50: Option<f64>,
    /// AP over IoU 0.50 … 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ap50_95: Option<f64>,
    /// Precision at the best-F1 confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Recall at the best-F1 confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Precision at recall 0, 0.01 … 1 (IoU 0.5); empty without approved boxes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pr_curve: Vec<f32>,
}

/// How far a student agrees with a teacher on the approved images both saw: their boxes above
/// `CONFUSION_CONFIDENCE`, paired one to one at IoU above 0.45 with the same class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// The teacher version.
    pub teacher_id: i64,
    /// The student version.
    pub student_id: i64,
    /// Images both saw.
    pub images: u64,
    /// Teacher boxes.
    pub teacher_boxes: u64,
    /// Student boxes.
    pub student_boxes: u64,
    /// Pairs of the same object and class.
    pub agreed: u64,
    /// `2 · agreed / (teacher_boxes + student_boxes)`; 1 when neither has a box.
    pub f1: f64,
}
