//! Boxes and review: `GET/PUT /api/images/{iid}/boxes`, `POST /api/images/{iid}/ops` (what the
//! editor sends) and `POST /api/images/{iid}/status`.
//!
//! Every change is one operation on one box, applied in a transaction that also numbers it with
//! the project's next sequence number and records it (before/after) in `box_events`.
//! Operations are idempotent so an editor can safely resend a batch whose answer it never got:
//! creating an existing id updates it, deleting a missing box does nothing.

use std::collections::HashSet;

use api::{
    AppliedOp, BoundingBox, BoxInput, BoxOp, BoxSource, ImageBoxes, ImageInfo, ImageStatus, OpKind, OpsRequest,
    OpsResponse, RefusedOp, ReplaceBoxes, Role, StatusChange,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use sqlx::{AnyConnection, FromRow};

use crate::AppState;
use crate::access::{Caller, ProjectAccess};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};
use crate::images::{ImageRow, load_image};

/// Most operations in one request.
pub const MAX_OPS_PER_REQUEST: usize = 1000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/images/{iid}/boxes", get(read_boxes).put(replace_boxes))
        .route("/images/{iid}/ops", post(apply_ops))
        .route("/images/{iid}/status", post(change_status))
}

async fn read_boxes(
    State(state): State<AppState>,
    PathParams(image_id): PathParams<i64>,
) -> Result<Json<ImageBoxes>, ApiError> {
    // One read transaction: the boxes and the sequence number they are as of agree.
    let mut tx = crate::db::read_transaction(&state.db).await?;
    let image = load_image(&mut tx, image_id).await?;
    let boxes = image_boxes(&mut tx, &image).await?;
    tx.commit().await?;
    Ok(Json(boxes))
}

/// Replaces every human box (model proposals stay) — for scripts and imports.
async fn replace_boxes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParams(image_id): PathParams<i64>,
    JsonBody(body): JsonBody<ReplaceBoxes>,
) -> Result<Json<ImageBoxes>, ApiError> {
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let image = load_image(&mut tx, image_id).await?;
    let human: Vec<String> = sqlx::query_scalar("SELECT id FROM boxes WHERE image_id = $1 AND source = 'human'")
        .bind(image_id)
        .fetch_all(&mut *tx)
        .await?;
    let mut ops: Vec<BoxOp> = human
        .into_iter()
        .map(|id| BoxOp {
            op: OpKind::Delete,
            bbox: BoxInput {
                id: Some(id),
                class_id: 0,
                x0: 0.0,
                y0: 0.0,
                x1: 0.0,
                y1: 0.0,
            },
            base_rev: None,
        })
        .collect();
    ops.extend(body.boxes.into_iter().map(|bbox| BoxOp {
        op: OpKind::Create,
        bbox,
        base_rev: None,
    }));
    // A replacement is all or nothing: the first refusal answers, and the dropped transaction
    // keeps the boxes as they were.
    apply(
        &mut tx,
        &image,
        &OpsRequest {
            ops,
            negative: body.negative,
        },
        OnRefusal::Abort,
        &caller.user.username,
    )
    .await?;
    let image = load_image(&mut tx, image_id).await?;
    let boxes = image_boxes(&mut tx, &image).await?;
    tx.commit().await?;
    state.events.live.changed(image.project_id);
    Ok(Json(boxes))
}

async fn apply_ops(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParams(image_id): PathParams<i64>,
    JsonBody(request): JsonBody<OpsRequest>,
) -> Result<Json<OpsResponse>, ApiError> {
    if request.ops.len() > MAX_OPS_PER_REQUEST {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_ops",
            format!("Send at most {MAX_OPS_PER_REQUEST} operations per request."),
        ));
    }
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let image = load_image(&mut tx, image_id).await?;
    let response = apply(&mut tx, &image, &request, OnRefusal::Report, &caller.user.username).await?;
    tx.commit().await?;
    // Open editors hear of it now, not at the channel's next poll.
    state.events.live.changed(image.project_id);
    Ok(Json(response))
}

