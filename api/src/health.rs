//! `GET /api/health`.

use serde::{Deserialize, Serialize};

/// Liveness answer: `{"status":"ok","version":"0.1.0"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the server answers at all.
    pub status: String,
    /// The server's crate version.
    pub version: String,
}
