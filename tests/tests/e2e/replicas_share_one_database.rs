//! Two `distillery serve` replicas on one PostgreSQL database and one S3 bucket, as a fleet runs
//! behind one address: people on either see each other's edits live and in the same order, a
//! student published or a job run through one replica is news on the other's live channel, and
//! a session started on one works on the other, password guesses count on both, who has which
//! image open (and its lease) is the same on both, and "Next" pressed on both at once hands out
//! different images. Each replica has its own data folder, so nothing is shared but the
//! database and the bucket.

use std::time::Duration;

use anyhow::{Context, ensure};
use api::{LiveEvent, Role};
use e2e::live::LiveClient;
use e2e::postgres::Postgres;
use e2e::s3::S3Server;
use e2e::{Studio, fixtures};
use serde_json::json;

/// How long any one expectation may take (presence updates keep a channel busy, so each wait
/// has a deadline of its own, not only one per event).
const WAIT: Duration = Duration::from_secs(30);
/// Edits sent, alternating between the replicas.
const EDITS: usize = 12;

#[tokio::test]
async fn replicas_share_live_events_jobs_and_sessions() -> anyhow::Result<()> {
    let postgres = Postgres::started().await?;
    let database = postgres.database("replicas").await?;
    let s3 = S3Server::start(&["fleet"]).await?;
    let mut env = s3.env();
    env.push(("DISTILLERY_DATABASE_URL", database));
    let flags = ["--store", "s3://fleet/studio"];
    let a = Studio::start_with_env(&flags, &env).await?;
    let b = Studio::start_with_env(&flags, &env).await?;

    // A project and an image made through A are B's too.
    let project = a.create_project("Fleet", &["circle", "triangle", "square"]).await?;
    let (status, uploaded) = a
        .upload(project.id, &[("one.jpg", fixtures::jpeg(160, 120, 1, 8))])
        .await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    let image = uploaded[0]["id"].as_i64().context("image id")?;
    let served = b.get(&format!("/api/images/{image}/file")).await?;
    ensure!(served.status() == 200, "B serves A's upload: {}", served.status());

    // A person on each replica, listening to the project.
    let mut listeners = Vec::new();
    let mut tokens = Vec::new();
    for (studio, name) in [(&a, "ann"), (&b, "bob")] {
        let session = studio.add_user(name, "long enough password").await?;
        studio.add_member(project.id, name, Role::Annotator).await?;
        let token = session.create_token(&studio.url, "live").await?.token;
        tokens.push(token.clone());
        let mut live = LiveClient::connect(&studio.url, &token, project.id, 0, Some(image), None).await?;
        within(live.until(WAIT, |e| matches!(e, LiveEvent::Student { .. }))).await?;
        listeners.push(live);
    }

    // Edits through both replicas, one after another.
    let circle = project.classes[0].id;
    for n in 0..EDITS {
        let studio = if n % 2 == 0 { &a } else { &b };
        let x = 5.0 * n as f64;
        let answer: api::OpsResponse = studio
            .http()
            .post(studio.api(&format!("/api/images/{image}/ops")))
            .json(&json!({"ops": [{"op": "create", "box": {
                "id": format!("00000000-0000-4000-8000-{n:012x}"), "class_id": circle,
                "x0": x, "y0": 10, "x1": x + 20.0, "y1": 40}}]}))
            .send()
            .await?
            .json()
            .await?;
        ensure!(answer.applied.len() == 1, "edit {n}: {answer:?}");
    }
    // Each listener sees every edit, numbered 1…EDITS, in the same order on both replicas.
    let mut orders = Vec::new();
    for live in &mut listeners {
        let mut seen = Vec::new();
        within(async {
            while seen.len() < EDITS {
                if let LiveEvent::Box { seq, box_id, .. } = live.next(WAIT).await? {
                    seen.push((seq, box_id));
                }
            }
            Ok(())
        })
        .await?;
        let seqs: Vec<i64> = seen.iter().map(|(seq, _)| *seq).collect();
        ensure!(
            seqs == (1..=EDITS as i64).collect::<Vec<_>>(),
            "sequence numbers: {seqs:?}"
        );
        orders.push(seen);
    }
    ensure!(
        orders[0] == orders[1],
        "A and B told the edits in different orders: {orders:?}"
    );

    // A student published through B is news on A's channel, and a job B runs too.
    let model = b
        .register_reference_model(project.id, "student", "shapes-yolov8n-320.onnx")
        .await?;
    let published = within(listeners[0].until(WAIT, |e| matches!(e, LiveEvent::Student { model: Some(_) }))).await?;
    ensure!(
        matches!(published.last(), Some(LiveEvent::Student { model: Some(m) }) if m.id == model.id),
        "A heard of B's student: {published:?}"
    );
    let (status, job) = b
        .post_job(project.id, json!({"kind": "score", "model_id": model.id}))
        .await?;
    ensure!(status == 201, "score job: {job}");
    let job_id = job["id"].as_i64().context("job id")?;
    within(listeners[0].until(
        WAIT,
        |e| matches!(e, LiveEvent::Job { job } if job.id == job_id && job.state == api::JobState::Succeeded),
    ))
    .await
    .context("A's channel never told the job's end")?;

    // A session started on A is good on B (the fleet's load balancer may send any request anywhere).
    let session = e2e::accounts::sign_in(&a.url, "ann", "long enough password").await?;
    let on_b = session.cookie_client()?.get(b.api("/api/projects")).send().await?;
    ensure!(on_b.status() == 200, "A's session on B: {}", on_b.status());
    // Password guesses count on every replica: five wrong ones through A, and B refuses the
    // next (even the right one) instead of granting a fresh allowance.
    let login = |studio: &Studio, password: &str| {
        reqwest::Client::new()
            .post(studio.api("/api/login"))
            .json(&json!({"username": "bob", "password": password}))
            .send()
    };
    for n in 0..5 {
        let guess = login(&a, &format!("guess {n}")).await?;
        ensure!(guess.status() == 401, "guess {n} through A: {}", guess.status());
    }
    let through_b = login(&b, "long enough password").await?;
    ensure!(
        through_b.status() == 429,
        "B after A's five failures: {}",
        through_b.status()
    );

    for live in listeners {
        live.close().await?;
    }

    // Presence and image leases span the replicas: Ann opens the image through A and holds its
    // lease; Bob, opening it through B, sees her there and waits; when she leaves, B hands the
    // lease to him.
    let on = |event: &LiveEvent, who: &str, editing: bool| match event {
        LiveEvent::Presence { people } => people
            .iter()
            .any(|p| p.username == who && p.image_id == Some(image) && p.editing == editing),
        _ => false,
    };
    let mut ann = LiveClient::connect(&a.url, &tokens[0], project.id, 0, Some(image), None).await?;
    within(ann.until(WAIT, |e| on(e, "ann", true))).await?;
    let mut bob = LiveClient::connect(&b.url, &tokens[1], project.id, 0, Some(image), None).await?;
    within(bob.until(WAIT, |e| on(e, "ann", true) && on(e, "bob", false)))
        .await
        .context("B does not show Ann's lease from A")?;
    within(ann.until(WAIT, |e| on(e, "bob", false)))
        .await
        .context("A does not show Bob on B")?;
    ann.close().await?;
    within(bob.until(WAIT, |e| {
        on(e, "bob", true) && matches!(e, LiveEvent::Presence { people } if people.iter().all(|p| p.username != "ann"))
    }))
    .await
    .context("Ann's lease did not pass to Bob on B")?;
    bob.close().await?;

    // "Next" pressed at the same moment by Ann through A and Bob through B: different images.
    let fresh = [
        ("two.jpg", fixtures::jpeg(160, 120, 2, 8)),
        ("three.jpg", fixtures::jpeg(160, 120, 3, 8)),
    ];
    let (status, uploaded) = b.upload(project.id, &fresh).await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    // Scored by the student, so both people's Next follows the same ranking (unscored images
    // come in each person's own random order, which could part them by chance).
    let (status, scoring) = a
        .post_job(project.id, json!({"kind": "score", "model_id": model.id}))
        .await?;
    ensure!(status == 201, "score job: {scoring}");
    let scoring = a
        .until_job_final(scoring["id"].as_i64().context("job id")?, WAIT)
        .await?;
    ensure!(scoring.state == api::JobState::Succeeded, "{scoring:?}");
    let next = |studio: &Studio, token: &str| {
        let url = studio.api(&format!("/api/projects/{}/next", project.id));
        let client = e2e::accounts::bearer_client(token);
        async move { anyhow::Ok(client?.get(url).send().await?.json::<api::NextImage>().await?) }
    };
    let (for_ann, for_bob) = tokio::try_join!(next(&a, &tokens[0]), next(&b, &tokens[1]))?;
    ensure!(
        for_ann.image_id.is_some() && for_bob.image_id.is_some() && for_ann.image_id != for_bob.image_id,
        "Next handed out {:?} through A and {:?} through B",
        for_ann.image_id,
        for_bob.image_id
    );
    a.stop().await?;
    b.stop().await?;
    Ok(())
}

/// `work`, failing once [`WAIT`] has passed.
async fn within<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(WAIT, work).await.context("not within the wait")?
}
