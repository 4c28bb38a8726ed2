//! Background jobs (DESIGN, "Domain": Job): one row per job in the database, run one at a time
//! by each process's runner task — a server's, or a `distillery worker`'s (`queue` says who takes
//! what) — with progress, cancellation and a restart that picks up where it stopped.
//!
//! A job's work is written so that running it again continues it (scoring skips images already
//! scored, a training continues from its checkpoint), which is what makes "survives a restart",
//! and "another worker takes over a dead one's job", simply "queue again what was running".

pub(crate) mod evaluate;
mod items;
pub mod queue;
mod score;
mod teacher;
#[cfg(feature = "student")]
mod train;

pub use teacher::TeacherParams;
#[cfg(feature = "student")]
pub use train::TrainParams;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use crate::db::WriteTransaction;
use crate::error::ApiError;
use crate::events::ProjectEvents;
use crate::extract::{JsonBody, PathParams};
use crate::registry::DetectorCache;
use crate::store::Store;
use axum::body::Bytes;
use queue::{Runner, Standing};

/// What the runner needs to do jobs; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    wake: Arc<Notify>,
    /// Set when the process starts stopping: from then on its runner takes no job, so what
    /// [`Jobs::stop`] hands back stays with the queue.
    stopping: Arc<AtomicBool>,
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
    /// This process, as the shared job queue knows it.
    pub(crate) runner: Arc<Runner>,
}

