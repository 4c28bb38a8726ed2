//! Background jobs (DESIGN, "Domain": Job): scoring, teacher labeling, training. Persisted, with
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
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Score => "score",
            Self::Teacher => "teacher",
            Self::Train => "train",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Score, Self::Teacher, Self::Train]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

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
    pub kind: JobKind,
    /// The model to use; the project's active student when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub project_id: i64,
    pub kind: JobKind,
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<i64>,
    /// Units of work done (images, epochs, …) out of `total`.
    pub done: u64,
    pub total: u64,
    /// Last progress line, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}
