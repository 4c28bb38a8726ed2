//! A person signs in through the studio's own form, and later — mid-edit — their session ends
//! on the server (CVAT #1025, Label Studio #6295 lost work exactly so). The box they draw then is
//! kept: the sign-in form opens over the editor, the save indicator says the edit waits, and once
//! they sign in again the edit reaches the server. Class names, file names and review comments
//! full of markup show as text and run nothing (Label Studio CVE-2024-26152).

use anyhow::{Context, ensure};
use api::Role;
use e2e::{Browser, Studio, fixtures};

#[tokio::test]
async fn sign_in_and_keep_edits_across_an_ended_session() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    let outcome = sign_in_and_edit(&browser, &studio).await;
    studio.with_log(browser.finish("sign_in_in_browser", outcome).await)
}

/// What a script planted in a name would set if it ran.
const MARKUP: &str = "<img src=x onerror=\"window.xssRan=1\">";

async fn sign_in_and_edit(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let project = studio.create_project("Sessions", &["cat", MARKUP]).await?;
    let file_name = format!("{MARKUP}.jpg");
    let (status, uploaded) = studio
        .upload(project.id, &[(file_name.as_str(), fixtures::jpeg(320, 240, 1, 5))])
        .await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let image_id = uploaded[0]["id"].as_i64().context("image id")?;
    studio.add_user("ada", "ada's long password").await?;
    studio.add_member(project.id, "ada", Role::Annotator).await?;

    // Nobody is signed in: the studio asks who you are, and a wrong password says so.
    let client = &browser.client;
    client.goto(&studio.url).await?;
    sign_in_with(browser, "ada", "not ada's password").await?;
    browser
        .wait_for_text(".sign-in .form-error", "Wrong username or password")
        .await?;
    sign_in_with(browser, "ada", "ada's long password").await?;
    browser.wait_for_text(".account-name", "ada").await?;
    browser.wait_for_count(".project-card", 1).await?;

    // The editor, with the markup-laden class and file names shown as text.
    client
        .goto(&format!("{}/projects/{}/images/{image_id}", studio.url, project.id))
        .await?;
    browser.wait_for_count(".overlay", 1).await?;
    let page_text = browser.text_of("body").await?;
    ensure!(page_text.contains(MARKUP), "the class name is shown as text");

    // The session ends on the server (as after a password change elsewhere, or expiry).
    let secret = browser_session_secret(browser).await?;
    let response = reqwest::Client::new()
        .post(studio.api("/api/logout"))
        .header("cookie", format!("{}={secret}", e2e::accounts::SESSION_COOKIE))
        .header("x-csrf-token", current_csrf(studio, &secret).await?)
        .send()
        .await?;
    ensure!(response.status() == 204, "server-side logout: {}", response.status());

    // A box drawn now cannot be saved yet — and is not lost.
    let area = browser
        .numbers("const r = document.querySelector('.overlay').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];")
        .await?;
    let at = |fx: f64, fy: f64| (area[0] + area[2] * fx, area[1] + area[3] * fy);
    browser.drag(at(0.2, 0.2), at(0.6, 0.7)).await?;
    browser.wait_for_count(".sign-in-backdrop", 1).await?;
    browser.wait_for_text(".sync", "Signed out — 1 edit waiting").await?;
    let stored: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    ensure!(stored.boxes.is_empty(), "nothing reached the server while signed out");

    // Signing in again over the editor sends it.
    sign_in_with(browser, "ada", "ada's long password").await?;
    browser.wait_for_text(".sync", "Saved").await?;
    let stored: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    ensure!(stored.boxes.len() == 1, "the waiting edit was sent: {stored:?}");
    ensure!(
        stored.boxes[0].author.as_deref() == Some("ada"),
        "authored by the signed-in account: {:?}",
        stored.boxes[0].author
    );

    // A review comment full of markup, shown to the annotator, runs nothing either.
    let reviewer = studio.add_user("rev", "rev's long password").await?;
    studio.add_member(project.id, "rev", Role::Reviewer).await?;
    let client_rev = reviewer.cookie_client()?;
    for status in ["submitted", "rejected"] {
        let mut change = serde_json::json!({"status": status});
        if status == "rejected" {
            change["comment"] = serde_json::json!(MARKUP);
        }
        // The annotator submits through the API as herself would; the reviewer rejects.
        let http = if status == "submitted" {
            e2e::accounts::sign_in(&studio.url, "ada", "ada's long password")
                .await?
                .cookie_client()?
        } else {
            client_rev.clone()
        };
        let response = http
            .post(studio.api(&format!("/api/images/{image_id}/status")))
            .json(&change)
            .send()
            .await?;
        ensure!(response.status().is_success(), "{status}: {}", response.text().await?);
    }
    client.refresh().await?;
    browser.wait_for_count(".overlay", 1).await?;
    browser.wait_for_text("body", MARKUP).await?;
    let ran = browser.numbers("return [window.xssRan ? 1 : 0];").await?;
    ensure!(ran == [0.0], "markup from a name or comment ran as script");
    Ok(())
}

