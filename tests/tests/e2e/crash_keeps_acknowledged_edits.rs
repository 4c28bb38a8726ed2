//! The server is killed (SIGKILL) while many clients write at once; after a restart every edit
//! the server had acknowledged is there, and SQLite's own integrity check passes. What was not
//! acknowledged may or may not be there — its client still holds it and sends it again (the
//! operations are idempotent).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use api::Role;
use e2e::{Studio, fixtures};
use serde_json::json;

const WRITERS: usize = 8;

#[tokio::test]
async fn every_acknowledged_edit_survives_a_kill_during_writes() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("studio");
    let studio = Studio::start_in(&data_dir).await?;
    let project = studio.create_project("Crash", &["car"]).await?;
    let mut images = Vec::new();
    for n in 0..WRITERS {
        let (status, uploaded) = studio
            .upload(
                project.id,
                &[(&format!("{n}.jpg"), fixtures::numbered_jpeg(96, 64, n as u32))],
            )
            .await?;
        ensure!(status.is_success(), "upload: {uploaded}");
        images.push(uploaded[0]["id"].as_i64().context("image id")?);
    }
    let car = project.classes[0].id;
    let mut clients = Vec::new();
    for n in 0..WRITERS {
        let name = format!("writer{n}");
        let session = studio.add_user(&name, "long enough password").await?;
        studio.add_member(project.id, &name, Role::Annotator).await?;
        clients.push(session.cookie_client()?);
    }

    // Every writer creates boxes as fast as the server answers, on its own image (and, every
    // third edit, on its neighbour's), keeping the ids the server acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<(i64, String)>::new()));
    let mut writers = Vec::new();
    for (n, client) in clients.into_iter().enumerate() {
        let acknowledged = acknowledged.clone();
        let url = studio.url.clone();
        let images = images.clone();
        writers.push(tokio::spawn(async move {
            for k in 0u32.. {
                let image = if k % 3 == 2 { images[(n + 1) % images.len()] } else { images[n] };
                let id = format!("{:08x}-0000-4000-8000-{:012x}", n, k);
                let x = f64::from(k % 40);
                let sent = client
                    .post(format!("{url}/api/images/{image}/ops"))
                    .json(&json!({"ops": [{"op": "create", "box": {"id": id, "class_id": car, "x0": x, "y0": 1, "x1": x + 20.0, "y1": 30}}]}))
                    .send()
                    .await;
                let Ok(response) = sent else { return }; // the server is gone
                if !response.status().is_success() {
                    return;
                }
                let Ok(answer) = response.json::<api::OpsResponse>().await else { return };
                if answer.applied.iter().any(|a| a.box_id == id) {
                    acknowledged.lock().map(|mut a| a.push((image, id))).ok();
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    studio.kill().await?;
    for writer in writers {
        writer.await?;
    }
    let acknowledged = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    ensure!(
        acknowledged.len() >= 50,
        "only {} edits acknowledged before the kill",
        acknowledged.len()
    );

    let studio = Studio::start_in(&data_dir).await?;
    let mut stored = HashSet::new();
    for image in &images {
        let boxes: api::ImageBoxes = studio.get(&format!("/api/images/{image}/boxes")).await?.json().await?;
        stored.extend(boxes.boxes.into_iter().map(|b| (*image, b.id)));
    }
    let lost: Vec<&(i64, String)> = acknowledged.iter().filter(|a| !stored.contains(*a)).collect();
    ensure!(
        lost.is_empty(),
        "{} of {} acknowledged edits are gone after the kill: {lost:?}",
        lost.len(),
        acknowledged.len()
    );

    // SQLite's own check of the file the killed process was writing (PostgreSQL's server was
    // never killed: its WAL is the server's business, not the studio's).
    if e2e::postgres::engine() == e2e::postgres::Engine::Sqlite {
        let url = format!("sqlite://{}?mode=ro", data_dir.join("distillery.db").display());
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await?;
        let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut db).await?;
        ensure!(check == "ok", "integrity_check: {check}");
    }
    eprintln!("{} acknowledged edits, all kept", acknowledged.len());
    Ok(())
}
