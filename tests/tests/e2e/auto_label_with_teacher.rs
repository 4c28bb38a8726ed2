//! A teacher labels the pool on the server: a teacher job over real photos stores, for every
//! image, exactly the boxes the `models` runtime finds in it (mapped onto project classes,
//! unmapped ones dropped and counted), leaves human boxes alone, skips an unreadable image with
//! a word in the job's message, and a newer teacher version's run (here from the command line,
//! beside the running server) replaces the older proposals of the images it labels.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use api::{BoundingBox, BoxSource, Job, JobState, RegisteredModel};
use e2e::{Studio, fixtures};
use serde_json::{Value, json};

const TEACHER: &str = "shapes-yolov8n-320.onnx";
/// The shapes classes; the project leaves out "star", so star detections are unmapped.
const PROJECT_CLASSES: [&str; 3] = ["circle", "square", "triangle"];

async fn register_teacher(studio: &Studio, project_id: i64) -> anyhow::Result<RegisteredModel> {
    studio.register_reference_model(project_id, "teacher", TEACHER).await
}

async fn boxes_of(studio: &Studio, image_id: i64) -> anyhow::Result<Vec<BoundingBox>> {
    let boxes: api::ImageBoxes = studio
        .http()
        .get(studio.api(&format!("/api/images/{image_id}/boxes")))
        .send()
        .await?
        .json()
        .await?;
    Ok(boxes.boxes)
}

fn teacher_boxes(boxes: &[BoundingBox]) -> Vec<&BoundingBox> {
    boxes.iter().filter(|b| b.source == BoxSource::Teacher).collect()
}

/// One proposal: project class, confidence, corners in image pixels.
type Proposal = (u32, f32, [f64; 4]);

/// What the `models` runtime finds in a photo, mapped the way the project's classes are named;
/// and how many detections have no project class.
fn expected_proposals(detector: &models::Detector, jpeg: &[u8]) -> anyhow::Result<(Vec<Proposal>, usize)> {
    let prediction = e2e::detect_in(detector, jpeg, models::DEFAULT_CONFIDENCE, models::DEFAULT_IOU)?;
    let names = &detector.info().class_names;
    let mut unmapped = 0;
    let mut found = Vec::new();
    for d in prediction.detections {
        match PROJECT_CLASSES.iter().position(|c| *c == names[d.class_index]) {
            Some(class_id) => found.push((class_id as u32, d.score, d.bbox.map(f64::from))),
            None => unmapped += 1,
        }
    }
    Ok((found, unmapped))
}