async fn sign_in_with(browser: &Browser, username: &str, password: &str) -> anyhow::Result<()> {
    let user = browser.find("#sign-in-username").await?;
    user.clear().await?;
    user.send_keys(username).await?;
    let pass = browser.find("#sign-in-password").await?;
    pass.clear().await?;
    pass.send_keys(password).await?;
    browser.find(".sign-in button[type=submit]").await?.click().await?;
    Ok(())
}

/// The session cookie the browser holds (HttpOnly: only WebDriver can read it).
async fn browser_session_secret(browser: &Browser) -> anyhow::Result<String> {
    let cookie = browser
        .client
        .get_named_cookie(e2e::accounts::SESSION_COOKIE)
        .await
        .context("the browser holds no session cookie")?;
    Ok(cookie.value().to_owned())
}

async fn current_csrf(studio: &Studio, secret: &str) -> anyhow::Result<String> {
    let session: api::Session = reqwest::Client::new()
        .get(studio.api("/api/session"))
        .header("cookie", format!("{}={secret}", e2e::accounts::SESSION_COOKIE))
        .send()
        .await?
        .json()
        .await?;
    Ok(session.csrf_token)
}

/// A viewer sees a project without the controls that would change it: no upload, import or
/// class editing on the project page, no owner tools on the Models page, and an editor that
/// says it is view only and sends nothing when they draw.
#[tokio::test]
async fn a_viewer_sees_without_being_offered_changes() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    let outcome = view_only(&browser, &studio).await;
    studio.with_log(
        browser
            .finish("a_viewer_sees_without_being_offered_changes", outcome)
            .await,
    )
}

async fn view_only(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let project = studio.create_project("Gallery", &["cat"]).await?;
    let (status, uploaded) = studio
        .upload(project.id, &[("cat.jpg", fixtures::jpeg(320, 240, 1, 9))])
        .await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let image_id = uploaded[0]["id"].as_i64().context("image id")?;
    studio.add_user("vic", "vic's long password").await?;
    studio.add_member(project.id, "vic", Role::Viewer).await?;
    browser.sign_in_as(studio, "vic", "vic's long password").await?;

    let client = &browser.client;
    client.goto(&format!("{}/projects/{}", studio.url, project.id)).await?;
    browser.wait_for_text(".role-note", "viewer").await?;
    browser.wait_for_count(".thumb", 1).await?;
    for owner_only in [
        "#upload-input",
        "#import-input",
        "#member-username",
        "#assign-count",
        "#invite-role",
    ] {
        let found = client.find_all(fantoccini::Locator::Css(owner_only)).await?;
        ensure!(found.is_empty(), "a viewer is offered {owner_only}");
    }
    client
        .goto(&format!("{}/projects/{}/models", studio.url, project.id))
        .await?;
    browser.wait_for_text(".role-note", "Only the project's owners").await?;
    ensure!(
        client
            .find_all(fantoccini::Locator::Css("#start-training"))
            .await?
            .is_empty()
    );

    client
        .goto(&format!("{}/projects/{}/images/{image_id}", studio.url, project.id))
        .await?;
    browser.wait_for_text(".view-only", "View only (viewer)").await?;
    let area = browser
        .numbers("const r = document.querySelector('.overlay').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];")
        .await?;
    let at = |fx: f64, fy: f64| (area[0] + area[2] * fx, area[1] + area[3] * fy);
    browser.drag(at(0.2, 0.2), at(0.6, 0.7)).await?;
    browser.wait_for_text(".notice", "changes are not saved").await?;
    ensure!(
        client
            .find_all(fantoccini::Locator::Css(".overlay rect.box[data-box-id]"))
            .await?
            .is_empty(),
        "the drawn box stays off the page"
    );
    browser.wait_for_text(".sync", "Saved").await?;
    let stored: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    ensure!(stored.boxes.is_empty(), "{stored:?}");
    Ok(())
}

