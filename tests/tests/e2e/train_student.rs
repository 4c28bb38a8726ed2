//! Autodistill's loop with zero human labels, through the real server: the trained shapes
//! detector labels a pool of shapes photos as the teacher, a training job trains a student
//! from scratch on its proposals (a few epochs, small input: sized for CI), publishes it as the
//! project's active student with its figures, and the published ONNX file — run by the
//! `models` runtime as the registry and the browser run it — finds the shapes of held-out test
//! photos against the data set's own labels, well above what a broken pipeline can reach.
//! An editor left open in headless Chromium through it all swaps to the new student when it is
//! published — and back to the earlier one when it is made active again on the Models page in
//! another tab — each time showing that student's proposals, without a reload. The training is
//! cancelled after its first epochs and resumed from the Models page: it continues after the
//! last finished epoch, its earlier figures kept; that Models tab, left open, follows the
//! rollback made in another tab.

use std::time::Duration;

use anyhow::{Context, ensure};
use api::{JobState, RegisteredModel, TrainingEpoch};
use e2e::{Browser, Studio};
use serde_json::json;

const TEACHER: &str = "shapes-yolov8n-320.onnx";
const CLASSES: [&str; 4] = ["circle", "square", "triangle", "star"];
/// Training images from the shapes set (the project puts about a fifth in val).
const POOL: usize = 100;
const EPOCHS: u32 = 20;
const IMGSZ: u32 = 160;
/// Held-out photos (`shapes/images/test`, all of them), scored against their label files.
const TEST_PHOTOS: usize = 80;
/// Test mAP50 the student must reach. Untrained weights score 0.0000 here, and so does a
/// pipeline whose boxes or classes are scrambled (wrong anchor decoding, classes shuffled by
/// the export, a loss that does not pull boxes onto the objects); from scratch, 1,600 image
/// passes at 160² reach about 0.07–0.09 (the benchmark: 0.087 after 20 epochs of 96 images) —
/// the figure rises steadily with more training, `cargo xtask bench-train` shows how far. So
/// short a training spreads widely from run to run (three runs of this test on the first 20
/// photos: 0.005, 0.079, 0.219; val 0.059, 0.080, 0.162), hence a floor well under the typical
/// figure, still far above what a broken pipeline scores, and every test photo in the figure.
const FLOOR: f64 = 0.01;

/// mAP50 of an ONNX student on the held-out photos against their label files.
fn test_map50(onnx: &[u8]) -> anyhow::Result<f64> {
    let detector = models::Detector::load(onnx)?;
    let (mut truths, mut predictions) = (Vec::new(), Vec::new());
    for i in 0..TEST_PHOTOS {
        let jpeg = e2e::reference_model_file(&format!("shapes/images/test/test_{i:04}.jpg"))?;
        let labels = String::from_utf8(e2e::reference_model_file(&format!(
            "shapes/labels/test/test_{i:04}.txt"
        ))?)?;
        let size = image::load_from_memory(&jpeg)?;
        let (w, h) = (size.width() as f32, size.height() as f32);
        for line in labels.lines().filter(|l| !l.trim().is_empty()) {
            let v: Vec<f32> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            ensure!(v.len() == 5, "label line {line:?}");
            truths.push(train::GroundTruth {
                image: i,
                class_index: v[0] as usize,
                bbox: [
                    (v[1] - v[3] / 2.0) * w,
                    (v[2] - v[4] / 2.0) * h,
                    (v[1] + v[3] / 2.0) * w,
                    (v[2] + v[4] / 2.0) * h,
                ],
            });
        }
        let found = e2e::detect_in(&detector, &jpeg, 0.001, 0.7)?;
        predictions.extend(found.detections.into_iter().map(|d| train::Prediction {
            image: i,
            class_index: d.class_index,
            score: d.score,
            bbox: d.bbox,
        }));
    }
    Ok(train::evaluate(&truths, &predictions, CLASSES.len()).map50)
}

/// How far a proposal's score may differ between the browser (Chromium's JPEG decoder, the wasm
/// kernels) and `models` run natively (the `image` crate): as in `prelabel_in_browser`.
const SCORE_TOLERANCE: f32 = 0.02;
/// The confidence the editor's slider is set to, so even a weakly trained student shows some.
const SHOWN_FROM: f32 = 0.05;
/// The photo the editor stays open on (a pool image with several shapes).
const ON_SCREEN: usize = 0;