async fn change_status(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    Extension(caller): Extension<Caller>,
    PathParams(image_id): PathParams<i64>,
    JsonBody(change): JsonBody<StatusChange>,
) -> Result<Json<ImageInfo>, ApiError> {
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let image = load_image(&mut tx, image_id).await?;
    let from = image.status();
    if !from.can_become(change.status) {
        return Err(ApiError::conflict(
            "invalid_transition",
            format!(
                "An image that is {} cannot become {}.",
                from.label().to_lowercase(),
                change.status.label().to_lowercase()
            ),
        ));
    }
    if matches!(change.status, ImageStatus::Approved | ImageStatus::Rejected) && !access.role.allows(Role::Reviewer) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "Your role in this project ({}) cannot approve or reject images; it needs reviewer.",
                access.role
            ),
        ));
    }
    let comment = change.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if change.status == ImageStatus::Rejected && comment.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "comment_required",
            "Say what needs fixing when rejecting an image.",
        ));
    }
    // The rejection comment stays visible until the image is approved.
    let keep_comment = change.status != ImageStatus::Approved;
    sqlx::query("UPDATE images SET status = $1, review_comment = CASE WHEN $2 THEN COALESCE($3, review_comment) ELSE NULL END WHERE id = $4")
        .bind(change.status.as_str())
        .bind(keep_comment)
        .bind(comment)
        .bind(image_id)
        .execute(&mut *tx)
        .await?;
    let seq = next_seq(&mut tx, image.project_id).await?;
    sqlx::query(
        "INSERT INTO review_events (project_id, seq, image_id, status, comment, author) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(image.project_id)
    .bind(seq)
    .bind(image_id)
    .bind(change.status.as_str())
    .bind(comment)
    .bind(&caller.user.username)
    .execute(&mut *tx)
    .await?;
    let image = load_image(&mut tx, image_id).await?;
    tx.commit().await?;
    state.events.live.changed(image.project_id);
    Ok(Json(image.into_info()))
}

/// What [`apply`] does with an operation that fails its checks.
#[derive(Clone, Copy, PartialEq)]
enum OnRefusal {
    /// Fail the whole request with it (replacing all boxes is one decision).
    Abort,
    /// Leave it out, list it in the answer, apply the rest (the editor's queue of edits).
    Report,
}

