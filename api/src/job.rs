//! Background jobs (DESIGN, "Domain": Job): scoring, teacher labeling, evaluation, training. Persisted, with
//! progress, cancellable, and resumed after a server restart.

use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Run the active student over the project's unlabeled images and store uncertainty scores.
    Score,
    /// Auto-label the pool with the teacher.
    Teacher,
    /// Train a new student.
    Train,
    /// Detect, with every model version, on approved images it has not seen yet: what the
    /// Quality page's figures and the label-error ranking are computed from.
    Evaluate,
}

impl JobKind {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Score => "score",
            Self::Teacher => "teacher",
            Self::Train => "train",
            Self::Evaluate => "evaluate",
        }
    }

    /// The kind named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Score, Self::Teacher, Self::Train, Self::Evaluate]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for the runner.
    Queued,
    /// Being worked on now.
    Running,
    /// Finished with everything done.
    Succeeded,
    /// Stopped by an error (the message says which).
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl JobState {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Finished, one way or another: nothing will change it again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// `POST /api/projects/{pid}/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// What to run.
    pub kind: JobKind,
    /// The model to use; when absent, the project's active student (scoring) or newest teacher
    /// (teacher labeling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
    /// Teacher labeling: which images (all of the project's by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageSelection>,
    /// Teacher labeling: the lowest confidence kept as a proposal (0.25 by default, Ultralytics').
    /// Training: the lowest confidence of a model proposal trained on (unreviewed images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_conf: Option<f32>,
    /// Training: how long and how big; defaults where absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainSettings>,
    /// Only a process with a GPU (a `distillery worker --device gpu`, or a server started with
    /// a GPU device) may run it; it waits in the queue until one does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpu: bool,
}

/// A training job's settings (Ultralytics' names). With `model_id` on the job, training starts
/// from that registered student's weights (fine-tuning) instead of from scratch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Passes over the training images (30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    /// Images per step (16 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Square input side, a multiple of 32 (320 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imgsz: Option<u32>,
    /// Stop after this many epochs without improvement (30 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patience: Option<u32>,
    /// Nominal batch: gradients of `nbs / batch` steps are summed before the weights move
    /// (64 by default, Ultralytics'; a small data set learns faster with `nbs = batch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbs: Option<u32>,
    /// Epochs of learning-rate warm-up (3 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<f64>,
}

/// One finished epoch of a training job, as the training page charts it
/// (`GET /api/jobs/{jid}/epochs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingEpoch {
    /// From 1.
    pub epoch: u32,
    /// Of this many.
    pub epochs: u32,
    /// Mean training box (CIoU) loss over the epoch, after Ultralytics' gain.
    pub box_loss: f32,
    /// Mean classification (BCE) loss.
    pub class_loss: f32,
    /// Mean distribution focal loss.
    pub dfl_loss: f32,
    /// Learning rate at the epoch's last step.
    pub learning_rate: f64,
    /// mAP50 of the averaged weights on the project's val split.
    pub map50: f64,
    /// mAP50-95 there.
    pub map50_95: f64,
    /// Mean precision at the best-F1 confidence.
    pub precision: f64,
    /// Mean recall at the best-F1 confidence.
    pub recall: f64,
    /// Training images per second this epoch.
    pub images_per_second: f64,
    /// Seconds since the training started.
    pub elapsed_seconds: f64,
    /// Seconds left at this pace.
    pub eta_seconds: f64,
    /// Whether these weights are the best so far (the ones published).
    pub best: bool,
}

/// Which images a teacher labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageSelection {
    /// Every image of the project, or only those nobody has labeled yet.
    Named(NamedSelection),
    /// These images (of the project).
    Ids(Vec<i64>),
}

/// The named image selections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedSelection {
    /// Every image.
    All,
    /// Images still `new` or `prelabeled`.
    Unlabeled,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: i64,
    /// The project it works on.
    pub project_id: i64,
    /// What it runs.
    pub kind: JobKind,
    /// Where it is in its life.
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The model it runs, when it runs one.
    pub model_id: Option<i64>,
    /// Units of work done (images, epochs, …) out of `total`.
    pub done: u64,
    /// Units of work in all.
    pub total: u64,
    /// Last progress line, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When it reached a final state.
    pub finished_at: Option<String>,
    /// The process running it, or that ran it last: its name and device, "gpu-box:/data (gpu)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Whether it asked for a GPU.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpu: bool,
}
