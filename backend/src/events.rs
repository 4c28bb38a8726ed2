//! A project's event stream for its open pages (`GET /api/projects/{pid}/events`, Server-Sent
//! Events): today, which student browsers run, so every open editor swaps to a newly published
//! or rolled-back student without a reload. Each (re)connection starts with the state as it is,
//! so a browser that was offline when something changed catches up on reconnecting.

use std::convert::Infallible;

use api::ProjectEvent;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use sqlx::AnyPool;
use tokio::sync::{broadcast, watch};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::PathParams;
use crate::fanout::{Fanout, News};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/{pid}/events", get(stream))
}

/// Where changes are announced to the open streams; cheap to clone.
#[derive(Clone)]
pub struct ProjectEvents {
    /// The id of a project whose active student just changed.
    student_changed: broadcast::Sender<i64>,
    /// Set when the server shuts down: open streams end, so graceful shutdown does not wait on
    /// tabs that would stay open forever.
    closing: watch::Sender<bool>,
    /// The projects' live channels (box changes, review decisions, presence).
    pub live: crate::live::Live,
    /// The other processes sharing the database.
    fanout: Fanout,
}

impl Default for ProjectEvents {
    fn default() -> Self {
        Self::new(Fanout::default())
    }
}

impl ProjectEvents {
    /// Streams and channels whose news also goes to the other processes `fanout` reaches.
    pub fn new(fanout: Fanout) -> Self {
        Self {
            student_changed: broadcast::channel(64).0,
            closing: watch::channel(false).0,
            live: crate::live::Live::new(fanout.clone()),
            fanout,
        }
    }

    /// Tells the project's open pages that its active student changed, in this process and the
    /// others sharing the database. Nobody listening is fine.
    pub fn student_changed(&self, project_id: i64) {
        self.student_changed_elsewhere(project_id);
        self.fanout.tell(News::Student { project_id });
    }

    /// Another process changed the project's active student: this one's open pages hear it.
    pub fn student_changed_elsewhere(&self, project_id: i64) {
        let _ = self.student_changed.send(project_id);
        self.live.student_changed(project_id);
    }

    /// Where this process's news goes.
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// Ends every open stream (the server is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Becomes true when the server stops: what long-lived connections watch to end.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

async fn stream(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    // Listen before reading the state, so a change between the two is not missed.
    let feed = Feed {
        db: state.db.clone(),
        project_id,
        changes: state.events.student_changed.subscribe(),
        closing: state.events.closing.subscribe(),
        first: true,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next_event().await?;
        let sse = Event::default()
            .event("active_student")
            .json_data(&event)
            .unwrap_or_else(|_| Event::default().comment("unserialisable event"));
        Some((Ok(sse), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One open stream's position.
struct Feed {
    db: AnyPool,
    project_id: i64,
    changes: broadcast::Receiver<i64>,
    closing: watch::Receiver<bool>,
    first: bool,
}

impl Feed {
    /// The next event to send, or `None` when the stream ends (shutdown, or the project is gone).
    async fn next_event(&mut self) -> Option<ProjectEvent> {
        if !std::mem::take(&mut self.first) {
            loop {
                if *self.closing.borrow() {
                    return None;
                }
                tokio::select! {
                    _ = self.closing.changed() => return None,
                    change = self.changes.recv() => match change {
                        Ok(id) if id == self.project_id => break,
                        Ok(_) => {}
                        // Missed some: the state as it is now covers them.
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                }
            }
        }
        let mut conn = self.db.acquire().await.ok()?;
        let model = crate::registry::active_student(&mut conn, self.project_id).await.ok()?;
        Some(ProjectEvent::ActiveStudent { model })
    }
}
