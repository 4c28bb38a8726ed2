//! Background jobs (DESIGN, "Domain": Job): one row per job in SQLite, run one at a time by a
//! runner task, with progress, cancellation and a restart that picks up where it stopped.
//!
//! A job's work is written so that running it again continues it (scoring skips images already
//! scored), which is what makes "survives a restart" simply "requeue what was running".

pub(crate) mod evaluate;
mod score;
mod teacher;
#[cfg(feature = "student")]
mod train;

pub use teacher::TeacherParams;
#[cfg(feature = "student")]
pub use train::TrainParams;

use std::sync::Arc;
use std::time::Duration;

use api::{Job, JobKind, JobState, ModelRole, NewJob};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use futures_util::Stream;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{Notify, broadcast};

use crate::AppState;
use crate::db::Flag;
use crate::error::ApiError;
use crate::events::ProjectEvents;
use crate::extract::{JsonBody, PathParams};
use crate::registry::DetectorCache;
use crate::store::Store;
use axum::body::Bytes;

/// What the runner needs to do jobs; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    wake: Arc<Notify>,
    /// The id of every job whose row just changed (state, progress, message): what the event
    /// streams of open pages listen to.
    changed: broadcast::Sender<i64>,
    pub(crate) detectors: DetectorCache,
    /// Where a training announces the student it publishes.
    pub(crate) events: ProjectEvents,
    /// How many images a teacher job decodes and runs at once (one blocking thread each).
    inference_threads: usize,
    /// Whether training jobs run on the CUDA GPU (`--train-device gpu`), checked at start.
    #[cfg_attr(not(feature = "student"), allow(dead_code))]
    train_on_gpu: bool,
}

