//! The model registry, the scoring job and the uncertainty-ranked queue, through the real server:
//! register real Ultralytics exports (and have broken ones refused), score a project as a job
//! (progress, cancel, resumed after a restart), rank it by every strategy, and keep each model
//! version's scores apart.

use std::time::Duration;

use anyhow::ensure;
use api::{Job, JobState, Queue, RegisteredModel};
use e2e::{Studio, fixtures};
use serde_json::{Value, json};

fn shared_model(name: &str) -> anyhow::Result<Vec<u8>> {
    e2e::reference_model_file(name)
}

async fn add_model(
    studio: &Studio,
    project_id: i64,
    role: &str,
    name: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let form = reqwest::multipart::Form::new().text("role", role.to_owned()).part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    let response = studio
        .http()
        .clone()
        .post(studio.api(&format!("/api/projects/{project_id}/models")))
        .multipart(form)
        .send()
        .await?;
    Ok((response.status(), response.json().await?))
}

async fn get<T: serde::de::DeserializeOwned>(studio: &Studio, path: &str) -> anyhow::Result<T> {
    let response = studio.http().get(studio.api(path)).send().await?;
    ensure!(response.status().is_success(), "GET {path}: {}", response.text().await?);
    Ok(response.json().await?)
}

async fn wait_for_job(studio: &Studio, job_id: i64, until: impl Fn(&Job) -> bool) -> anyhow::Result<Job> {
    for _ in 0..600 {
        let job: Job = get(studio, &format!("/api/jobs/{job_id}")).await?;
        if until(&job) {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("job {job_id} did not get there in 60 s; log:\n{}", studio.log())
}

/// Reads a job's event stream (`GET /api/jobs/{jid}/events`) to its end: every job state the
/// server pushed, in order.
async fn job_events(studio: &Studio, job_id: i64) -> anyhow::Result<Vec<Job>> {
    use futures_util::StreamExt;
    let response = studio
        .http()
        .get(studio.api(&format!("/api/jobs/{job_id}/events")))
        .send()
        .await?;
    ensure!(response.status() == 200, "events: {}", response.text().await?);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ensure!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk?));
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .map_err(|_| anyhow::anyhow!("the event stream of job {job_id} did not end; so far:\n{text}"))??;
    // One `event: job` + `data: {json}` block per change (keep-alive comments aside).
    text.split("\n\n")
        .filter(|block| block.lines().any(|line| line == "event: job"))
        .map(|block| {
            let data = block.lines().find_map(|line| line.strip_prefix("data: ")).unwrap_or("");
            serde_json::from_str(data).map_err(|e| anyhow::anyhow!("bad event {block:?}: {e}"))
        })
        .collect()
}

async fn start_scoring(studio: &Studio, project_id: i64) -> anyhow::Result<Job> {
    let response = studio
        .http()
        .clone()
        .post(studio.api(&format!("/api/projects/{project_id}/jobs")))
        .json(&json!({"kind": "score"}))
        .send()
        .await?;
    ensure!(response.status() == 201, "create job: {}", response.text().await?);
    Ok(response.json().await?)
}

