//! Predictions reported per image and model version, and the uncertainty-ranked queue built
//! from them (`GET /api/projects/{pid}/queue`).

use serde::{Deserialize, Serialize};

use crate::uncertainty::{Aggregation, MeasuredScore, Strategy};

/// One box a model predicted, in upright image pixels, by the model's class index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedBox {
    /// The model's class index.
    pub class_index: u32,
    /// Confidence of that class, 0..1.
    pub score: f32,
    /// Left edge, pixels.
    pub x0: f32,
    /// Top edge, pixels.
    pub y0: f32,
    /// Right edge, pixels.
    pub x1: f32,
    /// Bottom edge, pixels.
    pub y1: f32,
}

/// What one model run says about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePrediction {
    /// The image it is about.
    pub image_id: i64,
    /// Kept detections (above the proposal threshold, after NMS).
    pub boxes: Vec<PredictedBox>,
    /// Best class score of any anchor, even below the threshold.
    pub best_candidate_score: f32,
    /// Every per-detection measure under every aggregation (`uncertainty::all_image_scores`).
    pub scores: Vec<MeasuredScore>,
    /// The model's `embedding` output, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// `POST /api/projects/{pid}/predictions`: results of one model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionReport {
    /// The model version that made them.
    pub model_id: i64,
    /// One entry per image.
    pub images: Vec<ImagePrediction>,
}

/// `GET /api/projects/{pid}/predictions/pending?model_id=`: unlabeled images that model has
/// not scored yet, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingImages {
    /// The model version asked about.
    pub model_id: i64,
    /// Images it has not scored, oldest first.
    pub image_ids: Vec<i64>,
}

/// One ranked image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The image.
    pub image_id: i64,
    /// Its file name, for the list.
    pub file_name: String,
    /// Its score under the strategy (higher = label sooner).
    pub score: f32,
}

/// The ranked queue: unlabeled images, highest score first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// How images are scored.
    pub strategy: Strategy,
    /// How per-detection scores become one per image.
    pub aggregation: Aggregation,
    /// The model version whose scores rank the queue (none for `random`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
    /// Ranked images, highest score first.
    pub entries: Vec<QueueEntry>,
    /// Unlabeled images this model version has not scored yet (not in `entries`).
    pub unscored: u64,
}

/// `GET /api/projects/{pid}/next?mode=label|review&strategy=…&after=IID`: the image to open next,
/// for the person asking. Labeling: the top-ranked unlabeled image (by `strategy`, with the
/// project's active student) that nobody else holds, in a random order of this person's own when
/// there is no ranking. Reviewing: the oldest submitted image nobody else holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextImage {
    /// The image; absent when every candidate is done or held by someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<i64>,
    /// The ranking that chose it; absent for the random order and the review queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Candidates skipped because someone else holds them.
    pub held_by_others: u32,
}

/// `POST /api/projects/{pid}/assignments` (owner): assigns `username` the next `count` unlabeled
/// images nobody is assigned (in upload order), or — `count` 0 — takes back every image of
/// theirs not labeled yet. "Next" hands a person their assigned images first, and nobody else
/// those images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAssignment {
    /// The member (annotator or above).
    pub username: String,
    /// How many more images to assign; 0 takes theirs back.
    pub count: u32,
}

/// The answer to [`NewAssignment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The member.
    pub username: String,
    /// Images assigned by this request (0 when taking back).
    pub added: u64,
    /// Unlabeled images assigned to them now.
    pub to_do: u64,
}
