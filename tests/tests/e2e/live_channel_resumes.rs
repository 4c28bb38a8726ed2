//! The live channel as a script sees it: changes arrive in the project's order, each once; a
//! client that drops its connection while others edit, then reconnects with the last `seq` it
//! saw, receives exactly what it missed and ends up with the server's state; presence follows
//! who has which image open; another site's page cannot open the channel; the active student
//! and the project's jobs arrive as they change.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use api::{LiveEvent, Role};
use e2e::live::LiveClient;
use e2e::{Studio, fixtures};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_reconnecting_client_gets_what_it_missed_and_converges() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Resume", &["car", "bike"]).await?;
    let (status, uploaded) = studio
        .upload(project.id, &[("a.jpg", fixtures::jpeg(200, 100, 1, 4))])
        .await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let image_id = uploaded[0]["id"].as_i64().context("image id")?;
    let car = project.classes[0].id;
    let writer = studio.add_user("writer", "writer's long password").await?;
    studio.add_member(project.id, "writer", Role::Annotator).await?;
    let watcher = studio.add_user("watcher", "watcher's long password").await?;
    studio.add_member(project.id, "watcher", Role::Viewer).await?;
    let watcher_token = watcher.create_token(&studio.url, "live").await?.token;
    let writer_http = writer.cookie_client()?;
    let ops_url = studio.api(&format!("/api/images/{image_id}/ops"));
    let edit = |ops: serde_json::Value| {
        let request = writer_http.post(&ops_url).json(&json!({ "ops": ops }));
        async move {
            let response = request.send().await?;
            ensure!(response.status().is_success(), "ops: {}", response.text().await?);
            Ok::<_, anyhow::Error>(response.json::<api::OpsResponse>().await?)
        }
    };
    let new_box = |id: &str, x: f64| json!({"op": "create", "box": {"id": id, "class_id": car, "x0": x, "y0": 10, "x1": x + 20.0, "y1": 40}});
    let (a, b, c) = (
        "00000000-0000-4000-8000-00000000000a",
        "00000000-0000-4000-8000-00000000000b",
        "00000000-0000-4000-8000-00000000000c",
    );

    // The watcher starts from the image's boxes as read, and the channel from their `seq`.
    let snapshot: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    let mut view = Replica::from(&snapshot);
    let mut live = LiveClient::connect(
        &studio.url,
        &watcher_token,
        project.id,
        snapshot.seq,
        Some(image_id),
        None,
    )
    .await?;
    let first = live.until(WAIT, |e| matches!(e, LiveEvent::CaughtUp { .. })).await?;
    view.apply_all(&first)?;

    let applied = edit(json!([new_box(a, 10.0), new_box(b, 60.0)])).await?;
    let seen = live.until(WAIT, |e| e.seq() == Some(applied.applied[1].seq)).await?;
    view.apply_all(&seen)?;
    ensure!(view.boxes.len() == 2, "{:?}", view.boxes);

    // Dropped; meanwhile the writer moves, deletes, adds, submits.
    live.close().await?;
    edit(json!([
        {"op": "update", "box": {"id": a, "class_id": car, "x0": 100, "y0": 50, "x1": 150, "y1": 90}, "base_rev": 1},
        {"op": "delete", "box": {"id": b, "class_id": car, "x0": 60, "y0": 10, "x1": 80, "y1": 40}},
        new_box(c, 20.0),
    ]))
    .await?;
    let response = writer_http
        .post(studio.api(&format!("/api/images/{image_id}/status")))
        .json(&json!({"status": "submitted"}))
        .send()
        .await?;
    ensure!(response.status().is_success(), "submit: {}", response.text().await?);

    // Back from the last seq seen: exactly what was missed, in order, then caught up.
    let mut live = LiveClient::connect(&studio.url, &watcher_token, project.id, view.seq, Some(image_id), None).await?;
    let missed = live.until(WAIT, |e| matches!(e, LiveEvent::CaughtUp { .. })).await?;
    let numbered: Vec<i64> = missed.iter().filter_map(LiveEvent::seq).collect();
    ensure!(numbered.len() == 4, "three box changes and a submission: {missed:?}");
    ensure!(
        numbered.windows(2).all(|w| w[1] == w[0] + 1) && numbered[0] == view.seq + 1,
        "in order, none twice, none skipped: {numbered:?} after {}",
        view.seq
    );
    view.apply_all(&missed)?;
    let server: api::ImageBoxes = studio
        .get(&format!("/api/images/{image_id}/boxes"))
        .await?
        .json()
        .await?;
    ensure!(
        view.boxes == Replica::from(&server).boxes,
        "converged: {:?} vs {:?}",
        view.boxes,
        server.boxes
    );
    ensure!(view.status == Some(api::ImageStatus::Submitted), "{:?}", view.status);
    ensure!(view.seq == server.seq, "{} vs {}", view.seq, server.seq);
    Ok(())
}

