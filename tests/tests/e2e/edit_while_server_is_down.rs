//! The server goes away while someone is labeling: the editor says it is offline, keeps the
//! edits, and delivers them when the server is back — nothing is lost: not when "no objects"
//! and then a box were queued together, not across a reload of the page.

use e2e::{Browser, Studio, fixtures};

#[tokio::test]
async fn edit_while_server_is_down() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("studio");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let studio = Studio::start_at(&data_dir, &addr).await?;
    let project = studio.create_project("Unstable", &["thing"]).await?;
    let (_, uploaded) = studio
        .upload(project.id, &[("photo.png", fixtures::png(300, 200, 4))])
        .await?;
    let image = uploaded[0]["id"].as_i64().unwrap_or_default();
    let (_, uploaded) = studio
        .upload(project.id, &[("second.png", fixtures::png(300, 200, 9))])
        .await?;
    let second = uploaded[0]["id"].as_i64().unwrap_or_default();

    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = async {
        browser.client.goto(&format!("{}/projects/{}/images/{image}", studio.url, project.id)).await?;
        browser.wait_for_count(".overlay", 1).await?;
        let area = browser
            .numbers("const r = document.querySelector('.overlay').getBoundingClientRect(); return [r.left, r.top, r.width, r.height];")
            .await?;
        let at = |fx: f64, fy: f64| (area[0] + area[2] * fx, area[1] + area[3] * fy);
        browser.drag(at(0.1, 0.1), at(0.3, 0.3)).await?;
        browser.wait_for_count(".sync[data-sync=saved]", 1).await?;

        let status = studio.stop().await?;
        anyhow::ensure!(status.success(), "server stopped with {status}");
        browser.drag(at(0.5, 0.5), at(0.8, 0.9)).await?;
        browser.wait_for_text(".sync[data-sync=offline]", "1 edit waiting").await?;
        browser.wait_for_count(".overlay rect.box[data-box-id]", 2).await?;

        let studio = Studio::start_at(&data_dir, &addr).await?;
        browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
        let boxes: api::ImageBoxes = studio.http().get(studio.api(&format!("/api/images/{image}/boxes"))).send().await?.json().await?;
        anyhow::ensure!(boxes.boxes.len() == 2, "both boxes reached the server: {boxes:?}");

        // On the second image, offline: "no objects" (N), then a box after all. Both go in one
        // queue; the flag must land before the box, not after it (which the server refuses:
        // an image with boxes cannot be a negative).
        let next = second;
        browser.client.goto(&format!("{}/projects/{}/images/{next}", studio.url, project.id)).await?;
        browser.wait_for_count(".overlay", 1).await?;
        browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
        let status = studio.stop().await?;
        anyhow::ensure!(status.success(), "server stopped with {status}");
        browser.press(&[], 'n').await?;
        browser.drag(at(0.2, 0.2), at(0.6, 0.7)).await?;
        browser.wait_for_text(".sync[data-sync=offline]", "2 edits waiting").await?;
        // Reload while the server is still away: the page cannot load, the queue is in
        // localStorage. Then the server returns and the editor is opened again.
        let _ = browser.client.refresh().await;
        let studio = Studio::start_at(&data_dir, &addr).await?;
        browser.client.goto(&format!("{}/projects/{}/images/{next}", studio.url, project.id)).await?;
        browser.wait_for_count(".overlay rect.box[data-box-id]", 1).await?;
        browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
        let boxes: api::ImageBoxes = studio.http().get(studio.api(&format!("/api/images/{next}/boxes"))).send().await?.json().await?;
        anyhow::ensure!(
            boxes.boxes.len() == 1 && !boxes.negative,
            "the box drawn after N reached the server, and the image has objects: {boxes:?}"
        );
        anyhow::ensure!(browser.attributes(".refused-edit", "data-image-id").await?.is_empty(), "nothing refused");
        Ok(())
    }
    .await;
    browser.finish("edit_while_server_is_down", outcome).await
}
