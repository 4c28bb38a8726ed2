//! An image's audit log, `GET /api/images/{iid}/history?before=SEQ`: every change of its boxes
//! and every review decision, with who made it, when, and the box before and after — newest
//! first, a page at a time.

use serde::{Deserialize, Serialize};

use crate::{BoundingBox, ImageStatus, OpKind};

/// One page of an image's history, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageHistory {
    /// The image.
    pub image_id: i64,
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older: Option<i64>,
}

/// One change, as it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The project's sequence number of the change.
    pub seq: i64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who (absent for imports and jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// What changed.
    pub change: AuditChange,
}

/// What one audit entry changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditChange {
    /// A box was created, changed or deleted.
    Box {
        /// Which.
        op: OpKind,
        /// The box's id.
        box_id: String,
        /// The box before (absent when created).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Box<BoundingBox>>,
        /// The box after (absent when deleted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Box<BoundingBox>>,
    },
    /// The image's review status changed.
    Status {
        /// The status it got.
        status: ImageStatus,
        /// The reviewer's comment, for a rejection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
}

impl AuditChange {
    /// The change in words, classes named by `class_name` ("moved a car box", "changed a box
    /// from car to bike", "rejected it: the bike is missing").
    pub fn describe(&self, class_name: impl Fn(u32) -> String) -> String {
        match self {
            AuditChange::Status { status, comment } => {
                let done = match status {
                    ImageStatus::Submitted => "submitted it",
                    ImageStatus::Approved => "approved it",
                    ImageStatus::Rejected => "rejected it",
                    _ => "reopened it",
                };
                match comment {
                    Some(comment) if !comment.is_empty() => format!("{done}: {comment}"),
                    _ => done.to_owned(),
                }
            }
            AuditChange::Box { before, after, .. } => match (before, after) {
                (None, Some(after)) => format!("drew a {} box", class_name(after.class_id)),
                (Some(before), None) => format!("deleted a {} box", class_name(before.class_id)),
                (Some(before), Some(after)) => {
                    let moved =
                        [before.x0, before.y0, before.x1, before.y1] != [after.x0, after.y0, after.x1, after.y1];
                    let accepted = before.source != after.source;
                    match (before.class_id != after.class_id, moved) {
                        (true, _) => format!(
                            "changed a box from {} to {}",
                            class_name(before.class_id),
                            class_name(after.class_id)
                        ),
                        (false, true) => format!("moved a {} box", class_name(after.class_id)),
                        (false, false) if accepted => format!("accepted a {} proposal", class_name(after.class_id)),
                        (false, false) => format!("kept a {} box", class_name(after.class_id)),
                    }
                }
                (None, None) => "changed nothing".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxSource;

    fn bbox(class_id: u32, x0: f64) -> BoundingBox {
        BoundingBox {
            id: "b".into(),
            class_id,
            x0,
            y0: 1.0,
            x1: x0 + 10.0,
            y1: 20.0,
            source: BoxSource::Human,
            model_version: None,
            confidence: None,
            author: None,
            revision: 1,
        }
    }

    fn named(id: u32) -> String {
        ["car", "bike"][id as usize].to_owned()
    }

    fn box_change(before: Option<BoundingBox>, after: Option<BoundingBox>) -> AuditChange {
        AuditChange::Box {
            op: OpKind::Update,
            box_id: "b".into(),
            before: before.map(Box::new),
            after: after.map(Box::new),
        }
    }

    #[test]
    fn says_what_happened_to_the_box() {
        assert_eq!(box_change(None, Some(bbox(0, 1.0))).describe(named), "drew a car box");
        assert_eq!(
            box_change(Some(bbox(1, 1.0)), None).describe(named),
            "deleted a bike box"
        );
        assert_eq!(
            box_change(Some(bbox(0, 1.0)), Some(bbox(1, 1.0))).describe(named),
            "changed a box from car to bike"
        );
        assert_eq!(
            box_change(Some(bbox(0, 1.0)), Some(bbox(0, 5.0))).describe(named),
            "moved a car box"
        );
    }

    #[test]
    fn quotes_the_reviewers_comment() {
        let rejected = AuditChange::Status {
            status: ImageStatus::Rejected,
            comment: Some("the bike is missing".into()),
        };
        assert_eq!(rejected.describe(named), "rejected it: the bike is missing");
    }
}