impl Jobs {
    /// Jobs that run detectors as `config` says: tract on `inference_threads` images at once
    /// (all cores by default), or onnxruntime from the named library, on the CPU or the GPU.
    pub fn new(config: &crate::config::InferenceConfig, events: ProjectEvents) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = config.inference_threads.unwrap_or(cores).max(1);
        let runtime = runtime(config, threads)?;
        tracing::info!(engine = runtime.name(), threads, "detectors on the server");
        let train_on_gpu = config.train_device == "gpu";
        check_training_device(train_on_gpu)?;
        Ok(Self {
            wake: Arc::new(Notify::new()),
            changed: broadcast::channel(256).0,
            detectors: DetectorCache::new(runtime),
            events,
            inference_threads: threads,
            train_on_gpu,
        })
    }

    /// Where training jobs run.
    #[cfg(feature = "student")]
    pub(crate) fn training_accelerator(&self) -> ::train::device::Accelerator {
        accelerator(self.train_on_gpu)
    }

    /// Requeues jobs a previous server left running, then runs queued jobs in the background,
    /// oldest first, until the process exits.
    pub async fn start(&self, db: AnyPool, store: Store, max_pixels: u64) -> Result<(), ApiError> {
        let resumed = sqlx::query(
            "UPDATE jobs SET state = 'queued', message = 'Resumed after a server restart.' WHERE state = 'running'",
        )
        .execute(&db)
        .await?
        .rows_affected();
        if resumed > 0 {
            tracing::info!(resumed, "requeued jobs interrupted by the last shutdown");
        }
        let jobs = self.clone();
        tokio::spawn(async move {
            loop {
                match next_queued(&db).await {
                    Ok(Some(job)) => jobs.run(&db, &store, max_pixels, job).await,
                    Ok(None) => {
                        // Woken by a new job, or poll now and then in case another process
                        // (the CLI) queued one.
                        let _ = tokio::time::timeout(Duration::from_secs(5), jobs.wake.notified()).await;
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot read the job queue");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        });
        Ok(())
    }

    /// Runs one queued job in this process (the CLI), unless a server's runner took it first;
    /// either way returns once it has finished.
    pub async fn run_here(&self, db: &AnyPool, store: &Store, max_pixels: u64, job: Job) -> Result<Job, ApiError> {
        let job_id = job.id;
        self.run(db, store, max_pixels, job).await;
        loop {
            let now = load_job(&mut *db.acquire().await?, job_id).await?;
            if now.state.is_final() {
                return Ok(now);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Tells the open event streams and the project's live channel that a job's row changed.
    /// Nobody listening is fine.
    fn announce(&self, project_id: i64, job_id: i64) {
        let _ = self.changed.send(job_id);
        self.events.live.job_changed(project_id, job_id);
    }

    /// Another process changed a job's row: this one's open job streams and live channels hear it.
    pub(crate) fn changed_elsewhere(&self, project_id: i64, job_id: i64) {
        let _ = self.changed.send(job_id);
        self.events.live.job_changed_elsewhere(project_id, job_id);
    }

    async fn run(&self, db: &AnyPool, store: &Store, max_pixels: u64, job: Job) {
        let started = sqlx::query(
            "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, $1) WHERE id = $2 AND state = 'queued'",
        )
        .bind(crate::db::now())
        .bind(job.id)
        .execute(db)
        .await;
        if !matches!(started, Ok(r) if r.rows_affected() == 1) {
            return; // cancelled in the meantime
        }
        tracing::info!(job = job.id, kind = job.kind.as_str(), "job started");
        self.announce(job.project_id, job.id);
        let progress = Progress {
            db: db.clone(),
            project_id: job.project_id,
            job_id: job.id,
            jobs: self.clone(),
        };
        let outcome = match job.kind {
            JobKind::Score => score::run(self, db, store, max_pixels, &job, &progress).await,
            JobKind::Teacher => teacher::run(self, db, store, max_pixels, &job, &progress).await,
            JobKind::Evaluate => evaluate::run(self, db, store, max_pixels, &job, &progress).await,
            #[cfg(feature = "student")]
            JobKind::Train => train::run(self, db, store, max_pixels, &job, &progress).await,
            #[cfg(not(feature = "student"))]
            JobKind::Train => Err("this distillery was built without training (the `student` feature)".into()),
        };
        let (state, message) = match outcome {
            Ok(Finished::Done(message)) => (JobState::Succeeded, message),
            Ok(Finished::Cancelled) => (JobState::Cancelled, "Cancelled.".to_owned()),
            Err(reason) => (JobState::Failed, reason),
        };
        tracing::info!(job = job.id, state = state.as_str(), %message, "job finished");
        let finished = sqlx::query("UPDATE jobs SET state = $1, message = $2, finished_at = $3 WHERE id = $4")
            .bind(state.as_str())
            .bind(&message)
            .bind(crate::db::now())
            .bind(job.id)
            .execute(db)
            .await;
        if let Err(error) = finished {
            tracing::error!(%error, job = job.id, "cannot record the end of a job");
        }
        self.announce(job.project_id, job.id);
    }
}

/// Fails at start, with the reason, when trainings cannot run where `--train-device` asks.
#[cfg(feature = "student")]
fn check_training_device(gpu: bool) -> anyhow::Result<()> {
    ::train::device::select(accelerator(gpu))?;
    tracing::info!(
        device = ::train::device::describe(accelerator(gpu)),
        "trainings on the server"
    );
    Ok(())
}

#[cfg(feature = "student")]
fn accelerator(gpu: bool) -> ::train::device::Accelerator {
    if gpu {
        ::train::device::Accelerator::Gpu
    } else {
        ::train::device::Accelerator::Cpu
    }
}

#[cfg(not(feature = "student"))]
fn check_training_device(gpu: bool) -> anyhow::Result<()> {
    if gpu {
        anyhow::bail!("this distillery was built without training (the `student` feature)");
    }
    Ok(())
}

/// The engine `config` asks for, loaded and ready.
fn runtime(config: &crate::config::InferenceConfig, threads: usize) -> anyhow::Result<models::Runtime> {
    let gpu = config.device == "gpu";
    match &config.onnxruntime {
        #[cfg(feature = "gpu")]
        None if gpu => {
            let device = models::gpu::GpuDevice::open_blocking().map_err(|e| {
                anyhow::anyhow!(
                    "--device gpu: {e} (install the GPU's Vulkan driver, or name onnxruntime's CUDA library with \
                     --onnxruntime)"
                )
            })?;
            tracing::info!(device = %device.name, "detectors run on the GPU executor");
            Ok(models::Runtime::Gpu(device))
        }
        #[cfg(not(feature = "gpu"))]
        None if gpu => anyhow::bail!(
            "--device gpu runs detectors on onnxruntime's CUDA provider: name its library with --onnxruntime \
             (libonnxruntime.so from the onnxruntime-gpu wheel)"
        ),
        None => Ok(models::Runtime::Tract),
        #[cfg(feature = "onnxruntime")]
        Some(library) => {
            models::onnxruntime::init(library)?;
            let device = if gpu {
                models::onnxruntime::OrtDevice::Cuda
            } else {
                models::onnxruntime::OrtDevice::Cpu
            };
            Ok(models::Runtime::Onnxruntime { device, threads })
        }
        #[cfg(not(feature = "onnxruntime"))]
        Some(_) => {
            let _ = threads;
            anyhow::bail!("this distillery was built without the `onnxruntime` feature")
        }
    }
}

/// The model's detector, parsed and optimised once per version.
async fn load_detector(
    jobs: &Jobs,
    store: &Store,
    model: &api::RegisteredModel,
) -> Result<Arc<models::Detector>, String> {
    jobs.detectors
        .get(store, model)
        .await
        .map_err(|e| format!("cannot load {}: {e}", model.file_name))
}

/// An image's original bytes; `None` when the image was deleted meanwhile.
async fn original_bytes(db: &AnyPool, store: &Store, image_id: i64) -> Result<Option<Bytes>, String> {
    let found: Option<(String, String)> = sqlx::query_as("SELECT sha256, extension FROM images WHERE id = $1")
        .bind(image_id)
        .fetch_optional(db)
        .await
        .map_err(|e| e.to_string())?;
    let Some((sha256, extension)) = found else {
        return Ok(None);
    };
    let bytes = store.read(&Store::original_key(&sha256, &extension)).await;
    bytes.map(Some).map_err(|e| e.to_string())
}

/// Decodes an image's bytes upright (EXIF applied, as people label it) and runs the detector on
/// it. Blocking.
fn detect_bytes(
    detector: &models::Detector,
    bytes: &[u8],
    max_pixels: u64,
    confidence: f32,
    iou: f32,
) -> Result<models::Prediction, String> {
    let rgb = crate::imaging::decode_upright_rgb(bytes, max_pixels).map_err(|e| e.to_string())?;
    let pixels = models::Pixels {
        data: rgb.as_raw(),
        width_px: rgb.width(),
        height_px: rgb.height(),
        channels: 3,
    };
    detector.detect(pixels, confidence, iou).map_err(|e| e.0)
}

/// A job's own settings, from its row's `params` JSON.
async fn job_params<T: serde::de::DeserializeOwned>(db: &AnyPool, job_id: i64) -> Result<T, String> {
    let text: Option<String> = sqlx::query_scalar("SELECT params FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(db)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(text.as_deref().unwrap_or("null")).map_err(|e| format!("unreadable job settings: {e}"))
}

/// "1 image", "2 images".
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How a job's work ended when it did not fail.
enum Finished {
    Done(String),
    Cancelled,
}

/// A running job's line to its row: progress and the cancel flag.
struct Progress {
    db: AnyPool,
    project_id: i64,
    job_id: i64,
    jobs: Jobs,
}

impl Progress {
    async fn report(&self, done: u64, total: u64, message: &str) -> Result<(), String> {
        sqlx::query("UPDATE jobs SET done = $1, total = $2, message = $3 WHERE id = $4")
            .bind(done as i64)
            .bind(total as i64)
            .bind(message)
            .bind(self.job_id)
            .execute(&self.db)
            .await
            .map_err(|e| format!("cannot record progress: {e}"))?;
        self.jobs.announce(self.project_id, self.job_id);
        Ok(())
    }

    async fn cancel_requested(&self) -> bool {
        sqlx::query_scalar("SELECT cancel_requested FROM jobs WHERE id = $1")
            .bind(self.job_id)
            .fetch_one(&self.db)
            .await
            .is_ok_and(|Flag(requested)| requested)
    }
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{pid}/jobs", post(create).get(list))
        .route("/jobs/{jid}", get(read))
        .route("/jobs/{jid}/events", get(events))
        .route("/jobs/{jid}/epochs", get(epochs))
        .route("/jobs/{jid}/cancel", post(cancel))
        .route("/jobs/{jid}/resume", post(resume))
}

async fn create(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    JsonBody(new_job): JsonBody<NewJob>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let mut conn = state.db.acquire().await?;
    let job = queue_job(&mut conn, project_id, &new_job).await?;
    state.jobs.wake.notify_one();
    state.jobs.announce(job.project_id, job.id);
    Ok((StatusCode::CREATED, Json(job)))
}

/// Checks and queues a job; the runner picks it up.
pub async fn queue_job(conn: &mut AnyConnection, project_id: i64, new_job: &NewJob) -> Result<Job, ApiError> {
    let model_id = match new_job.kind {
        JobKind::Score => {
            let model = match new_job.model_id {
                Some(id) => Some(crate::registry::load_model(conn, id).await?).filter(|m| m.project_id == project_id),
                None => crate::registry::active_student(conn, project_id).await?,
            };
            let model = model.ok_or_else(|| {
                ApiError::conflict(
                    "no_student",
                    "Scoring needs a student model: upload one on the Models page.",
                )
            })?;
            if model.role != ModelRole::Student {
                return Err(ApiError::bad_request(
                    "not_a_student",
                    "Scoring runs a student model, not a teacher.",
                ));
            }
            Some(model.id)
        }
        JobKind::Teacher => Some(teacher_for(conn, project_id, new_job.model_id).await?.id),
        JobKind::Evaluate => match new_job.model_id {
            Some(id) => {
                let model = crate::registry::load_model(conn, id).await?;
                if model.project_id != project_id {
                    return Err(ApiError::not_found(format_args!("model {id}")));
                }
                Some(id)
            }
            None => None, // every model version of the project
        },
        // Fine-tuning starts from the named student; from scratch otherwise.
        JobKind::Train => match new_job.model_id {
            Some(id) => {
                let model = crate::registry::load_model(conn, id).await?;
                if model.project_id != project_id {
                    return Err(ApiError::not_found(format_args!("model {id}")));
                }
                if model.role != ModelRole::Student {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "not_a_student",
                        "Training fine-tunes a student model, not a teacher.",
                    ));
                }
                Some(id)
            }
            None => None,
        },
    };
    let params = match new_job.kind {
        JobKind::Teacher => Some(teacher_params(conn, project_id, new_job).await?),
        JobKind::Train => Some(train_params(new_job)?),
        _ => None,
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (project_id, kind, model_id, params) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(project_id)
    .bind(new_job.kind.as_str())
    .bind(model_id)
    .bind(params)
    .fetch_one(&mut *conn)
    .await?;
    load_job(conn, id).await
}

/// The named teacher (which must belong to the project), or the project's newest one.
async fn teacher_for(
    conn: &mut AnyConnection,
    project_id: i64,
    model_id: Option<i64>,
) -> Result<api::RegisteredModel, ApiError> {
    let id = match model_id {
        Some(id) => Some(id),
        None => {
            sqlx::query_scalar("SELECT MAX(id) FROM models WHERE project_id = $1 AND role = 'teacher'")
                .bind(project_id)
                .fetch_one(&mut *conn)
                .await?
        }
    };
    let model = match id {
        Some(id) => Some(crate::registry::load_model(conn, id).await?).filter(|m| m.project_id == project_id),
        None => None,
    };
    let model = model.ok_or_else(|| {
        ApiError::conflict(
            "no_teacher",
            "Teacher labeling needs a teacher model: upload one on the Models page.",
        )
    })?;
    if model.role != ModelRole::Teacher {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_teacher",
            "Teacher labeling runs a teacher model, not a student.",
        ));
    }
    Ok(model)
}

/// A teacher job's settings, checked, as the JSON its row keeps.
async fn teacher_params(conn: &mut AnyConnection, project_id: i64, new_job: &NewJob) -> Result<String, ApiError> {
    let min_conf = new_job.min_conf.unwrap_or(models::DEFAULT_CONFIDENCE);
    if !(0.0..1.0).contains(&min_conf) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_min_conf",
            "min_conf must be at least 0 and below 1.",
        ));
    }
    let images = new_job
        .images
        .clone()
        .unwrap_or(api::ImageSelection::Named(api::NamedSelection::All));
    if let api::ImageSelection::Ids(ids) = &images {
        for id in ids {
            let owner: Option<i64> = sqlx::query_scalar("SELECT project_id FROM images WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            if owner != Some(project_id) {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_image",
                    format!("Project {project_id} has no image {id}."),
                ));
            }
        }
    }
    serde_json::to_string(&TeacherParams { images, min_conf }).map_err(ApiError::internal)
}