/// Applies a batch of operations inside the caller's transaction. A refused operation writes
/// nothing; the server's own failures (the database) always abort the batch.
async fn apply(
    conn: &mut AnyConnection,
    image: &ImageRow,
    request: &OpsRequest,
    on_refusal: OnRefusal,
    author: &str,
) -> Result<OpsResponse, ApiError> {
    let class_ids: HashSet<u32> = sqlx::query_scalar::<_, i64>("SELECT id FROM classes WHERE project_id = $1")
        .bind(image.project_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .filter_map(|id| u32::try_from(id).ok())
        .collect();
    let mut applied = Vec::with_capacity(request.ops.len());
    let mut refused = Vec::new();
    let refusal = |index: Option<usize>, error: ApiError| RefusedOp {
        index,
        code: error.code.to_owned(),
        message: error.message,
    };
    for (index, op) in request.ops.iter().enumerate() {
        match check(conn, image, &class_ids, op, author).await {
            Ok(None) => {}
            Ok(Some(checked)) => applied.push(write(conn, image, checked, author).await?),
            Err(error) if error.status.is_client_error() => {
                let error = error.with_prefix(&format!("operation {}", index + 1));
                match on_refusal {
                    OnRefusal::Abort => return Err(error),
                    OnRefusal::Report => refused.push(refusal(Some(index), error)),
                }
            }
            Err(error) => return Err(error),
        }
    }

    let box_count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM boxes WHERE image_id = $1")
        .bind(image.id)
        .fetch_one(&mut *conn)
        .await?;
    // Drawing a box on a "no objects" image means it has objects after all.
    let unchanged = image.negative && box_count == 0;
    let negative = match request.negative {
        Some(true) if box_count > 0 => {
            let error = ApiError::conflict(
                "negative_with_boxes",
                "An image with boxes cannot be marked as having no objects; delete its boxes first.",
            );
            if on_refusal == OnRefusal::Abort {
                return Err(error);
            }
            refused.push(refusal(None, error));
            unchanged
        }
        Some(wanted) => wanted,
        None => unchanged,
    };
    let changed = !applied.is_empty() || negative != image.negative;
    let status = if changed {
        image.status().after_edit()
    } else {
        image.status()
    };
    sqlx::query("UPDATE images SET negative = $1, status = $2 WHERE id = $3")
        .bind(i64::from(negative))
        .bind(status.as_str())
        .bind(image.id)
        .execute(&mut *conn)
        .await?;
    Ok(OpsResponse {
        applied,
        refused,
        status,
        negative,
    })
}

/// An operation that passed its checks, ready to write.
enum Checked {
    /// Remove a stored box.
    Delete { box_id: String, before: BoundingBox },
    /// Create a box, or replace a stored one.
    Upsert {
        before: Option<BoundingBox>,
        after: BoundingBox,
        overwrote: Option<String>,
    },
}

/// Checks one operation against what is stored, writing nothing; `None` when there is nothing
/// to do (deleting a box that is not there: resends are idempotent).
async fn check(
    conn: &mut AnyConnection,
    image: &ImageRow,
    class_ids: &HashSet<u32>,
    op: &BoxOp,
    author: &str,
) -> Result<Option<Checked>, ApiError> {
    let box_id = match (&op.bbox.id, op.op) {
        (Some(id), _) => parse_box_id(id)?,
        (None, OpKind::Create) => uuid::Uuid::new_v4().to_string(),
        (None, _) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_box",
                "update and delete need the box id.",
            ));
        }
    };
    let stored = load_box(conn, &box_id).await?;
    if let Some(stored) = &stored
        && stored.image_id != image.id
    {
        return Err(ApiError::conflict(
            "box_elsewhere",
            format!("box {box_id} belongs to another image."),
        ));
    }
    let before = stored.map(BoxRow::into_box);
    if op.op == OpKind::Delete {
        return Ok(before.map(|before| Checked::Delete { box_id, before }));
    }
    if op.op == OpKind::Update && before.is_none() {
        return Err(ApiError::conflict(
            "box_deleted",
            format!("box {box_id} was deleted (by someone else?); reload the image."),
        ));
    }
    if !class_ids.contains(&op.bbox.class_id) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_class",
            format!("class {} is not in this project.", op.bbox.class_id),
        ));
    }
    let [x0, y0, x1, y1] = api::normalize_box(
        [op.bbox.x0, op.bbox.y0, op.bbox.x1, op.bbox.y1],
        image.width,
        image.height,
    )
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_box", e.to_string()))?;
    let revision = before.as_ref().map_or(1, |b| b.revision + 1);
    // Someone else's change the client had not seen. A newer change of the person's own is
    // not one: the edits they queue while an earlier one is still on its way carry the base
    // revision they saw, behind their own unanswered edit.
    let overwrote = match (&before, op.base_rev) {
        (Some(b), Some(base)) if base < b.revision && b.author.as_deref() != Some(author) => {
            Some(b.author.clone().unwrap_or_else(|| "another editor".into()))
        }
        _ => None,
    };
    // A person editing a model's proposal makes it theirs; the author is the signed-in
    // account, never what the client claims.
    let mut after = BoundingBox::human(box_id, op.bbox.class_id, [x0, y0, x1, y1], revision);
    after.author = Some(author.to_owned());
    Ok(Some(Checked::Upsert {
        before,
        after,
        overwrote,
    }))
}

/// Writes a checked operation and records it in `box_events`.
async fn write(
    conn: &mut AnyConnection,
    image: &ImageRow,
    checked: Checked,
    author: &str,
) -> Result<AppliedOp, ApiError> {
    match checked {
        Checked::Delete { box_id, before } => {
            let seq = delete_box(conn, image.project_id, image.id, &before, Some(author)).await?;
            Ok(AppliedOp {
                seq,
                op: OpKind::Delete,
                box_id,
                bbox: None,
                overwrote: None,
            })
        }
        Checked::Upsert {
            before,
            after,
            overwrote,
        } => {
            sqlx::query(
                "INSERT INTO boxes (id, image_id, class_id, x0, y0, x1, y1, source, model_version, confidence, author, revision)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'human', NULL, NULL, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET class_id = excluded.class_id, x0 = excluded.x0, y0 = excluded.y0,
                   x1 = excluded.x1, y1 = excluded.y1, source = 'human', model_version = NULL, confidence = NULL,
                   author = excluded.author, revision = excluded.revision",
            )
            .bind(&after.id)
            .bind(image.id)
            .bind(i64::from(after.class_id))
            .bind(after.x0)
            .bind(after.y0)
            .bind(after.x1)
            .bind(after.y1)
            .bind(&after.author)
            .bind(i64::from(after.revision))
            .execute(&mut *conn)
            .await?;
            let kind = if before.is_some() {
                OpKind::Update
            } else {
                OpKind::Create
            };
            let seq = record_box_event(
                conn,
                image.project_id,
                image.id,
                kind,
                before.as_ref(),
                Some(&after),
                Some(author),
            )
            .await?;
            Ok(AppliedOp {
                seq,
                op: kind,
                box_id: after.id.clone(),
                bbox: Some(after),
                overwrote,
            })
        }
    }
}

