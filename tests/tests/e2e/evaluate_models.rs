//! The Quality page's figures and the label-error queue, through the real server: the trained
//! shapes detector's mAP on `shapes/images/test` agrees with what Ultralytics' own `val` printed
//! for it (`shapes-metrics.json`); a hand-made ground truth scores the AP computed by hand; a
//! wrong class planted on one approved image is the first thing `label_errors` points at, and a
//! confirmed label is not raised again.

use std::time::Duration;

use anyhow::{Context, ensure};
use api::{ImageLabelErrors, Job, ModelEvaluation, ProjectEvaluation, Queue, RegisteredModel, SuspicionKind};
use e2e::Studio;
use e2e::fixtures::zip_of;
use serde_json::{Value, json};

const DETECTOR: &str = "shapes-yolov8n-320.onnx";
const CLASSES: [&str; 4] = ["circle", "square", "triangle", "star"];
/// How far the server's mAP may sit from Ultralytics' on the same images and labels. The metric
/// is the same code (held to Ultralytics' to 1e-6 in `train`); the detections are not quite:
/// `yolo val` letterboxes each batch to a stride-aligned rectangle (these photos are 320–512 ×
/// 240–384), the studio to the model's fixed 320 × 320 square, and the JPEG decoders differ by
/// a few levels — which moves boxes by fractions of a pixel and scores by a few thousandths.
const MAP_TOLERANCE: f64 = 0.02;

pub(crate) async fn register(studio: &Studio, project_id: i64, role: &str) -> anyhow::Result<RegisteredModel> {
    studio.register_reference_model(project_id, role, DETECTOR).await
}