/// A training job's settings, checked, as the JSON its row keeps.
fn train_params(new_job: &NewJob) -> Result<String, ApiError> {
    #[cfg(feature = "student")]
    {
        let invalid = |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_training", message);
        let params = TrainParams {
            settings: new_job.train.clone().unwrap_or_default(),
            min_conf: new_job.min_conf.unwrap_or(models::DEFAULT_CONFIDENCE),
        };
        if !(0.0..=1.0).contains(&params.min_conf) {
            return Err(invalid("min_conf must be between 0 and 1.".into()));
        }
        params.config().map_err(invalid)?;
        serde_json::to_string(&params).map_err(ApiError::internal)
    }
    #[cfg(not(feature = "student"))]
    {
        let _ = new_job;
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_job",
            "This distillery was built without training (the `student` feature).",
        ))
    }
}

async fn list(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
) -> Result<Json<Vec<Job>>, ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let rows: Vec<JobRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "{SELECT_JOB} WHERE project_id = $1 ORDER BY id DESC LIMIT 50"
    )))
    .bind(project_id)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(rows.into_iter().map(JobRow::into_job).collect::<Result<_, _>>()?))
}

async fn read(State(state): State<AppState>, PathParams(job_id): PathParams<i64>) -> Result<Json<Job>, ApiError> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(load_job(&mut conn, job_id).await?))
}

