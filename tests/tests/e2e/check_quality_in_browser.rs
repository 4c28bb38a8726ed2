//! A reviewer checks a model's quality and fixes label errors in the browser: the Quality page
//! follows the evaluation job and then shows the server's mAP, a precision–recall curve per
//! labelled class and the confusion matrix; the editor of an approved image with a planted wrong
//! class outlines it with the model's reason, and one click fixes it on the server; on another
//! image a deleted box comes back as a "missed" suspicion, and "Label is right" stores the
//! person's verdict so the server raises it no more.

use anyhow::{Context, ensure};
use api::{ImageLabelErrors, ProjectEvaluation};
use e2e::{Browser, Studio};
use serde_json::json;

use crate::evaluate_models::{Surest, approved_shapes_test_set, register, settled_evaluation, surest_agreeing_boxes};

#[tokio::test]
async fn check_quality_in_browser() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = run(&browser, &studio).await;
    studio.with_log(browser.finish("check_quality_in_browser", outcome).await)
}

async fn run(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let client = &browser.client;
    let classes = ["circle", "square", "triangle", "star"];
    let project = studio.create_project("Quality", &classes).await?;
    let pid = project.id;
    let images = approved_shapes_test_set(studio, pid, 6).await?;
    let surest = surest_agreeing_boxes(studio, &images).await?;
    let [wrong, missed, ..] = surest.as_slice() else {
        anyhow::bail!("two images with a confident detection: {}", surest.len());
    };
    let http = studio.http().clone();
    // A wrong class on one image, a deleted box on another.
    let wrong_class = (wrong.class_id + 1) % classes.len() as u32;
    let [x0, y0, x1, y1] = wrong.corners;
    let ops = |image: i64, op: serde_json::Value| {
        http.post(studio.api(&format!("/api/images/{image}/ops")))
            .json(&json!({"ops": [op]}))
            .send()
    };
    let relabelled = ops(
        wrong.image_id,
        json!({"op": "update", "box": {"id": wrong.box_id, "class_id": wrong_class, "x0": x0, "y0": y0, "x1": x1, "y1": y1}}),
    )
    .await?;
    ensure!(relabelled.status() == 200, "{}", relabelled.text().await?);
    let Surest {
        image_id: missed_image,
        box_id: missed_box,
        ..
    } = missed;
    let deleted = ops(
        *missed_image,
        json!({"op": "delete", "box": {"id": missed_box, "class_id": 0, "x0": 0, "y0": 0, "x1": 0, "y1": 0}}),
    )
    .await?;
    ensure!(deleted.status() == 200, "{}", deleted.text().await?);
    let teacher = register(studio, pid, "teacher").await?;

    // The Quality page: reached from the project page, it waits for the evaluation, then shows it.
    client.goto(&format!("{}/projects/{pid}", studio.url)).await?;
    browser.find("#quality-link").await?.click().await?;
    let card = format!(".quality-model[data-model-id='{}']", teacher.id);
    browser.find(&card).await?;
    let evaluation: ProjectEvaluation = settled_evaluation(studio, pid).await?;
    let figures = evaluation.models.first().context("the teacher's figures")?;
    ensure!(figures.evaluated_images == 6, "{figures:?}");
    browser
        .wait_for_text(&format!("{card} .map50"), &format!("{:.3}", figures.map50))
        .await?;
    let labelled = figures.classes.iter().filter(|c| c.truths > 0).count();
    browser
        .wait_for_count(&format!("{card} svg.pr-curve polyline.curve"), labelled)
        .await?;
    // A square matrix over the classes and background.
    browser
        .wait_for_count(&format!("{card} table.confusion td"), (classes.len() + 1).pow(2))
        .await?;

    // The editor of the image with the wrong class: outlined, explained, fixed in one click.
    client
        .goto(&format!("{}/projects/{pid}/images/{}", studio.url, wrong.image_id))
        .await?;
    let entry = ".label-errors li[data-suspicion=wrong_class]";
    let reason = browser.text_of(entry).await?;
    ensure!(
        reason.contains(classes[wrong.class_id as usize]) && reason.contains(classes[wrong_class as usize]),
        "{reason}"
    );
    browser
        .wait_for_count("rect.suspicion[data-suspicion=wrong_class]", 1)
        .await?;
    browser.find(&format!("{entry} .fix-label")).await?.click().await?;
    browser.wait_for_count(entry, 0).await?;
    let mut fixed = false;
    for _ in 0..100 {
        let boxes: api::ImageBoxes = studio
            .http()
            .get(studio.api(&format!("/api/images/{}/boxes", wrong.image_id)))
            .send()
            .await?
            .json()
            .await?;
        if boxes
            .boxes
            .iter()
            .any(|b| b.id == wrong.box_id && b.class_id == wrong.class_id)
        {
            fixed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(fixed, "the box has its class back on the server");

    // The image with a deleted box: the model says something is missed; the person says no.
    client
        .goto(&format!("{}/projects/{pid}/images/{missed_image}", studio.url))
        .await?;
    let entry = ".label-errors li[data-suspicion=missed]";
    browser
        .wait_for_count("rect.suspicion[data-suspicion=missed]", 1)
        .await?;
    let key = browser
        .attributes(entry, "data-key")
        .await?
        .into_iter()
        .next()
        .context("a missed suspicion")?;
    browser.find(&format!("{entry} .confirm-label")).await?.click().await?;
    browser.wait_for_count(entry, 0).await?;
    let after: ImageLabelErrors = studio
        .http()
        .get(studio.api(&format!("/api/images/{missed_image}/label-errors")))
        .send()
        .await?
        .json()
        .await?;
    ensure!(after.suspicions.iter().all(|s| s.key != key), "{after:?}");
    Ok(())
}
