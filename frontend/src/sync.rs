//! The save queue between the editor and the server. Every box edit is queued here and sent as
//! `POST /api/images/{iid}/ops`; nothing is ever dropped silently:
//!
//! - the queue is mirrored to `localStorage`, so edits made offline survive a reload;
//! - network failures and 5xx answers are retried with backoff, and the indicator says
//!   "Offline — N edits waiting";
//! - when the session ends (401), the edits wait, kept, until the person signs in again in the
//!   form that opens over the page, then go out;
//! - the server refuses edits one by one (the others in the batch apply): a refused edit leaves
//!   the queue for the list of refused edits, kept (in `localStorage` too) and shown with its
//!   reason until the person dismisses it, and the editor reloads the image's boxes from the
//!   server. A 4xx for the whole request refuses every edit of the batch the same way.
//!
//! A batch ends at the first change of the "no objects" flag, so the flag is applied exactly
//! where it was set among the box edits. Resending is safe because the server's operations are
//! idempotent.

use api::{BoxOp, OpKind, OpsRequest, OpsResponse};
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};

use crate::api_client::{self, ApiFailure};

const STORAGE_KEY: &str = "distillery.pending-ops";
const REFUSED_STORAGE_KEY: &str = "distillery.refused-ops";
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

/// An edit the server refused, kept so the person sees what was not saved and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedEdit {
    pub edit: PendingOp,
    /// The server's reason.
    pub reason: String,
}

impl RefusedEdit {
    /// What the edit was, in a few words.
    pub fn describe(&self) -> String {
        match (&self.edit.op, self.edit.negative) {
            (Some(op), _) => {
                let what = match op.op {
                    OpKind::Create => "New box",
                    OpKind::Update => "Change to a box",
                    OpKind::Delete => "Deletion of a box",
                };
                format!(
                    "{what} at {:.0}, {:.0} (image {})",
                    op.bbox.x0, op.bbox.y0, self.edit.image_id
                )
            }
            (None, Some(true)) => format!("\"No objects\" on image {}", self.edit.image_id),
            (None, _) => format!("Clearing \"no objects\" on image {}", self.edit.image_id),
        }
    }
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
    /// The server refused edits (the list is in [`SyncQueue::refused_edits`]).
    Refused,
    /// The session ended; the edits wait for the person to sign in again.
    SignedOut,
}

/// The queue; cheap to copy (all signals).
#[derive(Clone, Copy)]
pub struct SyncQueue {
    pending: RwSignal<Vec<PendingOp>>,
    /// Refused edits, until dismissed.
    refused_edits: RwSignal<Vec<RefusedEdit>>,
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
            pending: RwSignal::new(load(STORAGE_KEY)),
            refused_edits: RwSignal::new(load(REFUSED_STORAGE_KEY)),
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
        store(STORAGE_KEY, &self.pending.get_untracked());
        self.kick();
    }

    /// The indicator's state.
    pub fn state(&self) -> SyncState {
        if self.refused_edits.with(|r| !r.is_empty()) && self.state.get() == SyncState::Saved {
            return SyncState::Refused;
        }
        self.state.get()
    }

    /// Edits the server refused, oldest first, until dismissed.
    pub fn refused_edits(&self) -> Vec<RefusedEdit> {
        self.refused_edits.get()
    }

    /// Forgets the refused edits (the person has read them).
    pub fn dismiss_refused(&self) {
        self.refused_edits.set(Vec::new());
        store(REFUSED_STORAGE_KEY, &[] as &[RefusedEdit]);
    }

    fn refuse(&self, refused: impl IntoIterator<Item = RefusedEdit>) {
        self.refused_edits.update(|list| list.extend(refused));
        store(REFUSED_STORAGE_KEY, &self.refused_edits.get_untracked());
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
                let same_image = pending
                    .iter()
                    .take_while(|p| p.image_id == first.image_id)
                    .take(BATCH_SIZE);
                // Up to and including the first flag change: the server applies the flag after
                // the batch's box edits, which is then where the person set it.
                let mut batch = Vec::new();
                for item in same_image {
                    batch.push(item.clone());
                    if item.negative.is_some() {
                        break;
                    }
                }
                batch
            });
            let Some(first) = batch.first() else {
                self.state.set(SyncState::Saved);
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
                    if !response.refused.is_empty() {
                        self.refuse(refused_in(&batch, &response));
                        self.refused.set(Some((self.next_answer(), image_id)));
                    }
                    self.applied.set(Some((self.next_answer(), image_id, response)));
                    backoff_ms = 1_000;
                }
                // Kept, not refused: they go out once the person has signed in again.
                Err(failure) if failure.is_signed_out() => {
                    self.state.set(SyncState::SignedOut);
                    while !crate::session::is_signed_in() {
                        gloo_timers::future::TimeoutFuture::new(500).await;
                    }
                }
                // A token from before the last sign-in: ask for the current one and resend.
                Err(failure) if failure.is_stale_token() => {
                    crate::session::refresh().await;
                    gloo_timers::future::TimeoutFuture::new(backoff_ms).await;
                    backoff_ms = (backoff_ms * 2).min(15_000);
                }
                Err(failure) if failure.is_retryable() => {
                    self.state.set(SyncState::Offline);
                    gloo_timers::future::TimeoutFuture::new(backoff_ms).await;
                    backoff_ms = (backoff_ms * 2).min(15_000);
                }
                Err(ApiFailure { message, .. }) => {
                    self.remove_front(batch.len());
                    self.refuse(batch.into_iter().map(|edit| RefusedEdit {
                        edit,
                        reason: message.clone(),
                    }));
                    self.refused.set(Some((self.next_answer(), image_id)));
                }
            }
        }
    }

    fn remove_front(&self, count: usize) {
        self.pending.update(|pending| {
            pending.drain(..count.min(pending.len()));
        });
        store(STORAGE_KEY, &self.pending.get_untracked());
    }
}

