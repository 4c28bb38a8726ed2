//! Invite links: `/api/projects/{pid}/invites` (owners create, list and revoke them) and
//! `/api/invites/{secret}` (anyone holding the link sees what it offers and joins through it —
//! signed in, or creating an account on the spot). A link works until it expires or is revoked;
//! only its secret's SHA-256 is stored, so a copy of the database opens no project.

use std::time::Duration;

use api::account::MAX_INVITE_HOURS;
use api::{AcceptInvite, CreatedInvite, Invite, InviteOffer, JoinedProject, NewInvite, Role, Session};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};

use crate::AppState;
use crate::access::{Auth, CSRF_HEADER, Caller, ProjectAccess};
use crate::accounts::{secrets, sessions};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{pid}/invites", get(list).post(create))
        .route("/projects/{pid}/invites/{vid}", delete(revoke))
        .route("/invites/{secret}", get(offer))
        .route("/invites/{secret}/accept", post(accept))
}

async fn list(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
) -> Result<Json<Vec<Invite>>, ApiError> {
    let rows: Vec<InviteRow> = sqlx::query_as(
        "SELECT id, role, created_by, expires_at, joined FROM invites
          WHERE project_id = $1 AND expires_at > $2 ORDER BY id",
    )
    .bind(access.project_id)
    .bind(crate::db::now())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows.into_iter().filter_map(InviteRow::into_invite).collect()))
}

async fn create(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<NewInvite>,
) -> Result<(StatusCode, Json<CreatedInvite>), ApiError> {
    if !(1..=MAX_INVITE_HOURS).contains(&body.hours) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_invite",
            format!("An invite link lasts 1 to {MAX_INVITE_HOURS} hours."),
        ));
    }
    let secret = secrets::random_secret()?;
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let row: InviteRow = sqlx::query_as(
        "INSERT INTO invites (project_id, secret_sha256, role, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, role, created_by, expires_at, joined",
    )
    .bind(access.project_id)
    .bind(secrets::digest(&secret))
    .bind(body.role.as_str())
    .bind(&caller.user.username)
    .bind(crate::db::after(Duration::from_secs(u64::from(body.hours) * 3600)))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let invite = row
        .into_invite()
        .ok_or_else(|| ApiError::internal("an invite with an unknown role"))?;
    tracing::info!(project_id = access.project_id, invite = invite.id, role = %invite.role, "invite link created");
    Ok((StatusCode::CREATED, Json(CreatedInvite { invite, secret })))
}

async fn revoke(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    PathParams((_, invite_id)): PathParams<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let gone = sqlx::query("DELETE FROM invites WHERE id = $1 AND project_id = $2")
        .bind(invite_id)
        .bind(access.project_id)
        .execute(&state.db)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::not_found(format_args!("invite {invite_id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn offer(
    State(state): State<AppState>,
    PathParams(secret): PathParams<String>,
) -> Result<Json<InviteOffer>, ApiError> {
    let (_, project_name, role, expires_at) = valid(&state, &secret).await?;
    Ok(Json(InviteOffer {
        project_name,
        role,
        expires_at,
    }))
}

/// Joins the project as the caller (a session or token), or creates the account the body names
/// and signs it in.
async fn accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParams(secret): PathParams<String>,
    JsonBody(body): JsonBody<AcceptInvite>,
) -> Result<Response, ApiError> {
    let (project_id, _, role, _) = valid(&state, &secret).await?;
    let signed_in = crate::access::authenticate(&state, &headers).await.ok();
    let (user, new_account) = match (signed_in, body.account) {
        (Some(caller), _) => {
            // This route is open to anyone, so the middleware checked no anti-forgery header.
            if let Auth::Session { csrf_token, .. } = &caller.auth {
                let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
                if !sent.is_some_and(|sent| secrets::same_secret(sent, csrf_token)) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "This change did not come from the studio's own page; reload the page and try again.",
                    ));
                }
            }
            (caller.user, false)
        }
        (None, Some(credentials)) => (crate::accounts::create_user(&state.db, credentials, false).await?, true),
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Sign in, or choose a username and password, to join through this link.",
            ));
        }
    };
    let mut tx = crate::db::write_transaction(&state.db).await?;
    // Joining never lowers a role someone already has.
    let current: Option<String> =
        sqlx::query_scalar("SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user.id)
            .fetch_optional(&mut *tx)
            .await?;
    let role = current
        .as_deref()
        .and_then(Role::parse)
        .filter(|r| *r >= role)
        .unwrap_or(role);
    crate::members::set_role(&mut tx, project_id, user.id, role).await?;
    sqlx::query("UPDATE invites SET joined = joined + 1 WHERE secret_sha256 = $1")
        .bind(secrets::digest(&secret))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(project_id, user_id = user.id, %role, new_account, "joined through an invite link");
    if !new_account {
        return Ok(Json(JoinedProject {
            project_id,
            role,
            session: None,
        })
        .into_response());
    }
    let (secret, csrf_token) = sessions::create(&state.db, user.id).await?;
    let mut response = (
        StatusCode::CREATED,
        Json(JoinedProject {
            project_id,
            role,
            session: Some(Session { user, csrf_token }),
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, sessions::set_cookie(&secret, &headers)?);
    Ok(response)
}

/// The project, its name, the role and the expiry of the invite `secret` opens; 404 when there
/// is no such link or it expired (the same answer: a guess learns nothing).
async fn valid(state: &AppState, secret: &str) -> Result<(i64, String, Role, String), ApiError> {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT i.project_id, p.name, i.role, i.expires_at FROM invites i JOIN projects p ON p.id = i.project_id
          WHERE i.secret_sha256 = $1 AND i.expires_at > $2",
    )
    .bind(secrets::digest(secret))
    .bind(crate::db::now())
    .fetch_optional(&state.db)
    .await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "This invite link does not work: it has expired or was revoked. Ask for a new one.",
        )
    };
    let (project_id, name, role, expires_at) = row.ok_or_else(not_found)?;
    let role = Role::parse(&role).ok_or_else(not_found)?;
    Ok((project_id, name, role, expires_at))
}

#[derive(sqlx::FromRow)]
struct InviteRow {
    id: i64,
    role: String,
    created_by: String,
    expires_at: String,
    joined: i64,
}

impl InviteRow {
    fn into_invite(self) -> Option<Invite> {
        Some(Invite {
            id: self.id,
            role: Role::parse(&self.role)?,
            created_by: self.created_by,
            expires_at: self.expires_at,
            joined: u32::try_from(self.joined).unwrap_or(u32::MAX),
        })
    }
}
