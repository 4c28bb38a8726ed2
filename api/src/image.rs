//! Images of a project: what upload returns, what the gallery lists, and the review workflow.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ErrorDetail;

/// Where an image is in the labeling workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    /// Uploaded, nobody has touched it.
    New,
    /// A model has proposed boxes.
    Prelabeled,
    /// A person has started labeling it.
    InProgress,
    /// The annotator says it is done; waiting for review.
    Submitted,
    /// A reviewer accepted it.
    Approved,
    /// A reviewer sent it back, with a comment.
    Rejected,
}

impl ImageStatus {
    /// Every status, in workflow order.
    pub const ALL: [ImageStatus; 6] = [
        Self::New,
        Self::Prelabeled,
        Self::InProgress,
        Self::Submitted,
        Self::Approved,
        Self::Rejected,
    ];

    /// The wire/database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Prelabeled => "prelabeled",
            Self::InProgress => "in_progress",
            Self::Submitted => "submitted",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    /// Parses the wire/database spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Label shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Prelabeled => "Pre-labeled",
            Self::InProgress => "In progress",
            Self::Submitted => "Submitted",
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
        }
    }

    /// Whether a person may move an image from `self` to `to` through `POST …/status`.
    /// Submit from any working state; approve or reject a submitted image; reopen a finished one.
    pub fn can_become(self, to: ImageStatus) -> bool {
        use ImageStatus::*;
        match to {
            Submitted => matches!(self, New | Prelabeled | InProgress | Rejected),
            Approved | Rejected => self == Submitted,
            InProgress => matches!(self, Submitted | Approved | Rejected),
            New | Prelabeled => false,
        }
    }

    /// The status after a person edits boxes: untouched images become "in progress"; reviewed
    /// ones stay where they are until reopened explicitly.
    pub fn after_edit(self) -> ImageStatus {
        match self {
            Self::New | Self::Prelabeled => Self::InProgress,
            other => other,
        }
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dataset split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training images.
    Train,
    /// Validation images.
    Val,
    /// Held-out test images.
    Test,
}

impl Split {
    /// Folder name in a YOLO dataset (`images/train`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }

    /// Parses a folder/wire name (`valid` and `validation` are common spellings of val).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "train" => Some(Self::Train),
            "val" | "valid" | "validation" => Some(Self::Val),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

/// One stored image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Server-assigned id.
    pub id: i64,
    /// Project it belongs to.
    pub project_id: i64,
    /// Name it was uploaded or imported under.
    pub file_name: String,
    /// Width in pixels after EXIF orientation (what people see).
    pub width: u32,
    /// Height in pixels after EXIF orientation.
    pub height: u32,
    /// SHA-256 of the original bytes, hex.
    pub sha256: String,
    /// Workflow state.
    pub status: ImageStatus,
    /// Reviewed and holds no objects (a real negative, unlike an unlabeled image).
    pub negative: bool,
    /// Split fixed by an import or a person; `None` means the project's ratios decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_split: Option<Split>,
    /// Number of boxes (all sources).
    pub box_count: u32,
    /// Reviewer's comment from the last rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_comment: Option<String>,
}

/// The outcome for one file of an upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadedFile {
    /// Name the client sent.
    pub file_name: String,
    /// Image id (the existing one for a duplicate); absent when the file was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Upright width in pixels.
    #[serde(default)]
    pub width: u32,
    /// Upright height in pixels.
    #[serde(default)]
    pub height: u32,
    /// SHA-256 of the bytes, hex.
    #[serde(default)]
    pub sha256: String,
    /// The project already had these exact bytes; nothing new was stored.
    #[serde(default)]
    pub duplicate: bool,
    /// Why the file was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// One page of `GET /api/projects/{pid}/images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePage {
    /// Images in id order.
    pub images: Vec<ImageInfo>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<i64>,
    /// Images matching the filter, over all pages.
    pub total: u64,
}

/// `GET /api/projects/{pid}/export?…&dry_run=true`: what an export would contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCounts {
    /// Images exported.
    pub images: u64,
    /// Boxes exported.
    pub boxes: u64,
    /// Images in the train split.
    pub train: u64,
    /// Images in the val split.
    pub val: u64,
    /// Images in the test split.
    pub test: u64,
}

/// What an import did (`POST /api/projects/{pid}/import`, `distillery import`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Detected layout: `yolo`, `coco` or `images`.
    pub format: String,
    /// New images stored.
    pub images_added: u64,
    /// Images the project already had (same bytes); their labels were left as they were.
    pub duplicates: u64,
    /// Boxes added.
    pub boxes_added: u64,
    /// Images that came with an empty label file: stored as reviewed negatives.
    pub negatives: u64,
    /// Images without any label file: stored as not yet labeled.
    pub unlabeled: u64,
    /// Classes the dataset named that the project did not have yet.
    pub classes_created: Vec<String>,
}

/// Body of `POST /api/images/{iid}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The status wanted.
    pub status: ImageStatus,
    /// Reviewer's comment (required when rejecting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::ImageStatus::{self, *};

    #[test]
    fn workflow_transitions() {
        // from, to, allowed
        let cases = [
            (New, Submitted, true),
            (InProgress, Submitted, true),
            (Rejected, Submitted, true),
            (Submitted, Approved, true),
            (Submitted, Rejected, true),
            (Approved, InProgress, true),
            (Rejected, InProgress, true),
            (New, Approved, false),
            (InProgress, Rejected, false),
            (Approved, Approved, false),
            (Submitted, New, false),
            (InProgress, InProgress, false),
        ];
        for (from, to, allowed) in cases {
            assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
        }
    }

    #[test]
    fn edits_start_work_but_do_not_undo_reviews() {
        assert_eq!(New.after_edit(), InProgress);
        assert_eq!(Prelabeled.after_edit(), InProgress);
        assert_eq!(Submitted.after_edit(), Submitted);
        assert_eq!(Approved.after_edit(), Approved);
    }

    #[test]
    fn spellings_round_trip() {
        for status in ImageStatus::ALL {
            assert_eq!(ImageStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(super::Split::parse("valid"), Some(super::Split::Val));
    }
}
