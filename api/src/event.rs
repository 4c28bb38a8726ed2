//! What a project's open pages are told as it happens (`GET /api/projects/{pid}/events`).

use serde::{Deserialize, Serialize};

use crate::RegisteredModel;

/// One event of a project's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProjectEvent {
    /// The student browsers run: sent first on every (re)connection, then whenever a training
    /// publishes one, someone uploads one or rolls back to an earlier version. `None` while the
    /// project has no student.
    ActiveStudent {
        /// The active student.
        model: Option<RegisteredModel>,
    },
}
