//! The save queue between the editor and the server. Every box edit is queued here and sent as
//! `POST /api/images/{iid}/ops`; nothing is ever dropped silently:
//!
//! - the queue is mirrored to `localStorage`, so edits made offline survive a reload;
//! - network failures and 5xx answers are retried with backoff, and the indicator says
//!   "Offline — N edits waiting";
//! - a 4xx answer means the server refused the edit: it is dropped *visibly* (the indicator
//!   shows the reason) and the editor reloads the image's boxes from the server.
//!
//! Resending is safe because the server's operations are idempotent.

use api::{BoxOp, OpsRequest, OpsResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};

use crate::api_client::{self, ApiFailure};

const STORAGE_KEY: &str = "distillery.pending-ops";
/// Most operations sent in one request.
const BATCH_SIZE: usize = 200;

/// One queued edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingOp {
    /// Image the edit belongs to.
    pub image_id: i64,
    /// The operation (none when only the flag changes).
    #[serde(default)]
    pub op: Option<BoxOp>,
    /// Set the "no objects" flag with it.
    #[serde(default)]
    pub negative: Option<bool>,
}

/// What the indicator shows.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncState {
    /// Everything is on the server.
    Saved,
    /// A request is in flight.
    Saving,
    /// The server cannot be reached; retrying.
    Offline,
    /// The server refused an edit (shown until the next successful save).
    Refused(String),
}

/// The queue; cheap to copy (all signals).
#[derive(Clone, Copy)]
pub struct SyncQueue {
    pending: RwSignal<Vec<PendingOp>>,
    state: RwSignal<SyncState>,
    running: StoredValue<bool>,
    /// The last answer: (answer number, image id, response) for an applied batch.
    applied: RwSignal<Option<(u64, i64, OpsResponse)>>,
    /// The last refusal: (answer number, image id).
    refused: RwSignal<Option<(u64, i64)>>,
    /// Numbers every answer, so an editor can ignore those from before it opened.
    answers: StoredValue<u64>,
}

impl SyncQueue {
    /// Loads whatever a previous page left unsent and starts sending it.
    pub fn new() -> Self {
        let queue = Self {
            pending: RwSignal::new(load()),
            state: RwSignal::new(SyncState::Saved),
            running: StoredValue::new(false),
            applied: RwSignal::new(None),
            refused: RwSignal::new(None),
            answers: StoredValue::new(0),
        };
        queue.kick();
        queue
    }

    /// Queues an edit and sends it as soon as possible.
    pub fn push(&self, image_id: i64, op: BoxOp) {
        self.enqueue(PendingOp {
            image_id,
            op: Some(op),
            negative: None,
        });
    }

    /// Queues a change of the "no objects" flag.
    pub fn push_negative(&self, image_id: i64, negative: bool) {
        self.enqueue(PendingOp {
            image_id,
            op: None,
            negative: Some(negative),
        });
    }

    fn enqueue(&self, item: PendingOp) {
        self.pending.update(|pending| pending.push(item));
        store(&self.pending.get_untracked());
        self.kick();
    }

    /// The indicator's state.
    pub fn state(&self) -> SyncState {
        self.state.get()
    }

    /// Edits not yet confirmed by the server.
    pub fn pending_count(&self) -> usize {
        self.pending.with(Vec::len)
    }

    /// Edits of one image not yet confirmed.
    pub fn pending_for(&self, image_id: i64) -> Vec<PendingOp> {
        self.pending
            .with_untracked(|p| p.iter().filter(|o| o.image_id == image_id).cloned().collect())
    }

    /// How many answers have arrived so far; an editor keeps this when it opens and only
    /// heeds later ones.
    pub fn answers_so_far(&self) -> u64 {
        self.answers.get_value()
    }