/// An owner makes an invite link in the Members panel; someone without an account opens it,
/// creates one there and lands in the project with the link's role. Joining again through a
/// viewer's link never lowers that role; a revoked link stops working and says so.
#[tokio::test]
async fn join_through_an_invite_link() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    let outcome = join_by_link(&browser, &studio).await;
    studio.with_log(browser.finish("join_through_an_invite_link", outcome).await)
}

async fn join_by_link(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let project = studio.create_project("Team", &["cat"]).await?;
    browser.sign_in(studio).await?;
    let client = &browser.client;
    client.goto(&format!("{}/projects/{}", studio.url, project.id)).await?;
    browser.find("#invite-role").await?.select_by_value("reviewer").await?;
    browser.find(".invite-form button[type=submit]").await?.click().await?;
    browser.wait_for_count(".invite-link", 1).await?;
    browser.wait_for_count(".invite[data-role=reviewer]", 1).await?;
    let link = client
        .execute("return document.querySelector('.invite-link').value", vec![])
        .await?
        .as_str()
        .context("the link")?
        .to_owned();
    ensure!(link.starts_with(&format!("{}/invite/", studio.url)), "{link}");

    // Someone else, signed in nowhere, opens it and creates an account there.
    client.delete_all_cookies().await?;
    client.goto(&link).await?;
    browser.wait_for_text(".invite h2", "Join Team as reviewer").await?;
    browser.find("#invite-username").await?.send_keys("newbie").await?;
    browser
        .find("#invite-password")
        .await?
        .send_keys("newbie's long password")
        .await?;
    browser.find(".invite button[type=submit]").await?.click().await?;
    browser.wait_for_text(".role-note", "reviewer").await?;
    browser.wait_for_text(".account-name", "newbie").await?;
    let members: Vec<api::Member> = studio
        .get(&format!("/api/projects/{}/members", project.id))
        .await?
        .json()
        .await?;
    ensure!(
        members
            .iter()
            .any(|m| m.username == "newbie" && m.role == Role::Reviewer),
        "{members:?}"
    );

    // A viewer's link keeps the reviewer a reviewer; once revoked, it no longer opens.
    let newbie = e2e::accounts::sign_in(&studio.url, "newbie", "newbie's long password").await?;
    let created: api::CreatedInvite = studio
        .http()
        .post(studio.api(&format!("/api/projects/{}/invites", project.id)))
        .json(&serde_json::json!({"role": "viewer", "hours": 2}))
        .send()
        .await?
        .json()
        .await?;
    let accept = studio.api(&format!("/api/invites/{}/accept", created.secret));
    let joined: api::JoinedProject = newbie
        .cookie_client()?
        .post(&accept)
        .json(&serde_json::json!({}))
        .send()
        .await?
        .json()
        .await?;
    ensure!(joined.role == Role::Reviewer, "joining lowered the role: {joined:?}");
    let response = studio
        .http()
        .delete(studio.api(&format!("/api/projects/{}/invites/{}", project.id, created.invite.id)))
        .send()
        .await?;
    ensure!(response.status() == 204, "revoke: {}", response.status());
    let response = reqwest::get(studio.api(&format!("/api/invites/{}", created.secret))).await?;
    ensure!(
        response.status() == 404,
        "a revoked link still opens: {}",
        response.status()
    );
    ensure!(
        response.text().await?.contains("expired or was revoked"),
        "the refusal says why"
    );
    Ok(())
}
