//! The training job (autodistill's second half): the student learns from exactly what the
//! project's YOLO export would hold with `include=auto` — human labels of labeled and approved
//! images, plus model proposals at or above `min_conf` on images nobody has labeled (zero
//! human labels is autodistill's case) — on the project's train split, validated on its val
//! split after every epoch. The best epoch's averaged weights are exported to ONNX and
//! registered as the project's newest student, which makes it the active one; a failed or
//! cancelled training registers nothing, so the previous student stays active.
//!
//! Every finished epoch is checkpointed (`Store::checkpoints_dir`, copied to the bucket when
//! there is one), so running the job again — after a server restart, on another worker after
//! this one died, or `POST /api/jobs/{jid}/resume` once it was cancelled or failed — continues
//! from its last epoch; the checkpoints go once the student is published.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api::{Job, ModelRole, RegisteredModel, Split, TrainSettings, TrainedBy, TrainingEpoch};
use futures_util::StreamExt;
use sqlx::AnyPool;
use tokio::sync::mpsc;
use train::assign::Target;
use train::augment::Sample;
use train::device::Accelerator;
use train::trainer::{EpochReport, Progress as TrainProgress, TrainConfig, TrainError, TrainingData};

use super::{Finished, Jobs, Progress};
use crate::export::{Entry, Format, Include};
use crate::registry::NewModel;
use crate::store::{Key, Store};

/// What a training job was asked to do (the job row's `params`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrainParams {
    pub settings: TrainSettings,
    /// Lowest confidence of a model proposal trained on.
    pub min_conf: f32,
}

impl TrainParams {
    /// The trainer's configuration: Ultralytics' defaults where the settings are silent.
    pub fn config(&self) -> Result<TrainConfig, String> {
        let defaults = TrainConfig::default();
        let s = &self.settings;
        let config = TrainConfig {
            epochs: s.epochs.map_or(defaults.epochs, |e| e as usize),
            batch: s.batch.map_or(defaults.batch, |b| b as usize),
            imgsz: s.imgsz.unwrap_or(defaults.imgsz),
            patience: s.patience.map_or(30, |p| p as usize),
            nbs: s.nbs.map_or(defaults.nbs, |n| n as usize),
            warmup_epochs: s.warmup_epochs.unwrap_or(defaults.warmup_epochs),
            ..defaults
        };
        // Ultralytics closes mosaic for the last 10 epochs; a short training keeps a third open.
        let close_mosaic = config.close_mosaic.min(config.epochs / 3);
        if config.epochs == 0 || config.epochs > 10_000 {
            return Err("epochs must be between 1 and 10000.".into());
        }
        if config.batch == 0 || config.batch > 1024 {
            return Err("batch must be between 1 and 1024.".into());
        }
        if config.nbs == 0 || !(0.0..=100.0).contains(&config.warmup_epochs) {
            return Err("nbs must be positive and warmup_epochs between 0 and 100.".into());
        }
        if !(32..=2048).contains(&config.imgsz) || !config.imgsz.is_multiple_of(32) {
            return Err("imgsz must be a multiple of 32 between 32 and 2048.".into());
        }
        Ok(TrainConfig { close_mosaic, ..config })
    }
}

/// What the blocking training thread tells the job.
enum Update {
    Batch { epoch: usize, batch: usize, batches: usize },
    Epoch(EpochReport),
}

