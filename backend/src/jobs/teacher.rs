//! The teacher job (autodistill's first half): a registered teacher labels the chosen images on
//! the server, on every core, and each image's detections become proposals — boxes with
//! `source = teacher`, the model version and the confidence — mapped onto project classes by
//! the model's class map. Human boxes are never touched; a newer teacher version's proposals
//! replace an older one's image by image. Which images a version has labeled is kept in
//! `teacher_runs`, so a resumed job continues where it stopped.

use std::sync::Arc;
use std::time::Instant;

use api::{BoundingBox, BoxSource, ImageSelection, Job, NamedSelection, OpKind, RegisteredModel};
use futures_util::StreamExt;
use models::Detector;
use sqlx::AnyPool;

use super::{Finished, Jobs, Progress, count, detect_bytes, load_detector, original_bytes};
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

pub(super) async fn run(
    jobs: &Jobs,
    db: &AnyPool,
    store: &Store,
    max_pixels: u64,
    job: &Job,
    progress: &Progress,
) -> Result<Finished, String> {
    let model_id = job.model_id.ok_or("the teacher of this job has been deleted")?;
    let params: TeacherParams = super::job_params(db, job.id).await?;
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    let model = crate::registry::load_model(&mut conn, model_id)
        .await
        .map_err(|e| e.message)?;
    drop(conn);
    // Progress counts the selected images this version has labeled, in this job or before it
    // (a resumed job, or a rerun): those are skipped.
    let (selected, pending) = selected_images(db, job.project_id, model_id, &params.images).await?;
    let total = selected;
    let mut done = total - pending.len() as u64;
    let done_before = done;
    progress
        .report(
            done,
            total,
            &format!(
                "Labeling {} with {}.",
                count(pending.len() as u64, "image"),
                model.file_name
            ),
        )
        .await?;
    let detector = load_detector(jobs, store, &model).await?;

    // Decoding, letterboxing and inference of `threads` images at once, each on its own
    // blocking thread; results are stored one by one as they come.
    let threads = jobs.inference_threads.max(1);
    let started = Instant::now();
    let (mut unreadable, mut stored_boxes, mut unmapped) = (0u64, 0u64, 0u64);
    let model = Arc::new(model);
    let mut results = futures_util::stream::iter(pending)
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
                stored_boxes += labeled.boxes.len() as u64;
                unmapped += labeled.unmapped;
                store_proposals(db, job.project_id, &model, &labeled).await?;
            }
            Ok(None) => {} // deleted meanwhile
            Err((image_id, reason)) => {
                unreadable += 1;
                tracing::warn!(image_id, %reason, "the teacher cannot read an image");
            }
        }
        done += 1;
        let rate = (done - done_before) as f64 / started.elapsed().as_secs_f64().max(1e-3);
        let eta_s = (total - done) as f64 / rate.max(1e-9);
        progress
            .report(
                done,
                total,
                &format!("Labeled {done} of {total} images · {rate:.1} images/s · about {eta_s:.0} s left."),
            )
            .await?;
    }
    let mut notes = Vec::new();
    if unmapped > 0 {
        notes.push(format!("{} of unmapped classes dropped", count(unmapped, "detection")));
    }
    if unreadable > 0 {
        notes.push(format!(
            "{} could not be read and skipped (see the server log)",
            count(unreadable, "image")
        ));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    Ok(Finished::Done(format!(
        "Labeled {} with {}: {}{notes}.",
        count(done, "image"),
        model.file_name,
        count(stored_boxes, "proposal")
    )))
}

/// How many images the selection names (that exist in the project), and those of them this
/// teacher version has not labeled yet, oldest first.
async fn selected_images(
    db: &AnyPool,
    project_id: i64,
    model_id: i64,
    selection: &ImageSelection,
) -> Result<(u64, Vec<i64>), String> {
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
    let total = selected.len() as u64;
    let pending = selected.into_iter().filter(|id| !labeled.contains(id)).collect();
    Ok((total, pending))
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
/// transaction, each change numbered and logged; marks the image labeled by this version.
async fn store_proposals(
    db: &AnyPool,
    project_id: i64,
    model: &RegisteredModel,
    labeled: &Labeled,
) -> Result<(), String> {
    let failed = |e: crate::error::ApiError| e.message;
    let mut tx = crate::db::write_transaction(db).await.map_err(|e| e.to_string())?;
    let image_id = labeled.image_id;
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
        "INSERT INTO teacher_runs (model_id, image_id, boxes, unmapped) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (model_id, image_id) DO UPDATE \
         SET boxes = excluded.boxes, unmapped = excluded.unmapped, labeled_at = excluded.labeled_at",
    )
    .bind(model.id)
    .bind(image_id)
    .bind(labeled.boxes.len() as i64)
    .bind(labeled.unmapped as i64)
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
