//! The project's live channel (`GET /api/projects/{pid}/live?since=SEQ&image_id=IID`, a
//! WebSocket): box changes and review decisions in the project's sequence order, and who has
//! which image open (DESIGN, "Collaboration semantics").
//!
//! The database is the source of truth: every change is numbered inside its write transaction
//! (writers are serialised, so what is committed is always a gap-free prefix of the sequence).
//! One publisher per project with open sockets reads what is new — when a writer says so
//! ([`Live::changed`]), or at the latest every [`POLL`] for writers that do not (imports, jobs) —
//! and broadcasts it. A socket first replays what its client missed (`seq > since`) from the
//! database, then forwards the broadcast. A client too slow for the broadcast's buffer is closed
//! with [`api::live::CLOSE_FELL_BEHIND`] and reconnects with its last `seq`: nothing is lost,
//! and nobody waits for it.
//!
//! Replicas sharing a PostgreSQL database also share who is where (`shared_presence`).

mod shared_presence;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::live::CLOSE_FELL_BEHIND;
use api::{BoundingBox, ImageStatus, LiveEvent, LiveRequest, OpKind, Presence};
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::SinkExt;
use serde::Deserialize;
use sqlx::AnyPool;
use tokio::sync::{Notify, broadcast, watch};

use crate::AppState;
use crate::access::{Caller, ProjectAccess};
use crate::error::ApiError;
use crate::fanout::{Fanout, News};

/// The longest a change made without [`Live::changed`] waits before open sockets get it.
const POLL: Duration = Duration::from_millis(250);
/// Events a socket may fall behind the broadcast before it is closed (and resumes).
const BUFFER: usize = 4096;
/// Events replayed per database read.
const PAGE: i64 = 1000;
/// How often an idle socket is pinged, so dead peers are noticed.
const PING: Duration = Duration::from_secs(20);
/// How long an image "Next" handed to someone stays theirs before their editor takes its lease.
const HANDED_OUT_FOR: Duration = Duration::from_secs(30);
/// The largest message a client may send (its requests are a few dozen bytes), and the read
/// buffer's size.
const CLIENT_MESSAGE_LIMIT: usize = 4096;
/// The shortest time between two presence messages of a project.
const PRESENCE_EVERY: Duration = Duration::from_millis(200);

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/{pid}/live", get(connect))
}

/// Every project's channel; cheap to clone.
#[derive(Clone, Default)]
pub struct Live {
    projects: Arc<Mutex<HashMap<i64, Arc<Channel>>>>,
    next_connection: Arc<std::sync::atomic::AtomicU64>,
    /// The other processes sharing the database, told of what this one commits.
    fanout: Fanout,
}

/// One open connection, as presence lists it, and whether its role may edit (viewers never
/// hold a lease).
#[derive(Clone)]
struct Here {
    presence: Presence,
    may_edit: bool,
}

/// An encoded event and its sequence number (presence has none); every socket sends the same
/// bytes (a cheap clone).
type Broadcast = (Option<i64>, Utf8Bytes);

/// One project's channel.
struct Channel {
    /// Encoded events, with their sequence number when they have one.
    events: broadcast::Sender<Broadcast>,
    /// A writer committed something.
    wake: Notify,
    /// Open connections: who, which image they have on screen, whether they hold its lease.
    presence: Mutex<HashMap<u64, Here>>,
    /// Presence changed since it was last sent: the publisher sends it, at most every
    /// [`PRESENCE_EVERY`] (a hundred people joining at once is one message each, not a hundred).
    presence_changed: std::sync::atomic::AtomicBool,
    /// Jobs whose row changed since the publisher last sent them (progress of one job coalesces).
    jobs_changed: Mutex<std::collections::BTreeSet<i64>>,
    /// The active student changed since the publisher last sent it.
    student_changed: std::sync::atomic::AtomicBool,
    /// The other replicas' connections to the project, as last read.
    others: Mutex<Vec<Here>>,
    /// Another replica said its connections changed: read them again.
    others_changed: std::sync::atomic::AtomicBool,
    /// This replica's connections changed since it last wrote them for the others.
    own_changed: std::sync::atomic::AtomicBool,
}

