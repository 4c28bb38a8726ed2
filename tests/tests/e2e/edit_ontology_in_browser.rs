//! A person edits the ontology on the project page: renames a class, removes one that boxes use
//! (the studio asks where those boxes go), changes the split, renames the project, and imports a
//! dataset zip — each checked through the API afterwards.

use std::io::{Cursor, Write};

use e2e::{Browser, Studio, fixtures};
use fantoccini::Locator;
use serde_json::json;

#[tokio::test]
async fn edit_ontology_in_browser() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Traffic", &["car", "person", "bus"]).await?;
    let (_, uploaded) = studio
        .upload(project.id, &[("street.png", fixtures::png(100, 80, 1))])
        .await?;
    let image = uploaded[0]["id"].as_i64().unwrap_or_default();
    studio
        .http()
        .clone()
        .put(studio.api(&format!("/api/images/{image}/boxes")))
        .json(&json!({"boxes": [{"class_id": 1, "x0": 10, "y0": 10, "x1": 40, "y1": 60}]}))
        .send()
        .await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = edit(&browser, &studio, project.id, image).await;
    studio.with_log(browser.finish("edit_ontology_in_browser", outcome).await)
}

async fn edit(browser: &Browser, studio: &Studio, project_id: i64, image: i64) -> anyhow::Result<()> {
    let client = &browser.client;
    client.goto(&format!("{}/projects/{project_id}", studio.url)).await?;
    let first_name = browser.find("tr[data-class-id='0'] input.class-name").await?;
    first_name.clear().await?;
    first_name.send_keys("automobile").await?;
    // Remove "person" (it has a box): saving is refused until the box has somewhere to go.
    browser
        .find("tr[data-class-id='1'] button.danger")
        .await?
        .click()
        .await?;
    browser.find("#save-classes").await?.click().await?;
    browser.wait_for_text(".form-error", "has 1 boxes").await?;
    let fate = browser.find("select.fate").await?;
    fate.select_by_value("2").await?;
    browser.find("#save-classes").await?.click().await?;
    browser.wait_for_text(".form-actions .ok", "Saved").await?;
    let project: api::Project = studio
        .http()
        .get(studio.api(&format!("/api/projects/{project_id}")))
        .send()
        .await?
        .json()
        .await?;
    let classes: Vec<(u32, &str)> = project.classes.iter().map(|c| (c.id, c.name.as_str())).collect();
    anyhow::ensure!(classes == [(0, "automobile"), (2, "bus")], "classes {classes:?}");
    let boxes: api::ImageBoxes = studio
        .http()
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        boxes.boxes.len() == 1 && boxes.boxes[0].class_id == 2,
        "the person box moved to bus: {boxes:?}"
    );

    // Split 70/20/10 and a new seed.
    for (index, value) in ["70", "20", "10", "42"].iter().enumerate() {
        let input = browser
            .find(&format!(".split-form label:nth-of-type({}) input", index + 1))
            .await?;
        input.clear().await?;
        input.send_keys(value).await?;
    }
    client.find(Locator::Css(".split-form button")).await?.click().await?;
    browser.wait_for_text(".split-form + p + p.ok", "Saved").await?;
    let project: api::Project = studio
        .http()
        .get(studio.api(&format!("/api/projects/{project_id}")))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        (
            project.split.train_pct,
            project.split.val_pct,
            project.split.test_pct,
            project.split_seed
        ) == (70, 20, 10, 42),
        "split {:?} seed {}",
        project.split,
        project.split_seed
    );

    // Import a small YOLO zip through the page.
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in [
        ("data.yaml", b"names: [automobile, bicycle]\n".to_vec()),
        ("images/train/new.png", fixtures::png(60, 40, 7)),
        ("labels/train/new.txt", b"1 0.5 0.5 0.5 0.5\n".to_vec()),
    ] {
        writer.start_file(name, zip::write::SimpleFileOptions::default())?;
        writer.write_all(&bytes)?;
    }
    let folder = tempfile::tempdir()?;
    let zip_path = folder.path().join("more.zip");
    std::fs::write(&zip_path, writer.finish()?.into_inner())?;
    browser
        .find("#import-input")
        .await?
        .send_keys(&zip_path.display().to_string())
        .await?;
    browser.wait_for_text(".import-report", "1 added, 1 boxes").await?;
    browser.wait_for_count(".thumb", 2).await?;

    // Rename the project.
    let rename = browser.find("#project-rename").await?;
    rename.clear().await?;
    rename.send_keys("Traffic 2026").await?;
    client
        .find(Locator::Css("#project-rename + button"))
        .await?
        .click()
        .await?;
    browser.wait_for_text("h1", "Traffic 2026").await?;
    Ok(())
}
