//! The project's live channel, `GET /api/projects/{pid}/live?since=SEQ&image_id=IID` (a
//! WebSocket): every box change and review decision in the project's sequence order, who is on
//! which image, the active student and the project's jobs as they change. A client that
//! reconnects with the last `seq` it saw receives everything it missed, then what happens next.

use serde::{Deserialize, Serialize};

use crate::{BoundingBox, ImageStatus, Job, OpKind, RegisteredModel};

/// What the server sends, one JSON text message each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A box was created, changed or deleted (by a person, an import, a teacher job, …).
    Box {
        /// The project's sequence number: events arrive in this order, each once.
        seq: i64,
        /// The image the box is on.
        image_id: i64,
        /// What happened.
        op: OpKind,
        /// The box's id.
        box_id: String,
        /// The box afterwards (absent when deleted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bbox: Option<BoundingBox>,
        /// Who did it (absent for imports and jobs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<String>,
    },
    /// An image's review status changed (submitted, approved, rejected with a comment, reopened).
    Status {
        /// The project's sequence number.
        seq: i64,
        /// The image.
        image_id: i64,
        /// Its status now.
        status: ImageStatus,
        /// The reviewer's comment, for a rejection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// Who changed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<String>,
    },
    /// Everything up to `seq` has been sent (after the replay of a connection's `since`).
    CaughtUp {
        /// The project's last sequence number when the replay ended.
        seq: i64,
    },
    /// Who has the project open now, which image each has on screen, and who holds each
    /// image's lease.
    Presence {
        /// One entry per open connection.
        people: Vec<Presence>,
    },
    /// The project's active student: sent after the replay of every (re)connection, then
    /// whenever a training publishes one, someone uploads one or rolls back to an earlier one.
    /// `None` while the project has no student.
    Student {
        /// The student browsers run now.
        model: Option<RegisteredModel>,
    },
    /// A job of the project was queued, made progress, or ended.
    Job {
        /// The job as it is now.
        job: Job,
    },
    /// The first message of every connection: its number, as presence lists it.
    Hello {
        /// This connection.
        connection: u64,
    },
}

impl LiveEvent {
    /// The sequence number of an event that has one (box and status changes).
    pub fn seq(&self) -> Option<i64> {
        match self {
            LiveEvent::Box { seq, .. } | LiveEvent::Status { seq, .. } => Some(*seq),
            LiveEvent::CaughtUp { .. }
            | LiveEvent::Presence { .. }
            | LiveEvent::Student { .. }
            | LiveEvent::Job { .. }
            | LiveEvent::Hello { .. } => None,
        }
    }
}

/// One open connection to the live channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The connection (one per open editor tab).
    pub connection: u64,
    /// The account.
    pub user_id: i64,
    /// Its name.
    pub username: String,
    /// The image it has open, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<i64>,
    /// Whether it holds a lease of that image: the first editor to open a free image takes
    /// it, and keeps it while its connection lives; the others see the image read-only until
    /// they take over (and then edit alongside the holder).
    #[serde(default)]
    pub editing: bool,
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveRequest {
    /// The image now on screen (none: the person left the editor).
    Viewing {
        /// The image.
        #[serde(default)]
        image_id: Option<i64>,
    },
    /// Take a lease of the image on screen although someone holds one: edit alongside them.
    TakeOver,
}

/// How long a connection that stops answering keeps its lease: the server pings every 20 s and
/// closes a connection silent for this long, which releases what it held.
pub const LEASE_SILENCE_SECS: u64 = 60;

/// The WebSocket close code the server uses for a client that fell too far behind: reconnect
/// with the last `seq` seen (nothing is lost, it was just not waited for).
pub const CLOSE_FELL_BEHIND: u16 = 4000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json() {
        let event = LiveEvent::Status {
            seq: 7,
            image_id: 3,
            status: ImageStatus::Rejected,
            comment: Some("fix the wheel".into()),
            author: Some("rev".into()),
        };
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(json["type"], "status");
        assert_eq!(json["status"], "rejected");
        assert_eq!(event.seq(), Some(7));
        let back: LiveRequest = serde_json::from_str(r#"{"type":"viewing","image_id":5}"#)
            .unwrap_or(LiveRequest::Viewing { image_id: None });
        assert_eq!(back, LiveRequest::Viewing { image_id: Some(5) });
    }
}
