//! Two servers and two `distillery worker`s on one PostgreSQL database and one S3 bucket, as a
//! fleet runs: a teacher job asked of one server is done by the workers (the servers run no job
//! while workers are alive), its images shared between them with none labeled twice; a job that
//! asks for a GPU waits until a GPU worker starts, which takes it; a training whose worker is killed is taken over by the
//! other worker and continues after its last checkpoint; and a killed server loses no edit it
//! had acknowledged.

use std::time::Duration;

use anyhow::{Context, ensure};
use api::{AuditChange, BoxSource, Job, JobState, OpKind, TrainingEpoch};
use e2e::Studio;
use e2e::postgres::Postgres;
use e2e::s3::S3Server;
use e2e::worker::Worker;
use serde_json::json;

/// Shapes photos labeled by the teacher and trained on.
const IMAGES: usize = 64;
/// A short lease, so a killed worker's job is taken over in seconds (30 s by default).
const LEASE_SECONDS: &str = "2";
const EPOCHS: u32 = 4;
const WAIT: Duration = Duration::from_secs(240);

#[tokio::test]
async fn workers_share_jobs_and_take_over_a_dead_ones_training() -> anyhow::Result<()> {
    let postgres = Postgres::started().await?;
    let database = postgres.database("fleet_workers").await?;
    let s3 = S3Server::start(&["fleet"]).await?;
    let mut env = s3.env();
    env.push(("DISTILLERY_DATABASE_URL", database));
    env.push(("DISTILLERY_JOB_LEASE_SECONDS", LEASE_SECONDS.to_owned()));
    let store = ["--store", "s3://fleet/studio"];
    let a = Studio::start_with_env(&store, &env).await?;
    let b = Studio::start_with_env(&store, &env).await?;
    let workers_dir = tempfile::tempdir()?;
    let worker_flags = ["--store", "s3://fleet/studio", "--inference-threads", "1"];
    let w1 = Worker::start(workers_dir.path(), "w1", &worker_flags, &env).await?;
    let w2 = Worker::start(workers_dir.path(), "w2", &worker_flags, &env).await?;
    let labels = [w1.label.clone(), w2.label.clone()];

    let project = a.create_project("Fleet", &["circle", "triangle", "square"]).await?;
    let photos: Vec<(String, Vec<u8>)> = (0..IMAGES)
        .map(|i| {
            let name = format!("train_{i:04}.jpg");
            e2e::reference_model_file(&format!("shapes/images/train/{name}")).map(|bytes| (name, bytes))
        })
        .collect::<anyhow::Result<_>>()?;
    let files: Vec<(&str, Vec<u8>)> = photos.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, uploaded) = a.upload(project.id, &files).await?;
    ensure!(status.is_success(), "upload: {uploaded}");
    a.register_reference_model(project.id, "teacher", "shapes-yolov8n-320.onnx")
        .await?;

    // A teacher job asked of B: the workers share its images.
    let (status, job) = b.post_job(project.id, json!({"kind": "teacher"})).await?;
    ensure!(status == 201, "teacher job: {job}");
    let job: Job = serde_json::from_value(job)?;
    let job = a.until_job_final(job.id, WAIT).await?;
    let message = job.message.clone().unwrap_or_default();
    ensure!(
        job.state == JobState::Succeeded && job.done == IMAGES as u64 && job.total == IMAGES as u64,
        "{job:?}\nw1: {}\nw2: {}",
        w1.log(),
        w2.log()
    );
    ensure!(
        job.worker.as_ref().is_some_and(|w| labels.contains(w)),
        "a worker, not a server, held the job: {job:?}"
    );
    ensure!(
        message.contains("shared by 2 workers"),
        "{message}\nw1: {}\nw2: {}",
        w1.log(),
        w2.log()
    );
    // None labeled twice: each image's history holds its proposals' creation and nothing else
    // (a second labeling would have deleted the first one's proposals).
    let page: api::ImagePage = a
        .get(&format!("/api/projects/{}/images?limit=100", project.id))
        .await?
        .json()
        .await?;
    ensure!(page.images.len() == IMAGES);
    let mut proposals = 0;
    for image in &page.images {
        let boxes: api::ImageBoxes = b.get(&format!("/api/images/{}/boxes", image.id)).await?.json().await?;
        let teacher = boxes.boxes.iter().filter(|x| x.source == BoxSource::Teacher).count();
        let history: api::ImageHistory = b
            .get(&format!("/api/images/{}/history", image.id))
            .await?
            .json()
            .await?;
        let ops: Vec<OpKind> = history
            .entries
            .iter()
            .filter_map(|e| match &e.change {
                AuditChange::Box { op, .. } => Some(*op),
                AuditChange::Status { .. } => None,
            })
            .collect();
        ensure!(
            ops.len() == teacher && ops.iter().all(|op| *op == OpKind::Create),
            "image {} was labeled more than once: {ops:?} for {teacher} proposals",
            image.file_name
        );
        proposals += teacher;
    }
    ensure!(
        proposals > IMAGES,
        "the teacher found {proposals} shapes in {IMAGES} photos"
    );

    // A job that asks for a GPU is left to a GPU worker: these two have none, and wait for one.
    let (status, gpu_job) = a.post_job(project.id, json!({"kind": "evaluate", "gpu": true})).await?;
    ensure!(status == 201, "gpu job: {gpu_job}");
    let gpu_job: Job = serde_json::from_value(gpu_job)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting: Job = a.get(&format!("/api/jobs/{}", gpu_job.id)).await?.json().await?;
    ensure!(
        waiting.state == JobState::Queued && waiting.gpu && waiting.worker.is_none(),
        "{waiting:?}"
    );
    // A worker with a GPU (here the SwiftShader Vulkan driver the test environment names, as for
    // the GPU executor's conformance tests) takes it.
    let gpu_flags = ["--store", "s3://fleet/studio", "--device", "gpu"];
    let gpu_worker = Worker::start(workers_dir.path(), "g1", &gpu_flags, &env).await?;
    ensure!(gpu_worker.label == "g1 (gpu, cpu training)", "{}", gpu_worker.label);
    let evaluated = a.until_job_final(gpu_job.id, WAIT).await?;
    ensure!(
        evaluated.state == JobState::Succeeded && evaluated.worker.as_ref() == Some(&gpu_worker.label),
        "{evaluated:?}\n{}",
        gpu_worker.log()
    );
    gpu_worker.kill().await?;

    // A training, its worker killed after its first epoch: the other worker continues it.
    let (status, training) = a
        .post_job(
            project.id,
            json!({"kind": "train", "train": {"epochs": EPOCHS, "batch": 8, "nbs": 8, "imgsz": 96, "warmup_epochs": 1}}),
        )
        .await?;
    ensure!(status == 201, "training: {training}");
    let training: Job = serde_json::from_value(training)?;
    let started = std::time::Instant::now();
    let (holder, charted) = loop {
        ensure!(
            started.elapsed() < WAIT,
            "no epoch finished:\n{}\n{}",
            w1.log(),
            w2.log()
        );
        let now: Job = a.get(&format!("/api/jobs/{}", training.id)).await?.json().await?;
        ensure!(
            !now.state.is_final(),
            "the training ended before its first epoch: {now:?}"
        );
        let charted = epochs_of(&a, training.id).await?.len();
        if charted >= 1 && now.worker.is_some() {
            break (now.worker.context("holder")?, charted);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let survivor = if holder == w1.label {
        w1.kill().await?;
        w2
    } else {
        ensure!(holder == w2.label, "a server held the training: {holder}");
        w2.kill().await?;
        w1
    };
    let trained = a.until_job_final(training.id, WAIT).await?;
    let message = trained.message.clone().unwrap_or_default();
    ensure!(
        trained.state == JobState::Succeeded && trained.worker.as_deref() == Some(survivor.label.as_str()),
        "{trained:?}\n{}",
        survivor.log()
    );
    // It continued after an epoch at least as late as the last one charted before the kill.
    let resumed_after: usize = message
        .split("continued after epoch ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("the training did not continue from a checkpoint: {message}"))?;
    ensure!(
        resumed_after >= charted,
        "continued after epoch {resumed_after}, {charted} were charted"
    );
    let epochs: Vec<u32> = epochs_of(&b, training.id).await?.iter().map(|e| e.epoch).collect();
    ensure!(epochs == (1..=EPOCHS).collect::<Vec<_>>(), "charted epochs: {epochs:?}");

    // Edits acknowledged by A are kept when A is killed: B serves them.
    let image = page.images[0].id;
    let circle = project.classes[0].id;
    let mut acknowledged = Vec::new();
    for n in 0..5u32 {
        let id = format!("00000000-0000-4000-8000-{n:012x}");
        let x = 10.0 * f64::from(n);
        let answer: api::OpsResponse = a
            .http()
            .post(a.api(&format!("/api/images/{image}/ops")))
            .json(&json!({"ops": [{"op": "create", "box": {
                "id": id, "class_id": circle, "x0": x, "y0": 10, "x1": x + 20.0, "y1": 40}}]}))
            .send()
            .await?
            .json()
            .await?;
        ensure!(answer.applied.len() == 1, "edit {n}: {answer:?}");
        acknowledged.push(id);
    }
    a.kill().await?;
    let boxes: api::ImageBoxes = b.get(&format!("/api/images/{image}/boxes")).await?.json().await?;
    for id in &acknowledged {
        ensure!(boxes.boxes.iter().any(|x| &x.id == id), "edit {id} was lost with A");
    }
    Ok(())
}

/// A training job's charted epochs.
async fn epochs_of(studio: &Studio, job_id: i64) -> anyhow::Result<Vec<TrainingEpoch>> {
    Ok(studio.get(&format!("/api/jobs/{job_id}/epochs")).await?.json().await?)
}
