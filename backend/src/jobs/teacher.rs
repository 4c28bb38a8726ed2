//! The teacher job (autodistill's first half): a registered teacher labels the chosen images on
//! the server, on every core, and each image's detections become proposals — boxes with
//! `source = teacher`, the model version and the confidence — mapped onto project classes by
//! the model's class map. Human boxes are never touched; a newer teacher version's proposals
//! replace an older one's image by image. Which images a version has labeled is kept in
//! `teacher_runs`, so a resumed job continues where it stopped.
//!
//! The job's images are its items (`items`): the process holding the job lists them, and it and
//! any other process with nothing else to do (another worker) claim them a few at a time, so a
//! fleet's workers share one job's images, each image labeled once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::{BoundingBox, BoxSource, ImageSelection, Job, NamedSelection, OpKind, RegisteredModel};
use futures_util::StreamExt;
use models::Detector;
use sqlx::AnyPool;

use super::{Finished, Jobs, Progress, count, detect_bytes, items, load_detector, original_bytes};
use crate::annotations::{BOX_COLUMNS, BoxRow, delete_box, record_box_event};
use crate::predictions::UNLABELED;
use crate::store::Store;

/// What a teacher job was asked to do (the job row's `params`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TeacherParams {
    /// Which images.
    pub images: ImageSelection,
    /// Lowest confidence kept.
    pub min_conf: f32,
}

/// One image's detections, mapped onto project classes.
struct Labeled {
    image_id: i64,
    boxes: Vec<(u32, f32, [f64; 4])>,
    unmapped: u64,
}

/// Whether this process holds the job or helps with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Lists the images, waits for the helpers' last ones, and writes the summary.
    Holder,
    /// Labels images while there are some nobody holds, then leaves.
    Helper,
}

pub(super) async fn run(
    jobs: &Jobs,
    db: &AnyPool,
    store: &Store,
    max_pixels: u64,
    job: &Job,
    progress: &Progress,
    role: Role,
) -> Result<Finished, String> {
    let outcome = label_images(jobs, db, store, max_pixels, job, progress, role).await;
    // However it ended, the images this process claimed and did not label are free for whoever
    // runs the job next (a resumed job, another worker), without waiting for their leases.
    if let Err(error) = items::let_go(db, job.id, &jobs.runner.label()).await {
        tracing::warn!(job = job.id, %error, "cannot let go of a teacher job's images");
    }
    outcome
}