impl Jobs {
    /// Jobs that run detectors as `config` says: tract on `inference_threads` images at once
    /// (all cores by default), or onnxruntime from the named library, on the CPU or the GPU.
    /// `name` is this process's name on the jobs it runs; `dedicated` says it is a worker.
    pub fn new(
        config: &crate::config::InferenceConfig,
        events: ProjectEvents,
        name: String,
        dedicated: bool,
    ) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = config.inference_threads.unwrap_or(cores).max(1);
        let runtime = runtime(config, threads)?;
        tracing::info!(engine = runtime.name(), threads, "detectors on the server");
        let train_on_gpu = config.train_device == "gpu";
        check_training_device(train_on_gpu)?;
        Ok(Self {
            wake: Arc::new(Notify::new()),
            stopping: Arc::new(AtomicBool::new(false)),
            changed: broadcast::channel(256).0,
            detectors: DetectorCache::new(runtime),
            events,
            inference_threads: threads,
            train_on_gpu,
            runner: Arc::new(Runner::new(
                name,
                queue::Gpu {
                    inference: config.device == "gpu",
                    training: train_on_gpu,
                },
                dedicated,
            )),
        })
    }

    /// Where training jobs run.
    #[cfg(feature = "student")]
    pub(crate) fn training_accelerator(&self) -> ::train::device::Accelerator {
        accelerator(self.train_on_gpu)
    }

    /// Joins the shared queue (queuing again what an earlier run of this process left running),
    /// then runs jobs in the background until the process exits: the oldest queued job it may
    /// take, else a share of a running teacher job's images. A server leaves all of it to the
    /// workers while one is alive.
    pub async fn start(&self, db: AnyPool, store: Store, max_pixels: u64) -> Result<(), ApiError> {
        for (project_id, job_id) in queue::register(&db, &self.runner).await? {
            tracing::info!(job = job_id, "queued again a job this process left running");
            self.announce(project_id, job_id);
        }
        self.keep_alive(db.clone());
        let jobs = self.clone();
        let idle = self.runner.lease.min(Duration::from_secs(5)) / 2;
        tokio::spawn(async move {
            loop {
                match jobs.next_work(&db).await {
                    Ok(Some(Work::Run(job_id))) => jobs.run(&db, &store, max_pixels, job_id).await,
                    Ok(Some(Work::Help(job_id))) => jobs.help(&db, &store, max_pixels, job_id).await,
                    Ok(None) => {
                        // Woken by a new job here or in another process, or look again soon:
                        // a lease may expire, a worker may stop.
                        let _ = tokio::time::timeout(idle, jobs.wake.notified()).await;
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

    /// Hands back what this process holds — its job queued again at once, its images free —
    /// and leaves the queue: the process is stopping.
    pub async fn stop(&self, db: &AnyPool) {
        self.stopping.store(true, Ordering::Relaxed);
        match queue::release(db, &self.runner).await {
            Ok(released) => {
                for (project_id, job_id) in released {
                    tracing::info!(job = job_id, "queued again the job this process was running");
                    self.announce(project_id, job_id);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot hand back this process's jobs"),
        }
        if let Err(error) = queue::unregister(db, &self.runner).await {
            tracing::warn!(%error, "cannot leave the job queue");
        }
    }

    /// Renews this process's leases in the background for as long as the process runs.
    fn keep_alive(&self, db: AnyPool) -> tokio::task::JoinHandle<()> {
        let runner = self.runner.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(runner.lease / 3).await;
                if let Err(error) = queue::heartbeat(&db, &runner).await {
                    tracing::warn!(%error, "cannot renew this process's job leases");
                }
            }
        })
    }

    /// What this runner should do next, after queuing again the jobs whose holders died.
    async fn next_work(&self, db: &AnyPool) -> Result<Option<Work>, ApiError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Ok(None);
        }
        for job in queue::reap(db).await? {
            tracing::warn!(job = job.id, worker = ?job.worker, "a job's lease expired: queued again or failed");
            self.announce(job.project_id, job.id);
        }
        if !self.runner.dedicated && queue::workers_alive(db).await? {
            return Ok(None);
        }
        if let Some(job_id) = queue::claim(db, &self.runner, None).await? {
            return Ok(Some(Work::Run(job_id)));
        }
        Ok(queue::joinable(db, &self.runner).await?.map(Work::Help))
    }

    /// Runs one queued job in this process (the CLI), unless a runner took it first; either way
    /// returns once it has finished.
    pub async fn run_here(&self, db: &AnyPool, store: &Store, max_pixels: u64, job: Job) -> Result<Job, ApiError> {
        let job_id = job.id;
        queue::register(db, &self.runner).await?;
        let heartbeat = self.keep_alive(db.clone());
        if queue::claim(db, &self.runner, Some(job_id)).await?.is_some() {
            self.run(db, store, max_pixels, job_id).await;
        }
        heartbeat.abort();
        queue::unregister(db, &self.runner).await?;
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

    /// Another process changed a job's row: this one's open job streams and live channels hear
    /// it, and its runner looks at the queue (the job may be new, or one to help with).
    pub(crate) fn changed_elsewhere(&self, project_id: i64, job_id: i64) {
        let _ = self.changed.send(job_id);
        self.events.live.job_changed_elsewhere(project_id, job_id);
        self.wake.notify_one();
    }

    /// Runs a job this process has claimed, and records how it ended — unless its lease went to
    /// another process meanwhile, which then owns the ending.
    async fn run(&self, db: &AnyPool, store: &Store, max_pixels: u64, job_id: i64) {
        let Some(job) = read_job(db, job_id).await else { return };
        tracing::info!(job = job.id, kind = job.kind.as_str(), worker = %self.runner.label(), "job started");
        self.announce(job.project_id, job.id);
        let progress = self.progress(db, &job, Some(self.runner.label()));
        let outcome = match job.kind {
            JobKind::Score => score::run(self, db, store, max_pixels, &job, &progress).await,
            JobKind::Teacher => teacher::run(self, db, store, max_pixels, &job, &progress, teacher::Role::Holder).await,
            JobKind::Evaluate => evaluate::run(self, db, store, max_pixels, &job, &progress).await,
            #[cfg(feature = "student")]
            JobKind::Train => train::run(self, db, store, max_pixels, &job, &progress).await,
            #[cfg(not(feature = "student"))]
            JobKind::Train => Err("this distillery was built without training (the `student` feature)".into()),
        };
        if progress.lost() {
            tracing::warn!(job = job.id, "another process took this job over; its ending is theirs");
            return;
        }
        let (state, message) = match outcome {
            Ok(Finished::Done(message)) => (JobState::Succeeded, message),
            Ok(Finished::Cancelled) => (JobState::Cancelled, "Cancelled.".to_owned()),
            Err(reason) => (JobState::Failed, reason),
        };
        tracing::info!(job = job.id, state = state.as_str(), %message, "job finished");
        let finished = sqlx::query(
            "UPDATE jobs SET state = $1, message = $2, finished_at = $3, lease_until = NULL \
             WHERE id = $4 AND state = 'running' AND worker = $5",
        )
        .bind(state.as_str())
        .bind(&message)
        .bind(crate::db::now())
        .bind(job.id)
        .bind(self.runner.label())
        .execute(db)
        .await;
        if let Err(error) = finished {
            tracing::error!(%error, job = job.id, "cannot record the end of a job");
        }
        self.announce(job.project_id, job.id);
    }

    /// Labels a share of a teacher job another process holds; the holder records its end.
    async fn help(&self, db: &AnyPool, store: &Store, max_pixels: u64, job_id: i64) {
        let Some(job) = read_job(db, job_id).await else { return };
        if job.kind != JobKind::Teacher {
            return;
        }
        tracing::info!(job = job.id, worker = %self.runner.label(), "helping with a teacher job");
        let progress = self.progress(db, &job, None);
        let outcome = teacher::run(self, db, store, max_pixels, &job, &progress, teacher::Role::Helper).await;
        match outcome {
            Ok(Finished::Done(what)) => tracing::info!(job = job.id, "helped with a teacher job: {what}"),
            Ok(Finished::Cancelled) => tracing::info!(job = job.id, "stopped helping: the job was cancelled"),
            Err(reason) => tracing::warn!(job = job.id, %reason, "stopped helping with a teacher job"),
        }
    }

    fn progress(&self, db: &AnyPool, job: &Job, holder: Option<String>) -> Progress {
        Progress {
            db: db.clone(),
            project_id: job.project_id,
            job_id: job.id,
            jobs: self.clone(),
            holder,
            lost: AtomicBool::new(false),
        }
    }
}

/// The job a runner is about to work on; `None` (logged) when its row cannot be read.
async fn read_job(db: &AnyPool, job_id: i64) -> Option<Job> {
    let job = match db.acquire().await {
        Ok(mut conn) => load_job(&mut conn, job_id).await,
        Err(error) => Err(error.into()),
    };
    job.inspect_err(|error| tracing::error!(%error, job = job_id, "cannot read a job to work on"))
        .ok()
}

/// What a runner does next.
enum Work {
    /// Run a job it has claimed.
    Run(i64),
    /// Take a share of another process's teacher job.
    Help(i64),
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
            tracing::info!(device = %device.name, precision = ?device.precision, "detectors run on the GPU executor");
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

/// A running job's line to its row: progress, the cancel flag, and whether this process still
/// holds the job.
struct Progress {
    db: AnyPool,
    project_id: i64,
    job_id: i64,
    jobs: Jobs,
    /// The runner holding the job, when this process does (`None` when it helps).
    holder: Option<String>,
    lost: AtomicBool,
}

impl Progress {
    async fn report(&self, done: u64, total: u64, message: &str) -> Result<(), String> {
        sqlx::query("UPDATE jobs SET done = $1, total = $2, message = $3 WHERE id = $4 AND state = 'running'")
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

    /// Counts work done in the transaction that stored it, and commits both: a restart then finds
    /// every stored result counted and nothing counted that was not stored. Only the job's holder
    /// counts this way (a helper holds no job, so it reads as one that lost it). `false` when the
    /// job is no longer this process's (it handed the job back while stopping, or its lease went
    /// to another): the transaction is rolled back, nothing is stored, and the work should end.
    async fn commit(&self, mut tx: WriteTransaction, done: u64, total: u64, message: &str) -> Result<bool, String> {
        let updated = sqlx::query(
            "UPDATE jobs SET done = $1, total = $2, message = $3 WHERE id = $4 AND state = 'running' AND worker = $5",
        )
        .bind(done as i64)
        .bind(total as i64)
        .bind(message)
        .bind(self.job_id)
        .bind(self.holder.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("cannot record progress: {e}"))?;
        if updated.rows_affected() == 0 {
            self.lost.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        tx.commit().await.map_err(|e| format!("cannot record progress: {e}"))?;
        self.jobs.announce(self.project_id, self.job_id);
        Ok(true)
    }

    /// Whether the work should stop: someone cancelled the job, or it is no longer this
    /// process's to do (see [`Progress::lost`]).
    async fn cancel_requested(&self) -> bool {
        match queue::standing(&self.db, self.job_id, self.holder.as_deref()).await {
            Standing::Go => false,
            Standing::Cancel => true,
            Standing::Lost => {
                self.lost.store(true, Ordering::Relaxed);
                true
            }
        }
    }

    /// Whether the job went to another process while this one worked (its lease expired), or
    /// was deleted: then this process records nothing more about it.
    fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
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
    // Nothing but a GPU runner takes a job that asks for one; until one is there, it waits.
    let (device, message) = if new_job.gpu {
        ("gpu", Some("Waiting for a worker with a GPU."))
    } else {
        ("any", None)
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (project_id, kind, model_id, params, device, message) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING id",
    )
    .bind(project_id)
    .bind(new_job.kind.as_str())
    .bind(model_id)
    .bind(params)
    .bind(device)
    .bind(message)
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
        "UPDATE jobs SET state = 'queued', cancel_requested = 0, finished_at = NULL, attempts = 0, worker = NULL, \
         message = 'Resumed.' WHERE id = $1",
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

const SELECT_JOB: &str = "SELECT id, project_id, kind, state, model_id, done, total, message, created_at, \
     finished_at, worker, device FROM jobs";

pub(crate) async fn load_job(conn: &mut AnyConnection, job_id: i64) -> Result<Job, ApiError> {
    let row: Option<JobRow> = sqlx::query_as(crate::db::constant_sql(format!("{SELECT_JOB} WHERE id = $1")))
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.ok_or_else(|| ApiError::not_found(format_args!("job {job_id}")))?
        .into_job()
}

/// The project's oldest queued or running job of `kind`. One statement, so that under
/// read-committed isolation (PostgreSQL) a job that ends meanwhile is either not found or found
/// unfinished — never picked as unfinished and then read back as done.
pub(crate) async fn unfinished_job(
    conn: &mut AnyConnection,
    project_id: i64,
    kind: &str,
) -> Result<Option<Job>, ApiError> {
    let row: Option<JobRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "{SELECT_JOB} WHERE project_id = $1 AND kind = $2 AND state IN ('queued', 'running') ORDER BY id LIMIT 1"
    )))
    .bind(project_id)
    .bind(kind)
    .fetch_optional(&mut *conn)
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
    worker: Option<String>,
    device: String,
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
            worker: self.worker,
            gpu: self.device == "gpu",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InferenceConfig;

    fn cpu_jobs() -> anyhow::Result<Jobs> {
        let config = InferenceConfig {
            inference_threads: Some(1),
            onnxruntime: None,
            device: "cpu".into(),
            train_device: "cpu".into(),
        };
        Jobs::new(&config, ProjectEvents::default(), "server".into(), false)
    }

    async fn queue_score_job(db: &AnyPool) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("INSERT INTO jobs (project_id, kind) VALUES (1, 'score') RETURNING id")
                .fetch_one(db)
                .await?,
        )
    }

    async fn project_name(db: &AnyPool) -> anyhow::Result<String> {
        Ok(sqlx::query_scalar("SELECT name FROM projects WHERE id = 1")
            .fetch_one(db)
            .await?)
    }

    /// A job handed back by a stopping server must not store the image it was still working on:
    /// stored but not counted, the resumed job would finish one image short. Rolled back, the
    /// image is scored again by the next process, and counted there.
    #[tokio::test]
    async fn work_finished_after_the_job_was_handed_back_is_neither_stored_nor_counted() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let jobs = cpu_jobs()?;
        let job_id = queue_score_job(&db).await?;
        assert_eq!(queue::claim(&db, &jobs.runner, None).await?, Some(job_id));
        let job = load_job(&mut *db.acquire().await?, job_id).await?;
        let progress = jobs.progress(&db, &job, Some(jobs.runner.label()));
        // Renaming the project stands for the work: any write in the step's transaction.
        let rename = |name: &'static str| {
            let db = db.clone();
            async move {
                let mut tx = crate::db::write_transaction(&db).await?;
                sqlx::query("UPDATE projects SET name = $1 WHERE id = 1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                anyhow::Ok(tx)
            }
        };

        assert!(
            progress
                .commit(rename("first").await?, 1, 2, "one")
                .await
                .map_err(anyhow::Error::msg)?
        );
        assert_eq!(project_name(&db).await?, "first");
        queue::release(&db, &jobs.runner).await?;
        let held = progress
            .commit(rename("second").await?, 2, 2, "two")
            .await
            .map_err(anyhow::Error::msg)?;

        assert!(!held && progress.lost());
        assert_eq!(project_name(&db).await?, "first", "the step was rolled back");
        let after = load_job(&mut *db.acquire().await?, job_id).await?;
        assert_eq!((after.state, after.done, after.total), (JobState::Queued, 1, 2));
        Ok(())
    }

    /// A stopping process hands its jobs back; its runner, still looping until the process
    /// exits, must not take one of them again.
    #[tokio::test]
    async fn a_stopping_process_takes_no_more_jobs() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let jobs = cpu_jobs()?;
        queue::register(&db, &jobs.runner).await?;
        let job_id = queue_score_job(&db).await?;
        assert!(matches!(jobs.next_work(&db).await?, Some(Work::Run(id)) if id == job_id));

        jobs.stop(&db).await;

        assert!(jobs.next_work(&db).await?.is_none());
        let after = load_job(&mut *db.acquire().await?, job_id).await?;
        assert_eq!((after.state, after.worker), (JobState::Queued, None));
        Ok(())
    }
}
