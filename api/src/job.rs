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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_conf: Option<f32>,
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
}