async fn label_images(
    jobs: &Jobs,
    db: &AnyPool,
    store: &Store,
    max_pixels: u64,
    job: &Job,
    progress: &Progress,
    role: Role,
) -> Result<Finished, String> {
    let model_id = job.model_id.ok_or("the teacher of this job has been deleted")?;
    let params: TeacherParams = super::job_params(db, job.id).await?;
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let model = crate::registry::load_model(&mut conn, model_id)
        .await
        .map_err(|e| e.message)?;
    drop(conn);
    if role == Role::Holder {
        // Images this version has labeled, in this job or before it (a resumed job, or a
        // rerun), are listed as done: progress counts them, and nobody labels them again.
        let images = selected_images(db, job.project_id, model_id, &params.images).await?;
        items::list_once(db, job.id, &images).await?;
    }
    let at_start = items::counts(db, job.id).await?;
    progress
        .report(
            at_start.done,
            at_start.total,
            &format!("Labeling {} with {}.", count(at_start.open, "image"), model.file_name),
        )
        .await?;
    let detector = load_detector(jobs, store, &model).await?;

    // Decoding, letterboxing and inference of `threads` images at once, each on its own
    // blocking thread; results are stored one by one as they come. Images are claimed a few
    // more than that at a time, so another process finds the rest unclaimed.
    let threads = jobs.inference_threads.max(1);
    let me = jobs.runner.label();
    let started = Instant::now();
    let model = Arc::new(model);
    let mut labeled_here = 0u64;
    loop {
        if progress.cancel_requested().await {
            return Ok(Finished::Cancelled);
        }
        let claimed = items::claim(db, job.id, &me, jobs.runner.lease, threads * 2).await?;
        if claimed.is_empty() {
            tracing::debug!(job = job.id, labeled_here, "no image left to claim");
            if role == Role::Helper || items::counts(db, job.id).await?.open == 0 {
                break;
            }
            // Other processes hold the last images: wait until they are done, or until their
            // leases expire and this process claims them.
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        let mut results = futures_util::stream::iter(claimed)
            .map(|image_id| {
                label_one(
                    db.clone(),
                    store.clone(),
                    detector.clone(),
                    model.clone(),
                    image_id,
                    max_pixels,
                    params.min_conf,
                )
            })
            .buffer_unordered(threads);
        while let Some(outcome) = results.next().await {
            if progress.cancel_requested().await {
                return Ok(Finished::Cancelled);
            }
            match outcome {
                Ok(Some(labeled)) => {
                    store_proposals(db, job, &model, &labeled, &me).await?;
                    labeled_here += 1;
                }
                Ok(None) => {} // deleted meanwhile, and its item with it
                Err((image_id, reason)) => {
                    tracing::warn!(image_id, %reason, "the teacher cannot read an image");
                    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
                    items::finish(&mut conn, job.id, image_id, &me, Some(&reason)).await?;
                }
            }
            let now = items::counts(db, job.id).await?;
            let rate = now.done.saturating_sub(at_start.done) as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let eta_s = now.open as f64 / rate.max(1e-9);
            progress
                .report(
                    now.done,
                    now.total,
                    &format!(
                        "Labeled {} of {} images · {rate:.1} images/s · about {eta_s:.0} s left.",
                        now.done, now.total
                    ),
                )
                .await?;
        }
    }
    if role == Role::Helper {
        return Ok(Finished::Done(format!("labeled {}", count(labeled_here, "image"))));
    }
    summary(db, job.id, &model).await.map(Finished::Done)
}

/// The finished job's line: images, proposals, and what was dropped or skipped.
async fn summary(db: &AnyPool, job_id: i64, model: &RegisteredModel) -> Result<String, String> {
    let outcome = items::outcome(db, job_id).await?;
    // The proposals and dropped detections of the images this job labeled.
    let (proposals, unmapped): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(t.boxes), 0) AS BIGINT), CAST(COALESCE(SUM(t.unmapped), 0) AS BIGINT) \
         FROM job_items i JOIN teacher_runs t ON t.image_id = i.image_id AND t.model_id = $1 \
         WHERE i.job_id = $2 AND i.done = 1 AND i.error IS NULL AND i.worker IS NOT NULL",
    )
    .bind(model.id)
    .bind(job_id)
    .fetch_one(db)
    .await
    .map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    if unmapped > 0 {
        notes.push(format!(
            "{} of unmapped classes dropped",
            count(unmapped as u64, "detection")
        ));
    }
    if outcome.failed > 0 {
        notes.push(format!(
            "{} could not be read and skipped (see the worker's log)",
            count(outcome.failed, "image")
        ));
    }
    if outcome.workers > 1 {
        notes.push(format!("shared by {} workers", outcome.workers));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    Ok(format!(
        "Labeled {} with {}: {}{notes}.",
        count(outcome.done + outcome.failed, "image"),
        model.file_name,
        count(proposals as u64, "proposal")
    ))
}

/// The images the selection names (that exist in the project), oldest first, each with whether
/// this teacher version has labeled it already.
async fn selected_images(
    db: &AnyPool,
    project_id: i64,
    model_id: i64,
    selection: &ImageSelection,
) -> Result<Vec<(i64, bool)>, String> {
    let failed = |e: sqlx::Error| e.to_string();
    let selected: Vec<i64> = match selection {
        ImageSelection::Named(named) => {
            let status = match named {
                NamedSelection::All => String::new(),
                NamedSelection::Unlabeled => format!("AND status IN {UNLABELED}"),
            };
            let sql = format!("SELECT id FROM images WHERE project_id = $1 {status} ORDER BY id");
            sqlx::query_scalar(crate::db::constant_sql(sql))
                .bind(project_id)
                .fetch_all(db)
                .await
                .map_err(failed)?
        }
        ImageSelection::Ids(wanted) => {
            let mut ids = Vec::with_capacity(wanted.len());
            for id in wanted {
                let found: Option<i64> = sqlx::query_scalar("SELECT id FROM images WHERE id = $1 AND project_id = $2")
                    .bind(id)
                    .bind(project_id)
                    .fetch_optional(db)
                    .await
                    .map_err(failed)?;
                ids.extend(found);
            }
            ids
        }
    };
    let labeled: std::collections::HashSet<i64> =
        sqlx::query_scalar("SELECT image_id FROM teacher_runs WHERE model_id = $1")
            .bind(model_id)
            .fetch_all(db)
            .await
            .map_err(failed)?
            .into_iter()
            .collect();
    Ok(selected.into_iter().map(|id| (id, labeled.contains(&id))).collect())
}

