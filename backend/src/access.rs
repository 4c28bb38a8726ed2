//! Who may call what: one middleware in front of every API route authenticates the caller (a
//! session cookie or an `Authorization: Bearer` token), checks the anti-forgery header on
//! cookie-authenticated writes, finds the project the route's first id belongs to and the
//! caller's role there, and refuses before any handler runs. A project the caller is not a
//! member of answers exactly like one that does not exist (404), so ids reveal nothing.
//!
//! [`requirement`] is the one table of what each route needs; a route missing from it is open to
//! admins only, so a forgotten entry fails closed (and the authorisation matrix test, which
//! reads every route from the sources, notices).

use std::net::{IpAddr, SocketAddr};

use api::{Role, User};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::accounts::{secrets, sessions};
use crate::error::ApiError;

/// The header a cookie-authenticated write must carry, holding the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller, in the request's extensions for every non-public route.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who it is.
    pub user: User,
    /// How they proved it.
    pub auth: Auth,
}

/// How a caller authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A browser session (cookie); its secret's digest identifies it for logout.
    Session {
        /// SHA-256 of the session secret.
        secret_sha256: Vec<u8>,
        /// The token writes must echo in [`CSRF_HEADER`].
        csrf_token: String,
    },
    /// An API token.
    Token,
}

/// The caller's standing in the project the route names (admins own every project).
#[derive(Debug, Clone, Copy)]
pub struct ProjectAccess {
    /// The project the route's id belongs to.
    pub project_id: i64,
    /// The caller's role there.
    pub role: Role,
}

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in account.
    SignedIn,
    /// An admin account.
    Admin,
    /// At least this role in the project the route's first id belongs to.
    Project(Role),
}

/// What `method path` needs, `path` as the router declares it (`/images/{iid}/ops`).
pub fn requirement(method: &Method, path: &str) -> Requirement {
    use Requirement::*;
    use Role::*;
    match (method.as_str(), path) {
        // An invite link's secret is its own credential; accepting it checks who is signed in.
        ("GET", "/health" | "/invites/{secret}")
        | ("GET" | "POST", "/setup")
        | ("POST", "/login" | "/invites/{secret}/accept") => Public,
        ("GET", "/session")
        | ("POST", "/logout")
        | ("POST", "/me/password")
        | ("GET" | "POST", "/projects")
        | ("GET" | "POST", "/tokens")
        | ("DELETE", "/tokens/{tid}") => SignedIn,
        ("GET" | "POST", "/users") => Admin,
        (
            "GET",
            "/projects/{pid}"
            | "/projects/{pid}/images"
            | "/projects/{pid}/models"
            | "/projects/{pid}/jobs"
            | "/projects/{pid}/events"
            | "/projects/{pid}/live"
            | "/projects/{pid}/export"
            | "/projects/{pid}/queue"
            | "/projects/{pid}/predictions/pending"
            | "/projects/{pid}/evaluation"
            | "/projects/{pid}/members"
            | "/projects/{pid}/contributions"
            | "/images/{iid}"
            | "/images/{iid}/file"
            | "/images/{iid}/thumb"
            | "/images/{iid}/boxes"
            | "/images/{iid}/history"
            | "/images/{iid}/prediction"
            | "/images/{iid}/label-errors"
            | "/models/{mid}"
            | "/models/{mid}/file"
            | "/model-files/{name}"
            | "/jobs/{jid}"
            | "/jobs/{jid}/events"
            | "/jobs/{jid}/epochs",
        ) => Project(Viewer),
        // Approving and rejecting need a reviewer; the status handler checks which it is.
        // Reviewing through it needs a reviewer; the handler checks that.
        ("GET", "/projects/{pid}/next")
        | ("POST", "/images/{iid}/ops" | "/images/{iid}/status" | "/images/{iid}/label-errors/confirm")
        | ("PUT", "/images/{iid}/boxes")
        | ("POST", "/projects/{pid}/predictions") => Project(Annotator),
        ("PATCH", "/projects/{pid}" | "/models/{mid}")
        | ("PUT", "/projects/{pid}/active-student")
        | ("DELETE", "/projects/{pid}/members/{uid}" | "/projects/{pid}/invites/{vid}")
        | ("GET", "/projects/{pid}/invites")
        | (
            "POST",
            "/projects/{pid}/images"
            | "/projects/{pid}/import"
            | "/projects/{pid}/models"
            | "/projects/{pid}/jobs"
            | "/projects/{pid}/members"
            | "/projects/{pid}/invites"
            | "/projects/{pid}/assignments"
            | "/jobs/{jid}/cancel"
            | "/jobs/{jid}/resume",
        ) => Project(Owner),
        _ => Admin,
    }
}

/// The middleware: refuses what the caller may not do, otherwise passes the request on with
/// [`Caller`] (and [`ProjectAccess`] on project routes) in its extensions.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match check(&state, &mut parts).await {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(error) => error.into_response(),
    }
}

