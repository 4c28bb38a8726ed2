//! API tokens for scripts: `Authorization: Bearer dst_…`, shown once when created, stored as a
//! digest, listed and revoked by their owner (`/api/tokens`, `distillery token create`).

use std::time::Duration;

use api::{ApiToken, CreatedToken, NewToken, User};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use sqlx::AnyPool;

use super::secrets;
use crate::AppState;
use crate::access::Caller;
use crate::db::Flag;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};

/// What every token starts with, so one pasted by mistake is recognisable (and scannable).
pub const PREFIX: &str = "dst_";

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create_route))
        .route("/tokens/{tid}", delete(revoke))
}

/// Creates a token for the user.
pub async fn create(db: &AnyPool, user_id: i64, name: &str) -> Result<CreatedToken, ApiError> {
    let name = api::validate_token_name(name)?;
    let token = format!("{PREFIX}{}", secrets::random_secret()?);
    let info: ApiToken = sqlx::query_as::<_, (i64, String, String, Option<String>)>(
        "INSERT INTO api_tokens (user_id, name, secret_sha256) VALUES ($1, $2, $3)
         RETURNING id, name, created_at, last_used_at",
    )
    .bind(user_id)
    .bind(&name)
    .bind(secrets::digest(&token))
    .fetch_one(db)
    .await
    .map(into_token)?;
    tracing::info!(user_id, token_id = info.id, "API token created");
    Ok(CreatedToken { token, info })
}

/// The user a token belongs to, if it is a live one. Its last use is recorded at most once a
/// minute, so scripts polling the API do not turn every read into a database write.
pub async fn user_of(db: &AnyPool, token: &str) -> Result<Option<User>, ApiError> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let row: Option<(i64, String, Flag, i64, Option<String>)> = sqlx::query_as(
        "SELECT u.id, u.username, u.is_admin, t.id, t.last_used_at
         FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.secret_sha256 = $1",
    )
    .bind(secrets::digest(token))
    .fetch_optional(db)
    .await?;
    let Some((id, username, Flag(is_admin), token_id, last_used_at)) = row else {
        return Ok(None);
    };
    if last_used_at.is_none_or(|at| at < crate::db::ago(Duration::from_secs(60))) {
        // A write like any other: it takes its turn among the server's writers, off this request's
        // path (a write outside the turn would make the writer holding it wait in SQLite's busy
        // handler).
        let db = db.clone();
        tokio::spawn(async move {
            let used = async {
                let mut tx = crate::db::write_transaction(&db).await?;
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(crate::db::now())
                    .bind(token_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            };
            if let Err(error) = used.await {
                tracing::warn!(%error, token_id, "cannot record when a token was used");
            }
        });
    }
    Ok(Some(User { id, username, is_admin }))
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    let rows: Vec<(i64, String, String, Option<String>)> =
        sqlx::query_as("SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
            .bind(caller.user.id)
            .fetch_all(&state.db)
            .await?;
    Ok(Json(rows.into_iter().map(into_token).collect()))
}

async fn create_route(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(create(&state.db, caller.user.id, &body.name).await?),
    ))
}

/// Revokes one of the caller's own tokens; someone else's answers like a missing one.
async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathParams(token_id): PathParams<i64>,
) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
        .bind(token_id)
        .bind(caller.user.id)
        .execute(&state.db)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found(format_args!("token {token_id}")));
    }
    tracing::info!(user_id = caller.user.id, token_id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

fn into_token((id, name, created_at, last_used_at): (i64, String, String, Option<String>)) -> ApiToken {
    ApiToken {
        id,
        name,
        created_at,
        last_used_at,
    }
}
