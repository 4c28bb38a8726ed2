//! Browser sessions: a random secret in an HttpOnly, SameSite=Lax cookie, its digest and the
//! session's CSRF token in the database — so logging out, changing a password or deleting an
//! account ends a session on the server, not just in the browser.

use std::time::Duration;

use api::User;
use axum::http::{HeaderMap, HeaderValue, header};
use sqlx::AnyPool;

use super::secrets;
use crate::db::Flag;
use crate::error::ApiError;

/// The cookie's name.
pub const COOKIE: &str = "distillery_session";
/// How long a session lasts from sign-in.
pub const LIFETIME_DAYS: u32 = 30;

/// Starts a session for the user: the cookie's secret and the session's CSRF token.
pub async fn create(db: &AnyPool, user_id: i64) -> Result<(String, String), ApiError> {
    let secret = secrets::random_secret()?;
    let csrf_token = secrets::random_secret()?;
    sqlx::query(
        "INSERT INTO sessions (secret_sha256, user_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(secrets::digest(&secret))
    .bind(user_id)
    .bind(&csrf_token)
    .bind(crate::db::after(Duration::from_secs(
        u64::from(LIFETIME_DAYS) * 24 * 3600,
    )))
    .execute(db)
    .await?;
    Ok((secret, csrf_token))
}

/// The user and CSRF token of a live session.
pub async fn find(db: &AnyPool, secret: &str) -> Result<Option<(User, String)>, ApiError> {
    let row: Option<(i64, String, Flag, String)> = sqlx::query_as(
        "SELECT u.id, u.username, u.is_admin, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.secret_sha256 = $1 AND s.expires_at > $2",
    )
    .bind(secrets::digest(secret))
    .bind(crate::db::now())
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(id, username, Flag(is_admin), csrf)| (User { id, username, is_admin }, csrf)))
}

/// Ends one session.
pub async fn revoke(db: &AnyPool, secret_sha256: &[u8]) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM sessions WHERE secret_sha256 = $1")
        .bind(secret_sha256)
        .execute(db)
        .await?;
    Ok(())
}

/// The session secret the request's `Cookie` headers carry.
pub fn cookie_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// `Set-Cookie` for a new session; `Secure` when the page came over https (a proxy's
/// `X-Forwarded-Proto`), so the cookie never travels in clear there.
pub fn set_cookie(secret: &str, headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let cookie = cookie::Cookie::build((COOKIE, secret))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(over_https(headers))
        .max_age(cookie::time::Duration::days(i64::from(LIFETIME_DAYS)))
        .build();
    HeaderValue::from_str(&cookie.to_string()).map_err(ApiError::internal)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    let cookie = cookie::Cookie::build((COOKIE, ""))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(over_https(headers))
        .max_age(cookie::time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&cookie.to_string()).map_err(ApiError::internal)
}

fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; distillery_session=abc123"),
        );
        assert_eq!(cookie_secret(&headers).as_deref(), Some("abc123"));
        assert_eq!(cookie_secret(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_lax() -> Result<(), ApiError> {
        let mut headers = HeaderMap::new();
        let plain = set_cookie("s3cret", &headers)?;
        let plain = plain.to_str().unwrap_or_default();
        assert!(
            plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && !plain.contains("Secure"),
            "{plain}"
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie("s3cret", &headers)?
                .to_str()
                .unwrap_or_default()
                .contains("Secure")
        );
        Ok(())
    }
}
