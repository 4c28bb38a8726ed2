//! Assigning images to people (`POST /api/projects/{pid}/assignments`, owners): the next `count`
//! unlabeled images nobody is assigned, in upload order, go to one member — or all of theirs not
//! labeled yet come back. `shared_queue` hands a person their assigned images first and never
//! gives them to anyone else.

use api::{Assignment, NewAssignment, Role};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};

use crate::AppState;
use crate::access::ProjectAccess;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::predictions::UNLABELED;

/// Most images one request assigns.
const MAX_COUNT: u32 = 100_000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/{pid}/assignments", post(assign))
}

async fn assign(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    JsonBody(body): JsonBody<NewAssignment>,
) -> Result<Json<Assignment>, ApiError> {
    let project_id = access.project_id;
    if body.count > MAX_COUNT {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_assignment",
            format!("Assign at most {MAX_COUNT} images at once."),
        ));
    }
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let member: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT u.id, u.username, m.role FROM users u JOIN project_members m ON m.user_id = u.id
          WHERE m.project_id = $1 AND u.username = $2",
    )
    .bind(project_id)
    .bind(body.username.trim())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, username, role)) = member else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_member",
            format!("{} is not a member of this project.", body.username.trim()),
        ));
    };
    if !Role::parse(&role).is_some_and(|r| r.allows(Role::Annotator)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot_label",
            format!("{username} is a viewer here and cannot label; make them an annotator first."),
        ));
    }
    let added = if body.count == 0 {
        let sql = format!(
            "UPDATE images SET assignee_id = NULL WHERE project_id = $1 AND assignee_id = $2 AND status IN {UNLABELED}"
        );
        sqlx::query(crate::db::constant_sql(sql))
            .bind(project_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        0
    } else {
        let sql = format!(
            "UPDATE images SET assignee_id = $1 WHERE id IN (SELECT id FROM images
               WHERE project_id = $2 AND assignee_id IS NULL AND status IN {UNLABELED} ORDER BY id LIMIT $3)"
        );
        sqlx::query(crate::db::constant_sql(sql))
            .bind(user_id)
            .bind(project_id)
            .bind(i64::from(body.count))
            .execute(&mut *tx)
            .await?
            .rows_affected()
    };
    let sql =
        format!("SELECT COUNT(*) FROM images WHERE project_id = $1 AND assignee_id = $2 AND status IN {UNLABELED}");
    let to_do: i64 = sqlx::query_scalar(crate::db::constant_sql(sql))
        .bind(project_id)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(project_id, user_id, added, to_do, "images assigned");
    Ok(Json(Assignment {
        username,
        added,
        to_do: to_do as u64,
    }))
}
