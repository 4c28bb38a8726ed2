//! Accounts: the first admin's setup, login and logout, the session, one's own password, and
//! admins' user management — `/api/setup`, `/api/login`, `/api/logout`, `/api/session`,
//! `/api/me/password`, `/api/users`. Who may call what is `crate::access`'s job.

pub mod commands;
pub mod password;
pub mod secrets;
pub mod sessions;
pub mod throttle;
pub mod tokens;

use api::{Credentials, NewUser, PasswordChange, Session, SetupState, User};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use sqlx::AnyPool;

use crate::AppState;
use crate::access::{Auth, Caller, ClientAddress};
use crate::db::Flag;
use crate::error::ApiError;
use crate::extract::JsonBody;

/// Routes of this module (and of [`tokens`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/setup", get(setup_state).post(setup))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/session", get(session))
        .route("/me/password", post(change_password))
        .route("/users", get(list_users).post(add_user))
        .merge(tokens::router())
}

/// Creates an account; 409 when the name is taken.
pub async fn create_user(db: &AnyPool, credentials: Credentials, is_admin: bool) -> Result<User, ApiError> {
    let username = credentials.validate()?;
    let hash = password::hash(credentials.password).await?;
    let mut tx = crate::db::write_transaction(db).await?;
    let user = insert_user(&mut tx, &username, &hash, is_admin).await?;
    tx.commit().await?;
    Ok(user)
}

async fn insert_user(
    conn: &mut sqlx::AnyConnection,
    username: &str,
    hash: &str,
    is_admin: bool,
) -> Result<User, ApiError> {
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(ApiError::conflict(
            "username_taken",
            format!("There is already an account named {username}."),
        ));
    }
    let id: i64 =
        sqlx::query_scalar("INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3) RETURNING id")
            .bind(username)
            .bind(hash)
            .bind(i64::from(is_admin))
            .fetch_one(&mut *conn)
            .await?;
    tracing::info!(user_id = id, username, is_admin, "account created");
    Ok(User {
        id,
        username: username.to_owned(),
        is_admin,
    })
}

/// The account named `username` (case-insensitively).
pub async fn find_user(db: &AnyPool, username: &str) -> Result<Option<User>, ApiError> {
    let row: Option<(i64, String, Flag)> =
        sqlx::query_as("SELECT id, username, is_admin FROM users WHERE username = $1")
            .bind(username.trim())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, username, Flag(is_admin))| User { id, username, is_admin }))
}

async fn setup_state(State(state): State<AppState>) -> Result<Json<SetupState>, ApiError> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&state.db)
        .await?;
    Ok(Json(SetupState { needed: users == 0 }))
}

/// The first visit's form: creates the first admin and signs them in — only while the studio
/// has no account at all, checked inside the transaction that creates it.
async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(credentials): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let username = credentials.validate()?;
    let hash = password::hash(credentials.password).await?;
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await?;
    if users > 0 {
        return Err(ApiError::conflict(
            "already_set_up",
            "This studio already has an admin; sign in instead.",
        ));
    }
    let user = insert_user(&mut tx, &username, &hash, true).await?;
    tx.commit().await?;
    signed_in(&state.db, user, &headers, StatusCode::CREATED).await
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    JsonBody(credentials): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let username = credentials.username.trim().to_owned();
    if let Some(wait) = throttle::blocked(&state.db, &username, address).await? {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("Too many failed sign-ins; try again in {minutes} min."),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
        return Ok(response);
    }
    let row: Option<(i64, String, Flag, String)> =
        sqlx::query_as("SELECT id, username, is_admin, password_hash FROM users WHERE username = $1")
            .bind(&username)
            .fetch_optional(&state.db)
            .await?;
    let (user, stored) = match row {
        Some((id, username, Flag(is_admin), hash)) => (Some(User { id, username, is_admin }), hash),
        None => (None, password::decoy().await?),
    };
    let matches = credentials.password.len() <= api::account::MAX_PASSWORD_BYTES
        && password::verify(credentials.password, stored).await?;
    match user {
        Some(user) if matches => {
            throttle::succeeded(&state.db, &username).await?;
            tracing::info!(user_id = user.id, "signed in");
            signed_in(&state.db, user, &headers, StatusCode::OK).await
        }
        _ => {
            throttle::failed(&state.db, &username, address).await?;
            tracing::warn!(username, ?address, "failed sign-in");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong_credentials",
                "Wrong username or password.",
            ))
        }
    }
}

async fn signed_in(db: &AnyPool, user: User, headers: &HeaderMap, status: StatusCode) -> Result<Response, ApiError> {
    let (secret, csrf_token) = sessions::create(db, user.id).await?;
    let mut response = (status, Json(Session { user, csrf_token })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, sessions::set_cookie(&secret, headers)?);
    Ok(response)
}

async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Auth::Session { secret_sha256, .. } = &caller.auth {
        sessions::revoke(&state.db, secret_sha256).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, sessions::clear_cookie(&headers)?);
    Ok(response)
}

async fn session(Extension(caller): Extension<Caller>) -> Json<Session> {
    let csrf_token = match caller.auth {
        Auth::Session { csrf_token, .. } => csrf_token,
        // A token needs no anti-forgery header: browsers never attach it on their own.
        Auth::Token => String::new(),
    };
    Json(Session {
        user: caller.user,
        csrf_token,
    })
}

/// Changes the caller's password and ends every other session of theirs (a stolen session
/// dies with the old password).
async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ClientAddress(address): ClientAddress,
    JsonBody(change): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let user = &caller.user;
    if throttle::blocked(&state.db, &user.username, address).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many wrong passwords; try again later.",
        ));
    }
    api::validate_password(&change.new)?;
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user.id)
        .fetch_one(&state.db)
        .await?;
    if !password::verify(change.current, stored).await? {
        throttle::failed(&state.db, &user.username, address).await?;
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_password",
            "The current password is not right.",
        ));
    }
    let hash = password::hash(change.new).await?;
    let keep: Vec<u8> = match &caller.auth {
        Auth::Session { secret_sha256, .. } => secret_sha256.clone(),
        Auth::Token => Vec::new(),
    };
    let mut tx = crate::db::write_transaction(&state.db).await?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND secret_sha256 != $2")
        .bind(user.id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(user_id = user.id, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    let rows: Vec<(i64, String, Flag)> = sqlx::query_as("SELECT id, username, is_admin FROM users ORDER BY id")
        .fetch_all(&state.db)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, username, Flag(is_admin))| User { id, username, is_admin })
            .collect(),
    ))
}

async fn add_user(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let user = create_user(&state.db, body.credentials, body.is_admin).await?;
    Ok((StatusCode::CREATED, Json(user)))
}