/// The evaluation once its job (if any) has finished.
pub(crate) async fn settled_evaluation(studio: &Studio, project_id: i64) -> anyhow::Result<ProjectEvaluation> {
    let url = studio.api(&format!("/api/projects/{project_id}/evaluation"));
    for _ in 0..1200 {
        let evaluation: ProjectEvaluation = studio.http().get(&url).send().await?.json().await?;
        match &evaluation.job {
            None => return Ok(evaluation),
            Some(Job { state, .. }) if state.is_final() => {
                anyhow::bail!("a finished job is not pending: {evaluation:?}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    anyhow::bail!("evaluation did not settle in 2 minutes:\n{}", studio.log())
}

/// Imports the first `count` images of `shapes/images/test` with their Ultralytics labels and
/// approves them; their ids, in file-name order.
pub(crate) async fn approved_shapes_test_set(
    studio: &Studio,
    project_id: i64,
    count: usize,
) -> anyhow::Result<Vec<i64>> {
    let dir = e2e::reference_models_dir().join("shapes");
    let mut entries: Vec<(String, Vec<u8>)> = vec![(
        "data.yaml".into(),
        format!("names: [{}]\n", CLASSES.join(", ")).into_bytes(),
    )];
    let mut names: Vec<String> = std::fs::read_dir(dir.join("images/test"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.truncate(count);
    for name in &names {
        let stem = name.trim_end_matches(".jpg");
        entries.push((
            format!("images/test/{name}"),
            std::fs::read(dir.join("images/test").join(name))?,
        ));
        entries.push((
            format!("labels/test/{stem}.txt"),
            std::fs::read(dir.join("labels/test").join(format!("{stem}.txt")))?,
        ));
    }
    let refs: Vec<(&str, Vec<u8>)> = entries.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(zip_of(&refs)).file_name("shapes.zip"),
    );
    let http = studio.http().clone();
    let report: Value = http
        .post(studio.api(&format!("/api/projects/{project_id}/import")))
        .multipart(form)
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        report["images_added"] == names.len() && names.len() == count,
        "{report}"
    );
    let page: api::ImagePage = studio
        .http()
        .get(studio.api(&format!("/api/projects/{project_id}/images?limit=100")))
        .send()
        .await?
        .json()
        .await?;
    let mut ids = Vec::new();
    for image in page.images {
        let approved = http
            .post(studio.api(&format!("/api/images/{}/status", image.id)))
            .json(&json!({"status": "approved"}))
            .send()
            .await?;
        ensure!(approved.status().is_success(), "{}", approved.text().await?);
        ids.push(image.id);
    }
    Ok(ids)
}

/// A human box the model agrees with (same class, IoU above 0.9), and how sure it is.
pub(crate) struct Surest {
    pub score: f32,
    pub image_id: i64,
    pub box_id: String,
    pub class_id: u32,
    pub corners: [f64; 4],
}

/// Per image, the human box the model (run here with `models`) agrees with most confidently;
/// the surest first.
pub(crate) async fn surest_agreeing_boxes(studio: &Studio, images: &[i64]) -> anyhow::Result<Vec<Surest>> {
    let detector = models::Detector::load(&e2e::reference_model_file(DETECTOR)?)?;
    let mut found = Vec::new();
    for &image_id in images {
        let bytes = studio
            .http()
            .get(studio.api(&format!("/api/images/{image_id}/file")))
            .send()
            .await?
            .bytes()
            .await?;
        let detections = e2e::detect_in(&detector, &bytes, 0.5, 0.7)?.detections;
        let boxes: api::ImageBoxes = studio
            .http()
            .get(studio.api(&format!("/api/images/{image_id}/boxes")))
            .send()
            .await?
            .json()
            .await?;
        let mut surest: Option<Surest> = None;
        for b in &boxes.boxes {
            let corners = [b.x0 as f32, b.y0 as f32, b.x1 as f32, b.y1 as f32];
            for d in &detections {
                let agrees = d.class_index as u32 == b.class_id && models::nms::iou(d.bbox, corners) > 0.9;
                if agrees && surest.as_ref().is_none_or(|s| d.score > s.score) {
                    surest = Some(Surest {
                        score: d.score,
                        image_id,
                        box_id: b.id.clone(),
                        class_id: b.class_id,
                        corners: [b.x0, b.y0, b.x1, b.y1],
                    });
                }
            }
        }
        found.extend(surest);
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(found)
}

fn of_model(evaluation: &ProjectEvaluation, model_id: i64) -> anyhow::Result<&ModelEvaluation> {
    evaluation
        .models
        .iter()
        .find(|m| m.model_id == model_id)
        .with_context(|| format!("model {model_id} in {evaluation:?}"))
}

#[tokio::test]
async fn quality_matches_ultralytics_and_label_errors_find_a_planted_mistake() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("Shapes", &CLASSES).await?;
    let pid = project.id;
    let images = approved_shapes_test_set(&studio, pid, 80).await?;
    let empty = settled_evaluation(&studio, pid).await?;
    ensure!(empty.approved_images == 80 && empty.models.is_empty(), "{empty:?}");

    // A model arrives: the page's request queues the evaluation job, whose figures follow.
    let teacher = register(&studio, pid, "teacher").await?;
    let first: ProjectEvaluation = studio
        .http()
        .get(studio.api(&format!("/api/projects/{pid}/evaluation")))
        .send()
        .await?
        .json()
        .await?;
    ensure!(first.job.is_some(), "a new model queues the evaluation: {first:?}");
    let evaluation = settled_evaluation(&studio, pid).await?;
    let figures = of_model(&evaluation, teacher.id)?;

    let reference: Value = serde_json::from_slice(&e2e::reference_model_file("shapes-metrics.json")?)?;
    let want_map50 = reference["test_map50"].as_f64().context("test_map50")?;
    let want_map50_95 = reference["test_map50_95"].as_f64().context("test_map50_95")?;
    println!(
        "shapes test: mAP50 {:.4} (Ultralytics {want_map50:.4}), mAP50-95 {:.4} (Ultralytics {want_map50_95:.4})",
        figures.map50, figures.map50_95
    );
    ensure!(
        figures.evaluated_images == 80
            && (figures.map50 - want_map50).abs() < MAP_TOLERANCE
            && (figures.map50_95 - want_map50_95).abs() < MAP_TOLERANCE,
        "{figures:?}"
    );
    let want_per_class = reference["per_class_ap50"].as_array().context("per_class_ap50")?;
    for (class, want) in figures.classes.iter().zip(want_per_class) {
        let want = want.as_f64().unwrap_or_default();
        let got = class.ap50.unwrap_or_default();
        ensure!(
            (got - want).abs() < 2.0 * MAP_TOLERANCE,
            "class {}: AP50 {got}, Ultralytics {want}",
            class.class_id
        );
        ensure!(class.pr_curve.len() == 101 && class.truths > 0, "{class:?}");
    }
    // The matrix counts each truth of the label files exactly once (its column sums).
    let label_lines: usize = std::fs::read_dir(e2e::reference_models_dir().join("shapes/labels/test"))?
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()))
        .sum::<Result<usize, _>>()?;
    let truths: u32 = figures.confusion.iter().flatten().sum::<u32>()
        - figures.confusion.iter().map(|row| row[CLASSES.len()]).sum::<u32>();
    ensure!(
        truths as usize == label_lines,
        "{label_lines} labels: {:?}",
        figures.confusion
    );

    // Plant a mistake: the box the model is surest of, relabelled as another class.
    let surest = surest_agreeing_boxes(&studio, &images).await?;
    let Surest {
        score,
        image_id: planted_image,
        box_id: planted_box,
        class_id: true_class,
        corners: [x0, y0, x1, y1],
    } = surest.into_iter().next().context("a confident detection")?;
    let wrong_class = (true_class + 1) % CLASSES.len() as u32;
    let http = studio.http().clone();
    let relabel = |class_id: u32| {
        json!({"ops": [{"op": "update", "box": {"id": planted_box, "class_id": class_id,
            "x0": x0, "y0": y0, "x1": x1, "y1": y1}}]})
    };
    let changed = http
        .post(studio.api(&format!("/api/images/{planted_image}/ops")))
        .json(&relabel(wrong_class))
        .send()
        .await?;
    ensure!(changed.status() == 200, "{}", changed.text().await?);

    let queue: Queue = studio
        .http()
        .get(studio.api(&format!("/api/projects/{pid}/queue?strategy=label_errors")))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        queue.model_id == Some(teacher.id) && queue.unscored == 0,
        "the teacher accuses, having seen every approved image: {queue:?}"
    );
    ensure!(
        queue.entries.first().map(|e| e.image_id) == Some(planted_image),
        "the planted label ranks first: {:?} (planted on {planted_image}, model {score})",
        queue.entries.iter().take(5).collect::<Vec<_>>()
    );
    let errors: ImageLabelErrors = studio
        .http()
        .get(studio.api(&format!("/api/images/{planted_image}/label-errors")))
        .send()
        .await?
        .json()
        .await?;
    let suspicion = errors
        .suspicions
        .iter()
        .find(|s| s.box_id.as_deref() == Some(planted_box.as_str()))
        .with_context(|| format!("{errors:?}"))?;
    ensure!(
        suspicion.kind == SuspicionKind::WrongClass
            && suspicion.class_id == Some(true_class)
            && (suspicion.strength - score).abs() < 0.02
            && suspicion.reason.contains(CLASSES[wrong_class as usize])
            && suspicion.reason.contains(CLASSES[true_class as usize]),
        "{suspicion:?}"
    );

    // "The label is right": stored for this model version, not raised again.
    let confirmed: ImageLabelErrors = http
        .post(studio.api(&format!("/api/images/{planted_image}/label-errors/confirm")))
        .json(&json!({"model_id": teacher.id, "key": suspicion.key}))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        confirmed.suspicions.iter().all(|s| s.key != suspicion.key),
        "{confirmed:?}"
    );
    let again = http
        .post(studio.api(&format!("/api/images/{planted_image}/label-errors/confirm")))
        .json(&json!({"model_id": teacher.id, "key": suspicion.key}))
        .send()
        .await?;
    ensure!(again.status() == 404, "nothing left to confirm: {}", again.status());
    // The fix is an ordinary edit: back to the true class, the box agrees with the model again.
    let fixed = http
        .post(studio.api(&format!("/api/images/{planted_image}/ops")))
        .json(&relabel(true_class))
        .send()
        .await?;
    ensure!(fixed.status() == 200);
    let after = settled_evaluation(&studio, pid).await?;
    ensure!(
        (of_model(&after, teacher.id)?.map50 - figures.map50).abs() < 1e-9,
        "the figures follow the labels back"
    );
    let bad_split = http
        .get(studio.api(&format!("/api/projects/{pid}/evaluation?split=holdout")))
        .send()
        .await?;
    ensure!(bad_split.status() == 400);
    Ok(())
}