#[tokio::test]
async fn presence_and_leases_follow_who_has_which_image_open() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Presence", &["car"]).await?;
    let mut tokens = Vec::new();
    for (name, role) in [
        ("ann", Role::Annotator),
        ("ben", Role::Annotator),
        ("val", Role::Viewer),
    ] {
        let session = studio.add_user(name, "long enough password").await?;
        studio.add_member(project.id, name, role).await?;
        tokens.push(session.create_token(&studio.url, "live").await?.token);
    }
    // Whether `who` is on `image`, holding a lease or not.
    let state = |event: &LiveEvent, who: &str, image: Option<i64>, editing: bool| match event {
        LiveEvent::Presence { people } => people
            .iter()
            .any(|p| p.username == who && p.image_id == image && p.editing == editing),
        _ => false,
    };
    // Ann opens image 7 first: she holds its lease.
    let mut ann = LiveClient::connect(&studio.url, &tokens[0], project.id, 0, Some(7), None).await?;
    ann.until(WAIT, |e| state(e, "ann", Some(7), true)).await?;
    let mut ben = LiveClient::connect(&studio.url, &tokens[1], project.id, 0, None, None).await?;
    let mut val = LiveClient::connect(&studio.url, &tokens[2], project.id, 0, Some(7), None).await?;
    ann.until(WAIT, |e| state(e, "ben", None, false)).await?;
    // Ben comes to it: read-only, Ann keeps it; he takes over and both hold one.
    ben.viewing(Some(7)).await?;
    ann.until(WAIT, |e| {
        state(e, "ben", Some(7), false) && state(e, "ann", Some(7), true)
    })
    .await?;
    ben.take_over().await?;
    ann.until(WAIT, |e| {
        state(e, "ben", Some(7), true) && state(e, "ann", Some(7), true)
    })
    .await?;
    // Ben leaves; Ann's lease passes to nobody else (the viewer never holds one) when she goes.
    ben.close().await?;
    val.until(
        WAIT,
        |e| matches!(e, LiveEvent::Presence { people } if people.iter().all(|p| p.username != "ben")),
    )
    .await?;
    ann.close().await?;
    val.until(WAIT, |e| {
        matches!(e, LiveEvent::Presence { people } if people.iter().all(|p| p.username != "ann"))
            && state(e, "val", Some(7), false)
    })
    .await?;
    // A lease passes to the one who waited longest when its holder leaves.
    let mut first = LiveClient::connect(&studio.url, &tokens[0], project.id, 0, Some(9), None).await?;
    // The handshake returns before the server has placed the connection on its image: wait for
    // that, or the second one could arrive there first.
    first.until(WAIT, |e| state(e, "ann", Some(9), true)).await?;
    let mut second = LiveClient::connect(&studio.url, &tokens[1], project.id, 0, Some(9), None).await?;
    second
        .until(WAIT, |e| {
            state(e, "ann", Some(9), true) && state(e, "ben", Some(9), false)
        })
        .await?;
    first.viewing(None).await?;
    second.until(WAIT, |e| state(e, "ben", Some(9), true)).await?;
    first.close().await?;
    Ok(())
}

#[tokio::test]
async fn another_site_cannot_open_the_channel() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Origin", &["car"]).await?;
    let session = studio.add_user("someone", "long enough password").await?;
    studio.add_member(project.id, "someone", Role::Viewer).await?;
    let token = session.create_token(&studio.url, "live").await?.token;
    let refused = LiveClient::connect(&studio.url, &token, project.id, 0, None, Some("http://evil.example")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            ensure!(response.status() == 403, "{}", response.status());
        }
        Err(other) => anyhow::bail!("refused, but not with 403: {other}"),
        Ok(_) => anyhow::bail!("another site's page opened the live channel"),
    }
    let own = studio.url.clone();
    LiveClient::connect(&studio.url, &token, project.id, 0, None, Some(&own)).await?;
    Ok(())
}

