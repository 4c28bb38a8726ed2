//! Several people working through one project: "Next" never hands two annotators the same image
//! and skips an image someone has open (DESIGN: "the queue hands each annotator the top-ranked
//! image that nobody else holds"); submitted images reach the reviewers' queue oldest first, and
//! a rejected one goes back to the top of its annotator's queue; images an owner assigns go to
//! their annotator first and to nobody else;
//! approvals and rejections show up in each person's counts; the image's audit log says who
//! changed what, when, with the box before and after.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use api::{AuditChange, Contribution, ImageHistory, NextImage, Role};
use e2e::live::LiveClient;
use e2e::{Studio, fixtures};
use serde_json::json;

#[tokio::test]
async fn next_review_counts_and_history() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Shared", &["car", "bike"]).await?;
    let (car, bike) = (project.classes[0].id, project.classes[1].id);
    let images = upload_images(&studio, project.id, 6).await?;

    let mut people = Vec::new();
    for (name, role) in [
        ("ann", Role::Annotator),
        ("ben", Role::Annotator),
        ("cat", Role::Annotator),
        ("rev", Role::Reviewer),
        ("vic", Role::Viewer),
    ] {
        let session = studio.add_user(name, &format!("{name}'s long password")).await?;
        studio.add_member(project.id, name, role).await?;
        people.push(session.cookie_client()?);
    }
    let [ann, ben, cat, rev, vic] = <[reqwest::Client; 5]>::try_from(people).map_err(|_| anyhow::anyhow!("five"))?;
    let next = |client: &reqwest::Client, query: &str| {
        let request = client.get(studio.api(&format!("/api/projects/{}/next?{query}", project.id)));
        async move {
            let response = request.send().await?;
            ensure!(response.status() == 200, "next: {}", response.text().await?);
            anyhow::Ok(response.json::<NextImage>().await?)
        }
    };

    // Cat has image 0 open in the editor (its live connection holds the lease).
    let token = studio
        .add_user("cat-script", "cat script's long password")
        .await?
        .create_token(&studio.url, "editor")
        .await?;
    studio.add_member(project.id, "cat-script", Role::Annotator).await?;
    let mut cats_editor = LiveClient::connect(&studio.url, &token.token, project.id, 0, Some(images[0]), None).await?;
    cats_editor
        .until(Duration::from_secs(10), |e| {
            matches!(e, api::LiveEvent::Presence { people } if people.iter().any(|p| p.editing && p.image_id == Some(images[0])))
        })
        .await?;

    // Ann and Ben press Next at the same moment: two different images, neither Cat's.
    let (a, b) = tokio::join!(next(&ann, "mode=label"), next(&ben, "mode=label"));
    let (a, b) = (
        a?.image_id.context("Ann got nothing")?,
        b?.image_id.context("Ben got nothing")?,
    );
    ensure!(a != b, "Ann and Ben were both handed image {a}");
    ensure!(
        a != images[0] && b != images[0],
        "image {} is open in Cat's editor",
        images[0]
    );
    // Asking again, Ann is handed the same image (it is hers for now), and `after` moves past it.
    ensure!(
        next(&ann, "mode=label").await?.image_id == Some(a),
        "Ann's image changed"
    );
    let moved_on = next(&ann, &format!("mode=label&after={a}")).await?.image_id;
    ensure!(
        moved_on.is_some_and(|m| ![a, b, images[0]].contains(&m)),
        "after={a} gave {moved_on:?}"
    );

    // Ann labels and submits her image; Ben labels and submits his.
    for (client, image, class) in [(&ann, a, car), (&ben, b, bike)] {
        let response = client
            .post(studio.api(&format!("/api/images/{image}/ops")))
            .json(&json!({"ops": [{"op": "create", "box": {"class_id": class, "x0": 5, "y0": 5, "x1": 40, "y1": 30}}]}))
            .send()
            .await?;
        ensure!(response.status().is_success(), "ops: {}", response.text().await?);
        let response = client
            .post(studio.api(&format!("/api/images/{image}/status")))
            .json(&json!({"status": "submitted"}))
            .send()
            .await?;
        ensure!(response.status().is_success(), "submit: {}", response.text().await?);
    }
    // Labeled images leave the labeling queue: nobody is handed them again.
    let mut handed = HashSet::new();
    for _ in 0..4 {
        if let Some(id) = next(&cat, &format!("mode=label&after={}", images[0])).await?.image_id {
            handed.insert(id);
        }
    }
    ensure!(
        !handed.contains(&a) && !handed.contains(&b),
        "a submitted image was handed out: {handed:?}"
    );

    // The reviewer's queue: oldest submission first; annotators and viewers have none.
    ensure!(next(&rev, "mode=review").await?.image_id == Some(a), "review queue");
    for client in [&ann, &vic] {
        let response = client
            .get(studio.api(&format!("/api/projects/{}/next?mode=review", project.id)))
            .send()
            .await?;
        ensure!(
            response.status() == 403,
            "a non-reviewer reviews: {}",
            response.status()
        );
    }
    for (image, decision) in [
        (a, json!({"status": "approved"})),
        (b, json!({"status": "rejected", "comment": "not a bike"})),
    ] {
        let response = rev
            .post(studio.api(&format!("/api/images/{image}/status")))
            .json(&decision)
            .send()
            .await?;
        ensure!(response.status().is_success(), "review: {}", response.text().await?);
    }
    ensure!(
        next(&rev, "mode=review").await?.image_id.is_none(),
        "nothing left to review"
    );
    // A rejected image goes back to whoever submitted it, first in their queue — nobody else's.
    ensure!(
        next(&ben, "mode=label").await?.image_id == Some(b),
        "Ben's image to fix"
    );
    let anns = next(&ann, &format!("mode=label&after={a}")).await?.image_id;
    ensure!(anns != Some(b), "Ann got Ben's image to fix");

    // Each person's counts.
    let counts: Vec<Contribution> = rev
        .get(studio.api(&format!("/api/projects/{}/contributions", project.id)))
        .send()
        .await?
        .json()
        .await?;
    let of = |name: &str| {
        counts
            .iter()
            .find(|c| c.username == name)
            .map(|c| (c.labeled, c.approved, c.rejected, c.reviewed))
    };
    ensure!(of("ann") == Some((1, 1, 0, 0)), "ann: {counts:?}");
    ensure!(of("ben") == Some((1, 0, 1, 0)), "ben: {counts:?}");
    ensure!(of("rev") == Some((0, 0, 0, 2)), "rev: {counts:?}");
    ensure!(of("vic") == Some((0, 0, 0, 0)), "every member is listed: {counts:?}");

    // Ben's image's history, newest first: the rejection with its comment, his submission, his
    // box — who, and what it was before and after.
    let history: ImageHistory = vic
        .get(studio.api(&format!("/api/images/{b}/history")))
        .send()
        .await?
        .json()
        .await?;
    let story: Vec<(Option<&str>, String)> = history
        .entries
        .iter()
        .map(|e| {
            (
                e.author.as_deref(),
                e.change
                    .describe(|id| if id == car { "car".into() } else { "bike".into() }),
            )
        })
        .collect();
    ensure!(
        story
            == [
                (Some("rev"), "rejected it: not a bike".to_owned()),
                (Some("ben"), "submitted it".to_owned()),
                (Some("ben"), "drew a bike box".to_owned()),
            ],
        "{story:?}"
    );
    ensure!(
        matches!(&history.entries[2].change, AuditChange::Box { before: None, after: Some(after), .. } if after.x1 == 40.0),
        "{history:?}"
    );
    ensure!(
        history.entries.iter().all(|e| e.at.ends_with('Z')),
        "times are UTC: {history:?}"
    );
    cats_editor.close().await?;
    Ok(())
}

