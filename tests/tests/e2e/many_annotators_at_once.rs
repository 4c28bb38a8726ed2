//! Many people saving at the same moment: every edit is accepted (SQLite serialises writers;
//! none may fail with "database is locked").

use e2e::{Studio, fixtures};
use serde_json::json;

#[tokio::test]
async fn many_annotators_at_once() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Busy", &["thing"]).await?;
    let files: Vec<(String, Vec<u8>)> = (0..8u8)
        .map(|i| (format!("{i}.png"), fixtures::png(64, 64, i)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (_, uploaded) = studio.upload(project.id, &refs).await?;
    let ids: Vec<i64> = uploaded
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default();

    let mut annotators = Vec::new();
    for id in ids.clone() {
        let url = studio.api(&format!("/api/images/{id}/ops"));
        let http = studio.http().clone();
        annotators.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for step in 0..25 {
                let body = json!({"ops": [{"op": "create", "box": {"class_id": 0, "x0": step, "y0": 1, "x1": step + 10, "y1": 20}}]});
                let response = http.post(&url).json(&body).send().await?;
                if !response.status().is_success() {
                    failures.push(format!("{}: {}", response.status(), response.text().await?));
                }
            }
            Ok::<_, anyhow::Error>(failures)
        }));
    }
    let mut failures = Vec::new();
    for annotator in annotators {
        failures.extend(annotator.await??);
    }
    assert!(
        failures.is_empty(),
        "{} edits failed, e.g. {:?}\n{}",
        failures.len(),
        failures.first(),
        studio.log()
    );
    for id in ids {
        let boxes: api::ImageBoxes = studio
            .http()
            .get(studio.api(&format!("/api/images/{id}/boxes")))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(boxes.boxes.len(), 25);
    }
    Ok(())
}
