//! Who belongs to a project and with which role: `/api/projects/{pid}/members`. Owners add,
//! change and remove members; a project always keeps at least one owner.

use api::{Member, NewMember, Role};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use sqlx::AnyConnection;

use crate::AppState;
use crate::access::ProjectAccess;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{pid}/members", get(list).post(put_member))
        .route("/projects/{pid}/members/{uid}", delete(remove))
}

/// Makes `user_id` a member with `role` (used when a project is created: its creator owns it).
pub async fn set_role(conn: &mut AnyConnection, project_id: i64, user_id: i64, role: Role) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The projects `user_id` is a member of, with their role in each.
pub async fn projects_of(db: &sqlx::AnyPool, user_id: i64) -> Result<Vec<(i64, Role)>, ApiError> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT project_id, role FROM project_members WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(project_id, role)| Some((project_id, Role::parse(&role)?)))
        .collect())
}

async fn list(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(load(&mut conn, access.project_id).await?))
}

async fn put_member(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    JsonBody(body): JsonBody<NewMember>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let user_id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(body.username.trim())
        .fetch_optional(&mut *tx)
        .await?;
    let user_id = user_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_user",
            format!("There is no account named {}.", body.username.trim()),
        )
    })?;
    if body.role != Role::Owner {
        ensure_another_owner(&mut tx, access.project_id, user_id).await?;
    }
    set_role(&mut tx, access.project_id, user_id, body.role).await?;
    let members = load(&mut tx, access.project_id).await?;
    tx.commit().await?;
    tracing::info!(project_id = access.project_id, user_id, role = %body.role, "member set");
    Ok(Json(members))
}

async fn remove(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    PathParams((_, user_id)): PathParams<(i64, i64)>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let mut tx = crate::db::write_transaction(&state.db).await?;
    ensure_another_owner(&mut tx, access.project_id, user_id).await?;
    let removed = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
        .bind(access.project_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if removed == 0 {
        return Err(ApiError::not_found(format_args!("member {user_id} in this project")));
    }
    let members = load(&mut tx, access.project_id).await?;
    tx.commit().await?;
    tracing::info!(project_id = access.project_id, user_id, "member removed");
    Ok(Json(members))
}

/// 409 when `user_id` is the project's only owner (demoting or removing them would leave
/// nobody able to manage it).
async fn ensure_another_owner(conn: &mut AnyConnection, project_id: i64, user_id: i64) -> Result<(), ApiError> {
    let owners: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM project_members WHERE project_id = $1 AND role = 'owner'")
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?;
    if owners == [user_id] {
        return Err(ApiError::conflict(
            "last_owner",
            "A project needs an owner: make someone else owner first.",
        ));
    }
    Ok(())
}

async fn load(conn: &mut AnyConnection, project_id: i64) -> Result<Vec<Member>, ApiError> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT u.id, u.username, m.role FROM project_members m JOIN users u ON u.id = m.user_id
         WHERE m.project_id = $1 ORDER BY u.username",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, username, role)| {
            Some(Member {
                user_id,
                username,
                role: Role::parse(&role)?,
            })
        })
        .collect())
}
