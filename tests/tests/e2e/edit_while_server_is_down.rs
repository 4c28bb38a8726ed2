//! The server goes away while someone is labeling: the editor says it is offline, keeps the
//! edits, and delivers them when the server is back — nothing is lost.

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

    let browser = Browser::start().await?;
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
        browser.wait_for_text(".sync[data-sync=offline]", "1 edits waiting").await?;
        browser.wait_for_count(".overlay rect.box[data-box-id]", 2).await?;

        let studio = Studio::start_at(&data_dir, &addr).await?;
        browser.wait_for_count(".sync[data-sync=saved]", 1).await?;
        let boxes: api::ImageBoxes = reqwest::get(studio.api(&format!("/api/images/{image}/boxes"))).await?.json().await?;
        anyhow::ensure!(boxes.boxes.len() == 2, "both boxes reached the server: {boxes:?}");
        Ok(())
    }
    .await;
    if outcome.is_err()
        && let Some(path) = browser.screenshot("edit_while_server_is_down").await
    {
        eprintln!("screenshot: {}", path.display());
    }
    browser.quit().await?;
    outcome
}