/// Decodes one image and runs the teacher on it, on a blocking thread. `Ok(None)` when the image
/// is gone; `Err((id, reason))` when it cannot be read.
async fn label_one(
    db: AnyPool,
    store: Store,
    detector: Arc<Detector>,
    model: Arc<RegisteredModel>,
    image_id: i64,
    max_pixels: u64,
    min_conf: f32,
) -> Result<Option<Labeled>, (i64, String)> {
    let Some(bytes) = original_bytes(&db, &store, image_id).await.map_err(|e| (image_id, e))? else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || {
        let prediction = detect_bytes(&detector, &bytes, max_pixels, min_conf, models::DEFAULT_IOU)?;
        let mut unmapped = 0;
        let boxes = prediction
            .detections
            .iter()
            .filter_map(|d| match model.class_map.get(d.class_index).copied().flatten() {
                Some(class_id) => Some((class_id, d.score, d.bbox.map(f64::from))),
                None => {
                    unmapped += 1;
                    None
                }
            })
            .collect();
        Ok(Some(Labeled {
            image_id,
            boxes,
            unmapped,
        }))
    })
    .await
    .map_err(|e| (image_id, e.to_string()))?
    .map_err(|reason: String| (image_id, reason))
}

/// Replaces the image's teacher proposals (of any version) with this version's, in one
/// transaction, each change numbered and logged; marks the image labeled by this version and
/// the job's item done — unless `worker` no longer holds the item, which then changes nothing.
async fn store_proposals(
    db: &AnyPool,
    job: &Job,
    model: &RegisteredModel,
    labeled: &Labeled,
    worker: &str,
) -> Result<(), String> {
    let failed = |e: crate::error::ApiError| e.message;
    let project_id = job.project_id;
    let mut tx = crate::db::write_transaction(db).await.map_err(|e| e.to_string())?;
    let image_id = labeled.image_id;
    if !items::finish(&mut tx, job.id, image_id, worker, None).await? {
        tracing::warn!(
            image_id,
            job = job.id,
            "another process took this image over; its result is theirs"
        );
        return Ok(());
    }
    let older: Vec<BoxRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {BOX_COLUMNS} FROM boxes WHERE image_id = $1 AND source = 'teacher'"
    )))
    .bind(image_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| e.to_string())?;
    for row in older {
        let before = row.into_box();
        delete_box(&mut tx, project_id, image_id, &before, None)
            .await
            .map_err(failed)?;
    }
    for (class_id, confidence, corners) in &labeled.boxes {
        let proposal = BoundingBox {
            source: BoxSource::Teacher,
            model_version: Some(model.sha256.clone()),
            confidence: Some(*confidence),
            ..BoundingBox::human(uuid::Uuid::new_v4().to_string(), *class_id, *corners, 1)
        };
        sqlx::query(
            "INSERT INTO boxes (id, image_id, class_id, x0, y0, x1, y1, source, model_version, confidence, revision) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'teacher', $8, $9, 1)",
        )
        .bind(&proposal.id)
        .bind(image_id)
        .bind(i64::from(proposal.class_id))
        .bind(proposal.x0)
        .bind(proposal.y0)
        .bind(proposal.x1)
        .bind(proposal.y1)
        .bind(&proposal.model_version)
        .bind(proposal.confidence.map(f64::from))
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        record_box_event(
            &mut tx,
            project_id,
            image_id,
            OpKind::Create,
            None,
            Some(&proposal),
            None,
        )
        .await
        .map_err(failed)?;
    }
    sqlx::query(
        "INSERT INTO teacher_runs (model_id, image_id, boxes, unmapped, labeled_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (model_id, image_id) DO UPDATE \
         SET boxes = excluded.boxes, unmapped = excluded.unmapped, labeled_at = excluded.labeled_at, \
         labeled_by = excluded.labeled_by",
    )
    .bind(model.id)
    .bind(image_id)
    .bind(labeled.boxes.len() as i64)
    .bind(labeled.unmapped as i64)
    .bind(worker)
    .execute(&mut *tx)
    .await
    .map_err(|e| e.to_string())?;
    sqlx::query("UPDATE images SET status = 'prelabeled' WHERE id = $1 AND status = 'new'")
        .bind(image_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(())
}
