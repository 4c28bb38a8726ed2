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
    /// 1 for the project's first model of this role, 2 for the next, … ("Student v3").
    pub version: u32,
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
    /// The student browsers run: the newest one, unless someone rolled back to an older one.
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

impl RegisteredModel {
    /// Its validation mAP50, when the studio trained it.
    pub fn map50(&self) -> Option<f64> {
        self.trained.as_ref().and_then(|t| t.map50)
    }
}

/// What the studio says when `model` becomes the student browsers run, in place of `previous`:
/// "Student v3 (mAP50 0.81, was 0.64) is now pre-labeling". An uploaded student has no mAP of
/// its own, so its file name stands there.
pub fn student_change_message(model: &RegisteredModel, previous: Option<&RegisteredModel>) -> String {
    let was = previous.and_then(RegisteredModel::map50);
    let figures = match (model.map50(), was) {
        (Some(now), Some(was)) => format!("mAP50 {now:.2}, was {was:.2}"),
        (Some(now), None) => format!("mAP50 {now:.2}"),
        (None, _) => model.file_name.clone(),
    };
    format!("Student v{} ({figures}) is now pre-labeling", model.version)
}

/// `PUT /api/projects/{pid}/active-student`: which registered student browsers run (rolling
/// back to an earlier version, or forward again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveStudent {
    /// A student of the project.
    pub model_id: i64,
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

    fn student(version: u32, map50: Option<f64>) -> RegisteredModel {
        RegisteredModel {
            id: i64::from(version),
            project_id: 1,
            role: ModelRole::Student,
            version,
            file_name: format!("student-v{version}.onnx"),
            sha256: String::new(),
            byte_size: 0,
            input_size: 320,
            layout: String::new(),
            class_names: Vec::new(),
            class_map: Vec::new(),
            embedding_len: None,
            url: String::new(),
            active: true,
            created_at: String::new(),
            trained: map50.map(|map50| TrainedBy {
                job_id: 1,
                map50: Some(map50),
                map50_95: None,
            }),
        }
    }

    #[test]
    fn the_change_message_names_the_version_and_both_maps() {
        let old = student(2, Some(0.641));
        let new = student(3, Some(0.806));
        assert_eq!(
            student_change_message(&new, Some(&old)),
            "Student v3 (mAP50 0.81, was 0.64) is now pre-labeling"
        );
        assert_eq!(
            student_change_message(&new, None),
            "Student v3 (mAP50 0.81) is now pre-labeling"
        );
        assert_eq!(
            student_change_message(&student(1, None), Some(&new)),
            "Student v1 (student-v1.onnx) is now pre-labeling"
        );
    }
}
