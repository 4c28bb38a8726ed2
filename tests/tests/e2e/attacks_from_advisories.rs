//! The attacks that worked on the anchors, each as a case against the real server: privilege
//! escalation by an annotator (CVAT CVE-2026-23526), export by a non-member (CVAT #10685), a
//! forged or foreign session (Label Studio GHSA-f475-x83m-rx5m: a hard-coded secret signed
//! sessions), password hashes in answers (GHSA-6hjj-gq77-j4qw), cross-site request forgery,
//! sessions that outlive logout or a password change, and password guessing. IDOR on every
//! id-taking route is `authorization_matrix`'s.

use anyhow::{Context, ensure};
use api::Role;
use e2e::{Studio, fixtures};
use reqwest::StatusCode;

#[tokio::test]
async fn an_annotator_cannot_make_themselves_owner() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Escalation", &["cat"]).await?;
    let annotator = studio.add_user("ann", "long enough password").await?;
    studio.add_member(project.id, "ann", Role::Annotator).await?;
    let client = annotator.cookie_client()?;
    let members_url = studio.api(&format!("/api/projects/{}/members", project.id));
    let response = client
        .post(&members_url)
        .json(&serde_json::json!({"username": "ann", "role": "owner"}))
        .send()
        .await?;
    ensure!(response.status() == StatusCode::FORBIDDEN, "{}", response.status());
    // Renaming the project or changing its classes is the owner's too.
    let response = client
        .patch(studio.api(&format!("/api/projects/{}", project.id)))
        .json(&serde_json::json!({"name": "Mine now"}))
        .send()
        .await?;
    ensure!(response.status() == StatusCode::FORBIDDEN, "{}", response.status());
    let members: Vec<api::Member> = client.get(&members_url).send().await?.json().await?;
    let ann = members.iter().find(|m| m.username == "ann").context("ann listed")?;
    ensure!(ann.role == Role::Annotator, "{members:?}");
    let project_now: api::Project = client
        .get(studio.api(&format!("/api/projects/{}", project.id)))
        .send()
        .await?
        .json()
        .await?;
    ensure!(project_now.name == "Escalation");
    Ok(())
}

#[tokio::test]
async fn a_non_member_cannot_export_or_download_anything() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Private", &["cat"]).await?;
    studio
        .upload(project.id, &[("a.jpg", fixtures::jpeg(64, 48, 1, 3))])
        .await?;
    let model = studio
        .register_reference_model(project.id, "student", "shapes-yolov8n-320.onnx")
        .await?;
    let stranger = studio.add_user("stranger", "long enough password").await?;
    let client = stranger.cookie_client()?;
    for path in [
        format!("/api/projects/{}/export?format=yolo", project.id),
        format!("/api/model-files/{}.onnx", model.sha256),
        format!("/api/models/{}/file", model.id),
    ] {
        let response = client.get(studio.api(&path)).send().await?;
        ensure!(
            response.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            response.status()
        );
    }
    let projects: Vec<api::Project> = client.get(studio.api("/api/projects")).send().await?.json().await?;
    ensure!(projects.is_empty(), "a stranger's project list: {projects:?}");
    Ok(())
}