impl Live {
    /// Channels whose news also goes to the other processes `fanout` reaches.
    pub fn new(fanout: Fanout) -> Live {
        // Connection numbers must not collide between replicas, whose people share presence:
        // each numbers its own after a prefix drawn from its news id (JSON numbers stay exact
        // below 2^53).
        let first = fanout.instance().map_or(0, |instance| (instance & 0xF_FFFF) << 32);
        Live {
            fanout,
            next_connection: Arc::new(std::sync::atomic::AtomicU64::new(first)),
            ..Live::default()
        }
    }

    /// A writer committed changes to `project_id`: its open sockets get them now, in this
    /// process and the others sharing the database.
    pub fn changed(&self, project_id: i64) {
        self.committed_elsewhere(project_id);
        self.fanout.tell(News::Committed { project_id });
    }

    /// Another process committed changes to `project_id`: this one's open sockets get them now.
    pub fn committed_elsewhere(&self, project_id: i64) {
        if let Some(channel) = self.lock().get(&project_id) {
            channel.wake.notify_one();
        }
    }

    /// A job of `project_id` was queued, made progress or ended: its open sockets get it soon,
    /// in this process and the others sharing the database.
    pub fn job_changed(&self, project_id: i64, job_id: i64) {
        self.job_changed_elsewhere(project_id, job_id);
        self.fanout.tell(News::Job { project_id, job_id });
    }

    /// A job's row changed in another process: this one's open sockets get it soon.
    pub fn job_changed_elsewhere(&self, project_id: i64, job_id: i64) {
        if let Some(channel) = self.lock().get(&project_id) {
            channel
                .jobs_changed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(job_id);
            channel.wake.notify_one();
        }
    }

    /// Another replica's connections to `project_id` changed: this one reads them again soon.
    pub fn presence_elsewhere(&self, project_id: i64) {
        if let Some(channel) = self.lock().get(&project_id) {
            channel.others_changed.store(true, std::sync::atomic::Ordering::Release);
            channel.wake.notify_one();
        }
    }

    /// The project's active student changed: its open sockets get the new one soon.
    pub fn student_changed(&self, project_id: i64) {
        if let Some(channel) = self.lock().get(&project_id) {
            channel
                .student_changed
                .store(true, std::sync::atomic::Ordering::Release);
            channel.wake.notify_one();
        }
    }