async fn check(state: &AppState, parts: &mut Parts) -> Result<(), ApiError> {
    // No matched route: the API's fallback answers 404 and reveals nothing.
    let Some(path) = parts.extensions.get::<MatchedPath>().map(|m| m.as_str().to_owned()) else {
        return Ok(());
    };
    let needed = requirement(&parts.method, path.strip_prefix("/api").unwrap_or(&path));
    if needed == Requirement::Public {
        return Ok(());
    }
    let caller = authenticate(state, &parts.headers).await?;
    if let Auth::Session { csrf_token, .. } = &caller.auth
        && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|sent| secrets::same_secret(sent, csrf_token)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "This change did not come from the studio's own page; reload the page and try again.",
            ));
        }
    }
    match needed {
        Requirement::Public | Requirement::SignedIn => {}
        Requirement::Admin => {
            if !caller.user.is_admin {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Only an admin can do this.",
                ));
            }
        }
        Requirement::Project(role) => {
            let access = project_access(state, parts, &caller).await?;
            if !access.role.allows(role) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "Your role in this project ({}) cannot do this; it needs {role}.",
                        access.role
                    ),
                ));
            }
            parts.extensions.insert(access);
        }
    }
    parts.extensions.insert(caller);
    Ok(())
}

/// The caller behind a request's cookie or bearer token; 401 when there is neither, or what
/// there is has expired, been revoked or never existed.
pub async fn authenticate(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, ApiError> {
    let unauthenticated = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "You are not signed in (or your session has ended); sign in again.",
        )
    };
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(unauthenticated)?;
        let user = crate::accounts::tokens::user_of(&state.db, token.trim())
            .await?
            .ok_or_else(unauthenticated)?;
        return Ok(Caller {
            user,
            auth: Auth::Token,
        });
    }
    let secret = sessions::cookie_secret(headers).ok_or_else(unauthenticated)?;
    let (user, csrf_token) = sessions::find(&state.db, &secret).await?.ok_or_else(unauthenticated)?;
    Ok(Caller {
        user,
        auth: Auth::Session {
            secret_sha256: secrets::digest(&secret),
            csrf_token,
        },
    })
}

/// The project the route's first id names and the caller's role in it; 404 with the message
/// of a missing resource when it does not exist or the caller is not a member.
async fn project_access(state: &AppState, parts: &mut Parts, caller: &Caller) -> Result<ProjectAccess, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|rejection| ApiError::new(rejection.status(), "invalid_path", rejection.body_text()))?;
    let Some((name, value)) = params.iter().next() else {
        return Err(ApiError::internal("a project route without an id"));
    };
    let value = value.to_owned();
    let id = || {
        value
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request("invalid_path", format!("`{value}` in the path is not a number.")))
    };
    let user = &caller.user;
    // Each arm: the project ids the resource belongs to, and what a 404 calls it.
    let (projects, what): (Vec<i64>, String) = match name {
        "pid" => {
            let id = id()?;
            let found = sqlx::query_scalar("SELECT id FROM projects WHERE id = $1").bind(id);
            (found.fetch_all(&state.db).await?, format!("project {id}"))
        }
        "iid" => {
            let id = id()?;
            let found = sqlx::query_scalar("SELECT project_id FROM images WHERE id = $1").bind(id);
            (found.fetch_all(&state.db).await?, format!("image {id}"))
        }
        "mid" => {
            let id = id()?;
            let found = sqlx::query_scalar("SELECT project_id FROM models WHERE id = $1").bind(id);
            (found.fetch_all(&state.db).await?, format!("model {id}"))
        }
        "jid" => {
            let id = id()?;
            let found = sqlx::query_scalar("SELECT project_id FROM jobs WHERE id = $1").bind(id);
            (found.fetch_all(&state.db).await?, format!("job {id}"))
        }
        // Content-addressed model bytes: the same file may belong to several projects.
        "name" => {
            let sha256 = value.strip_suffix(".onnx").unwrap_or(&value);
            let found = sqlx::query_scalar("SELECT DISTINCT project_id FROM models WHERE sha256 = $1").bind(sha256);
            (found.fetch_all(&state.db).await?, format!("model file {value}"))
        }
        other => return Err(ApiError::internal(format_args!("no project lookup for `{other}`"))),
    };
    let not_found = || ApiError::not_found(&what);
    if user.is_admin {
        let project_id = *projects.first().ok_or_else(not_found)?;
        return Ok(ProjectAccess {
            project_id,
            role: Role::Owner,
        });
    }
    let mut best: Option<ProjectAccess> = None;
    for project_id in projects {
        if let Some(role) = member_role(&state.db, project_id, user.id).await?
            && best.is_none_or(|b| role > b.role)
        {
            best = Some(ProjectAccess { project_id, role });
        }
    }
    best.ok_or_else(not_found)
}

/// The user's role in the project, if they are a member.
pub async fn member_role(db: &sqlx::AnyPool, project_id: i64, user_id: i64) -> Result<Option<Role>, ApiError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(role.as_deref().and_then(Role::parse))
}

/// The client's address when the server was started with connection info (login throttling).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_routes_are_for_admins_only() {
        assert_eq!(requirement(&Method::DELETE, "/projects/{pid}"), Requirement::Admin);
        assert_eq!(requirement(&Method::GET, "/something/new"), Requirement::Admin);
        assert_eq!(
            requirement(&Method::POST, "/images/{iid}/ops"),
            Requirement::Project(Role::Annotator)
        );
    }
}
