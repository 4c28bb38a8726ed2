//! A team keeps a studio's files in S3-compatible object storage (`--store s3://bucket/prefix`,
//! endpoint and credentials from the usual AWS variables): uploaded images, their thumbnails and
//! model files land in the bucket under their SHA-256 — none in the data folder — and the studio
//! serves them back byte for byte (a revalidation is answered 304), runs a teacher job on them
//! and exports them. A store it cannot use stops it at start with a readable message.
//!
//! The server is a real one (`s3s-fs`, started by the test, signed requests required), and what
//! it holds is read from its own folders, not through the studio.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use api::{BoundingBox, BoxSource, Job, JobState};
use e2e::Studio;
use e2e::s3::S3Server;
use serde_json::json;
use sha2::{Digest, Sha256};

const BUCKET: &str = "labels";
const PREFIX: &str = "team-a";
const TEACHER: &str = "shapes-yolov8n-320.onnx";
const CLASSES: [&str; 4] = ["circle", "square", "triangle", "star"];

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes the S3 server holds under `area/ab/<sha>.<extension>` of the studio's prefix.
fn stored(s3: &S3Server, area: &str, sha: &str, extension: &str) -> anyhow::Result<Vec<u8>> {
    let path = s3.object_path(BUCKET, &format!("{PREFIX}/{area}/{}/{sha}.{extension}", &sha[..2]));
    std::fs::read(&path).with_context(|| format!("the bucket has no {}", path.display()))
}

#[tokio::test]
async fn keep_files_in_object_storage() -> anyhow::Result<()> {
    let s3 = S3Server::start(&[BUCKET]).await?;
    let store = format!("s3://{BUCKET}/{PREFIX}");
    let studio = Studio::start_with_env(&["--store", &store], &s3.env()).await?;
    let outcome = use_the_bucket(&studio, &s3).await;
    studio.with_log(outcome)?;
    studio.stop().await?;
    refuse_stores_it_cannot_use(&s3).await
}