pub(super) async fn run(
    jobs: &Jobs,
    db: &AnyPool,
    store: &Store,
    max_pixels: u64,
    job: &Job,
    progress: &Progress,
) -> Result<Finished, String> {
    let params: TrainParams = super::job_params(db, job.id).await?;
    let config = params.config()?;
    let accelerator = jobs.training_accelerator();
    if accelerator == Accelerator::Cpu {
        // On a GPU the activations live in its memory; running out there fails the job instead.
        fits_in_memory(&config)?;
    }
    let checkpoints = store.checkpoints_dir(job.id);
    let local = {
        let dir = checkpoints.clone();
        tokio::task::spawn_blocking(move || train::checkpoint::saved_epoch(&dir))
            .await
            .map_err(|e| e.to_string())?
    };
    // A training another worker started continues from the checkpoint it left in the bucket.
    let brought = store
        .restore_checkpoint(job.id, &checkpoints, local)
        .await
        .map_err(|e| format!("cannot read the training's checkpoint from the store: {e}"))?;
    let saved = brought.or(local).unwrap_or(0);
    // Epochs charted after the checkpoint will run again (all of them without one).
    sqlx::query("DELETE FROM training_epochs WHERE job_id = $1 AND epoch > $2")
        .bind(job.id)
        .bind(saved as i64)
        .execute(db)
        .await
        .map_err(|e| e.to_string())?;

    let plan = crate::export::plan(db, store, job.project_id, Format::Yolo, Include::Auto, params.min_conf)
        .await
        .map_err(|e| format!("Nothing to train on: {}", e.message))?;
    let class_names = plan.class_names();
    progress
        .report(
            0,
            config.epochs as u64,
            &format!("Reading {} images.", plan.image_count()),
        )
        .await?;
    let data = read_samples(store, plan.entries(), class_names.clone(), config.imgsz, max_pixels).await?;
    let start = match job.model_id {
        Some(model_id) => Some(starting_weights(db, store, model_id, class_names.len()).await?),
        None => None,
    };
    let summary = format!(
        "{} training and {} validation images, {} boxes",
        data.train.len(),
        data.val.len(),
        data.train.iter().map(|s| s.targets.len()).sum::<usize>()
    );
    let continuing = if saved > 0 {
        format!(" Continuing after epoch {saved}, from its checkpoint.")
    } else {
        String::new()
    };
    progress
        .report(
            saved as u64,
            config.epochs as u64,
            &format!(
                "Training on {summary}, on the {}.{continuing}",
                train::device::describe(accelerator)
            ),
        )
        .await?;

    let cancel = Arc::new(AtomicBool::new(false));
    let (updates, mut received) = mpsc::unbounded_channel::<Update>();
    let device = train::device::select(accelerator).map_err(|e| e.to_string())?;
    let training = {
        let (cancel, config, checkpoints) = (cancel.clone(), config.clone(), checkpoints.clone());
        let (store, job_id, runtime) = (store.clone(), job.id, tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            train::trainer::train(&config, &data, start, &device, Some(&checkpoints), |update| {
                let message = match update {
                    TrainProgress::Batch {
                        epoch, batch, batches, ..
                    } => Update::Batch { epoch, batch, batches },
                    TrainProgress::Epoch(report) => {
                        // The epoch's checkpoint is written: copy it to the bucket before the
                        // next epoch can replace it. A failed copy costs a takeover epochs, not
                        // this training.
                        let copied = runtime.block_on(store.save_checkpoint(job_id, &checkpoints, report.epoch));
                        if let Err(error) = copied {
                            tracing::warn!(%error, job = job_id, "cannot copy the checkpoint to the store");
                        }
                        Update::Epoch(report.clone())
                    }
                };
                let _ = updates.send(message);
                if cancel.load(Ordering::Relaxed) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        })
    };

    let mut last = String::new();
    let mut reported_at = Instant::now();
    let mut epochs_done = saved as u64;
    loop {
        let update = tokio::time::timeout(Duration::from_secs(1), received.recv()).await;
        match update {
            Ok(Some(Update::Epoch(report))) => {
                epochs_done = report.epoch as u64;
                store_epoch(db, job.id, &report).await?;
                last = epoch_line(&report);
                progress.report(epochs_done, config.epochs as u64, &last).await?;
            }
            Ok(Some(Update::Batch { epoch, batch, batches })) => {
                if reported_at.elapsed() > Duration::from_secs(2) {
                    reported_at = Instant::now();
                    let line = format!("Epoch {epoch}/{}, batch {batch}/{batches}. {last}", config.epochs);
                    progress.report(epochs_done, config.epochs as u64, line.trim()).await?;
                }
            }
            Ok(None) => break, // the training thread has finished
            Err(_) => {}       // quiet second: look at the cancel flag
        }
        if progress.cancel_requested().await {
            cancel.store(true, Ordering::Relaxed);
        }
    }
    let outcome = match training.await {
        Ok(outcome) => outcome.map_err(|e| match e {
            TrainError::Cancelled => None,
            error => Some(error.to_string()),
        }),
        // A panic inside the framework (a kernel's assertion, a device error) ends the training,
        // not the server.
        Err(crashed) => Err(Some(format!("it stopped on an internal error ({crashed})"))),
    };
    let trained = match outcome {
        Ok(trained) => trained,
        Err(None) => return Ok(Finished::Cancelled),
        Err(Some(reason)) => {
            let kept = match train::checkpoint::saved_epoch(&checkpoints) {
                Some(epoch) => format!(" Resuming continues after epoch {epoch}, from its checkpoint."),
                None => String::new(),
            };
            return Err(format!(
                "Training failed: {reason}. The previous student stays active.{kept}"
            ));
        }
    };

    let onnx = train::export::export_onnx(&trained.model, config.imgsz, &class_names)?;
    let previous = previous_student(db, job.project_id).await?;
    let version = student_count(db, job.project_id).await? + 1;
    let staged = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.stage_reader(&mut onnx.as_slice(), onnx.len() as u64))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot store the new student: {e}"))?
    };
    let file_name = format!("student-v{version}.onnx");
    let new = NewModel {
        project_id: job.project_id,
        role: ModelRole::Student,
        file_name: &file_name,
        trained: Some(TrainedBy {
            job_id: job.id,
            map50: Some(trained.evaluation.map50),
            map50_95: Some(trained.evaluation.map50_95),
        }),
    };
    let model = crate::registry::add_model(db, store, &jobs.events, new, staged)
        .await
        .map_err(|e| format!("cannot register the new student: {}", e.message))?;
    // Published: the checkpoints have served their purpose (the student's ONNX file is kept).
    if let Err(error) = store.remove_checkpoints(job.id).await {
        tracing::warn!(%error, job = job.id, "cannot remove the training's checkpoints");
    }
    let early = if trained.stopped_early { ", stopped early" } else { "" };
    let resumed = if trained.resumed_after > 0 {
        format!(", continued after epoch {}", trained.resumed_after)
    } else {
        String::new()
    };
    Ok(Finished::Done(format!(
        "{}: best of {} epochs at epoch {}{early}{resumed}; {summary}.",
        api::student_change_message(&model, previous.as_ref()),
        trained.epochs.len(),
        trained.best_epoch,
    )))
}

