//! The scoring job: runs a student over the project's unlabeled images that it has not scored
//! yet, and stores each image's prediction and uncertainty scores — what browsers do while idle,
//! done by the server when no browser is open.

use api::Job;
use models::DEFAULT_CONFIDENCE;
use sqlx::AnyPool;

use super::{Finished, Jobs, Progress, detect_bytes, load_detector, original_bytes};
use crate::store::Store;

pub(super) async fn run(
    jobs: &Jobs,
    db: &AnyPool,
    store: &Store,
    max_pixels: u64,
    job: &Job,
    progress: &Progress,
) -> Result<Finished, String> {
    let model_id = job.model_id.ok_or("the model of this job has been deleted")?;
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let model = crate::registry::load_model(&mut conn, model_id)
        .await
        .map_err(|e| e.message)?;
    let pending = crate::predictions::unscored_images(&mut conn, job.project_id, model_id, u32::MAX)
        .await
        .map_err(|e| e.message)?;
    drop(conn);
    // A resumed job keeps what it had done before the restart.
    let total = job.done + pending.len() as u64;
    let mut done = job.done;
    let mut unreadable = 0u64;
    progress
        .report(
            done,
            total,
            &format!("Scoring {} images with {}.", pending.len(), model.file_name),
        )
        .await?;

    let detector = load_detector(jobs, store, &model).await?;
    for image_id in pending {
        if progress.cancel_requested().await {
            return Ok(Finished::Cancelled);
        }
        let Some(bytes) = original_bytes(db, store, image_id).await? else {
            continue;
        }; // deleted meanwhile
        let detector = detector.clone();
        let predicted = tokio::task::spawn_blocking(move || {
            let prediction = detect_bytes(&detector, &bytes, max_pixels, DEFAULT_CONFIDENCE, models::DEFAULT_IOU)?;
            Ok::<_, String>(models::report::image_prediction(image_id, &prediction))
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut tx = crate::db::write_transaction(db).await.map_err(|e| e.to_string())?;
        match predicted {
            Ok(prediction) => {
                crate::predictions::write_predictions(&mut tx, job.project_id, model_id, &[prediction])
                    .await
                    .map_err(|e| e.message)?;
            }
            Err(reason) => {
                unreadable += 1;
                tracing::warn!(image_id, %reason, "cannot score an image");
            }
        }
        done += 1;
        if !progress
            .commit(tx, done, total, &format!("Scored {done} of {total} images."))
            .await?
        {
            return Ok(Finished::Cancelled);
        }
    }
    let skipped = if unreadable > 0 {
        format!(" ({unreadable} could not be read)")
    } else {
        String::new()
    };
    Ok(Finished::Done(format!(
        "Scored {done} images with {}{skipped}.",
        model.file_name
    )))
}