    /// The last applied batch for `image_id` answered after answer number `since`.
    pub fn applied_since(&self, image_id: i64, since: u64) -> Option<OpsResponse> {
        self.applied
            .get()
            .filter(|(n, image, _)| *n > since && *image == image_id)
            .map(|(_, _, r)| r)
    }

    /// Whether edits of `image_id` were refused after answer number `since`.
    pub fn refused_since(&self, image_id: i64, since: u64) -> bool {
        self.refused
            .get()
            .is_some_and(|(n, image)| n > since && image == image_id)
    }

    fn next_answer(&self) -> u64 {
        self.answers.update_value(|n| *n += 1);
        self.answers.get_value()
    }

    fn kick(&self) {
        if self.running.get_value() {
            return;
        }
        self.running.set_value(true);
        let queue = *self;
        spawn_local(async move {
            queue.drain().await;
            queue.running.set_value(false);
        });
    }

    async fn drain(&self) {
        let mut backoff_ms = 1_000u32;
        loop {
            let batch: Vec<PendingOp> = self.pending.with_untracked(|pending| {
                let Some(first) = pending.first() else {
                    return Vec::new();
                };
                pending
                    .iter()
                    .take_while(|p| p.image_id == first.image_id)
                    .take(BATCH_SIZE)
                    .cloned()
                    .collect()
            });
            let Some(first) = batch.first() else {
                if !matches!(self.state.get_untracked(), SyncState::Refused(_)) {
                    self.state.set(SyncState::Saved);
                }
                return;
            };
            let image_id = first.image_id;
            let request = OpsRequest {
                ops: batch.iter().filter_map(|p| p.op.clone()).collect(),
                negative: batch.iter().rev().find_map(|p| p.negative),
            };
            self.state.set(SyncState::Saving);
            match api_client::apply_ops(image_id, &request).await {
                Ok(response) => {
                    self.remove_front(batch.len());
                    // A success also clears an earlier refusal from the indicator.
                    self.state.set(SyncState::Saving);
                    self.applied.set(Some((self.next_answer(), image_id, response)));
                    backoff_ms = 1_000;
                }
                Err(failure) if failure.is_retryable() => {
                    self.state.set(SyncState::Offline);
                    gloo_timers::future::TimeoutFuture::new(backoff_ms).await;
                    backoff_ms = (backoff_ms * 2).min(15_000);
                }
                Err(ApiFailure { message, .. }) => {
                    self.remove_front(batch.len());
                    self.state.set(SyncState::Refused(message));
                    self.refused.set(Some((self.next_answer(), image_id)));
                }
            }
        }
    }

    fn remove_front(&self, count: usize) {
        self.pending.update(|pending| {
            pending.drain(..count.min(pending.len()));
        });
        store(&self.pending.get_untracked());
    }
}

/// The browser's `localStorage`, when the page may use it.
pub(crate) fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn load() -> Vec<PendingOp> {
    local_storage()
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn store(pending: &[PendingOp]) {
    if let (Some(storage), Ok(text)) = (local_storage(), serde_json::to_string(pending)) {
        let _ = storage.set_item(STORAGE_KEY, &text);
    }
}

/// "Saved" / "Saving…" / "Offline — N edits waiting" / the refusal, always visible in the editor.
#[component]
pub fn SyncIndicator() -> impl IntoView {
    let queue = expect_context::<SyncQueue>();
    view! {
        <span class="sync" role="status" aria-live="polite"
            data-sync=move || match queue.state() {
                SyncState::Saved => "saved",
                SyncState::Saving => "saving",
                SyncState::Offline => "offline",
                SyncState::Refused(_) => "refused",
            }>
            {move || match queue.state() {
                SyncState::Saved => "✓ Saved".to_owned(),
                SyncState::Saving => "Saving…".to_owned(),
                SyncState::Offline => format!("Offline — {} edits waiting, retrying", queue.pending_count()),
                SyncState::Refused(reason) => format!("Not saved: {reason}"),
            }}
        </span>
    }
}