/// The edits of `batch` that `response` lists as refused: its `index` counts the batch's box
/// operations, a refusal without one is the batch's flag change.
fn refused_in(batch: &[PendingOp], response: &OpsResponse) -> Vec<RefusedEdit> {
    let ops: Vec<&PendingOp> = batch.iter().filter(|p| p.op.is_some()).collect();
    let flag = batch.iter().rev().find(|p| p.negative.is_some());
    response
        .refused
        .iter()
        .filter_map(|refusal| {
            let edit = match refusal.index {
                Some(index) => ops.get(index).copied(),
                None => flag,
            }?;
            Some(RefusedEdit {
                edit: PendingOp {
                    // A flag change that rode with a box edit is reported on its own.
                    op: if refusal.index.is_some() { edit.op.clone() } else { None },
                    negative: if refusal.index.is_some() { None } else { edit.negative },
                    image_id: edit.image_id,
                },
                reason: refusal.message.clone(),
            })
        })
        .collect()
}

/// The browser's `localStorage`, when the page may use it.
pub(crate) fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn load<T: serde::de::DeserializeOwned>(key: &str) -> Vec<T> {
    local_storage()
        .and_then(|s| s.get_item(key).ok().flatten())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn store<T: Serialize>(key: &str, items: &[T]) {
    if let (Some(storage), Ok(text)) = (local_storage(), serde_json::to_string(items)) {
        let _ = storage.set_item(key, &text);
    }
}

/// "1 edit" / "N edits".
fn edits(count: usize) -> String {
    if count == 1 {
        "1 edit".to_owned()
    } else {
        format!("{count} edits")
    }
}

/// "Saved" / "Saving…" / "Offline — N edits waiting" / "N edits not saved", always visible in
/// the editor.
#[component]
pub fn SyncIndicator() -> impl IntoView {
    let queue = expect_context::<SyncQueue>();
    view! {
        <span class="sync" role="status" aria-live="polite"
            data-sync=move || match queue.state() {
                SyncState::Saved => "saved",
                SyncState::Saving => "saving",
                SyncState::Offline => "offline",
                SyncState::Refused => "refused",
                SyncState::SignedOut => "signed-out",
            }>
            {move || match queue.state() {
                SyncState::Saved => "✓ Saved".to_owned(),
                SyncState::Saving => "Saving…".to_owned(),
                SyncState::Offline => format!("Offline — {} waiting, retrying", edits(queue.pending_count())),
                SyncState::Refused => format!("{} not saved", edits(queue.refused_edits.with(Vec::len))),
                SyncState::SignedOut => format!("Signed out — {} waiting; sign in to send them", edits(queue.pending_count())),
            }}
        </span>
    }
}

/// The refused edits with their reasons, until the person dismisses them: what was not saved
/// stays in sight.
#[component]
pub fn RefusedEdits() -> impl IntoView {
    let queue = expect_context::<SyncQueue>();
    view! {
        <Show when=move || queue.refused_edits.with(|r| !r.is_empty())>
            <div class="refused-edits" role="alert">
                <ul>
                    {move || queue.refused_edits().into_iter().map(|refused| view! {
                        <li class="refused-edit" data-image-id=refused.edit.image_id.to_string()>
                            <strong>{refused.describe()}</strong>" — not saved: "{refused.reason.clone()}
                        </li>
                    }).collect_view()}
                </ul>
                <button class="small" on:click=move |_| queue.dismiss_refused()>"Dismiss"</button>
            </div>
        </Show>
    }
}
