//! The scoring job: runs a student over the project's unlabeled images that it has not scored
//! yet, and stores each image's prediction and uncertainty scores — what browsers do while idle,
//! done by the server when no browser is open.

use api::Job;
use models::{DEFAULT_CONFIDENCE, DEFAULT_IOU, Pixels};
use sqlx::SqlitePool;

use super::{Finished, Jobs, Progress};
use crate::store::Store;

pub(super) async fn run(
    jobs: &Jobs,
    db: &SqlitePool,
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

    let detector = {
        let (cache, store, loading) = (jobs.detectors.clone(), store.clone(), model.clone());
        tokio::task::spawn_blocking(move || cache.get(&store, &loading))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot load {}: {e}", model.file_name))?
    };
    for image_id in pending {
        if progress.cancel_requested().await {
            return Ok(Finished::Cancelled);
        }
        let path: Option<(String, String)> = sqlx::query_as("SELECT sha256, extension FROM images WHERE id = ?")
            .bind(image_id)
            .fetch_optional(db)
            .await
            .map_err(|e| e.to_string())?;
        let Some((sha256, extension)) = path else { continue }; // deleted meanwhile
        let file = store.original_path(&sha256, &extension);
        let detector = detector.clone();
        let predicted = tokio::task::spawn_blocking(move || {
            let rgb = crate::imaging::decode_upright_rgb(&file, max_pixels).map_err(|e| e.to_string())?;
            let pixels = Pixels {
                data: rgb.as_raw(),
                width_px: rgb.width(),
                height_px: rgb.height(),
                channels: 3,
            };
            let prediction = detector
                .detect(pixels, DEFAULT_CONFIDENCE, DEFAULT_IOU)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(models::report::image_prediction(image_id, &prediction))
        })
        .await
        .map_err(|e| e.to_string())?;
        match predicted {
            Ok(prediction) => {
                crate::predictions::store_predictions(db, job.project_id, model_id, &[prediction])
                    .await
                    .map_err(|e| e.message)?;
            }
            Err(reason) => {
                unreadable += 1;
                tracing::warn!(image_id, %reason, "cannot score an image");
            }
        }
        done += 1;
        progress
            .report(done, total, &format!("Scored {done} of {total} images."))
            .await?;
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