/// What a client rebuilds from a snapshot and the events after it.
#[derive(Debug)]
struct Replica {
    image_id: i64,
    seq: i64,
    boxes: BTreeMap<String, [f64; 4]>,
    status: Option<api::ImageStatus>,
}

impl Replica {
    fn from(snapshot: &api::ImageBoxes) -> Self {
        Self {
            image_id: snapshot.image_id,
            seq: snapshot.seq,
            boxes: snapshot
                .boxes
                .iter()
                .map(|b| (b.id.clone(), [b.x0, b.y0, b.x1, b.y1]))
                .collect(),
            status: Some(snapshot.status),
        }
    }

    fn apply_all(&mut self, events: &[LiveEvent]) -> anyhow::Result<()> {
        for event in events {
            if let Some(seq) = event.seq() {
                ensure!(seq == self.seq + 1, "event {seq} after {}: {event:?}", self.seq);
                self.seq = seq;
            }
            match event {
                LiveEvent::Box {
                    image_id, box_id, bbox, ..
                } if *image_id == self.image_id => match bbox {
                    Some(b) => {
                        self.boxes.insert(box_id.clone(), [b.x0, b.y0, b.x1, b.y1]);
                    }
                    None => {
                        self.boxes.remove(box_id);
                    }
                },
                LiveEvent::Status { image_id, status, .. } if *image_id == self.image_id => self.status = Some(*status),
                LiveEvent::CaughtUp { seq } => ensure!(*seq == self.seq, "caught up at {seq}, seen {}", self.seq),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The live channel also carries the project's news: after the replay it says which student is
/// active, and a new one as it is published; a job's progress arrives from queued to done.
#[tokio::test]
async fn the_live_channel_carries_students_and_jobs() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("News", &["circle", "triangle", "square"]).await?;
    let (status, uploaded) = studio
        .upload(project.id, &[("a.jpg", fixtures::jpeg(160, 120, 1, 8))])
        .await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let script = studio.add_user("script", "script's long password").await?;
    studio.add_member(project.id, "script", Role::Viewer).await?;
    let token = script.create_token(&studio.url, "live").await?.token;
    let mut live = LiveClient::connect(&studio.url, &token, project.id, 0, None, None).await?;
    let first = live.until(WAIT, |e| matches!(e, LiveEvent::Student { .. })).await?;
    ensure!(
        matches!(first.last(), Some(LiveEvent::Student { model: None })),
        "no student yet: {first:?}"
    );
    ensure!(
        first.iter().any(|e| matches!(e, LiveEvent::CaughtUp { .. })),
        "the student comes after the replay: {first:?}"
    );

    let model = studio
        .register_reference_model(project.id, "student", "shapes-yolov8n-320.onnx")
        .await?;
    let published = live
        .until(WAIT, |e| matches!(e, LiveEvent::Student { model: Some(_) }))
        .await?;
    ensure!(
        matches!(published.last(), Some(LiveEvent::Student { model: Some(m) }) if m.id == model.id),
        "{published:?}"
    );

    let (status, job) = studio
        .post_job(project.id, json!({"kind": "score", "model_id": model.id}))
        .await?;
    ensure!(status == 201, "score job: {job}");
    let job_id = job["id"].as_i64().context("job id")?;
    let seen = live
        .until(
            Duration::from_secs(60),
            |e| matches!(e, LiveEvent::Job { job } if job.id == job_id && job.state.is_final()),
        )
        .await?;
    let states: Vec<api::JobState> = seen
        .iter()
        .filter_map(|e| match e {
            LiveEvent::Job { job } if job.id == job_id => Some(job.state),
            _ => None,
        })
        .collect();
    ensure!(
        states.last() == Some(&api::JobState::Succeeded) && states.len() >= 2,
        "the job's life as the channel told it: {states:?}"
    );
    live.close().await?;
    Ok(())
}