/// How many proposals the editor may show for `onnx` on `jpeg` at `level`: at least those the
/// native run scores clearly above it, at most those not clearly below it.
fn expected_band(onnx: &[u8], jpeg: &[u8], level: f32) -> anyhow::Result<(usize, usize)> {
    let detector = models::Detector::load(onnx)?;
    let found = e2e::detect_in(&detector, jpeg, level - SCORE_TOLERANCE, models::DEFAULT_IOU)?;
    let sure = found
        .detections
        .iter()
        .filter(|d| d.score >= level + SCORE_TOLERANCE)
        .count();
    Ok((sure, found.detections.len()))
}

/// Waits until the editor shows `model`'s proposals; returns how many it shows.
async fn editor_shows(browser: &Browser, model: &RegisteredModel) -> anyhow::Result<usize> {
    browser
        .find(&format!(".prelabels[data-state=ready][data-model-id=\"{}\"]", model.id))
        .await
        .with_context(|| format!("the editor never showed student v{}'s proposals", model.version))?;
    Ok(browser
        .client
        .find_all(fantoccini::Locator::Css("rect.proposal[data-source=student]"))
        .await?
        .len())
}

#[tokio::test]
async fn train_student_from_teacher_labels() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let browser = Browser::start().await?;
    browser.sign_in(&studio).await?;
    let outcome = run(&studio, &browser).await;
    studio.with_log(browser.finish("train_student", outcome).await)?;
    studio.stop().await?;
    Ok(())
}