/// `GET /api/jobs/{jid}/epochs`: a training job's finished epochs (empty for other jobs).
async fn epochs(
    State(state): State<AppState>,
    PathParams(job_id): PathParams<i64>,
) -> Result<Json<Vec<api::TrainingEpoch>>, ApiError> {
    load_job(&mut *state.db.acquire().await?, job_id).await?;
    #[cfg(feature = "student")]
    return Ok(Json(train::epochs(&state.db, job_id).await?));
    #[cfg(not(feature = "student"))]
    Ok(Json(Vec::new()))
}

async fn cancel(State(state): State<AppState>, PathParams(job_id): PathParams<i64>) -> Result<Json<Job>, ApiError> {
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let job = load_job(&mut tx, job_id).await?;
    match job.state {
        JobState::Queued => {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', message = 'Cancelled before it started.', \
                 finished_at = $1 WHERE id = $2",
            )
            .bind(crate::db::now())
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        }
        JobState::Running => {
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
        }
        finished => {
            return Err(ApiError::conflict(
                "job_finished",
                format!("Job {job_id} has already {}.", finished.as_str()),
            ));
        }
    }
    let job = load_job(&mut tx, job_id).await?;
    tx.commit().await?;
    state.jobs.announce(job.project_id, job_id);
    Ok(Json(job))
}