/// A ground truth made by hand around the model's own detections, whose AP follows from the
/// definition: class "circle" gets two truths — exactly the model's most confident circle, and a
/// 3-pixel box where it detects nothing — so precision is 1 up to recall ½ and nothing after:
/// AP = 0.49 + ½ · 0.01 · (1 + 0) = 0.495 at every IoU threshold (the 101-point sum; the last
/// step to recall ½ is a trapezoid). Class "square" gets one truth where no square is detected:
/// AP 0. Triangles and stars have no truth and stay out of the mean: mAP = (0.495 + 0) / 2.
#[tokio::test]
async fn hand_made_ground_truth_scores_the_hand_computed_map() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio.create_project("By hand", &CLASSES).await?;
    let pid = project.id;
    let photos = ["test_0001.jpg", "test_0002.jpg"];
    let files: Vec<(&str, Vec<u8>)> = photos
        .iter()
        .map(|name| e2e::reference_model_file(&format!("shapes/images/test/{name}")).map(|b| (*name, b)))
        .collect::<anyhow::Result<_>>()?;
    let (_, uploaded) = studio.upload(pid, &files).await?;
    let ids: Vec<i64> = uploaded
        .as_array()
        .context("upload answer")?
        .iter()
        .filter_map(|f| f["id"].as_i64())
        .collect();
    ensure!(ids.len() == 2);

    // What the model sees, at the evaluation's settings (yolo val's: conf 0.001, NMS IoU 0.7).
    let detector = models::Detector::load(&e2e::reference_model_file(DETECTOR)?)?;
    let mut detections = Vec::new();
    for (i, (_, bytes)) in files.iter().enumerate() {
        for d in e2e::detect_in(&detector, bytes, 0.001, 0.7)?.detections {
            detections.push((i, d));
        }
    }
    let (circle_image, best_circle) = detections
        .iter()
        .filter(|(_, d)| d.class_index == 0)
        .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
        .context("a circle")?;
    let corner = [0.0f32, 0.0, 3.0, 3.0];
    let far = [1.0f32, 1.0, 4.0, 4.0];
    for (_, d) in &detections {
        ensure!(
            models::nms::iou(d.bbox, corner) < 0.45 && models::nms::iou(d.bbox, far) < 0.45,
            "the hand-placed truths must sit where nothing is detected: {d:?}"
        );
    }
    let boxes = |corners: [f32; 4], class_id: u32| json!({"class_id": class_id, "x0": corners[0], "y0": corners[1], "x1": corners[2], "y1": corners[3]});
    let truths = [
        (ids[*circle_image], vec![boxes(best_circle.bbox, 0)]),
        (ids[1 - *circle_image], vec![boxes(corner, 0), boxes(far, 1)]),
    ];
    let http = studio.http().clone();
    for (image_id, labels) in &truths {
        let put = http
            .put(studio.api(&format!("/api/images/{image_id}/boxes")))
            .json(&json!({"boxes": labels}))
            .send()
            .await?;
        ensure!(put.status().is_success(), "{}", put.text().await?);
        for status in ["submitted", "approved"] {
            let changed = http
                .post(studio.api(&format!("/api/images/{image_id}/status")))
                .json(&json!({"status": status}))
                .send()
                .await?;
            ensure!(changed.status().is_success(), "{status}: {}", changed.text().await?);
        }
    }
    let student = register(&studio, pid, "student").await?;
    let evaluation = settled_evaluation(&studio, pid).await?;
    let figures = of_model(&evaluation, student.id)?;
    let circle_ap = 0.49 + 0.5 * 0.01 * (1.0 + 0.0);
    let close = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-9);
    ensure!(
        close(figures.classes[0].ap50, circle_ap)
            && close(figures.classes[0].ap50_95, circle_ap)
            && close(figures.classes[1].ap50, 0.0)
            && figures.classes[2].ap50.is_none()
            && figures.classes[3].ap50.is_none(),
        "{:?}",
        figures.classes
    );
    ensure!(
        (figures.map50 - circle_ap / 2.0).abs() < 1e-9 && (figures.map50_95 - circle_ap / 2.0).abs() < 1e-9,
        "mAP {} / {}",
        figures.map50,
        figures.map50_95
    );
    // The square truth is missed by every confident detection: background row, square column.
    ensure!(figures.confusion[CLASSES.len()][1] == 1, "{:?}", figures.confusion);
    ensure!(figures.evaluated_images == 2 && evaluation.approved_images == 2);
    Ok(())
}