#[tokio::test]
async fn rank_images_by_uncertainty() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let data_dir = temp.path().join("studio");
    let studio = Studio::start_in(&data_dir).await?;
    let http = studio.http().clone();
    // The reference exports name their classes "0".."79"; "1" maps by name.
    let project = studio.create_project("Ranked", &["cat", "1"]).await?;
    let pid = project.id;
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("img{i}.jpg"), fixtures::jpeg(160 + 40 * i, 120, 1, i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (status, _) = studio.upload(pid, &refs).await?;
    ensure!(status.is_success());

    // Refused models: 422 with the reason, nothing registered.
    let onnx = shared_model("yolov8n-320-random.onnx")?;
    let refused = [
        (
            "student",
            "junk.onnx",
            b"this is not onnx".to_vec(),
            422,
            "not a loadable ONNX model",
        ),
        (
            "student",
            "cut.onnx",
            onnx[..onnx.len() / 3].to_vec(),
            422,
            "cannot be used",
        ),
        ("oracle", "x.onnx", onnx.clone(), 400, "teacher or student"),
    ];
    for (role, name, bytes, want, reason) in refused {
        let (status, body) = add_model(&studio, pid, role, name, bytes).await?;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        ensure!(status == want && message.contains(reason), "{name}: {status} {body}");
    }
    let listed: Vec<RegisteredModel> = get(&studio, &format!("/api/projects/{pid}/models")).await?;
    ensure!(listed.is_empty(), "refused models are not registered: {listed:?}");

    // A real export: validated, classes mapped by name, bytes at an immutable content address.
    let (status, body) = add_model(&studio, pid, "student", "yolov8n-320.onnx", onnx.clone()).await?;
    ensure!(status == 201, "{status} {body}");
    let student: RegisteredModel = serde_json::from_value(body)?;
    ensure!(student.input_size == 320 && student.layout.starts_with("ultralytics") && student.active);
    ensure!(student.class_names.len() == 80 && student.class_map[1] == Some(project.classes[1].id));
    ensure!(
        student.class_map.iter().flatten().count() == 1,
        "{:?}",
        student.class_map
    );
    ensure!(student.url.contains(&student.sha256));
    let response = http.get(studio.api(&student.url)).send().await?;
    let cache = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ensure!(cache.contains("immutable"), "{cache}");
    ensure!(
        response.bytes().await?.as_ref() == onnx.as_slice(),
        "served bytes are the upload"
    );
    let mut class_map = vec![Value::Null; 80];
    class_map[0] = json!(project.classes[0].id);
    let response = http
        .patch(studio.api(&format!("/api/models/{}", student.id)))
        .json(&json!({"class_map": class_map}))
        .send()
        .await?;
    let patched: RegisteredModel = response.json().await?;
    ensure!(patched.class_map[0] == Some(project.classes[0].id) && patched.class_map[1].is_none());
    let response = http
        .patch(studio.api(&format!("/api/models/{}", student.id)))
        .json(&json!({"class_map": [0]}))
        .send()
        .await?;
    ensure!(response.status() == 400, "a mapping of the wrong length is refused");

    // Nothing scored yet.
    let queue: Queue = get(&studio, &format!("/api/projects/{pid}/queue")).await?;
    ensure!(queue.entries.is_empty() && queue.unscored == 6, "{queue:?}");

    // The scoring job scores every unlabeled image.
    // Its progress is pushed: the event stream carries every change and ends with the final state.
    let job = start_scoring(&studio, pid).await?;
    ensure!(job.state == JobState::Queued || job.state == JobState::Running);
    let pushed = job_events(&studio, job.id).await?;
    let done: Vec<u64> = pushed.iter().map(|j| j.done).collect();
    ensure!(done.windows(2).all(|w| w[0] <= w[1]), "progress went back: {done:?}");
    ensure!(
        pushed
            .iter()
            .any(|j| j.state == JobState::Running && j.done > 0 && j.done < 6),
        "no progress pushed while running: {pushed:?}"
    );
    let job = pushed.last().cloned().ok_or_else(|| anyhow::anyhow!("no events"))?;
    ensure!(
        job.state == JobState::Succeeded && job.done == 6 && job.total == 6,
        "{job:?}"
    );
    ensure!(job == get::<Job>(&studio, &format!("/api/jobs/{}", job.id)).await?);
    // A finished job's stream says so at once and ends; an unknown job's is a 404.
    ensure!(job_events(&studio, job.id).await? == vec![job.clone()]);
    let response = studio.http().get(studio.api("/api/jobs/999999/events")).send().await?;
    ensure!(response.status() == 404, "{}", response.status());

    for strategy in ["least_confidence", "margin", "ratio", "entropy"] {
        for aggregation in ["max", "mean", "sum"] {
            let queue: Queue = get(
                &studio,
                &format!("/api/projects/{pid}/queue?strategy={strategy}&aggregation={aggregation}"),
            )
            .await?;
            ensure!(queue.entries.len() == 6 && queue.unscored == 0, "{strategy}: {queue:?}");
            ensure!(
                queue.entries.windows(2).all(|w| w[0].score >= w[1].score),
                "{strategy}: sorted"
            );
            let bounded = aggregation == "sum" || queue.entries.iter().all(|e| (0.0..=1.0).contains(&e.score));
            ensure!(bounded, "{strategy}/{aggregation}: {queue:?}");
        }
    }
    let random: Queue = get(&studio, &format!("/api/projects/{pid}/queue?strategy=random&seed=1")).await?;
    let again: Queue = get(&studio, &format!("/api/projects/{pid}/queue?strategy=random&seed=1")).await?;
    let other: Queue = get(&studio, &format!("/api/projects/{pid}/queue?strategy=random&seed=2")).await?;
    ensure!(random.entries.len() == 6 && random == again && random != other);
    let images: api::ImagePage = get(&studio, &format!("/api/projects/{pid}/images")).await?;
    ensure!(
        images.images.iter().all(|i| i.status == api::ImageStatus::Prelabeled),
        "scored images are pre-labeled"
    );
    for (query, want) in [
        ("strategy=diversity", 422),
        ("strategy=bogus", 400),
        ("aggregation=median", 400),
    ] {
        let response = http
            .get(studio.api(&format!("/api/projects/{pid}/queue?{query}")))
            .send()
            .await?;
        ensure!(response.status() == want, "{query}: {}", response.status());
    }

    // A new student version starts an empty ranking: the old scores are not mixed in.
    let (_, body) = add_model(&studio, pid, "student", "second.onnx", onnx.clone()).await?;
    let second: RegisteredModel = serde_json::from_value(body)?;
    let queue: Queue = get(&studio, &format!("/api/projects/{pid}/queue")).await?;
    ensure!(
        queue.model_id == Some(second.id) && queue.entries.is_empty() && queue.unscored == 6,
        "{queue:?}"
    );
    // What a browser reports: two images, hand-picked scores.
    let ids: Vec<i64> = images.images.iter().map(|i| i.id).collect();
    let report = |image_id: i64, score: f32| {
        json!({"image_id": image_id, "boxes": [{"class_index": 1, "score": 0.6, "x0": 1, "y0": 2, "x1": 30, "y1": 40}],
               "best_candidate_score": 0.6,
               "scores": [{"strategy": "least_confidence", "aggregation": "max", "score": score}]})
    };
    let response = http
        .post(studio.api(&format!("/api/projects/{pid}/predictions")))
        .json(&json!({"model_id": second.id, "images": [report(ids[0], 0.2), report(ids[3], 0.9)]}))
        .send()
        .await?;
    ensure!(response.status() == 204, "report: {}", response.text().await?);
    let queue: Queue = get(&studio, &format!("/api/projects/{pid}/queue")).await?;
    let ranked: Vec<(i64, f32)> = queue.entries.iter().map(|e| (e.image_id, e.score)).collect();
    ensure!(
        ranked == [(ids[3], 0.9), (ids[0], 0.2)] && queue.unscored == 4,
        "{queue:?}"
    );
    let pending: api::PendingImages = get(
        &studio,
        &format!("/api/projects/{pid}/predictions/pending?model_id={}", second.id),
    )
    .await?;
    ensure!(pending.image_ids == [ids[1], ids[2], ids[4], ids[5]], "{pending:?}");
    // Bad reports are refused whole.
    let other_project = studio.create_project("Other", &["x"]).await?;
    let bad_reports = [
        json!({"model_id": second.id, "images": [report(ids[1], -1.0)]}),
        json!({"model_id": second.id, "images": [{"image_id": ids[1], "boxes": [{"class_index": 99, "score": 0.5, "x0": 0, "y0": 0, "x1": 1, "y1": 1}], "best_candidate_score": 0.5, "scores": []}]}),
        json!({"model_id": 999, "images": []}),
    ];
    for bad in bad_reports {
        let response = http
            .post(studio.api(&format!("/api/projects/{pid}/predictions")))
            .json(&bad)
            .send()
            .await?;
        ensure!(response.status().is_client_error(), "{bad}: {}", response.status());
    }
    let response = http
        .post(studio.api(&format!("/api/projects/{}/predictions", other_project.id)))
        .json(&json!({"model_id": second.id, "images": []}))
        .send()
        .await?;
    ensure!(response.status() == 400, "a model of another project is refused");
    let queue: Queue = get(&studio, &format!("/api/projects/{pid}/queue")).await?;
    ensure!(queue.unscored == 4, "refused reports stored nothing: {queue:?}");

    // Cancel: a queued or running job stops and says so.
    let job = start_scoring(&studio, pid).await?;
    let response = http
        .post(studio.api(&format!("/api/jobs/{}/cancel", job.id)))
        .send()
        .await?;
    ensure!(response.status() == 200, "cancel: {}", response.text().await?);
    let job = wait_for_job(&studio, job.id, |j| j.state.is_final()).await?;
    ensure!(job.state == JobState::Cancelled, "{job:?}");
    let response = http
        .post(studio.api(&format!("/api/jobs/{}/cancel", job.id)))
        .send()
        .await?;
    ensure!(response.status() == 409, "a finished job cannot be cancelled again");
    // What it scored before the cancel reached it is kept (a fast machine scores an image or two
    // first), so the resumed job below is sized from what is left, not from the four.
    let queue: Queue = get(&studio, &format!("/api/projects/{pid}/queue")).await?;
    ensure!(
        (1..=4).contains(&queue.unscored),
        "the cancel stopped it before the end: {job:?} {queue:?}"
    );

    // A job running when the server stops is resumed by the next server and finishes. Enough
    // images that it is still running when the server is stopped.
    let more: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("more{i}.jpg"), fixtures::numbered_jpeg(640, 480, i)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = more.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    ensure!(studio.upload(pid, &refs).await?.0.is_success());
    let job = start_scoring(&studio, pid).await?;
    let running = wait_for_job(&studio, job.id, |j| j.done >= 1 || j.state.is_final()).await?;
    let stopped = studio.stop().await?;
    ensure!(stopped.success());
    ensure!(
        running.state == JobState::Running && running.done < running.total,
        "stopped mid-job: {running:?}"
    );
    let studio = Studio::start_in(&data_dir).await?;
    let job = wait_for_job(&studio, job.id, |j| j.state.is_final()).await?;
    ensure!(
        job.state == JobState::Succeeded && job.total == queue.unscored + 40 && job.done == job.total,
        "{job:?}"
    );
    // The stopping server queued it again; the new one ran it to the end.
    ensure!(studio.log().contains("job started"), "{}", studio.log());
    let queue: Queue = get(&studio, &format!("/api/projects/{pid}/queue?limit=100")).await?;
    ensure!(queue.entries.len() == 46 && queue.unscored == 0, "{queue:?}");
    Ok(())
}

