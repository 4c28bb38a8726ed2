//! Two people label one image at once in two real browsers, as two accounts (CVAT cannot put
//! two people on one job at all, its #3909). Each sees who else is on the image; Ada opened it
//! first and holds its lease, so Bob's screen is read-only until he takes over; a box Ada draws
//! appears on Bob's screen within a second without a reload; after the take-over, boxes both
//! draw at the same time both survive; Ada's undo leaves a box Bob changed since as he made it,
//! while his own undo works, and her History panel tells it as it happens; when Bob changes
//! Ada's box she is told who did; the project page counts each person's work; a
//! reviewer's rejection and its comment reach her screen as they happen.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use api::Role;
use e2e::browser::Modifier;
use e2e::{Browser, Studio, fixtures};

#[tokio::test]
async fn two_annotators_see_each_other_live() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let ada = Browser::start().await?;
    let bob = Browser::start().await?;
    let outcome = collaborate(&studio, &ada, &bob).await;
    let outcome = ada.finish("live_ada", outcome).await;
    studio.with_log(bob.finish("live_bob", outcome).await)
}

const BOX: &str = ".overlay rect.box[data-box-id]";

async fn collaborate(studio: &Studio, ada: &Browser, bob: &Browser) -> anyhow::Result<()> {
    let project = studio.create_project("Together", &["car", "bike"]).await?;
    let (status, uploaded) = studio
        .upload(project.id, &[("street.jpg", fixtures::jpeg(480, 320, 1, 11))])
        .await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let image_id = uploaded[0]["id"].as_i64().context("image id")?;
    for name in ["ada", "bob"] {
        studio.add_user(name, &format!("{name}'s long password")).await?;
        studio.add_member(project.id, name, Role::Annotator).await?;
    }
    let reviewer = studio.add_user("rev", "rev's long password").await?;
    studio.add_member(project.id, "rev", Role::Reviewer).await?;

    let editor = format!("{}/projects/{}/images/{image_id}", studio.url, project.id);
    for (browser, name) in [(ada, "ada"), (bob, "bob")] {
        browser
            .sign_in_as(studio, name, &format!("{name}'s long password"))
            .await?;
        browser.client.goto(&editor).await?;
        browser.wait_for_count(".overlay", 1).await?;
        browser.client.execute("window.notReloaded = true", vec![]).await?;
        if name == "ada" {
            // She opened it first: she holds its lease.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    // Each sees the other on the image; Bob sees that Ada holds it, and cannot draw.
    ada.wait_for_text(".presence", "bob").await?;
    bob.wait_for_text(".presence", "ada").await?;
    bob.wait_for_text(".lease", "ada is editing").await?;
    ensure!(
        ada.client
            .find_all(fantoccini::Locator::Css(".lease"))
            .await?
            .is_empty(),
        "Ada holds the lease: nothing stops her"
    );
    draw(bob, (0.6, 0.6), (0.9, 0.9)).await?;
    bob.wait_for_text(".notice", "ada is editing this image").await?;
    ensure!(
        bob.client.find_all(fantoccini::Locator::Css(BOX)).await?.is_empty(),
        "Bob's box was kept off"
    );

    // Ada draws; once her edit is saved, Bob has it within a second.
    draw(ada, (0.1, 0.1), (0.4, 0.5)).await?;
    ada.wait_for_count(BOX, 1).await?;
    ada.wait_for_text(".sync", "Saved").await?;
    let saved = Instant::now();
    until(bob, Duration::from_secs(1), |n| n == 1)
        .await
        .context("Bob does not see Ada's box within a second")?;
    eprintln!(
        "Ada's box on Bob's screen {} ms after it was saved",
        saved.elapsed().as_millis()
    );

    // Bob takes over explicitly: from then on both edit it, at the same time, different boxes,
    // and both survive, everywhere.
    bob.find(".take-over").await?.click().await?;
    ensure!(
        bob.client
            .find_all(fantoccini::Locator::Css(".lease"))
            .await?
            .is_empty(),
        "Bob may edit now"
    );
    let (a, b) = tokio::join!(draw(ada, (0.55, 0.1), (0.9, 0.4)), draw(bob, (0.5, 0.6), (0.8, 0.9)));
    a?;
    b?;
    for browser in [ada, bob] {
        until(browser, Duration::from_secs(5), |n| n == 3)
            .await
            .context("both new boxes on both screens")?;
    }
    let stored: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    ensure!(stored.boxes.len() == 3, "the server keeps all three: {stored:?}");
    let authors: Vec<Option<String>> = stored.boxes.iter().map(|b| b.author.clone()).collect();
    ensure!(
        authors.iter().filter(|a| a.as_deref() == Some("ada")).count() == 2
            && authors.iter().filter(|a| a.as_deref() == Some("bob")).count() == 1,
        "{authors:?}"
    );

    // Bob relabels Ada's newer box. Undo is per person: her Ctrl+Z of drawing it leaves it as
    // Bob made it (and says so); his own Ctrl+Z still takes back his change, on both screens.
    let bike = project.classes[1].id;
    let newer = stored
        .boxes
        .iter()
        .filter(|b| b.author.as_deref() == Some("ada"))
        .max_by(|a, b| a.x0.total_cmp(&b.x0))
        .context("Ada's newer box")?;
    let newer_rect = format!(".overlay rect.box[data-box-id='{}']", newer.id);
    bob.find(&newer_rect).await?.click().await?;
    bob.press(&[], '2').await?;
    let relabelled = format!("{newer_rect}[data-class-id='{bike}']");
    ada.wait_for_count(&relabelled, 1).await?;
    ada.press(&[Modifier::Control], 'z').await?;
    ada.wait_for_text(".notice", "as bob changed it after you").await?;
    ada.wait_for_text(".sync", "Saved").await?;
    ensure!(
        ada.client.find_all(fantoccini::Locator::Css(&relabelled)).await?.len() == 1,
        "Ada's undo left Bob's change"
    );
    let class_on_server = |boxes: &api::ImageBoxes| boxes.boxes.iter().find(|b| b.id == newer.id).map(|b| b.class_id);
    let now: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    ensure!(
        class_on_server(&now) == Some(bike),
        "the server keeps Bob's class: {now:?}"
    );
    // Ada's History panel tells the story, and follows what happens next without a reload.
    ada.find(".audit-toggle").await?.click().await?;
    ada.wait_for_text(".audit-entries", "bob changed a box from car to bike")
        .await?;
    bob.press(&[Modifier::Control], 'z').await?;
    let car = format!("{newer_rect}[data-class-id='{}']", project.classes[0].id);
    ada.wait_for_count(&car, 1).await?;
    bob.wait_for_text(".sync", "Saved").await?;
    ada.wait_for_text(".audit-entries li:first-child", "bob changed a box from bike to car")
        .await?;
    let now: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    ensure!(
        class_on_server(&now) == Some(project.classes[0].id) && now.boxes.len() == 3,
        "Bob's undo reached the server: {now:?}"
    );

    // Bob deletes Ada's first box: she is told who did.
    let first = stored
        .boxes
        .iter()
        .find(|b| b.author.as_deref() == Some("ada"))
        .context("a box of Ada's")?;
    bob.find(&format!(".overlay rect.box[data-box-id='{}']", first.id))
        .await?
        .click()
        .await?;
    bob.press(&[], '\u{E017}').await?; // Delete
    until(ada, Duration::from_secs(5), |n| n == 2)
        .await
        .context("the deletion reaches Ada")?;
    ada.wait_for_text(".notice", "bob deleted a box you drew").await?;

    // Bob submits the image; the reviewer rejects it with a comment: Ada, still on it, sees
    // both as they happen.
    bob.find(".editor-bar button.primary").await?.click().await?;
    ada.wait_for_text(".badge[data-status]", "Submitted").await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: api::ImageInfo = studio.get(&format!("/api/images/{image_id}")).await?.json().await?;
        if info.status == api::ImageStatus::Submitted {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "Ada's submission did not arrive: {:?}",
            info.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = reviewer
        .cookie_client()?
        .post(studio.api(&format!("/api/images/{image_id}/status")))
        .json(&serde_json::json!({"status": "rejected", "comment": "the bike is missing"}))
        .send()
        .await?;
    ensure!(response.status().is_success(), "reject: {}", response.text().await?);
    ada.wait_for_text(".review-comment", "the bike is missing").await?;
    ada.wait_for_text(".badge[data-status]", "Rejected").await?;
    ada.wait_for_text(".notice", "rev marked this image rejected").await?;
    let kept = ada.client.execute("return window.notReloaded === true", vec![]).await?;
    ensure!(kept == serde_json::json!(true), "Ada's page reloaded");

    // The project page counts each person's work; with the only image judged, Label next says
    // nothing is left.
    ada.client
        .goto(&format!("{}/projects/{}", studio.url, project.id))
        .await?;
    for (person, count, value) in [
        ("bob", "labeled", "1"),
        ("bob", "rejected", "1"),
        ("rev", "reviewed", "1"),
        ("ada", "labeled", "0"),
    ] {
        ada.wait_for_text(
            &format!(".contributions tr[data-username={person}] td[data-count={count}]"),
            value,
        )
        .await
        .with_context(|| format!("{person}'s {count}"))?;
    }
    ada.find(".label-next").await?.click().await?;
    ada.wait_for_text(".work-notice", "Every image is labeled").await?;
    Ok(())
}

/// Drags a new box between two fractions of the image.
async fn draw(browser: &Browser, from: (f64, f64), to: (f64, f64)) -> anyhow::Result<()> {
    let area = browser
        .numbers("const r = document.querySelector('.overlay').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];")
        .await?;
    let at = |(fx, fy): (f64, f64)| (area[0] + area[2] * fx, area[1] + area[3] * fy);
    browser.drag(at(from), at(to)).await
}

/// Waits until the number of boxes on `browser`'s screen satisfies `wanted`.
async fn until(browser: &Browser, limit: Duration, wanted: impl Fn(usize) -> bool) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let count = browser.client.find_all(fantoccini::Locator::Css(BOX)).await?.len();
        if wanted(count) {
            return Ok(());
        }
        ensure!(started.elapsed() < limit, "{count} boxes after {limit:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
