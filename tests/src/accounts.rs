//! Signing in to a studio under test: the admin every [`crate::Studio`] sets up when it starts,
//! and clients for further accounts (the authorisation tests' cast).

use anyhow::{Context, bail};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

/// The admin account every test studio gets on first start.
pub const ADMIN: &str = "admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-of-the-tests";
/// The session cookie's name, as the server sets it.
pub const SESSION_COOKIE: &str = "distillery_session";

/// A signed-in browser session: the cookie's secret and the page's anti-forgery token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The `distillery_session` cookie's value.
    pub cookie_secret: String,
    /// What writes must send as `x-csrf-token`.
    pub csrf_token: String,
    /// The account.
    pub user: api::User,
}

/// `POST /api/setup` when the studio has no account yet, else `POST /api/login`, as the admin.
pub async fn sign_in_admin(url: &str) -> anyhow::Result<SignedIn> {
    let http = reqwest::Client::new();
    let setup: api::SetupState = http.get(format!("{url}/api/setup")).send().await?.json().await?;
    let route = if setup.needed { "setup" } else { "login" };
    sign_in_at(url, route, ADMIN, ADMIN_PASSWORD).await
}

/// `POST /api/login`.
pub async fn sign_in(url: &str, username: &str, password: &str) -> anyhow::Result<SignedIn> {
    sign_in_at(url, "login", username, password).await
}

async fn sign_in_at(url: &str, route: &str, username: &str, password: &str) -> anyhow::Result<SignedIn> {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/{route}"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "{route} as {username}: {} {}",
            response.status(),
            response.text().await?
        );
    }
    let cookie_secret = session_cookie(response.headers()).context("no session cookie was set")?;
    let session: api::Session = response.json().await?;
    Ok(SignedIn {
        cookie_secret,
        csrf_token: session.csrf_token,
        user: session.user,
    })
}

/// The session secret a response's `Set-Cookie` carries.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{SESSION_COOKIE}=")))
        .and_then(|rest| rest.split(';').next())
        .filter(|secret| !secret.is_empty())
        .map(str::to_owned)
}

impl SignedIn {
    /// A client sending this session's cookie and CSRF header, as the studio's page does.
    pub fn cookie_client(&self) -> anyhow::Result<reqwest::Client> {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={}", self.cookie_secret))?,
        );
        headers.insert("x-csrf-token", HeaderValue::from_str(&self.csrf_token)?);
        Ok(reqwest::Client::builder().default_headers(headers).build()?)
    }

    /// Creates an API token for this account (`POST /api/tokens`).
    pub async fn create_token(&self, url: &str, name: &str) -> anyhow::Result<api::CreatedToken> {
        let response = self
            .cookie_client()?
            .post(format!("{url}/api/tokens"))
            .json(&serde_json::json!({"name": name}))
            .send()
            .await?;
        if response.status() != 201 {
            bail!("create token: {} {}", response.status(), response.text().await?);
        }
        Ok(response.json().await?)
    }
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn bearer_client(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?);
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}