/// Least confidence of one image, from its stored detections, written from DESIGN's definition
/// (not from `api::uncertainty`): per detection `1 − p1`; max, mean or sum over detections; an
/// image with none is scored from its best candidate `s` as `1 − |2s − 1|`.
fn least_confidence(prediction: &api::ImagePrediction, aggregation: &str) -> f32 {
    let per_box: Vec<f32> = prediction.boxes.iter().map(|b| 1.0 - b.score).collect();
    if per_box.is_empty() {
        return 1.0 - (2.0 * prediction.best_candidate_score - 1.0).abs();
    }
    match aggregation {
        "max" => per_box.iter().copied().fold(0.0, f32::max),
        "sum" => per_box.iter().sum(),
        _ => per_box.iter().sum::<f32>() / per_box.len() as f32,
    }
}

/// A trained detector (../shared/models' shapes YOLOv8n) scores real photos: every image gets a
/// score of its own, and the queue's order and values are the ones computed here from what the
/// model detected.
#[tokio::test]
async fn rank_real_detections_by_uncertainty() -> anyhow::Result<()> {
    let studio = Studio::start().await?;
    let project = studio
        .create_project("Shapes", &["circle", "square", "triangle", "star"])
        .await?;
    let pid = project.id;
    let files: Vec<(String, Vec<u8>)> = e2e::shapes_test_photos(0..10)?;
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    ensure!(studio.upload(pid, &refs).await?.0.is_success());
    let (status, body) = add_model(
        &studio,
        pid,
        "student",
        "shapes.onnx",
        shared_model("shapes-yolov8n-320.onnx")?,
    )
    .await?;
    ensure!(status == 201, "{body}");
    let student: RegisteredModel = serde_json::from_value(body)?;
    ensure!(
        student.class_map.iter().all(Option::is_some),
        "mapped by name: {student:?}"
    );
    let job = start_scoring(&studio, pid).await?;
    let job = wait_for_job(&studio, job.id, |j| j.state.is_final()).await?;
    ensure!(job.state == JobState::Succeeded && job.done == 10, "{job:?}");

    let images: api::ImagePage = get(&studio, &format!("/api/projects/{pid}/images")).await?;
    let mut predictions = Vec::new();
    for image in &images.images {
        let prediction: api::ImagePrediction = get(&studio, &format!("/api/images/{}/prediction", image.id)).await?;
        predictions.push(prediction);
    }
    // The shapes are found: most photos have detections, and they are confident ones.
    let with_boxes = predictions.iter().filter(|p| !p.boxes.is_empty()).count();
    ensure!(with_boxes >= 8, "{with_boxes} of 10 photos have detections");
    for aggregation in ["max", "mean", "sum"] {
        let queue: Queue = get(
            &studio,
            &format!("/api/projects/{pid}/queue?strategy=least_confidence&aggregation={aggregation}"),
        )
        .await?;
        ensure!(queue.entries.len() == 10, "{queue:?}");
        let mut expected: Vec<(i64, f32)> = predictions
            .iter()
            .map(|p| (p.image_id, least_confidence(p, aggregation)))
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let ranked: Vec<(i64, f32)> = queue.entries.iter().map(|e| (e.image_id, e.score)).collect();
        for ((id, score), (want_id, want)) in ranked.iter().zip(&expected) {
            ensure!(
                id == want_id && (score - want).abs() < 1e-5,
                "{aggregation}: ranked {ranked:?}, expected {expected:?}"
            );
        }
        let mut distinct: Vec<f32> = ranked.iter().map(|(_, s)| *s).collect();
        distinct.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        ensure!(
            distinct.len() == 10,
            "{aggregation}: every photo has its own score: {ranked:?}"
        );
    }
    // Every strategy tells the photos apart, not only least confidence.
    for strategy in ["margin", "ratio", "entropy"] {
        let queue: Queue = get(&studio, &format!("/api/projects/{pid}/queue?strategy={strategy}")).await?;
        let mut scores: Vec<f32> = queue.entries.iter().map(|e| e.score).collect();
        scores.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        ensure!(scores.len() >= 8, "{strategy}: {queue:?}");
    }
    let response = studio
        .http()
        .get(studio.api("/api/images/999999/prediction"))
        .send()
        .await?;
    ensure!(response.status() == 404);
    Ok(())
}
