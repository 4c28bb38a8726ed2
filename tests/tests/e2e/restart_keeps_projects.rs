//! Stopping the studio (SIGTERM) is graceful, and everything created is there after a restart:
//! projects, classes, images and their boxes, as they were sent.

use e2e::{Studio, fixtures};
use serde_json::json;

#[tokio::test]
async fn restart_keeps_projects() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("studio");
    let studio = Studio::start_in(&data_dir).await?;
    let created: api::Project = studio
        .http()
        .post(studio.api("/api/projects"))
        .json(&json!({"name": "Kept", "classes": [{"name": "cat"}, {"name": "dog", "color": "#00FF00"}]}))
        .send()
        .await?
        .json()
        .await?;
    let (_, uploaded) = studio
        .upload(created.id, &[("kept.png", fixtures::png(120, 80, 3))])
        .await?;
    let image = uploaded[0]["id"].as_i64().unwrap_or_default();
    let put = studio
        .http()
        .put(studio.api(&format!("/api/images/{image}/boxes")))
        .json(&json!({"boxes": [{"class_id": 1, "x0": 10.5, "y0": 20, "x1": 60, "y1": 70.25}]}))
        .send()
        .await?;
    assert!(put.status().is_success());
    let log = studio.log();
    let status = studio.stop().await?;
    assert!(status.success(), "graceful shutdown exits 0, got {status}; log:\n{log}");
    // The metadata is in the data folder's SQLite file unless this run keeps it in PostgreSQL.
    assert_eq!(
        data_dir.join("distillery.db").is_file(),
        e2e::postgres::engine() == e2e::postgres::Engine::Sqlite,
        "SQLite file in the data folder exactly when SQLite is the engine"
    );

    let studio = Studio::start_in(&data_dir).await?;
    let listed: Vec<api::Project> = studio
        .http()
        .get(studio.api("/api/projects"))
        .send()
        .await?
        .json()
        .await?;
    // What was sent before the restart, not what the server answered then.
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].name.as_str()), (created.id, "Kept"));
    let classes: Vec<(u32, &str, &str)> = listed[0]
        .classes
        .iter()
        .map(|c| (c.id, c.name.as_str(), c.color.as_str()))
        .collect();
    assert_eq!(classes.len(), 2, "{classes:?}");
    assert_eq!((classes[0].0, classes[0].1), (0, "cat"));
    assert_eq!(classes[1], (1, "dog", "#00ff00"));
    let images: api::ImagePage = studio
        .http()
        .get(studio.api(&format!("/api/projects/{}/images", created.id)))
        .send()
        .await?
        .json()
        .await?;
    let kept = &images.images[..];
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].file_name.as_str(), kept[0].width, kept[0].height),
        ("kept.png", 120, 80)
    );
    let file = studio
        .http()
        .get(studio.api(&format!("/api/images/{image}/file")))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(
        file.as_ref(),
        fixtures::png(120, 80, 3).as_slice(),
        "the original bytes"
    );
    let boxes: api::ImageBoxes = studio
        .http()
        .get(studio.api(&format!("/api/images/{image}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    let kept_boxes: Vec<(u32, [f64; 4])> = boxes
        .boxes
        .iter()
        .map(|b| (b.class_id, [b.x0, b.y0, b.x1, b.y1]))
        .collect();
    assert_eq!(kept_boxes, [(1, [10.5, 20.0, 60.0, 70.25])]);
    // Ids keep counting after a restart: the next class gets a fresh id.
    let patched: api::Project = studio
        .http()
        .patch(studio.api(&format!("/api/projects/{}", created.id)))
        .json(&json!({"classes": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}, {"name": "bird"}]}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(patched.classes.iter().map(|c| c.id).collect::<Vec<_>>(), [0, 1, 2]);
    Ok(())
}