/// `POST /api/jobs/{jid}/resume`: queues a cancelled or failed job again. Jobs continue what
/// they had done (scoring skips what is scored, a training continues from its checkpoint).
async fn resume(State(state): State<AppState>, PathParams(job_id): PathParams<i64>) -> Result<Json<Job>, ApiError> {
    let mut tx = crate::db::write_transaction(&state.db).await?;
    let job = load_job(&mut tx, job_id).await?;
    let refusal = match job.state {
        JobState::Cancelled | JobState::Failed => None,
        JobState::Succeeded => Some(format!("Job {job_id} has succeeded: there is nothing to resume.")),
        other => Some(format!(
            "Job {job_id} is still {}: only a cancelled or failed job can be resumed.",
            other.as_str()
        )),
    };
    if let Some(message) = refusal {
        return Err(ApiError::conflict("job_not_stopped", message));
    }
    sqlx::query(
        "UPDATE jobs SET state = 'queued', cancel_requested = 0, finished_at = NULL, message = 'Resumed.' WHERE id = $1",
    )
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    let job = load_job(&mut tx, job_id).await?;
    tx.commit().await?;
    state.jobs.wake.notify_one();
    state.jobs.announce(job.project_id, job_id);
    Ok(Json(job))
}

/// `GET /api/jobs/{jid}/events`: the job as Server-Sent Events (`event: job`, the job's JSON) —
/// as it is now, then after every change of state, progress or message, ending with its final
/// state. This is how the page shows progress without polling.
async fn events(
    State(state): State<AppState>,
    PathParams(job_id): PathParams<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, axum::Error>>>, ApiError> {
    // Listen before reading the row, so a change between the two is not missed.
    let changes = state.jobs.changed.subscribe();
    let now = load_job(&mut *state.db.acquire().await?, job_id).await?;
    let feed = JobFeed {
        db: state.db.clone(),
        job_id,
        changes,
        next: Some(now),
        ended: false,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let job = feed.next_job().await?;
        feed.ended = job.state.is_final();
        Some((Event::default().event("job").json_data(&job), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One open event stream's position: the job to send next, or where to wait for it.
struct JobFeed {
    db: AnyPool,
    job_id: i64,
    changes: broadcast::Receiver<i64>,
    next: Option<Job>,
    ended: bool,
}

impl JobFeed {
    /// The job's row once it has changed; `None` once the final state went out (or the row can
    /// no longer be read), which ends the stream.
    async fn next_job(&mut self) -> Option<Job> {
        if let Some(job) = self.next.take() {
            return Some(job);
        }
        if self.ended {
            return None;
        }
        loop {
            match self.changes.recv().await {
                Ok(id) if id != self.job_id => continue,
                // A lagging listener missed some ids: re-reading the row catches up all the same.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let mut conn = self.db.acquire().await.ok()?;
                    return load_job(&mut conn, self.job_id).await.ok();
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

const SELECT_JOB: &str =
    "SELECT id, project_id, kind, state, model_id, done, total, message, created_at, finished_at FROM jobs";

pub(crate) async fn load_job(conn: &mut AnyConnection, job_id: i64) -> Result<Job, ApiError> {
    let row: Option<JobRow> = sqlx::query_as(crate::db::constant_sql(format!("{SELECT_JOB} WHERE id = $1")))
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.ok_or_else(|| ApiError::not_found(format_args!("job {job_id}")))?
        .into_job()
}

async fn next_queued(db: &AnyPool) -> Result<Option<Job>, ApiError> {
    let row: Option<JobRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "{SELECT_JOB} WHERE state = 'queued' ORDER BY id LIMIT 1"
    )))
    .fetch_optional(db)
    .await?;
    row.map(JobRow::into_job).transpose()
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    project_id: i64,
    kind: String,
    state: String,
    model_id: Option<i64>,
    done: i64,
    total: i64,
    message: Option<String>,
    created_at: String,
    finished_at: Option<String>,
}

impl JobRow {
    fn into_job(self) -> Result<Job, ApiError> {
        Ok(Job {
            id: self.id,
            project_id: self.project_id,
            kind: JobKind::parse(&self.kind).ok_or_else(|| ApiError::internal("unknown job kind stored"))?,
            state: JobState::parse(&self.state).ok_or_else(|| ApiError::internal("unknown job state stored"))?,
            model_id: self.model_id,
            done: self.done as u64,
            total: self.total as u64,
            message: self.message,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}
