//! The evaluation job: every model version of the project (or the one named) detects on the
//! approved images it has not seen yet, at `yolo val`'s settings (confidence 0.001, NMS IoU 0.7),
//! and the detections are kept in `evaluation_detections`. The Quality page and the label-error
//! ranking compute their figures from them against the human boxes of the moment, so the job
//! only ever runs for new model versions and newly approved images — and a resumed job simply
//! finds fewer images left.

use std::sync::Arc;

use api::{Job, PredictedBox};
use futures_util::StreamExt;
use sqlx::{AnyConnection, AnyPool};

use super::{Finished, Jobs, Progress, count, detect_bytes, load_detector, original_bytes};
use crate::error::ApiError;
use crate::store::Store;

/// Detections below this confidence are not kept: `yolo val`'s default, low so that the
/// precision–recall curves reach the highest recall the model can give.
pub const CONFIDENCE: f32 = 0.001;
/// NMS IoU of `yolo val`.
pub const NMS_IOU: f32 = 0.7;

/// (model, image) pairs still to detect on: approved images of the project that a model version
/// (all of the project's, or only `model_id`) has not seen, by model then image.
pub(crate) async fn pending_pairs(
    conn: &mut AnyConnection,
    project_id: i64,
    model_id: Option<i64>,
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, i.id FROM models m JOIN images i ON i.project_id = m.project_id \
         WHERE m.project_id = $1 AND ($2 IS NULL OR m.id = $3) AND i.status = 'approved' \
         AND NOT EXISTS (SELECT 1 FROM evaluation_detections e WHERE e.model_id = m.id AND e.image_id = i.id) \
         ORDER BY m.id, i.id",
    )
    .bind(project_id)
    .bind(model_id)
    .bind(model_id)
    .fetch_all(&mut *conn)
    .await
}

/// The project's evaluation job when some model version has approved images left to see: the
/// one already queued or running, else a new one. `None` when every figure is up to date.
pub(crate) async fn ensure_queued(jobs: &Jobs, db: &AnyPool, project_id: i64) -> Result<Option<Job>, ApiError> {
    let mut tx = crate::db::write_transaction(db).await?;
    let job = match super::unfinished_job(&mut tx, project_id, "evaluate").await? {
        Some(job) => Some(job),
        None if !pending_pairs(&mut tx, project_id, None).await?.is_empty() => {
            let id: i64 =
                sqlx::query_scalar("INSERT INTO jobs (project_id, kind) VALUES ($1, 'evaluate') RETURNING id")
                    .bind(project_id)
                    .fetch_one(&mut *tx)
                    .await?;
            Some(super::load_job(&mut tx, id).await?)
        }
        None => None,
    };
    tx.commit().await?;
    if let Some(job) = &job {
        jobs.wake.notify_one();
        jobs.announce(job.project_id, job.id);
    }
    Ok(job)
}

pub(super) async fn run(
    jobs: &Jobs,
    db: &AnyPool,
    store: &Store,
    max_pixels: u64,
    job: &Job,
    progress: &Progress,
) -> Result<Finished, String> {
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let pending = pending_pairs(&mut conn, job.project_id, job.model_id)
        .await
        .map_err(|e| e.to_string())?;
    // A resumed job keeps what it had done before the restart.
    let total = job.done + pending.len() as u64;
    let mut done = job.done;
    let mut unreadable = 0u64;
    progress
        .report(
            done,
            total,
            &format!("Evaluating on {} (model × image).", count(pending.len() as u64, "pair")),
        )
        .await?;

    let mut by_model: Vec<(i64, Vec<i64>)> = Vec::new();
    for (model_id, image_id) in pending {
        match by_model.last_mut() {
            Some((last, images)) if *last == model_id => images.push(image_id),
            _ => by_model.push((model_id, vec![image_id])),
        }
    }
    for (model_id, images) in by_model {
        let model = crate::registry::load_model(&mut conn, model_id)
            .await
            .map_err(|e| e.message)?;
        let detector = load_detector(jobs, store, &model).await?;
        let mut results = futures_util::stream::iter(images)
            .map(|image_id| detect_one(db.clone(), store.clone(), detector.clone(), image_id, max_pixels))
            .buffer_unordered(jobs.inference_threads.max(1));
        while let Some(outcome) = results.next().await {
            if progress.cancel_requested().await {
                return Ok(Finished::Cancelled);
            }
            let (image_id, detected) = outcome?;
            let (boxes, error) = match detected {
                Some(Ok(boxes)) => (boxes, None),
                Some(Err(reason)) => {
                    unreadable += 1;
                    tracing::warn!(image_id, %reason, "cannot evaluate on an image");
                    (Vec::new(), Some(reason))
                }
                None => continue, // deleted meanwhile
            };
            let boxes = serde_json::to_string(&boxes).map_err(|e| e.to_string())?;
            let mut tx = crate::db::write_transaction(db).await.map_err(|e| e.to_string())?;
            sqlx::query(
                "INSERT INTO evaluation_detections (model_id, image_id, boxes, error) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (model_id, image_id) DO UPDATE SET boxes = excluded.boxes, error = excluded.error",
            )
            .bind(model_id)
            .bind(image_id)
            .bind(boxes)
            .bind(error)
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
            done += 1;
            let message = format!("Evaluated {done} of {total} (model × image).");
            if !progress.commit(tx, done, total, &message).await? {
                return Ok(Finished::Cancelled);
            }
        }
    }
    let skipped = if unreadable > 0 {
        format!(" ({} could not be read)", count(unreadable, "image"))
    } else {
        String::new()
    };
    Ok(Finished::Done(format!(
        "Evaluated {}{skipped}.",
        count(done, "model × image pair")
    )))
}

/// One image's detections, on a blocking thread: `None` when the image is gone, `Some(Err)`
/// when it cannot be read.
async fn detect_one(
    db: AnyPool,
    store: Store,
    detector: Arc<models::Detector>,
    image_id: i64,
    max_pixels: u64,
) -> Result<(i64, Option<Result<Vec<PredictedBox>, String>>), String> {
    let Some(bytes) = original_bytes(&db, &store, image_id).await? else {
        return Ok((image_id, None));
    };
    let detected = tokio::task::spawn_blocking(move || {
        let prediction = detect_bytes(&detector, &bytes, max_pixels, CONFIDENCE, NMS_IOU)?;
        Ok(models::report::predicted_boxes(&prediction))
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok((image_id, Some(detected)))
}
