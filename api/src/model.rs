//! Registered detectors (DESIGN, "Domain": Model): what the registry answers and accepts.

use serde::{Deserialize, Serialize};

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelRole {
    /// The heavy model the server runs to auto-label the pool.
    Teacher,
    /// The small model browsers run for pre-labels and uncertainty.
    Student,
}

impl ModelRole {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Teacher => "teacher",
            Self::Student => "student",
        }
    }

    /// The role named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "teacher" => Some(Self::Teacher),
            "student" => Some(Self::Student),
            _ => None,
        }
    }
}

/// A model in a project's registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Model id.
    pub id: i64,
    /// The project whose registry holds it.
    pub project_id: i64,
    /// Teacher (server) or student (browser).
    pub role: ModelRole,
    /// Name it was uploaded under.
    pub file_name: String,
    /// SHA-256 of the ONNX bytes, hex: the version.
    pub sha256: String,
    /// Size of the ONNX file, bytes.
    pub byte_size: u64,
    /// Side of the square input, pixels.
    pub input_size: u32,
    /// Output layout, e.g. `ultralytics [1, 84, 8400]`.
    pub layout: String,
    /// The model's class names by index.
    pub class_names: Vec<String>,
    /// For each model class, the project class it proposes, or `None` (ignored).
    pub class_map: Vec<Option<u32>>,
    /// Length of the `embedding` output, when the model has one (diversity ranking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_len: Option<u32>,
    /// Immutable, content-addressed URL of the bytes.
    pub url: String,
    /// The newest student is the one browsers run.
    pub active: bool,
    /// When it was registered (RFC 3339, UTC).
    pub created_at: String,
    /// For a student the studio trained: the job and its validation at publication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained: Option<TrainedBy>,
}

/// Where a trained student came from and how it validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedBy {
    /// The training job.
    pub job_id: i64,
    /// mAP50 on the project's val split, best epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map50: Option<f64>,
    /// mAP50-95 there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map50_95: Option<f64>,
}

/// `PATCH /api/models/{mid}`: a new class mapping (same length as `class_names`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPatch {
    /// For each model class, the project class it proposes, or `None` (ignored).
    pub class_map: Vec<Option<u32>>,
}

/// Maps model class names to project classes by name, ignoring case and surrounding spaces;
/// classes with no namesake map to `None`.
pub fn map_classes_by_name(model_names: &[String], project: &[(u32, &str)]) -> Vec<Option<u32>> {
    let key = |s: &str| s.trim().to_lowercase();
    model_names
        .iter()
        .map(|name| project.iter().find(|(_, p)| key(p) == key(name)).map(|(id, _)| *id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_by_name_ignoring_case() {
        let model: Vec<String> = ["Person", " car", "dog"].iter().map(|s| s.to_string()).collect();
        let project = [(4, "car"), (7, "person")];
        assert_eq!(map_classes_by_name(&model, &project), [Some(7), Some(4), None]);
    }
}
