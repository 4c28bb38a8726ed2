//! A person runs the teacher from the Models page and labels with its proposals: the job's
//! progress is pushed to the page until it succeeds; the gallery filters the images the teacher
//! labeled; the editor shows the teacher's boxes dashed
//! (`data-source="teacher"`, with their scores), the source picker hides and shows them, a click
//! accepts one — the very box the teacher stored becomes the person's — and a right-click
//! dismisses one, which deletes it on the server.

use anyhow::{Context, ensure};
use api::BoxSource;
use e2e::{Browser, Studio};

#[tokio::test]
async fn accept_teacher_proposals() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = run(&browser, &studio).await;
    studio.with_log(browser.finish("accept_teacher_proposals", outcome).await)
}

async fn server_boxes(studio: &Studio, image: i64) -> anyhow::Result<Vec<api::BoundingBox>> {
    let boxes: api::ImageBoxes = studio
        .http()
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    Ok(boxes.boxes)
}

async fn run(browser: &Browser, studio: &Studio) -> anyhow::Result<()> {
    let client = &browser.client;
    let project = studio
        .create_project("Teacher in the editor", &["circle", "square", "triangle", "star"])
        .await?;
    let photo = e2e::reference_model_file("shapes/images/test/test_0000.jpg")?;
    let (_, uploaded) = studio.upload(project.id, &[("test_0000.jpg", photo)]).await?;
    let image = uploaded[0]["id"].as_i64().context("image id")?;
    let form = reqwest::multipart::Form::new().text("role", "teacher").part(
        "file",
        reqwest::multipart::Part::bytes(e2e::reference_model_file("shapes-yolov8n-320.onnx")?).file_name("shapes.onnx"),
    );
    let response = studio
        .http()
        .clone()
        .post(studio.api(&format!("/api/projects/{}/models", project.id)))
        .multipart(form)
        .send()
        .await?;
    ensure!(response.status() == 201, "{}", response.text().await?);

    // Run it from the Models page; the page hears the end through the job's event stream.
    client
        .goto(&format!("{}/projects/{}/models", studio.url, project.id))
        .await?;
    browser.find(".run-teacher").await?.click().await?;
    let finished = browser.text_of(".job[data-job-state=succeeded]").await?;
    ensure!(finished.contains("Labeled 1 image with"), "{finished}");
    let stored = server_boxes(studio, image).await?;
    ensure!(
        stored.len() >= 4 && stored.iter().all(|b| b.source == BoxSource::Teacher),
        "the photo's shapes, as teacher boxes: {stored:?}"
    );

    // The gallery can show just the images the teacher labeled.
    client.goto(&format!("{}/projects/{}", studio.url, project.id)).await?;
    browser.wait_for_count(".thumb", 1).await?;
    browser.find("#source-filter").await?.select_by_value("human").await?;
    browser.wait_for_count(".thumb", 0).await?;
    browser.find("#source-filter").await?.select_by_value("teacher").await?;
    browser.wait_for_count(".thumb", 1).await?;

    // The editor shows each as a dashed proposal with its score; no student is needed.
    client
        .goto(&format!("{}/projects/{}/images/{image}", studio.url, project.id))
        .await?;
    let proposals = "rect.proposal[data-source=teacher]";
    let humans = ".overlay rect.box[data-source=human]";
    browser.wait_for_count(proposals, stored.len()).await?;
    ensure!(browser.attributes(humans, "data-box-id").await?.is_empty());
    let scores: Vec<f32> = browser
        .attributes(proposals, "data-score")
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut want: Vec<f32> = stored.iter().filter_map(|b| b.confidence).collect();
    let mut got = scores.clone();
    want.sort_by(f32::total_cmp);
    got.sort_by(f32::total_cmp);
    ensure!(
        got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 6e-4),
        "shown scores {got:?}, stored {want:?}"
    );
    // "Student only" hides the teacher's; back to both.
    browser
        .find("#proposal-sources")
        .await?
        .select_by_value("student")
        .await?;
    browser.wait_for_count(proposals, 0).await?;
    browser.find("#proposal-sources").await?.select_by_value("both").await?;
    browser.wait_for_count(proposals, stored.len()).await?;

    // Click the topmost: the stored teacher box becomes the person's (same id, source human).
    let topmost = client
        .find_all(fantoccini::Locator::Css(proposals))
        .await?
        .pop()
        .context("a proposal")?;
    topmost.click().await?;
    browser.wait_for_count(humans, 1).await?;
    browser.wait_for_count(proposals, stored.len() - 1).await?;
    // Right-click another: dismissed, and deleted on the server.
    client
        .execute(
            "document.querySelector('rect.proposal').dispatchEvent(new MouseEvent('contextmenu', {bubbles: true, cancelable: true}));",
            vec![],
        )
        .await?;
    browser.wait_for_count(proposals, stored.len() - 2).await?;
    browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
    let mut after = server_boxes(studio, image).await?;
    for _ in 0..50 {
        if after.len() == stored.len() - 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = server_boxes(studio, image).await?;
    }
    let accepted: Vec<&api::BoundingBox> = after.iter().filter(|b| b.source == BoxSource::Human).collect();
    ensure!(after.len() == stored.len() - 1, "one dismissed: {after:?}");
    ensure!(
        accepted.len() == 1 && stored.iter().any(|b| b.id == accepted[0].id),
        "the accepted proposal is the teacher's own box, now the person's: {after:?}"
    );
    Ok(())
}