/// Deletes a stored box, numbered and logged like any edit; returns its sequence number.
pub async fn delete_box(
    conn: &mut AnyConnection,
    project_id: i64,
    image_id: i64,
    before: &BoundingBox,
    author: Option<&str>,
) -> Result<i64, ApiError> {
    sqlx::query("DELETE FROM boxes WHERE id = $1")
        .bind(&before.id)
        .execute(&mut *conn)
        .await?;
    record_box_event(conn, project_id, image_id, OpKind::Delete, Some(before), None, author).await
}

/// Numbers a box change with the project's next sequence number and logs it in `box_events`
/// (before/after). Every change of a box goes through here — the editor's operations, imports,
/// moving a removed class's boxes — so the log and the live order miss nothing.
pub async fn record_box_event(
    conn: &mut AnyConnection,
    project_id: i64,
    image_id: i64,
    op: OpKind,
    before: Option<&BoundingBox>,
    after: Option<&BoundingBox>,
    author: Option<&str>,
) -> Result<i64, ApiError> {
    let seq = next_seq(conn, project_id).await?;
    let box_id = after.or(before).map(|b| b.id.as_str()).unwrap_or_default();
    let json = |b: Option<&BoundingBox>| b.and_then(|b| serde_json::to_string(b).ok());
    sqlx::query(
        "INSERT INTO box_events (project_id, seq, image_id, box_id, op, before, after, author)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(project_id)
    .bind(seq)
    .bind(image_id)
    .bind(box_id)
    .bind(op.as_str())
    .bind(json(before))
    .bind(json(after))
    .bind(author)
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

/// The image's boxes, oldest first.
/// The project's next sequence number, taken inside the caller's write transaction (writers are
/// serialised, so the numbers are committed in order and without gaps).
async fn next_seq(conn: &mut AnyConnection, project_id: i64) -> Result<i64, ApiError> {
    Ok(
        sqlx::query_scalar("UPDATE projects SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq")
            .bind(project_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

pub async fn image_boxes(conn: &mut AnyConnection, image: &ImageRow) -> Result<ImageBoxes, ApiError> {
    let rows: Vec<BoxRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {BOX_COLUMNS} FROM boxes WHERE image_id = $1 ORDER BY rowid"
    )))
    .bind(image.id)
    .fetch_all(&mut *conn)
    .await?;
    let seq: i64 = sqlx::query_scalar("SELECT last_seq FROM projects WHERE id = $1")
        .bind(image.project_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(ImageBoxes {
        image_id: image.id,
        negative: image.negative,
        status: image.status(),
        boxes: rows.into_iter().map(BoxRow::into_box).collect(),
        seq,
    })
}

async fn load_box(conn: &mut AnyConnection, box_id: &str) -> Result<Option<BoxRow>, ApiError> {
    Ok(sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {BOX_COLUMNS} FROM boxes WHERE id = $1"
    )))
    .bind(box_id)
    .fetch_optional(&mut *conn)
    .await?)
}

fn parse_box_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_box",
                format!("box id {id:?} is not a UUID."),
            )
        })
}

impl ApiError {
    fn with_prefix(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

/// Columns read into [`BoxRow`].
pub const BOX_COLUMNS: &str =
    "id, image_id, class_id, x0, y0, x1, y1, source, model_version, confidence, author, revision";

/// One row of `boxes`.
#[derive(Debug, Clone, FromRow)]
pub struct BoxRow {
    pub id: String,
    pub image_id: i64,
    #[sqlx(try_from = "i64")]
    pub class_id: u32,
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
    pub source: String,
    pub model_version: Option<String>,
    pub confidence: Option<f64>,
    pub author: Option<String>,
    #[sqlx(try_from = "i64")]
    pub revision: u32,
}

impl BoxRow {
    /// The API view of the row.
    pub fn into_box(self) -> BoundingBox {
        BoundingBox {
            source: BoxSource::parse(&self.source).unwrap_or(BoxSource::Human),
            id: self.id,
            class_id: self.class_id,
            x0: self.x0,
            y0: self.y0,
            x1: self.x1,
            y1: self.y1,
            model_version: self.model_version,
            // Stored as a double by both engines; it was an f32 when it was written.
            confidence: self.confidence.map(|c| c as f32),
            author: self.author,
            revision: self.revision,
        }
    }
}
