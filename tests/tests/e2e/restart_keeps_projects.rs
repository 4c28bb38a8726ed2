//! Stopping the studio (SIGTERM) is graceful, and everything created is there after a restart.

use e2e::Studio;
use serde_json::json;

#[tokio::test]
async fn restart_keeps_projects() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("studio");
    let http = reqwest::Client::new();

    let studio = Studio::start_in(&data_dir).await?;
    let created: api::Project = http
        .post(studio.api("/api/projects"))
        .json(&json!({"name": "Kept", "classes": [{"name": "cat"}, {"name": "dog", "color": "#00FF00"}]}))
        .send()
        .await?
        .json()
        .await?;
    let log = studio.log();
    let status = studio.stop().await?;
    assert!(status.success(), "graceful shutdown exits 0, got {status}; log:\n{log}");
    assert!(
        data_dir.join("distillery.db").is_file(),
        "SQLite file in the data folder"
    );

    let studio = Studio::start_in(&data_dir).await?;
    let listed: Vec<api::Project> = http.get(studio.api("/api/projects")).send().await?.json().await?;
    assert_eq!(listed, vec![created.clone()]);
    assert_eq!(listed[0].classes[1].color, "#00ff00");
    // Ids keep counting after a restart: the next class gets a fresh id.
    let patched: api::Project = http
        .patch(studio.api(&format!("/api/projects/{}", created.id)))
        .json(&json!({"classes": [{"id": 0, "name": "cat"}, {"name": "bird"}]}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(patched.classes.iter().map(|c| c.id).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(studio.data_dir(), data_dir);
    Ok(())
}