    /// Hands `user_id` the first of `candidates` (but `skip`) that nobody else holds — an
    /// editor's lease, on any replica, or "Next" handed it to someone else in the last
    /// [`HANDED_OUT_FOR`] — and keeps it theirs for that long (instead of the one they were
    /// handed before). Each hand-out is one atomic write to `handed_out`, so two people asking
    /// at the same moment, through one replica or two, get different images. Also says how many
    /// candidates others hold.
    pub async fn hand_out_first(
        &self,
        db: &AnyPool,
        project_id: i64,
        user_id: i64,
        candidates: &[i64],
        skip: Option<i64>,
    ) -> Result<(Option<i64>, u32), ApiError> {
        let mut taken: std::collections::HashSet<i64> = sqlx::query_scalar(
            "SELECT image_id FROM handed_out WHERE project_id = $1 AND user_id <> $2 AND until > $3",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(crate::db::now())
        .fetch_all(db)
        .await?
        .into_iter()
        .collect();
        if let Some(channel) = self.lock().get(&project_id).cloned() {
            let others = channel.others();
            taken.extend(
                channel
                    .presence()
                    .values()
                    .chain(&others)
                    .filter(|h| h.presence.editing && h.presence.user_id != user_id)
                    .filter_map(|h| h.presence.image_id),
            );
        }
        let held = candidates.iter().filter(|id| taken.contains(id)).count() as u32;
        for &image in candidates.iter().filter(|id| !taken.contains(id) && Some(**id) != skip) {
            // Taken unless someone else's hand-out of it still holds (then the next one).
            let mine: Option<i64> = sqlx::query_scalar(
                "INSERT INTO handed_out (image_id, project_id, user_id, until) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (project_id, image_id) DO UPDATE SET user_id = excluded.user_id, until = excluded.until \
                 WHERE handed_out.until <= $5 OR handed_out.user_id = excluded.user_id RETURNING image_id",
            )
            .bind(image)
            .bind(project_id)
            .bind(user_id)
            .bind(crate::db::after(HANDED_OUT_FOR))
            .bind(crate::db::now())
            .fetch_optional(db)
            .await?;
            if mine.is_some() {
                // One image at a time: what they were handed before is free for others again;
                // expired hand-outs go too.
                sqlx::query(
                    "DELETE FROM handed_out WHERE project_id = $1 AND ((user_id = $2 AND image_id <> $3) OR until <= $4)",
                )
                .bind(project_id)
                .bind(user_id)
                .bind(image)
                .bind(crate::db::now())
                .execute(db)
                .await?;
                return Ok((Some(image), held));
            }
        }
        Ok((None, held))
    }

    /// How many of the project's images others hold now (an upper bound for how far down a
    /// ranking "Next" may have to look).
    pub async fn held_count(&self, db: &AnyPool, project_id: i64) -> Result<usize, ApiError> {
        let leased = self.lock().get(&project_id).cloned().map_or(0, |channel| {
            let others = channel.others();
            channel
                .presence()
                .values()
                .chain(&others)
                .filter(|h| h.presence.editing)
                .count()
        });
        let handed_out: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM handed_out WHERE project_id = $1 AND until > $2")
                .bind(project_id)
                .bind(crate::db::now())
                .fetch_one(db)
                .await?;
        Ok(leased + handed_out as usize)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Channel>>> {
        self.projects.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The project's channel and a subscription to it, taken under the map's lock so its
    /// publisher cannot leave in between; the publisher is started when the channel is new,
    /// publishing what comes after `last_seq` (read before joining: a socket replays what its
    /// subscription may have missed from the database, so the publisher must not start later
    /// than the subscription, or the events in between reach nobody).
    fn join(
        &self,
        db: &AnyPool,
        project_id: i64,
        last_seq: i64,
        closing: watch::Receiver<bool>,
    ) -> (Arc<Channel>, broadcast::Receiver<Broadcast>) {
        let mut projects = self.lock();
        if let Some(channel) = projects.get(&project_id) {
            return (channel.clone(), channel.events.subscribe());
        }
        let channel = Arc::new(Channel {
            events: broadcast::channel(BUFFER).0,
            wake: Notify::new(),
            presence: Mutex::new(HashMap::new()),
            presence_changed: std::sync::atomic::AtomicBool::new(false),
            jobs_changed: Mutex::new(std::collections::BTreeSet::new()),
            student_changed: std::sync::atomic::AtomicBool::new(false),
            others: Mutex::new(Vec::new()),
            others_changed: std::sync::atomic::AtomicBool::new(true),
            own_changed: std::sync::atomic::AtomicBool::new(false),
        });
        let feed = channel.events.subscribe();
        projects.insert(project_id, channel.clone());
        tokio::spawn(publish(
            self.clone(),
            db.clone(),
            project_id,
            last_seq,
            channel.clone(),
            closing,
        ));
        (channel, feed)
    }
}

impl Channel {
    fn presence(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Here>> {
        self.presence.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The other replicas' connections, as last read (a copy: taken before `presence`, never
    /// while it is held).
    fn others(&self) -> Vec<Here> {
        self.others
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `connection` arrives on an image (or leaves one: `None`): it takes the new image's lease
    /// when nobody holds it (and it may edit), and what it held passes to the longest-waiting
    /// editor still on that image.
    fn move_to(&self, connection: u64, image_id: Option<i64>) {
        let others = self.others();
        let mut people = self.presence();
        let Some(me) = people.get_mut(&connection) else { return };
        me.presence.image_id = image_id;
        me.presence.editing = false;
        shared_presence::grant_free_leases(&mut people, &others);
        drop(people);
        self.presence_changed();
    }

    /// `connection` takes a lease of the image it is on too (when its role may edit): it edits
    /// alongside whoever held it, who keeps editing — two people on one image by choice, never
    /// by accident. Their edits merge box by box (DESIGN: different boxes never conflict).
    fn take_over(&self, connection: u64) {
        let mut people = self.presence();
        if let Some(me) = people
            .get_mut(&connection)
            .filter(|h| h.may_edit && h.presence.image_id.is_some())
        {
            me.presence.editing = true;
        }
        drop(people);
        self.presence_changed();
    }

    /// `connection` has gone: what it held passes on.
    fn leave(&self, connection: u64) {
        let others = self.others();
        let mut people = self.presence();
        people.remove(&connection);
        shared_presence::grant_free_leases(&mut people, &others);
        drop(people);
        self.presence_changed();
    }

    /// Reads the other replicas' connections again, and grants the leases their changes freed
    /// to this replica's editors.
    async fn refresh_others(&self, db: &AnyPool, process: &str, project_id: i64) {
        match shared_presence::read_others(db, process, project_id).await {
            Ok(others) => {
                *self.others.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = others.clone();
                shared_presence::grant_free_leases(&mut self.presence(), &others);
                self.presence_changed();
            }
            Err(error) => tracing::warn!(%error, project_id, "cannot read the other replicas' presence"),
        }
    }

    /// Someone came, left or moved to another image: the publisher tells everyone soon.
    fn presence_changed(&self) {
        self.presence_changed.store(true, std::sync::atomic::Ordering::Release);
        self.own_changed.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// Tells everyone about the jobs that changed and the new student, if any.
    async fn send_news(&self, db: &AnyPool, project_id: i64) {
        let jobs = std::mem::take(
            &mut *self
                .jobs_changed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for job_id in jobs {
            let Ok(mut conn) = db.acquire().await else { return };
            if let Ok(job) = crate::jobs::load_job(&mut conn, job_id).await {
                let _ = self.events.send((None, encode(&LiveEvent::Job { job })));
            }
        }
        if self.student_changed.swap(false, std::sync::atomic::Ordering::AcqRel)
            && let Some(student) = active_student(db, project_id).await
        {
            let _ = self.events.send((None, encode(&student)));
        }
    }

    /// Tells everyone who is here now, if that changed.
    fn send_presence(&self) {
        if !self.presence_changed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let others = self.others();
        let mut people: Vec<Presence> = self
            .presence()
            .values()
            .chain(&others)
            .map(|h| h.presence.clone())
            .collect();
        people.sort_by(|a, b| (&a.username, a.image_id).cmp(&(&b.username, b.image_id)));
        let _ = self.events.send((None, encode(&LiveEvent::Presence { people })));
    }
}

/// A project's publisher: broadcasts each committed change once, in order, while anyone listens.
async fn publish(
    live: Live,
    db: AnyPool,
    project_id: i64,
    mut published: i64,
    channel: Arc<Channel>,
    mut closing: watch::Receiver<bool>,
) {
    let mut presence_sent = tokio::time::Instant::now();
    // With other replicas: this one's name in `presence`, and when it last wrote its rows.
    let process = live.fanout.instance().map(|instance| instance.to_string());
    let mut shared_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = channel.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = closing.changed() => break,
        }
        if presence_sent.elapsed() >= PRESENCE_EVERY {
            if let Some(process) = &process {
                let refresh = shared_at.is_none_or(|at| at.elapsed() >= shared_presence::REFRESH);
                if channel.others_changed.swap(false, std::sync::atomic::Ordering::AcqRel) || refresh {
                    channel.refresh_others(&db, process, project_id).await;
                }
                if channel.own_changed.swap(false, std::sync::atomic::Ordering::AcqRel) || refresh {
                    let own: Vec<Here> = channel.presence().values().cloned().collect();
                    match shared_presence::write_own(&db, process, project_id, &own).await {
                        Ok(()) => live.fanout.tell(News::Presence { project_id }),
                        Err(error) => tracing::warn!(%error, project_id, "cannot share this replica's presence"),
                    }
                    shared_at = Some(tokio::time::Instant::now());
                }
            }
            channel.send_presence();
            presence_sent = tokio::time::Instant::now();
        }
        channel.send_news(&db, project_id).await;
        // Leave when the last socket has gone (under the map's lock, so a joining socket either
        // finds this channel still registered with a publisher or starts a new one).
        let deserted = {
            let mut projects = live.lock();
            let deserted = channel.events.receiver_count() == 0;
            if deserted {
                projects.remove(&project_id);
            }
            deserted
        };
        if deserted {
            forget_own_presence(&live, &db, process.as_deref(), project_id).await;
            return;
        }
        loop {
            match events_after(&db, project_id, published).await {
                Ok(events) => {
                    let full = events.len() as i64 == PAGE;
                    for event in events {
                        published = event.seq().unwrap_or(published);
                        let _ = channel.events.send((event.seq(), encode(&event)));
                    }
                    if !full {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, project_id, "cannot read the live channel's changes");
                    break;
                }
            }
        }
    }
    live.lock().remove(&project_id);
    forget_own_presence(&live, &db, process.as_deref(), project_id).await;
}

/// This replica has nobody left on the project (or stops): its rows go, and the others hear it.
async fn forget_own_presence(live: &Live, db: &AnyPool, process: Option<&str>, project_id: i64) {
    let Some(process) = process else { return };
    match shared_presence::write_own(db, process, project_id, &[]).await {
        Ok(()) => live.fanout.tell(News::Presence { project_id }),
        Err(error) => tracing::warn!(%error, project_id, "cannot withdraw this replica's presence"),
    }
}

fn encode(event: &LiveEvent) -> Utf8Bytes {
    serde_json::to_string(event).unwrap_or_default().into()
}

/// The project's active student, as the live channel says it (`None` when it cannot be read).
async fn active_student(db: &AnyPool, project_id: i64) -> Option<LiveEvent> {
    let mut conn = db.acquire().await.ok()?;
    let model = crate::registry::active_student(&mut conn, project_id).await.ok()?;
    Some(LiveEvent::Student { model })
}

async fn last_seq(db: &AnyPool, project_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT last_seq FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_one(db)
        .await
}

/// Up to [`PAGE`] changes after `seq`, in order: box events and review decisions.
async fn events_after(db: &AnyPool, project_id: i64, seq: i64) -> Result<Vec<LiveEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT seq, image_id, op, box_id, after, author, NULL AS status, NULL AS comment
           FROM box_events WHERE project_id = $1 AND seq > $2
         UNION ALL
         SELECT seq, image_id, NULL, NULL, NULL, author, status, comment
           FROM review_events WHERE project_id = $1 AND seq > $2
         ORDER BY seq LIMIT $3",
    )
    .bind(project_id)
    .bind(seq)
    .bind(PAGE)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(EventRow::into_event).collect())
}

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    image_id: i64,
    op: Option<String>,
    box_id: Option<String>,
    after: Option<String>,
    author: Option<String>,
    status: Option<String>,
    comment: Option<String>,
}

impl EventRow {
    fn into_event(self) -> Option<LiveEvent> {
        if let Some(status) = self.status {
            return Some(LiveEvent::Status {
                seq: self.seq,
                image_id: self.image_id,
                status: ImageStatus::parse(&status)?,
                comment: self.comment,
                author: self.author,
            });
        }
        let op = OpKind::parse(self.op.as_deref()?)?;
        let bbox: Option<BoundingBox> = self.after.as_deref().and_then(|json| serde_json::from_str(json).ok());
        Some(LiveEvent::Box {
            seq: self.seq,
            image_id: self.image_id,
            op,
            box_id: self.box_id?,
            author: self.author.or_else(|| bbox.as_ref().and_then(|b| b.author.clone())),
            bbox,
        })
    }
}

#[derive(Debug, Deserialize)]
struct LiveQuery {
    /// The last sequence number the client has seen (0: everything).
    #[serde(default)]
    since: i64,
    /// The image the client has on screen.
    image_id: Option<i64>,
}

async fn connect(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    query: Result<Query<LiveQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    // Another site's page may open a socket here with the person's cookie (SameSite=Lax does
    // not cover WebSockets in every browser): only the studio's own pages may.
    if !same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "The live channel only answers the studio's own pages.",
        ));
    }
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            format!("This is a WebSocket: {}", rejection.body_text()),
        )
    })?;
    let project_id = access.project_id;
    let live = state.events.live.clone();
    // Anything after it reaches the new socket, through the publisher or its own replay.
    let last_seq = last_seq(&state.db, project_id).await.unwrap_or(0);
    let (channel, feed) = live.join(&state.db, project_id, last_seq, state.events.closing());
    let connection = live.next_connection.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let here = Here {
        presence: Presence {
            connection,
            user_id: caller.user.id,
            username: caller.user.username,
            image_id: None,
            editing: false,
        },
        may_edit: access.role.allows(api::Role::Annotator),
    };
    let socket = Socket {
        db: state.db.clone(),
        project_id,
        channel,
        connection,
        closing: state.events.closing(),
        process: live.fanout.instance().map(|instance| instance.to_string()),
    };
    Ok(upgrade
        // Clients send a few small requests. tungstenite zero-fills its whole read buffer on every
        // read attempt, and a socket attempts one each time it wakes to send an event: with the
        // default 128 KiB that was 30 % of the server's CPU under bench-live.
        .read_buffer_size(CLIENT_MESSAGE_LIMIT)
        .max_message_size(CLIENT_MESSAGE_LIMIT)
        .max_frame_size(CLIENT_MESSAGE_LIMIT)
        .on_upgrade(move |ws| socket.run(ws, feed, query.since, here, query.image_id)))
}

