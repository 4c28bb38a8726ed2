//! `cargo xtask bench [IMAGES] [folder|s3]`: dataset throughput of a release `distillery`, with
//! anchors measured in the same run, its files in the data folder (the default) or in an
//! S3-compatible bucket (`s3s-fs`, in this process, on loopback, writing to this machine's disk).
//!
//! 1. Upload N generated JPEGs over HTTP (multipart, 2 clients): images/s, including decoding,
//!    EXIF, hashing and thumbnails.
//! 2. Label every image (PUT boxes).
//! 3. Restart the server, export the YOLO zip over HTTP: wall time and the server's peak RSS
//!    (VmHWM), beside `zip -0 -r` of the same image files.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use e2e::{Studio, fixtures};
use futures_util::StreamExt;
use serde_json::json;
use sha2::Digest;

const BATCH: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let store = std::env::args().nth(2).unwrap_or_else(|| "folder".to_owned());
    anyhow::ensure!(
        ["folder", "s3"].contains(&store.as_str()),
        "the store is folder or s3, not {store}"
    );
    anyhow::ensure!(
        Command::new("zip").arg("-v").output().is_ok(),
        "the anchor needs `zip` (apt-get install zip)"
    );
    let work = tempfile::tempdir()?;
    let images_dir = work.path().join("images");
    std::fs::create_dir_all(&images_dir)?;

    eprintln!("generating {count} JPEGs (640×480)…");
    let files: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| (format!("frame_{i:05}.jpg"), fixtures::numbered_jpeg(640, 480, i as u32)))
        .collect();
    let total_bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    for (name, bytes) in &files {
        std::fs::write(images_dir.join(name), bytes)?;
    }

    let data_dir = work.path().join("studio");
    let s3 = match store.as_str() {
        "s3" => Some(e2e::s3::S3Server::start(&["bench"]).await?),
        _ => None,
    };
    let (flags, env) = match &s3 {
        Some(s3) => (vec!["--store", "s3://bench/studio"], s3.env()),
        None => (Vec::new(), Vec::new()),
    };
    let studio = Studio::start_in_with_env(&data_dir, &flags, &env).await?;
    let project = studio.create_project("Bench", &["object"]).await?;

    // 1. Upload.
    let started = Instant::now();
    let chunks: Vec<Vec<(String, Vec<u8>)>> = files.chunks(BATCH).map(<[_]>::to_vec).collect();
    let url = studio.api(&format!("/api/projects/{}/images", project.id));
    let http = studio.http().clone();
    let mut uploads = futures_util::stream::iter(chunks.into_iter().map(|chunk| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut form = reqwest::multipart::Form::new();
            for (name, bytes) in chunk {
                form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
            }
            let response = http.post(url).multipart(form).send().await?;
            anyhow::ensure!(response.status().is_success(), "upload: {}", response.status());
            Ok(response.json::<Vec<api::UploadedFile>>().await?)
        }
    }))
    .buffer_unordered(2);
    let sent: std::collections::HashMap<String, String> = files
        .iter()
        .map(|(name, bytes)| {
            let digest = sha2::Sha256::digest(bytes);
            (name.clone(), digest.iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect();
    let mut ids = Vec::with_capacity(count);
    while let Some(result) = uploads.next().await {
        for file in result? {
            anyhow::ensure!(
                sent.get(&file.file_name) == Some(&file.sha256),
                "{}: the server hashed {} but {:?} was sent",
                file.file_name,
                file.sha256,
                sent.get(&file.file_name)
            );
            anyhow::ensure!(
                !file.duplicate,
                "{} is a duplicate of image {:?} (sha256 {}): the benchmark needs distinct images",
                file.file_name,
                file.id,
                file.sha256
            );
            ids.extend(file.id);
        }
    }
    let upload_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(ids.len() == count, "uploaded {} of {count}", ids.len());

    // 2. Label.
    let started = Instant::now();
    let class_id = project.classes[0].id;
    let mut puts = futures_util::stream::iter(ids.iter().map(|id| {
        let http = http.clone();
        let url = studio.api(&format!("/api/images/{id}/boxes"));
        async move {
            let body = json!({"boxes": [{"class_id": class_id, "x0": 10, "y0": 20, "x1": 200, "y1": 180}]});
            let response = http.put(url).json(&body).send().await?;
            anyhow::ensure!(response.status().is_success(), "label: {}", response.status());
            Ok(())
        }
    }))
    .buffer_unordered(4);
    while let Some(result) = puts.next().await {
        result?;
    }
    drop(puts);
    let label_secs = started.elapsed().as_secs_f64();

    // 3. Export on a freshly started server, so its peak RSS is the export's.
    studio.stop().await?;
    let studio = Studio::start_in_with_env(&data_dir, &flags, &env).await?;
    let started = Instant::now();
    let response = http
        .get(studio.api(&format!("/api/projects/{}/export?format=yolo", project.id)))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "export: {}", response.status());
    let mut body = response.bytes_stream();
    let mut zip_bytes = 0u64;
    while let Some(chunk) = body.next().await {
        zip_bytes += chunk?.len() as u64;
    }
    let export_secs = started.elapsed().as_secs_f64();
    let peak_rss_kib = studio.peak_rss_kib().context("cannot read the server's peak RSS")?;
    anyhow::ensure!(
        zip_bytes as usize > total_bytes,
        "the export ({zip_bytes} bytes) is smaller than its images"
    );

    let started = Instant::now();
    let zip_peak_kib = peak_rss_of("zip", &["-0", "-r", "-q", "anchor.zip", "images"], work.path())?;
    let zip_secs = started.elapsed().as_secs_f64();
    let anchor_bytes = std::fs::metadata(work.path().join("anchor.zip"))
        .context("zip wrote nothing")?
        .len();

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "dataset: {count} JPEG images, 640×480, {:.0} MiB; files in {}",
        mib(total_bytes as u64),
        if s3.is_some() {
            "an S3 bucket (s3s-fs on loopback)"
        } else {
            "the data folder"
        }
    );
    println!(
        "upload + decode + thumbnail (HTTP, {BATCH} files/request, 2 clients): {:.1} s, {:.0} images/s",
        upload_secs,
        count as f64 / upload_secs
    );
    println!(
        "label (PUT boxes, 4 clients): {:.1} s, {:.0} images/s",
        label_secs,
        count as f64 / label_secs
    );
    println!(
        "export YOLO zip over HTTP: {:.2} s, {:.0} MiB, {:.0} MiB/s",
        export_secs,
        mib(zip_bytes),
        mib(zip_bytes) / export_secs
    );
    println!(
        "  anchor `zip -0 -r` of the same files: {:.2} s, {:.0} MiB → ratio {:.2}×",
        zip_secs,
        mib(anchor_bytes),
        export_secs / zip_secs
    );
    println!(
        "  server peak RSS (VmHWM, fresh server, export only): {:.1} MiB; zip's: {:.1} MiB",
        peak_rss_kib as f64 / 1024.0,
        zip_peak_kib as f64 / 1024.0
    );
    Ok(())
}

/// Peak RSS of a command in KiB, measured by GNU time (0 when `/usr/bin/time` is missing).
fn peak_rss_of(program: &str, args: &[&str], dir: &Path) -> anyhow::Result<u64> {
    let Ok(output) = Command::new("/usr/bin/time")
        .args(["-f", "%M", program])
        .args(args)
        .current_dir(dir)
        .output()
    else {
        let status = Command::new(program).args(args).current_dir(dir).status()?;
        anyhow::ensure!(status.success(), "{program} failed");
        return Ok(0);
    };
    anyhow::ensure!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stderr);
    Ok(text.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0))
}
