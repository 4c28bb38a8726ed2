//! `cargo xtask bench-workers [IMAGES]`: images/s of one teacher job done by `distillery worker`
//! processes — one worker, then two sharing the job — against a release server, the test
//! harness's PostgreSQL and an S3 bucket (`s3s-fs`, in this process, on loopback). Each worker
//! runs one image at a time (`--inference-threads 1`), so two workers use two cores where one
//! uses one; one worker with two threads is measured too, as the anchor for what this machine's
//! cores give one process. Prints figures; asserts nothing but that every job succeeded.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use e2e::postgres::Postgres;
use e2e::s3::S3Server;
use e2e::worker::Worker;
use e2e::{Studio, fixtures};
use serde_json::json;

/// The teacher: the 640 graph, as `bench-teacher` runs it.
const TEACHER: &str = "yolov8n-640-random.onnx";
const BATCH: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(200);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let postgres = Postgres::started().await?;
    let database = postgres.database("bench_workers").await?;
    let s3 = S3Server::start(&["bench"]).await?;
    let mut env = s3.env();
    env.push(("DISTILLERY_DATABASE_URL", database));
    let store = ["--store", "s3://bench/studio"];
    let studio = Studio::start_with_env(&store, &env).await?;
    let project = studio.create_project("Bench", &["object"]).await?;

    eprintln!("uploading {count} JPEGs (1280×720)…");
    for first in (0..count).step_by(BATCH) {
        let batch: Vec<(String, Vec<u8>)> = (first..count.min(first + BATCH))
            .map(|n| (format!("{n:05}.jpg"), fixtures::numbered_jpeg(1280, 720, n as u32)))
            .collect();
        let files: Vec<(&str, Vec<u8>)> = batch.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        let (status, body) = studio.upload(project.id, &files).await?;
        ensure!(status.is_success(), "upload: {body}");
    }

    println!(
        "\nteacher job ({TEACHER}) over {count} JPEGs of 1280×720, workers on one PostgreSQL and one S3 bucket, {cores} cores"
    );
    println!("| workers | threads each | images/s | vs one worker, one thread |");
    println!("|---|---|---|---|");
    let workers_dir = tempfile::tempdir()?;
    let mut anchor = None;
    for (round, (workers, threads)) in [(1, 1), (2, 1), (1, cores)].into_iter().enumerate() {
        // A fresh teacher version each round, so every image is labeled again.
        let teacher = studio.register_reference_model(project.id, "teacher", TEACHER).await?;
        let flags = [
            "--store",
            "s3://bench/studio",
            "--inference-threads",
            &threads.to_string(),
        ];
        let mut running = Vec::new();
        for n in 0..workers {
            running.push(Worker::start(workers_dir.path(), &format!("r{round}w{n}"), &flags, &env).await?);
        }
        let started = Instant::now();
        let (status, job) = studio
            .post_job(project.id, json!({"kind": "teacher", "model_id": teacher.id}))
            .await?;
        ensure!(status == 201, "teacher job: {job}");
        let job_id = job["id"].as_i64().context("job id")?;
        let job = studio.until_job_final(job_id, Duration::from_secs(3600)).await?;
        let seconds = started.elapsed().as_secs_f64();
        ensure!(job.state == api::JobState::Succeeded, "{job:?}");
        let rate = count as f64 / seconds;
        let base = *anchor.get_or_insert(rate);
        println!("| {workers} | {threads} | {rate:.2} | {:.2}× |", rate / base);
        eprintln!("  {}", job.message.unwrap_or_default());
        for worker in running {
            worker.kill().await?;
        }
    }
    Ok(())
}