/// An owner assigns images to one annotator: "Next" gives them those first and never to anyone
/// else; a viewer cannot be assigned any; taken back, they can go to someone else.
#[tokio::test]
async fn assigned_images_go_to_their_annotator() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Assigned", &["car"]).await?;
    let images = upload_images(&studio, project.id, 5).await?;
    let mut clients = Vec::new();
    for (name, role) in [
        ("ann", Role::Annotator),
        ("ben", Role::Annotator),
        ("vic", Role::Viewer),
    ] {
        let session = studio.add_user(name, &format!("{name}'s long password")).await?;
        studio.add_member(project.id, name, role).await?;
        clients.push(session.cookie_client()?);
    }
    let assign = |username: &str, count: u32| {
        let request = studio
            .http()
            .post(studio.api(&format!("/api/projects/{}/assignments", project.id)))
            .json(&json!({"username": username, "count": count}));
        async move { anyhow::Ok(request.send().await?) }
    };
    let next = |client: &reqwest::Client, after: Option<i64>| {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let request = client.get(studio.api(&format!("/api/projects/{}/next?mode=label{after}", project.id)));
        async move { anyhow::Ok(request.send().await?.json::<NextImage>().await?.image_id) }
    };

    let response = assign("ann", 2).await?;
    ensure!(response.status() == 200, "assign: {}", response.text().await?);
    let done: api::Assignment = response.json().await?;
    ensure!(done.added == 2 && done.to_do == 2, "{done:?}");
    // Ann's first two are hers, in upload order.
    ensure!(next(&clients[0], None).await? == Some(images[0]), "Ann's first");
    ensure!(
        next(&clients[0], Some(images[0])).await? == Some(images[1]),
        "Ann's second"
    );
    // Ben is never offered Ann's.
    let mut bens = HashSet::new();
    let mut after = None;
    for _ in 0..4 {
        if let Some(id) = next(&clients[1], after).await? {
            bens.insert(id);
            after = Some(id);
        }
    }
    ensure!(
        !bens.contains(&images[0]) && !bens.contains(&images[1]),
        "Ben got Ann's: {bens:?}"
    );
    let counts: Vec<Contribution> = clients[2]
        .get(studio.api(&format!("/api/projects/{}/contributions", project.id)))
        .send()
        .await?
        .json()
        .await?;
    ensure!(counts.iter().any(|c| c.username == "ann" && c.to_do == 2), "{counts:?}");

    // A viewer cannot label, a stranger is no member: both refused, with the reason.
    for (name, code) in [("vic", "cannot_label"), ("nobody", "not_a_member")] {
        let response = assign(name, 1).await?;
        ensure!(response.status() == 422, "{name}: {}", response.status());
        ensure!(response.text().await?.contains(code), "{name}'s refusal says why");
    }
    // Taken back, they are free again: assigning Ben two gives him those very images.
    let done: api::Assignment = assign("ann", 0).await?.json().await?;
    ensure!(done.to_do == 0, "{done:?}");
    let done: api::Assignment = assign("ben", 2).await?.json().await?;
    ensure!(done.added == 2, "{done:?}");
    ensure!(
        next(&clients[1], None).await? == Some(images[0]),
        "Ben's first assigned image"
    );
    Ok(())
}