/// Whether the request's `Origin` (when a browser sent one) is this server's own.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser: a script with a token
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

/// One open socket.
struct Socket {
    db: AnyPool,
    project_id: i64,
    channel: Arc<Channel>,
    connection: u64,
    closing: watch::Receiver<bool>,
    /// This replica's name in `presence`, when it shares it.
    process: Option<String>,
}

impl Socket {
    /// `feed` was subscribed before the replay reads the database: whatever is published
    /// meanwhile is in one or the other.
    async fn run(
        mut self,
        mut ws: WebSocket,
        mut feed: broadcast::Receiver<Broadcast>,
        since: i64,
        here: Here,
        image_id: Option<i64>,
    ) {
        // Who is where on the other replicas, as it is now: the image's lease may be held there.
        if let Some(process) = &self.process {
            self.channel.refresh_others(&self.db, process, self.project_id).await;
        }
        self.channel.presence().insert(self.connection, here);
        self.channel.move_to(self.connection, image_id);
        let outcome = self.serve(&mut ws, &mut feed, since).await;
        self.channel.leave(self.connection);
        if let Err(close) = outcome {
            let _ = ws.send(Message::Close(close)).await;
        }
    }

    /// Replays, then forwards, until the client leaves; `Err` with the frame to close with.
    async fn serve(
        &mut self,
        ws: &mut WebSocket,
        feed: &mut broadcast::Receiver<Broadcast>,
        since: i64,
    ) -> Result<(), Option<CloseFrame>> {
        send(
            ws,
            encode(&LiveEvent::Hello {
                connection: self.connection,
            }),
        )
        .await?;
        let mut sent = since.max(0);
        loop {
            let page = events_after(&self.db, self.project_id, sent).await.map_err(|error| {
                tracing::warn!(%error, "cannot replay the live channel");
                None
            })?;
            let full = page.len() as i64 == PAGE;
            for event in page {
                sent = event.seq().unwrap_or(sent);
                send(ws, encode(&event)).await?;
            }
            if !full {
                break;
            }
        }
        send(ws, encode(&LiveEvent::CaughtUp { seq: sent })).await?;
        // The student as it is now: a client that missed a publication while away catches up.
        if let Some(student) = active_student(&self.db, self.project_id).await {
            send(ws, encode(&student)).await?;
        }
        let mut ping = tokio::time::interval(PING);
        ping.reset();
        // A connection silent this long (no pong, no message) is gone: its lease passes on.
        let silence = Duration::from_secs(api::live::LEASE_SILENCE_SECS);
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                received = feed.recv() => match received {
                    Ok(first) => {
                        // What else is already waiting goes out with it, in one flush.
                        let mut next = Some(first);
                        while let Some((seq, json)) = next.take() {
                            // Replayed already, or from before this socket's `since`.
                            let fresh = seq.is_none_or(|seq| seq > sent);
                            if fresh {
                                sent = seq.unwrap_or(sent);
                                ws.feed(Message::Text(json)).await.map_err(|_| None)?;
                            }
                            next = feed.try_recv().ok();
                        }
                        ws.flush().await.map_err(|_| None)?;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Err(Some(CloseFrame {
                            code: CLOSE_FELL_BEHIND,
                            reason: "fell behind; reconnect with the last seq".into(),
                        }));
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                message = ws.recv() => {
                    heard = tokio::time::Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
                            Ok(LiveRequest::Viewing { image_id }) => self.channel.move_to(self.connection, image_id),
                            Ok(LiveRequest::TakeOver) => self.channel.take_over(self.connection),
                            Err(_) => {}
                        },
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                        Some(Ok(_)) => {}
                    }
                },
                _ = ping.tick() => {
                    if heard.elapsed() > silence {
                        return Err(None);
                    }
                    send_message(ws, Message::Ping(Vec::new().into())).await?;
                }
                _ = self.closing.changed() => return Err(None),
            }
        }
    }
}

async fn send(ws: &mut WebSocket, json: Utf8Bytes) -> Result<(), Option<CloseFrame>> {
    send_message(ws, Message::Text(json)).await
}

async fn send_message(ws: &mut WebSocket, message: Message) -> Result<(), Option<CloseFrame>> {
    // The client has gone: nothing to close.
    ws.send(message).await.map_err(|_| None)
}