/// Refuses a training whose steps would not fit in the memory left (the process would be killed
/// halfway otherwise), saying what it needs.
fn fits_in_memory(config: &TrainConfig) -> Result<(), String> {
    let needed = train::memory::training_bytes(config.batch, config.imgsz);
    match train::memory::available_bytes() {
        Some(free) if needed > free => Err(format!(
            "Training at batch {} and {} px needs about {:.1} GB of memory, and {:.1} GB is free: lower the \
             batch or the image size. The previous student stays active.",
            config.batch,
            config.imgsz,
            needed as f64 / 1e9,
            free as f64 / 1e9
        )),
        _ => Ok(()),
    }
}

/// The chosen images decoded upright, boxes as training targets, by split; test images are
/// left out (they are the Quality page's held-out set). Unreadable images are skipped.
async fn read_samples(
    store: &Store,
    entries: &[Entry],
    class_names: Vec<String>,
    imgsz: u32,
    max_pixels: u64,
) -> Result<TrainingData, String> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let wanted: Vec<(Split, Key, Vec<Target>)> = entries
        .iter()
        .filter(|e| e.split() != Split::Test)
        .map(|e| {
            let targets = e
                .labels()
                .iter()
                .map(|(class, b)| Target {
                    class: *class,
                    xyxy: b.map(|v| v as f32),
                })
                .collect();
            (e.split(), e.source().clone(), targets)
        })
        .collect();
    let mut decoded = futures_util::stream::iter(wanted)
        .map(|(split, key, targets)| async move {
            let bytes = match store.read(&key).await {
                Ok(bytes) => bytes,
                Err(error) => return (split, Ok(Err(error.to_string()))),
            };
            let read = tokio::task::spawn_blocking(move || {
                let image = crate::imaging::decode_upright_rgb(&bytes, max_pixels).map_err(|e| e.to_string())?;
                let sample = Sample { image, targets };
                // Training images are kept at the input size (what each epoch augments);
                // validation images whole, letterboxed as the studio's detectors see them.
                Ok::<_, String>(if split == Split::Train {
                    train::augment::fit_long_side(&sample, imgsz)
                } else {
                    sample
                })
            })
            .await;
            (split, read)
        })
        .buffer_unordered(threads);
    let mut data = TrainingData {
        class_names,
        ..TrainingData::default()
    };
    let mut unreadable = 0;
    while let Some((split, read)) = decoded.next().await {
        match read {
            Ok(Ok(sample)) if split == Split::Train => data.train.push(sample),
            Ok(Ok(sample)) => data.val.push(sample),
            Ok(Err(reason)) => {
                unreadable += 1;
                tracing::warn!(%reason, "training skips an unreadable image");
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    if data.val.is_empty() {
        return Err(format!(
            "Training needs validation images: the project's val share has none of the {} labeled images{}. Raise \
             the val percentage in the project's split settings.",
            data.train.len(),
            if unreadable > 0 { " that could be read" } else { "" }
        ));
    }
    Ok(data)
}

/// A registered student's weights as the network to fine-tune.
async fn starting_weights(
    db: &AnyPool,
    store: &Store,
    model_id: i64,
    classes: usize,
) -> Result<train::yolo::Yolo, String> {
    let model = crate::registry::load_model(&mut *db.acquire().await.map_err(|e| e.to_string())?, model_id)
        .await
        .map_err(|e| e.message)?;
    let bytes = store
        .read(&Store::model_key(&model.sha256))
        .await
        .map_err(|e| format!("cannot read {}: {e}", model.file_name))?;
    tokio::task::spawn_blocking(move || {
        let weights = train::weights::Weights::from_onnx(&bytes)?;
        let device = train::trainer::Device::flex();
        let mut network = train::yolo::Yolo::new(classes, &device);
        network.load_ultralytics(&weights, &device).map_err(|e| {
            format!(
                "{} cannot be fine-tuned here (a YOLOv8n with the project's {classes} classes is needed): {e}",
                model.file_name
            )
        })?;
        Ok(network)
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn store_epoch(db: &AnyPool, job_id: i64, report: &EpochReport) -> Result<(), String> {
    let epoch = TrainingEpoch {
        epoch: report.epoch as u32,
        epochs: report.epochs as u32,
        box_loss: report.loss.box_loss,
        class_loss: report.loss.class_loss,
        dfl_loss: report.loss.dfl_loss,
        learning_rate: report.learning_rate,
        map50: report.map50,
        map50_95: report.map50_95,
        precision: report.precision,
        recall: report.recall,
        images_per_second: report.images_per_second,
        elapsed_seconds: report.elapsed_seconds,
        eta_seconds: report.eta_seconds,
        best: report.best,
    };
    let json = serde_json::to_string(&epoch).map_err(|e| e.to_string())?;
    sqlx::query(
        "INSERT INTO training_epochs (job_id, epoch, report) VALUES ($1, $2, $3) \
         ON CONFLICT (job_id, epoch) DO UPDATE SET report = excluded.report",
    )
    .bind(job_id)
    .bind(epoch.epoch as i64)
    .bind(json)
    .execute(db)
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn epoch_line(r: &EpochReport) -> String {
    format!(
        "Epoch {}/{} · mAP50 {:.3} · mAP50-95 {:.3} · box {:.3} cls {:.3} dfl {:.3} · {:.1} images/s · about {:.0} s left.",
        r.epoch,
        r.epochs,
        r.map50,
        r.map50_95,
        r.loss.box_loss,
        r.loss.class_loss,
        r.loss.dfl_loss,
        r.images_per_second,
        r.eta_seconds
    )
}

/// The student browsers run before this training publishes its own.
async fn previous_student(db: &AnyPool, project_id: i64) -> Result<Option<RegisteredModel>, String> {
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    crate::registry::active_student(&mut conn, project_id)
        .await
        .map_err(|e| e.message)
}

async fn student_count(db: &AnyPool, project_id: i64) -> Result<i64, String> {
    sqlx::query_scalar("SELECT COUNT(*) FROM models WHERE project_id = $1 AND role = 'student'")
        .bind(project_id)
        .fetch_one(db)
        .await
        .map_err(|e| e.to_string())
}

/// `GET /api/jobs/{jid}/epochs`: a training job's finished epochs, in order.
pub async fn epochs(db: &AnyPool, job_id: i64) -> Result<Vec<TrainingEpoch>, crate::error::ApiError> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT report FROM training_epochs WHERE job_id = $1 ORDER BY epoch")
        .bind(job_id)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| serde_json::from_str(r).map_err(crate::error::ApiError::internal))
        .collect()
}