async fn run(studio: &Studio, browser: &Browser) -> anyhow::Result<()> {
    let client = &browser.client;
    let project = studio.create_project("Distilled", &CLASSES).await?;
    let pid = project.id;

    let photos: Vec<(String, Vec<u8>)> = (0..POOL)
        .map(|i| {
            let name = format!("train_{i:04}.jpg");
            e2e::reference_model_file(&format!("shapes/images/train/{name}")).map(|bytes| (name, bytes))
        })
        .collect::<anyhow::Result<_>>()?;
    let files: Vec<(&str, Vec<u8>)> = photos.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (_, uploaded) = studio.upload(pid, &files).await?;
    let on_screen_id = uploaded[ON_SCREEN]["id"].as_i64().context("image id")?;
    let on_screen_jpeg = &photos[ON_SCREEN].1;

    // Nothing to learn from yet: no labels, no proposals.
    let (status, body) = studio.post_job(pid, json!({"kind": "train"})).await?;
    ensure!(status == 201, "{status} {body}");
    let refused = studio
        .until_job_final(body["id"].as_i64().context("job id")?, Duration::from_secs(60))
        .await?;
    ensure!(
        refused.state == JobState::Failed && refused.message.as_deref().unwrap_or("").contains("Nothing to train on"),
        "{refused:?}"
    );
    // Bad settings are refused before queueing.
    for settings in [json!({"epochs": 0}), json!({"imgsz": 100}), json!({"batch": 0})] {
        let (status, body) = studio
            .post_job(pid, json!({"kind": "train", "train": settings}))
            .await?;
        ensure!(
            status == 422 && body["error"]["code"] == "invalid_training",
            "{settings}: {status} {body}"
        );
    }

    // The teacher labels the pool.
    let teacher = studio.register_reference_model(pid, "teacher", TEACHER).await?;
    let (status, body) = studio.post_job(pid, json!({"kind": "teacher"})).await?;
    ensure!(status == 201, "{body}");
    let labeled = studio
        .until_job_final(body["id"].as_i64().context("job id")?, Duration::from_secs(5 * 60))
        .await?;
    ensure!(labeled.state == JobState::Succeeded, "{labeled:?}");

    // A teacher is not a starting point for a student's weights.
    let (status, body) = studio
        .post_job(pid, json!({"kind": "train", "model_id": teacher.id}))
        .await?;
    ensure!(
        status == 422 && body["error"]["code"] == "not_a_student",
        "{status} {body}"
    );

    // A training that cannot fit in memory fails with the figures instead of taking the server
    // down (1024 images of 2048² would need terabytes).
    let (status, body) = studio
        .post_job(pid, json!({"kind": "train", "train": {"batch": 1024, "imgsz": 2048}}))
        .await?;
    ensure!(status == 201, "{body}");
    let too_big = studio
        .until_job_final(body["id"].as_i64().context("job id")?, Duration::from_secs(60))
        .await?;
    let message = too_big.message.clone().unwrap_or_default();
    ensure!(
        too_big.state == JobState::Failed && message.contains("needs about") && message.contains("lower the batch"),
        "{too_big:?}"
    );

    // The trained shapes detector is student v1 for now; an editor is open on a photo, showing
    // its proposals, while the training runs.
    let v1 = studio.register_reference_model(pid, "student", TEACHER).await?;
    ensure!(v1.active && v1.version == 1, "{v1:?}");
    client
        .goto(&format!("{}/projects/{pid}/images/{on_screen_id}", studio.url))
        .await?;
    editor_shows(browser, &v1).await?;
    client
        .execute(
            &format!(
                "const s = document.getElementById('proposal-threshold'); s.value = '{SHOWN_FROM}'; \
                 s.dispatchEvent(new Event('input', {{bubbles: true}})); window.notReloaded = true;"
            ),
            vec![],
        )
        .await?;
    let v1_bytes = e2e::reference_model_file(TEACHER)?;
    let v1_band = expected_band(&v1_bytes, on_screen_jpeg, SHOWN_FROM)?;
    let shown = editor_shows(browser, &v1).await?;
    ensure!(
        shown >= v1_band.0.max(1) && shown <= v1_band.1,
        "v1 shows {shown} proposals, natively {v1_band:?}"
    );
    let editor_tab = client.window().await?;

    let (status, body) = studio.post_job(
        pid,
        // A small data set: every batch moves the weights (no accumulation to 64).
        json!({"kind": "train", "train": {"epochs": EPOCHS, "batch": 8, "nbs": 8, "imgsz": IMGSZ, "warmup_epochs": 1}}),
    )
    .await?;
    ensure!(status == 201, "{body}");
    let job_id = body["id"].as_i64().context("job id")?;
    let epochs_so_far = || async {
        let epochs: Vec<TrainingEpoch> = studio
            .http()
            .get(studio.api(&format!("/api/jobs/{job_id}/epochs")))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(epochs)
    };

    // Stopped after its first epochs, then resumed from the Models page (in another tab).
    let started = std::time::Instant::now();
    while epochs_so_far().await?.len() < 2 {
        ensure!(started.elapsed() < Duration::from_secs(10 * 60), "no epoch finished");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let cancel = studio
        .http()
        .clone()
        .post(studio.api(&format!("/api/jobs/{job_id}/cancel")))
        .send()
        .await?;
    ensure!(cancel.status() == 200, "{}", cancel.text().await?);
    let cancelled = studio.until_job_final(job_id, Duration::from_secs(5 * 60)).await?;
    ensure!(cancelled.state == JobState::Cancelled, "{cancelled:?}");
    let before_resume = epochs_so_far().await?;
    let kept = before_resume.len();
    ensure!(
        kept >= 2 && cancelled.done == kept as u64,
        "{cancelled:?} {before_resume:?}"
    );
    let training_tab = client.new_window(true).await?;
    client.switch_to_window(training_tab.handle).await?;
    client.goto(&format!("{}/projects/{pid}/models", studio.url)).await?;
    let resume = browser.find("#resume-training").await?;
    ensure!(
        resume.text().await? == format!("Resume after epoch {kept}"),
        "{}",
        resume.text().await?
    );
    resume.click().await?;
    browser
        .find(".training-status[data-job-state=running], .training-status[data-job-state=queued]")
        .await?;
    client.execute("window.notReloaded = true", vec![]).await?;
    // This tab stays open on the Models page, to see it follow a rollback made in another.
    let training_tab = client.window().await?;
    client.switch_to_window(editor_tab.clone()).await?;

    let job = studio.until_job_final(job_id, Duration::from_secs(25 * 60)).await?;
    let message = job.message.clone().unwrap_or_default();
    ensure!(job.state == JobState::Succeeded, "{job:?}\n{}", studio.log());
    ensure!(message.starts_with("Student v2 (mAP50 "), "{message}");
    ensure!(message.contains("is now pre-labeling"), "{message}");
    ensure!(message.contains(&format!("continued after epoch {kept}")), "{message}");

    // Every epoch charted, with finite figures; the loss went down.
    let epochs = epochs_so_far().await?;
    ensure!(epochs.len() == EPOCHS as usize, "{epochs:?}");
    ensure!(
        epochs[..kept] == before_resume[..],
        "the epochs before the stop were charted again"
    );
    ensure!(
        epochs
            .iter()
            .enumerate()
            .all(|(i, e)| e.epoch as usize == i + 1 && e.epochs == EPOCHS)
    );
    let total = |e: &TrainingEpoch| e.box_loss + e.class_loss + e.dfl_loss;
    ensure!(epochs.iter().all(|e| total(e).is_finite() && e.images_per_second > 0.0));
    ensure!(
        total(&epochs[epochs.len() - 1]) < 0.8 * total(&epochs[0]),
        "the loss fell: {:?}",
        epochs.iter().map(total).collect::<Vec<_>>()
    );

    // Published: the newest student, active, with its job and validation figures.
    let registered: Vec<RegisteredModel> = studio
        .http()
        .get(studio.api(&format!("/api/projects/{pid}/models")))
        .send()
        .await?
        .json()
        .await?;
    let student = registered
        .iter()
        .find(|m| m.role == api::ModelRole::Student && m.id != v1.id)
        .context("a student was registered")?;
    ensure!(
        student.active && student.version == 2 && student.input_size == IMGSZ,
        "{student:?}"
    );
    ensure!(registered.iter().filter(|m| m.active).count() == 1, "{registered:?}");
    ensure!(student.class_map == [Some(0), Some(1), Some(2), Some(3)], "{student:?}");
    let trained = student.trained.clone().context("trained by the job")?;
    let best = epochs.iter().rfind(|e| e.best).context("a best epoch")?;
    ensure!(trained.job_id == job_id, "{trained:?}");
    ensure!(
        trained.map50.is_some_and(|m| (m - best.map50).abs() < 1e-9),
        "{trained:?} vs {best:?}"
    );

    let onnx = studio
        .http()
        .get(studio.api(&student.url))
        .send()
        .await?
        .bytes()
        .await?;
    let map50 = test_map50(&onnx)?;
    println!(
        "student test mAP50 {map50:.3} (floor {FLOOR}); val mAP50 {:?}",
        trained.map50
    );
    ensure!(map50 > FLOOR, "the student's test mAP50 is {map50:.3}, under {FLOOR}");

    // The open editor took the new student without a reload: its proposals, the announcement,
    // and background scoring for the new version.
    // As many as the native run of v2 finds, which for a weak 20-epoch student may be none
    // sure above the slider (one run: 0 to 2); that the editor ran v2 is what `editor_shows`
    // waits for (the panel ready with v2's id), and the announcement and background scoring
    // below.
    let v2_band = expected_band(&onnx, on_screen_jpeg, SHOWN_FROM)?;
    let shown = editor_shows(browser, student).await?;
    ensure!(
        shown >= v2_band.0 && shown <= v2_band.1,
        "v2 shows {shown} proposals, natively {v2_band:?}"
    );
    browser.wait_for_text(".student-swapped", "Student v2 (mAP50 ").await?;
    ensure!(
        client.execute("return window.notReloaded === true", vec![]).await? == json!(true),
        "the editor reloaded"
    );
    let pending = || async {
        let answer: api::PendingImages = studio
            .http()
            .get(studio.api(&format!(
                "/api/projects/{pid}/predictions/pending?model_id={}&limit={POOL}",
                student.id
            )))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(answer.image_ids.len())
    };
    let started = std::time::Instant::now();
    while pending().await? >= POOL - 1 {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the editor's tab scored no other image with student v2"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Rolling back is one click on the Models page, here in another tab; the editor follows.
    let models_tab = client.new_window(true).await?;
    client.switch_to_window(models_tab.handle).await?;
    client.goto(&format!("{}/projects/{pid}/models", studio.url)).await?;
    browser
        .find(&format!(".model-card[data-model-id=\"{}\"] button.make-active", v1.id))
        .await?
        .click()
        .await?;
    browser
        .find(&format!(".model-card[data-model-id=\"{}\"][data-active=true]", v1.id))
        .await?;
    client.close_window().await?;
    client.switch_to_window(training_tab).await?;
    browser
        .find(&format!(".model-card[data-model-id=\"{}\"][data-active=true]", v1.id))
        .await
        .context("the other Models tab did not follow the rollback")?;
    ensure!(
        client.execute("return window.notReloaded === true", vec![]).await? == json!(true),
        "the Models tab reloaded"
    );
    client.close_window().await?;
    client.switch_to_window(editor_tab).await?;
    let shown = editor_shows(browser, &v1).await?;
    ensure!(
        shown >= v1_band.0.max(1) && shown <= v1_band.1,
        "back on v1: {shown} proposals, natively {v1_band:?}"
    );
    browser
        .wait_for_text(
            ".student-swapped",
            "Student v1 (shapes-yolov8n-320.onnx) is now pre-labeling",
        )
        .await?;
    ensure!(
        client.execute("return window.notReloaded === true", vec![]).await? == json!(true),
        "the editor reloaded"
    );
    Ok(())
}
