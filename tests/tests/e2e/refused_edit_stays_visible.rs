//! One bad edit in the save queue costs only itself: the server refuses it (and says why), the
//! edits around it are saved, and the refused one stays listed with its reason — across a
//! reload — until the person dismisses it.

use anyhow::ensure;
use e2e::{Browser, Studio, fixtures};
use serde_json::json;

#[tokio::test]
async fn refused_edit_stays_visible() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Queue", &["thing"]).await?;
    let class_id = project.classes[0].id;
    let (_, uploaded) = studio
        .upload(project.id, &[("photo.png", fixtures::png(300, 200, 4))])
        .await?;
    let image = uploaded[0]["id"].as_i64().unwrap_or_default();
    let editor = format!("{}/projects/{}/images/{image}", studio.url, project.id);

    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = async {
        browser.client.goto(&editor).await?;
        browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
        // Three edits left queued by an earlier page (a class deleted meanwhile in another tab
        // makes the middle one invalid): the queue is what localStorage holds.
        let create = |id: &str, class: u32, x0: f64| {
            json!({"image_id": image, "op": {"op": "create", "box": {"id": id, "class_id": class,
                   "x0": x0, "y0": 20.0, "x1": x0 + 40.0, "y1": 80.0}}})
        };
        let queued = json!([
            create("00000000-0000-4000-8000-00000000000a", class_id, 10.0),
            create("00000000-0000-4000-8000-00000000000b", 999, 100.0),
            create("00000000-0000-4000-8000-00000000000c", class_id, 200.0),
        ]);
        browser
            .client
            .execute(
                "localStorage.setItem('distillery.pending-ops', JSON.stringify(arguments[0]));",
                vec![queued],
            )
            .await?;
        browser.client.refresh().await?;

        browser
            .wait_for_text(".refused-edit", "class 999 is not in this project")
            .await?;
        browser
            .wait_for_text(".sync[data-sync=refused]", "1 edit not saved")
            .await?;
        browser.wait_for_count(".overlay rect.box[data-box-id]", 2).await?;
        let boxes: api::ImageBoxes = studio
            .http()
            .get(studio.api(&format!("/api/images/{image}/boxes")))
            .send()
            .await?
            .json()
            .await?;
        let mut ids: Vec<&str> = boxes.boxes.iter().map(|b| b.id.as_str()).collect();
        ids.sort();
        ensure!(
            ids == [
                "00000000-0000-4000-8000-00000000000a",
                "00000000-0000-4000-8000-00000000000c"
            ],
            "the edits around the refused one are saved: {boxes:?}"
        );

        // Still listed after a reload; gone once dismissed.
        browser.client.refresh().await?;
        browser.wait_for_text(".refused-edit", "not saved").await?;
        browser.find(".refused-edits button").await?.click().await?;
        browser.wait_for_count(".refused-edit", 0).await?;
        browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
        Ok(())
    }
    .await;
    browser.finish("refused_edit_stays_visible", outcome).await
}