#[tokio::test]
async fn auto_label_with_teacher() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("studio");
    let studio = Studio::start_in(&data_dir).await?;
    let http = studio.http().clone();
    let project = studio.create_project("Teachers", &PROJECT_CLASSES).await?;
    let pid = project.id;

    let photos: Vec<(String, Vec<u8>)> = e2e::shapes_test_photos(0..8)?;
    let mut files: Vec<(&str, Vec<u8>)> = photos.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    files.push(("broken.png", fixtures::png(40, 30, 7)));
    let (_, uploaded) = studio.upload(pid, &files).await?;
    let uploaded = uploaded.as_array().context("upload answer")?.clone();
    let ids: Vec<i64> = uploaded.iter().filter_map(|f| f["id"].as_i64()).collect();
    ensure!(ids.len() == 9, "{uploaded:?}");
    // The last image's bytes go bad on disk after the upload checked them.
    let sha = uploaded[8]["sha256"].as_str().context("sha256")?;
    let original = data_dir.join("originals").join(&sha[..2]).join(format!("{sha}.png"));
    ensure!(original.is_file(), "{} is where the store keeps it", original.display());
    std::fs::write(&original, b"\x89PNG garbage")?;

    // A person's box on one photo: the teacher must leave it alone.
    let human = json!({"class_id": 1, "x0": 5, "y0": 6, "x1": 50, "y1": 60});
    let put = http
        .put(studio.api(&format!("/api/images/{}/boxes", ids[1])))
        .json(&json!({"boxes": [human]}))
        .send()
        .await?;
    ensure!(put.status().is_success());

    // Refusals: no teacher yet, bad settings, a student given as the teacher.
    let (status, body) = studio.post_job(pid, json!({"kind": "teacher"})).await?;
    ensure!(
        status == 409 && body["error"]["code"] == "no_teacher",
        "{status} {body}"
    );
    let teacher = register_teacher(&studio, pid).await?;
    ensure!(
        teacher.class_map == [Some(0), Some(1), Some(2), None],
        "mapped by name, star unmapped: {:?}",
        teacher.class_map
    );
    for (body, code) in [
        (json!({"kind": "teacher", "min_conf": 1.5}), "invalid_min_conf"),
        (json!({"kind": "teacher", "images": [999_999]}), "unknown_image"),
    ] {
        let (status, answer) = studio.post_job(pid, body.clone()).await?;
        ensure!(
            status == 422 && answer["error"]["code"] == code,
            "{body}: {status} {answer}"
        );
    }

    // The job: every image, one unreadable.
    let (status, body) = studio.post_job(pid, json!({"kind": "teacher"})).await?;
    ensure!(status == 201, "{body}");
    let job: Job = serde_json::from_value(body)?;
    ensure!(job.model_id == Some(teacher.id));
    let job = studio.until_job_final(job.id, Duration::from_secs(120)).await?;
    let message = job.message.clone().unwrap_or_default();
    ensure!(
        job.state == JobState::Succeeded && job.done == 9 && job.total == 9,
        "{job:?}"
    );
    ensure!(message.contains("1 image could not be read"), "{message}");

    let detector = models::Detector::load(&e2e::reference_model_file(TEACHER)?)?;
    let mut expected_unmapped = 0;
    let mut first_run: HashSet<String> = HashSet::new();
    for ((name, jpeg), id) in photos.iter().zip(&ids) {
        let (mut want, unmapped) = expected_proposals(&detector, jpeg)?;
        expected_unmapped += unmapped;
        let boxes = boxes_of(&studio, *id).await?;
        let mut got: Vec<&BoundingBox> = teacher_boxes(&boxes);
        ensure!(got.len() == want.len(), "{name}: stored {got:?}, models finds {want:?}");
        want.sort_by(|a, b| {
            (a.0, a.2[0])
                .partial_cmp(&(b.0, b.2[0]))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        got.sort_by(|a, b| {
            (a.class_id, a.x0)
                .partial_cmp(&(b.class_id, b.x0))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for (stored, (class_id, score, [x0, y0, x1, y1])) in got.iter().zip(&want) {
            let close = [stored.x0 - x0, stored.y0 - y0, stored.x1 - x1, stored.y1 - y1]
                .iter()
                .all(|d| d.abs() < 1e-3);
            ensure!(
                stored.class_id == *class_id
                    && close
                    && stored.confidence.is_some_and(|c| (c - score).abs() < 1e-5)
                    && stored.model_version.as_deref() == Some(teacher.sha256.as_str()),
                "{name}: stored {stored:?}, models finds {:?}",
                (class_id, score, [x0, y0, x1, y1])
            );
            first_run.insert(stored.id.clone());
        }
        let people: Vec<&BoundingBox> = boxes.iter().filter(|b| b.source == BoxSource::Human).collect();
        let want_people = usize::from(*id == ids[1]);
        ensure!(people.len() == want_people, "{name}: human boxes {people:?}");
    }
    ensure!(
        first_run.len() >= 20,
        "the photos hold shapes: {} proposals",
        first_run.len()
    );
    ensure!(
        message.contains(&format!("{expected_unmapped} detections of unmapped classes dropped"))
            && expected_unmapped > 1,
        "{message} (expected {expected_unmapped} unmapped)"
    );
    // Images the teacher labeled are pre-labeled; the person's image is still theirs.
    let page: api::ImagePage = studio
        .http()
        .get(studio.api(&format!("/api/projects/{pid}/images?limit=20")))
        .send()
        .await?
        .json()
        .await?;
    for image in &page.images {
        let want = if image.id == ids[1] {
            api::ImageStatus::InProgress
        } else if image.id == ids[8] {
            api::ImageStatus::New
        } else {
            api::ImageStatus::Prelabeled
        };
        ensure!(image.status == want, "{image:?}");
    }

    // The gallery's filter by where labels came from: 8 photos carry teacher boxes, 1 a person's.
    for (source, want) in [("teacher", 8), ("human", 1)] {
        let page: Value = http
            .get(studio.api(&format!("/api/projects/{pid}/images?source={source}")))
            .send()
            .await?
            .json()
            .await?;
        ensure!(page["total"] == want, "source={source}: {page}");
    }
    let bogus = http
        .get(studio.api(&format!("/api/projects/{pid}/images?source=oracle")))
        .send()
        .await?;
    ensure!(bogus.status() == 400, "{}", bogus.status());

    // Export takes the confident teacher boxes in and says where each image's labels came from.
    let min_conf = 0.5;
    let zip = http
        .get(studio.api(&format!(
            "/api/projects/{pid}/export?format=yolo&include=auto&min_conf={min_conf}"
        )))
        .send()
        .await?
        .bytes()
        .await?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec()))?;
    let manifest: Value = serde_json::from_reader(archive.by_name("manifest.json")?)?;
    for entry in manifest["images"].as_array().context("manifest images")? {
        let id = entry["image_id"].as_i64().unwrap_or_default();
        let confident = teacher_boxes(&boxes_of(&studio, id).await?)
            .iter()
            .filter(|b| b.confidence.is_some_and(|c| c >= min_conf))
            .count();
        let (want_source, want_boxes) = if id == ids[1] {
            ("human", 1)
        } else {
            ("teacher", confident)
        };
        ensure!(
            entry["labels"] == want_source && entry["boxes"] == want_boxes,
            "{entry} (expected {want_source}, {want_boxes} boxes)"
        );
    }
    ensure!(
        manifest["images"].as_array().map(Vec::len) == Some(8),
        "the 8 photos, not the unreadable image: {manifest}"
    );

    // A newer teacher version, run from the command line beside the server, over the unlabeled
    // images only: their proposals are replaced (not doubled); the person's image keeps the
    // first version's.
    let newer = register_teacher(&studio, pid).await?;
    let out = Command::new(e2e::studio::binary_path())
        .args([
            "teacher",
            "--project",
            "Teachers",
            "--images",
            "unlabeled",
            "--inference-threads",
            "2",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .envs(e2e::postgres::database_env(&data_dir).await?)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    ensure!(stdout.contains("Labeled 8 images"), "{stdout}");
    let mut second_run = 0;
    for ((name, _), id) in photos.iter().zip(&ids) {
        let boxes = boxes_of(&studio, *id).await?;
        for b in teacher_boxes(&boxes) {
            let from_first = first_run.contains(&b.id);
            ensure!(from_first == (*id == ids[1]), "{name}: {b:?}");
            second_run += usize::from(!from_first);
        }
    }
    ensure!(second_run > 0 && newer.id != teacher.id);

    Ok(())
}

/// A teacher job stopped by a server shutdown continues after the restart with the images it had
/// not labeled, labels each image once, and a cancelled one stops.
#[tokio::test]
async fn teacher_job_resumes_and_cancels() -> anyhow::Result<()> {
    const IMAGES: usize = 40;
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("studio");
    let studio = Studio::start_in(&data_dir).await?;
    let project = studio.create_project("Resumed", &PROJECT_CLASSES).await?;
    let files: Vec<(String, Vec<u8>)> = (0..IMAGES)
        .map(|i| {
            let name = format!("train_{i:04}.jpg");
            e2e::reference_model_file(&format!("shapes/images/train/{name}")).map(|bytes| (name, bytes))
        })
        .collect::<anyhow::Result<_>>()?;
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    ensure!(studio.upload(project.id, &refs).await?.0.is_success());
    let teacher = register_teacher(&studio, project.id).await?;

    let (_, body) = studio.post_job(project.id, json!({"kind": "teacher"})).await?;
    let job: Job = serde_json::from_value(body)?;
    let mut running = job.clone();
    for _ in 0..600 {
        running = studio
            .http()
            .get(studio.api(&format!("/api/jobs/{}", job.id)))
            .send()
            .await?
            .json()
            .await?;
        if running.done >= 1 || running.state.is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(studio.stop().await?.success());
    ensure!(
        running.state == JobState::Running && running.done < IMAGES as u64,
        "stopped mid-job: {running:?}"
    );

    let studio = Studio::start_in(&data_dir).await?;
    let job = studio.until_job_final(job.id, Duration::from_secs(120)).await?;
    ensure!(
        job.state == JobState::Succeeded && job.done == IMAGES as u64 && job.total == IMAGES as u64,
        "{job:?}"
    );
    // Each image labeled once: its teacher boxes are one run's, all of this version.
    let page: api::ImagePage = studio
        .http()
        .get(studio.api(&format!("/api/projects/{}/images?limit=100", project.id)))
        .send()
        .await?
        .json()
        .await?;
    ensure!(page.images.len() == IMAGES);
    let detector = models::Detector::load(&e2e::reference_model_file(TEACHER)?)?;
    for image in &page.images {
        let (name, bytes) = files
            .iter()
            .find(|(name, _)| *name == image.file_name)
            .context("an uploaded photo")?;
        let stored = teacher_boxes(&boxes_of(&studio, image.id).await?).len();
        let (expected, _) = expected_proposals(&detector, bytes)?;
        ensure!(
            stored == expected.len(),
            "{name}: {stored} teacher boxes, models finds {}",
            expected.len()
        );
    }

    // Cancel: a newer version's job over the 40 images runs; one queued behind it is cancelled
    // in the queue (nothing done); the running one stops at its next image, short of the end.
    let newer = register_teacher(&studio, project.id).await?;
    let (_, body) = studio
        .post_job(project.id, json!({"kind": "teacher", "model_id": newer.id}))
        .await?;
    let long: Job = serde_json::from_value(body)?;
    let (_, body) = studio
        .post_job(project.id, json!({"kind": "teacher", "model_id": teacher.id}))
        .await?;
    let queued: Job = serde_json::from_value(body)?;
    let http = studio.http().clone();
    for job in [&queued, &long] {
        let cancelled = http
            .post(studio.api(&format!("/api/jobs/{}/cancel", job.id)))
            .send()
            .await?;
        ensure!(
            cancelled.status() == 200,
            "cancel {}: {}",
            job.id,
            cancelled.text().await?
        );
    }
    let queued = studio.until_job_final(queued.id, Duration::from_secs(120)).await?;
    ensure!(queued.state == JobState::Cancelled && queued.done == 0, "{queued:?}");
    let long = studio.until_job_final(long.id, Duration::from_secs(120)).await?;
    ensure!(
        long.state == JobState::Cancelled && long.done < IMAGES as u64,
        "{long:?}"
    );
    // Resumed in the same server, it labels the rest: the images its cancelled run had claimed
    // are not left waiting for their leases.
    let resumed = http
        .post(studio.api(&format!("/api/jobs/{}/resume", long.id)))
        .send()
        .await?;
    ensure!(resumed.status() == 200, "resume: {}", resumed.text().await?);
    let long = studio.until_job_final(long.id, Duration::from_secs(120)).await?;
    ensure!(
        long.state == JobState::Succeeded && long.done == IMAGES as u64,
        "{long:?}"
    );
    Ok(())
}

/// The library `cargo xtask test` installs from PyPI (`DISTILLERY_TEST_ONNXRUNTIME`).
fn onnxruntime_library() -> anyhow::Result<String> {
    std::env::var("DISTILLERY_TEST_ONNXRUNTIME").context(
        "DISTILLERY_TEST_ONNXRUNTIME names libonnxruntime.so; `cargo xtask test` installs it from PyPI and sets it",
    )
}

/// With `--onnxruntime`, the server's teacher runs on onnxruntime instead of tract and stores the
/// same proposals tract finds: same count and classes, boxes within a hundredth of a pixel's
/// overlap (IoU ≥ 0.99), scores within 1e-3 — the two engines' float sums differ, nothing else.
#[tokio::test]
async fn teacher_on_onnxruntime_finds_what_tract_finds() -> anyhow::Result<()> {
    let library = onnxruntime_library()?;
    let studio = Studio::start_with(&["--onnxruntime", &library, "--inference-threads", "2"]).await?;
    let project = studio.create_project("On onnxruntime", &PROJECT_CLASSES).await?;
    let photos: Vec<(String, Vec<u8>)> = e2e::shapes_test_photos(10..14)?;
    let refs: Vec<(&str, Vec<u8>)> = photos.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (_, uploaded) = studio.upload(project.id, &refs).await?;
    let ids: Vec<i64> = uploaded
        .as_array()
        .context("upload answer")?
        .iter()
        .filter_map(|f| f["id"].as_i64())
        .collect();
    register_teacher(&studio, project.id).await?;
    let (_, body) = studio.post_job(project.id, json!({"kind": "teacher"})).await?;
    let job = studio
        .until_job_final(serde_json::from_value::<Job>(body)?.id, Duration::from_secs(120))
        .await?;
    ensure!(job.state == JobState::Succeeded && job.done == 4, "{job:?}");
    ensure!(
        studio.log().contains("onnxruntime (cpu)"),
        "the server says which engine runs detectors:\n{}",
        studio.log()
    );

    let tract = models::Detector::load(&e2e::reference_model_file(TEACHER)?)?;
    let mut compared = 0;
    for ((name, jpeg), id) in photos.iter().zip(&ids) {
        let (want, _) = expected_proposals(&tract, jpeg)?;
        let boxes = boxes_of(&studio, *id).await?;
        let stored = teacher_boxes(&boxes);
        ensure!(
            stored.len() == want.len(),
            "{name}: onnxruntime {stored:?}, tract {want:?}"
        );
        for (class_id, score, corners) in &want {
            let corners = corners.map(|v| v as f32);
            let twin = stored.iter().find(|b| {
                let got = [b.x0 as f32, b.y0 as f32, b.x1 as f32, b.y1 as f32];
                b.class_id == *class_id && models::iou(got, corners) >= 0.99
            });
            let twin = twin.with_context(|| format!("{name}: tract's {class_id} at {corners:?} in {stored:?}"))?;
            ensure!(
                twin.confidence.is_some_and(|c| (c - score).abs() < 1e-3),
                "{name}: {twin:?} vs tract's {score}"
            );
            compared += 1;
        }
    }
    ensure!(compared >= 10, "the photos hold shapes: {compared}");
    Ok(())
}