async fn use_the_bucket(studio: &Studio, s3: &S3Server) -> anyhow::Result<()> {
    let http = studio.http().clone();
    let project = studio.create_project("Shapes in a bucket", &CLASSES).await?;
    let photos: Vec<(String, Vec<u8>)> = e2e::shapes_test_photos(0..3)?;
    let files: Vec<(&str, Vec<u8>)> = photos.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, uploaded) = studio.upload(project.id, &files).await?;
    ensure!(status.is_success(), "{status} {uploaded}");
    let ids: Vec<i64> = uploaded
        .as_array()
        .context("upload answer")?
        .iter()
        .filter_map(|f| f["id"].as_i64())
        .collect();
    ensure!(ids.len() == photos.len(), "{uploaded}");

    // Each original and its thumbnail are in the bucket under the original's hash; the data
    // folder keeps none of them.
    for (id, (name, bytes)) in ids.iter().zip(&photos) {
        let sha = sha256_hex(bytes);
        ensure!(
            stored(s3, "originals", &sha, "jpg")? == *bytes,
            "{name}: the bucket holds other bytes"
        );
        let thumb = image::load_from_memory(&stored(s3, "thumbs", &sha, "jpg")?)?;
        ensure!(
            thumb.width().max(thumb.height()) <= 256,
            "{name}: thumbnail {}×{}",
            thumb.width(),
            thumb.height()
        );

        let served = http.get(studio.api(&format!("/api/images/{id}/file"))).send().await?;
        ensure!(served.status() == 200, "{name}: {}", served.status());
        let etag = served
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .context("no ETag")?;
        ensure!(served.headers()["content-type"] == "image/jpeg");
        ensure!(
            served.bytes().await?.as_ref() == bytes.as_slice(),
            "{name}: served other bytes"
        );
        let again = http
            .get(studio.api(&format!("/api/images/{id}/file")))
            .header("if-none-match", &etag)
            .send()
            .await?;
        ensure!(again.status() == 304, "{name}: a revalidation got {}", again.status());
        let thumb = http.get(studio.api(&format!("/api/images/{id}/thumb"))).send().await?;
        ensure!(thumb.status() == 200 && thumb.headers()["content-type"] == "image/jpeg");
        image::load_from_memory(&thumb.bytes().await?)?;
    }
    ensure!(
        !studio.data_dir().join("originals").exists() && !studio.data_dir().join("thumbs").exists(),
        "the data folder keeps image files although a store was given"
    );

    // The same bytes in another project are stored once.
    let other = studio.create_project("Same photos", &CLASSES).await?;
    let (status, _) = studio.upload(other.id, &files[..1]).await?;
    ensure!(status.is_success());
    let mut originals = Vec::new();
    for folder in std::fs::read_dir(s3.object_path(BUCKET, &format!("{PREFIX}/originals")))? {
        originals.extend(std::fs::read_dir(folder?.path())?);
    }
    ensure!(
        originals.len() == photos.len(),
        "{} originals for {} distinct photos",
        originals.len(),
        photos.len()
    );

    // A model file goes to the bucket too, and browsers download it from there.
    let teacher = studio.register_reference_model(project.id, "teacher", TEACHER).await?;
    let onnx = e2e::reference_model_file(TEACHER)?;
    ensure!(
        stored(s3, "models", &sha256_hex(&onnx), "onnx")? == onnx,
        "the bucket holds other model bytes"
    );
    let download = http
        .get(studio.api(&format!("/api/models/{}/file", teacher.id)))
        .send()
        .await?;
    ensure!(download.status() == 200 && download.bytes().await?.as_ref() == onnx.as_slice());

    // The teacher reads the images from the bucket: every photo gets what the runtime finds.
    let (status, body) = studio.post_job(project.id, json!({"kind": "teacher"})).await?;
    ensure!(status == 201, "{body}");
    let job: Job = serde_json::from_value(body)?;
    let job = studio.until_job_final(job.id, Duration::from_secs(120)).await?;
    ensure!(job.state == JobState::Succeeded && job.done == 3, "{job:?}");
    let detector = models::Detector::load(&onnx)?;
    for (id, (name, bytes)) in ids.iter().zip(&photos) {
        let want = e2e::detect_in(&detector, bytes, models::DEFAULT_CONFIDENCE, models::DEFAULT_IOU)?;
        let boxes: api::ImageBoxes = http
            .get(studio.api(&format!("/api/images/{id}/boxes")))
            .send()
            .await?
            .json()
            .await?;
        let got: Vec<&BoundingBox> = boxes.boxes.iter().filter(|b| b.source == BoxSource::Teacher).collect();
        ensure!(
            !want.detections.is_empty() && got.len() == want.detections.len(),
            "{name}: stored {} teacher boxes, the runtime finds {}",
            got.len(),
            want.detections.len()
        );
    }

    // The export streams the originals out of the bucket.
    let zip = http
        .get(studio.api(&format!("/api/projects/{}/export?format=yolo&include=auto", project.id)))
        .send()
        .await?;
    ensure!(zip.status() == 200, "export: {}", zip.status());
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.bytes().await?))?;
    let mut exported = BTreeSet::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index)?;
        if entry.name()?.starts_with("images/") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            exported.insert(sha256_hex(&bytes));
        }
    }
    let uploaded: BTreeSet<String> = photos.iter().map(|(_, b)| sha256_hex(b)).collect();
    ensure!(exported == uploaded, "the zip's images are not the uploaded bytes");
    Ok(())
}

/// Variables for the server process.
type Environment = [(&'static str, String)];

/// Wrong credentials and an unknown kind of store stop `serve` before it listens.
async fn refuse_stores_it_cannot_use(s3: &S3Server) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let wrong_secret: Vec<(&'static str, String)> = s3
        .env()
        .into_iter()
        .map(|(name, value)| match name {
            "AWS_SECRET_ACCESS_KEY" => (name, "not-the-secret".to_owned()),
            _ => (name, value),
        })
        .collect();
    let cases: [(&str, &Environment, &str); 2] = [
        (
            "s3://labels/team-a",
            &wrong_secret,
            "cannot reach the store s3://labels/team-a",
        ),
        ("gs://labels", &[], "must be an s3://bucket/prefix URL"),
    ];
    for (store, env, says) in cases {
        let run = tokio::process::Command::new(e2e::studio::binary_path())
            .args(["serve", "--addr", "127.0.0.1:0", "--store", store, "--data-dir"])
            .arg(data.path())
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .with_context(|| format!("serve with {store} did not stop"))??;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(!output.status.success(), "serve started with {store}");
        ensure!(stderr.contains(says), "serve with {store} said: {stderr}");
    }
    Ok(())
}
