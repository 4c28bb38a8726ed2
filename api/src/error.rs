//! The one error shape every `/api` route returns: `{"error": {"code", "message"}}`.

use serde::{Deserialize, Serialize};

/// Body of every non-2xx `/api` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A machine-readable `code` (snake_case, stable) and a message a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable identifier scripts can match on, e.g. `invalid_name`, `not_found`.
    pub code: String,
    /// Readable explanation, shown as-is in the UI.
    pub message: String,
}

impl ErrorBody {
    /// Builds an error body from a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