/// The Work panel in a browser: the owner assigns images to an annotator and the table shows
/// what they have to do.
#[tokio::test]
async fn assign_in_the_work_panel() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Panel", &["car"]).await?;
    upload_images(&studio, project.id, 3).await?;
    studio.add_user("ann", "ann's long password").await?;
    studio.add_member(project.id, "ann", Role::Annotator).await?;
    let browser = e2e::Browser::start().await?;
    let outcome = async {
        browser.sign_in(&studio).await?;
        browser
            .client
            .goto(&format!("{}/projects/{}", studio.url, project.id))
            .await?;
        let count = browser.find("#assign-count").await?;
        count.clear().await?;
        count.send_keys("2").await?;
        browser.find("#assign-user option[value=ann]").await?;
        browser.find("#assign-user").await?.select_by_value("ann").await?;
        browser.find(".assign-form button[type=submit]").await?.click().await?;
        browser
            .wait_for_text(".assign-outcome", "2 images assigned to ann (2 to do)")
            .await?;
        browser
            .wait_for_text(".contributions tr[data-username=ann] td[data-count=to_do]", "2")
            .await?;
        anyhow::Ok(())
    }
    .await;
    browser.finish("assign_in_the_work_panel", outcome).await
}

/// Uploads `count` small distinct photos; their ids in upload order.
async fn upload_images(studio: &Studio, project_id: i64, count: u8) -> anyhow::Result<Vec<i64>> {
    let files: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| (format!("{i}.jpg"), fixtures::jpeg(96, 64, 1, i)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, uploaded) = studio.upload(project_id, &refs).await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let mut images: Vec<i64> = uploaded
        .as_array()
        .context("uploaded")?
        .iter()
        .filter_map(|f| f["id"].as_i64())
        .collect();
    ensure!(images.len() == usize::from(count), "{uploaded}");
    images.sort_unstable();
    Ok(images)
}