#[tokio::test]
async fn forged_foreign_and_revoked_credentials_are_refused() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let elsewhere = Studio::start().await?;
    let session_url = studio.api("/api/session");
    let with_cookie = |secret: &str| {
        reqwest::Client::new()
            .get(&session_url)
            .header("cookie", format!("{}={secret}", e2e::accounts::SESSION_COOKIE))
    };
    // Made up, of the right shape; the admin's session of another studio (no shared secret
    // makes it valid here); a token that was never issued.
    let forged = "A".repeat(studio.admin.cookie_secret.len());
    for (what, request) in [
        ("a made-up session", with_cookie(&forged)),
        ("another studio's session", with_cookie(&elsewhere.admin.cookie_secret)),
        (
            "a made-up token",
            reqwest::Client::new()
                .get(&session_url)
                .bearer_auth(format!("dst_{forged}")),
        ),
    ] {
        let response = request.send().await?;
        ensure!(
            response.status() == StatusCode::UNAUTHORIZED,
            "{what}: {}",
            response.status()
        );
    }
    // Logging out ends the session on the server, not just in the browser.
    let session = studio.add_user("leaver", "long enough password").await?;
    let client = session.cookie_client()?;
    ensure!(client.get(&session_url).send().await?.status() == StatusCode::OK);
    let response = client.post(studio.api("/api/logout")).send().await?;
    ensure!(
        response.status() == StatusCode::NO_CONTENT,
        "logout: {}",
        response.status()
    );
    ensure!(client.get(&session_url).send().await?.status() == StatusCode::UNAUTHORIZED);
    // A password change ends the other sessions (a stolen one dies with the old password).
    let first = e2e::accounts::sign_in(&studio.url, "leaver", "long enough password").await?;
    let second = e2e::accounts::sign_in(&studio.url, "leaver", "long enough password").await?;
    let response = second
        .cookie_client()?
        .post(studio.api("/api/me/password"))
        .json(&serde_json::json!({"current": "long enough password", "new": "another long password"}))
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::NO_CONTENT,
        "password: {}",
        response.status()
    );
    ensure!(first.cookie_client()?.get(&session_url).send().await?.status() == StatusCode::UNAUTHORIZED);
    ensure!(second.cookie_client()?.get(&session_url).send().await?.status() == StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_writes_need_the_page_s_token() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    studio.add_user("web", "long enough password").await?;
    let response = reqwest::Client::new()
        .post(studio.api("/api/login"))
        .json(&serde_json::json!({"username": "web", "password": "long enough password"}))
        .send()
        .await?;
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .context("no cookie")?
        .to_owned();
    ensure!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    let session: api::Session = response.json().await?;
    let secret = e2e::accounts::session_cookie(&{
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("set-cookie", cookie.parse()?);
        headers
    })
    .context("secret")?;
    // A form on another site can send the cookie, never the header: refused, nothing made.
    let forged = reqwest::Client::new()
        .post(studio.api("/api/projects"))
        .header("cookie", format!("{}={secret}", e2e::accounts::SESSION_COOKIE))
        .json(&serde_json::json!({"name": "Forged", "classes": []}))
        .send()
        .await?;
    ensure!(forged.status() == StatusCode::FORBIDDEN, "{}", forged.status());
    let body: api::ErrorBody = forged.json().await?;
    ensure!(body.error.code == "csrf_failed", "{body:?}");
    let listed: Vec<api::Project> = studio.get("/api/projects").await?.json().await?;
    ensure!(listed.is_empty(), "{listed:?}");
    // With the page's token it works.
    let made = reqwest::Client::new()
        .post(studio.api("/api/projects"))
        .header("cookie", format!("{}={secret}", e2e::accounts::SESSION_COOKIE))
        .header("x-csrf-token", session.csrf_token)
        .json(&serde_json::json!({"name": "Real", "classes": []}))
        .send()
        .await?;
    ensure!(made.status() == StatusCode::CREATED, "{}", made.status());
    Ok(())
}

#[tokio::test]
async fn password_guessing_is_slowed_per_account() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    studio.add_user("target", "the right password").await?;
    let login = |password: &str| {
        reqwest::Client::new()
            .post(studio.api("/api/login"))
            .json(&serde_json::json!({"username": "target", "password": password}))
            .send()
    };
    let mut statuses = Vec::new();
    for attempt in 0..12 {
        statuses.push(login(&format!("guess number {attempt}")).await?.status());
    }
    ensure!(statuses[0] == StatusCode::UNAUTHORIZED, "{statuses:?}");
    let limited = statuses
        .iter()
        .position(|s| *s == StatusCode::TOO_MANY_REQUESTS)
        .context(format!("never limited: {statuses:?}"))?;
    ensure!(limited <= 10, "limited only after {limited} guesses");
    // While limited, even the right password waits: guessing learns nothing.
    let right = login("the right password").await?;
    ensure!(right.status() == StatusCode::TOO_MANY_REQUESTS, "{}", right.status());
    ensure!(right.headers().contains_key("retry-after"));
    Ok(())
}

#[tokio::test]
async fn no_answer_carries_a_password_hash() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Hashes", &["cat"]).await?;
    studio
        .upload(project.id, &[("a.jpg", fixtures::jpeg(64, 48, 1, 3))])
        .await?;
    studio.add_user("someone", "long enough password").await?;
    studio.add_member(project.id, "someone", Role::Reviewer).await?;
    let routes = e2e::routes::declared()?;
    let mut read = 0;
    for route in routes.iter().filter(|r| r.method == reqwest::Method::GET) {
        if route.path.contains("{") && !route.path.starts_with("/projects/{pid}") {
            continue;
        }
        if route.path.ends_with("/events") {
            continue; // streams
        }
        let path = route.path.replace("{pid}", &project.id.to_string());
        let body = studio.get(&format!("/api{path}")).await?.bytes().await?;
        let text = String::from_utf8_lossy(&body);
        ensure!(
            !text.contains("$argon2") && !text.contains("password_hash"),
            "GET {path} shows a password hash"
        );
        read += 1;
    }
    ensure!(read >= 10, "only {read} answers read");
    Ok(())
}
