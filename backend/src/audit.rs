//! An image's audit log, `GET /api/images/{iid}/history?before=SEQ`: what `box_events` and
//! `review_events` recorded for it (who, when, the box before and after, review decisions and
//! their comments), newest first, a page at a time.

use api::{AuditChange, AuditEntry, BoundingBox, ImageHistory, ImageStatus, OpKind};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};
use crate::images::load_image;

/// Entries per page.
const PAGE: i64 = 100;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/images/{iid}/history", get(history))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    /// Only entries older than this sequence number (the previous page's `older`).
    before: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    PathParams(image_id): PathParams<i64>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Json<ImageHistory>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let image = load_image(&mut conn, image_id).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, at, author, op, box_id, before, after, NULL AS status, NULL AS comment
           FROM box_events WHERE project_id = $1 AND image_id = $2 AND seq < $3
         UNION ALL
         SELECT seq, at, author, NULL, NULL, NULL, NULL, status, comment
           FROM review_events WHERE project_id = $1 AND image_id = $2 AND seq < $3
         ORDER BY seq DESC LIMIT $4",
    )
    .bind(image.project_id)
    .bind(image_id)
    .bind(query.before.unwrap_or(i64::MAX))
    .bind(PAGE + 1)
    .fetch_all(&mut *conn)
    .await?;
    let more = rows.len() as i64 > PAGE;
    let entries: Vec<AuditEntry> = rows
        .into_iter()
        .take(PAGE as usize)
        .filter_map(Row::into_entry)
        .collect();
    Ok(Json(ImageHistory {
        image_id,
        older: more.then(|| entries.last().map(|e| e.seq)).flatten(),
        entries,
    }))
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    at: String,
    author: Option<String>,
    op: Option<String>,
    box_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
    status: Option<String>,
    comment: Option<String>,
}

impl Row {
    fn into_entry(self) -> Option<AuditEntry> {
        let change = match self.status {
            Some(status) => AuditChange::Status {
                status: ImageStatus::parse(&status)?,
                comment: self.comment,
            },
            None => {
                let parse = |json: Option<String>| -> Option<Box<BoundingBox>> { serde_json::from_str(&json?).ok() };
                AuditChange::Box {
                    op: OpKind::parse(self.op.as_deref()?)?,
                    box_id: self.box_id?,
                    before: parse(self.before),
                    after: parse(self.after),
                }
            }
        };
        Some(AuditEntry {
            seq: self.seq,
            at: self.at,
            author: self.author,
            change,
        })
    }
}
