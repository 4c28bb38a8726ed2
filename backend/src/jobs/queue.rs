//! The job queue that every process running jobs shares through the database: servers, the CLI
//! and `distillery worker`s.
//!
//! A process takes a queued job by writing its name and a lease on the row (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so two workers never wait on, or take, the same row; SQLite's single
//! writer gives the same). While it works, a heartbeat renews the lease; a job whose lease has
//! expired was left by a process that died, and any process queues it again — up to
//! [`MAX_ATTEMPTS`] starts, then it fails with the reason. Jobs continue what they had done, so
//! a retried job does not start over.

use std::time::Duration;

use sqlx::AnyPool;

use crate::db::{Engine, Flag};
use crate::error::ApiError;

/// Starts of a job before a lost lease fails it instead of queuing it again.
pub const MAX_ATTEMPTS: i64 = 3;

/// How long a lease holds without a heartbeat, unless `DISTILLERY_JOB_LEASE_SECONDS` says
/// otherwise (the fleet tests shorten it).
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A process that runs jobs, as the queue knows it.
#[derive(Debug, Clone)]
pub struct Runner {
    /// Unique among the processes sharing the database; shown on the jobs it runs.
    pub name: String,
    /// Where it runs detectors and trainings: a GPU runner takes the jobs that ask for one —
    /// a training that asks for a GPU only when it trains on one.
    pub gpu: Gpu,
    /// A `distillery worker`: while one is alive, servers leave the jobs to the workers.
    pub dedicated: bool,
    /// How long its leases hold; it renews them three times as often.
    pub lease: Duration,
}

impl Runner {
    /// A runner named `name`, its lease from the environment.
    pub fn new(name: String, gpu: Gpu, dedicated: bool) -> Self {
        let lease = std::env::var("DISTILLERY_JOB_LEASE_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(DEFAULT_LEASE, Duration::from_secs_f64);
        Self {
            name,
            gpu,
            dedicated,
            lease,
        }
    }

    /// The default name of a server or worker: the machine and the data folder it works in,
    /// which is unique on a machine and stays the same across restarts (so a restarted process
    /// takes back its own jobs at once instead of waiting for their leases).
    pub fn default_name(data_dir: &std::path::Path) -> String {
        let folder = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
        format!("{}:{}", host(), folder.display())
    }

    /// The name of a command-line run (`distillery teacher`, `distill`): one per process.
    pub fn command_line_name() -> String {
        format!("{} command line, pid {}", host(), std::process::id())
    }

    fn device(&self) -> &'static str {
        match (self.gpu.inference, self.gpu.training) {
            (true, true) => "gpu",
            (true, false) => "gpu, cpu training",
            (false, true) => "cpu, gpu training",
            (false, false) => "cpu",
        }
    }

    /// The GPU jobs it may take, as a condition on `jobs` (aliased `table`).
    fn gpu_jobs_condition(&self, table: &str) -> String {
        match (self.gpu.inference, self.gpu.training) {
            (true, true) => String::new(),
            (true, false) => format!("AND ({table}.device <> 'gpu' OR {table}.kind <> 'train')"),
            (false, true) => format!("AND ({table}.device <> 'gpu' OR {table}.kind = 'train')"),
            (false, false) => format!("AND {table}.device <> 'gpu'"),
        }
    }

    /// How the jobs it runs name it: "name (gpu)".
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.device())
    }
}

/// Whether a runner has a GPU for each kind of work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gpu {
    /// Detectors (teacher, scoring, evaluation jobs): `--device gpu`.
    pub inference: bool,
    /// Trainings: `--train-device gpu`.
    pub training: bool,
}

/// This machine's name.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Records the runner as alive, and queues again the jobs an earlier run of the same process
/// left running (their leases may not have expired yet). Returns those jobs.
pub async fn register(db: &AnyPool, runner: &Runner) -> Result<Vec<(i64, i64)>, ApiError> {
    sqlx::query(
        "INSERT INTO workers (name, device, dedicated, started_at, alive_until) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET device = excluded.device, dedicated = excluded.dedicated, \
         started_at = excluded.started_at, alive_until = excluded.alive_until",
    )
    .bind(&runner.name)
    .bind(runner.device())
    .bind(i64::from(runner.dedicated))
    .bind(crate::db::now())
    .bind(crate::db::after(runner.lease))
    .execute(db)
    .await?;
    release(db, runner).await
}

/// Queues again the jobs the runner holds, and frees the images it holds: it stops (or an
/// earlier run of it stopped) without finishing them. Returns those jobs.
pub async fn release(db: &AnyPool, runner: &Runner) -> Result<Vec<(i64, i64)>, ApiError> {
    let mut tx = crate::db::write_transaction(db).await?;
    let left: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, project_id FROM jobs WHERE state = 'running' AND worker = $1")
            .bind(runner.label())
            .fetch_all(&mut *tx)
            .await?;
    // Handed back, not lost: this start does not count against the job's attempts.
    sqlx::query(
        "UPDATE jobs SET state = 'queued', worker = NULL, lease_until = NULL, \
         attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
         message = 'Queued again: the process running it stopped. It continues where it was.' \
         WHERE state = 'running' AND worker = $1",
    )
    .bind(runner.label())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE job_items SET worker = NULL, lease_until = NULL WHERE worker = $1 AND done = 0")
        .bind(runner.label())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(left)
}

/// Says the runner is gone (a clean shutdown), so servers take jobs again at once when the last
/// worker stops.
pub async fn unregister(db: &AnyPool, runner: &Runner) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM workers WHERE name = $1")
        .bind(&runner.name)
        .execute(db)
        .await?;
    Ok(())
}

/// Renews the runner's own lease and those of the jobs and images it holds.
pub async fn heartbeat(db: &AnyPool, runner: &Runner) -> Result<(), ApiError> {
    let until = crate::db::after(runner.lease);
    sqlx::query("UPDATE workers SET alive_until = $1 WHERE name = $2")
        .bind(&until)
        .bind(&runner.name)
        .execute(db)
        .await?;
    sqlx::query("UPDATE jobs SET lease_until = $1 WHERE worker = $2 AND state = 'running'")
        .bind(&until)
        .bind(runner.label())
        .execute(db)
        .await?;
    // Only images of running jobs: those of a job cancelled meanwhile are let go.
    sqlx::query(
        "UPDATE job_items SET lease_until = $1 WHERE worker = $2 AND done = 0 \
         AND job_id IN (SELECT id FROM jobs WHERE state = 'running')",
    )
    .bind(&until)
    .bind(runner.label())
    .execute(db)
    .await?;
    Ok(())
}

/// Whether a `distillery worker` is alive: then servers run no job themselves.
pub async fn workers_alive(db: &AnyPool) -> Result<bool, ApiError> {
    let alive: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workers WHERE dedicated = 1 AND alive_until > $1")
        .bind(crate::db::now())
        .fetch_one(db)
        .await?;
    Ok(alive > 0)
}

/// A running job whose holder stopped renewing its lease.
#[derive(Debug, sqlx::FromRow)]
pub struct Abandoned {
    pub id: i64,
    pub project_id: i64,
    pub worker: Option<String>,
    pub attempts: i64,
}

/// Queues again every running job whose lease has expired — or fails it, naming the process
/// that stopped, once it has started [`MAX_ATTEMPTS`] times. Returns the jobs it changed.
pub async fn reap(db: &AnyPool) -> Result<Vec<Abandoned>, ApiError> {
    const EXPIRED: &str = "SELECT id, project_id, worker, attempts FROM jobs \
                           WHERE state = 'running' AND (lease_until IS NULL OR lease_until < $1)";
    let now = crate::db::now();
    // Looked at without the writers' lock first: every idle runner asks every few seconds,
    // and nearly always nothing has expired.
    let expired: Vec<Abandoned> = sqlx::query_as(EXPIRED).bind(&now).fetch_all(db).await?;
    if expired.is_empty() {
        return Ok(expired);
    }
    let mut tx = crate::db::write_transaction(db).await?;
    let abandoned: Vec<Abandoned> = sqlx::query_as(EXPIRED).bind(&now).fetch_all(&mut *tx).await?;
    for job in &abandoned {
        let who = job.worker.as_deref().unwrap_or("the process running it");
        let (state, message, finished_at) = if job.attempts >= MAX_ATTEMPTS {
            let message = format!(
                "Failed: {who} stopped answering, and the job has started {} times. Resume it to try again.",
                job.attempts
            );
            ("failed", message, Some(now.clone()))
        } else {
            let message = format!(
                "Queued again: {who} stopped answering (start {} of at most {MAX_ATTEMPTS}).",
                job.attempts
            );
            ("queued", message, None)
        };
        sqlx::query(
            "UPDATE jobs SET state = $1, message = $2, finished_at = $3, worker = NULL, lease_until = NULL \
             WHERE id = $4",
        )
        .bind(state)
        .bind(message)
        .bind(finished_at)
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
    }
    // Processes gone for a day are forgotten.
    sqlx::query("DELETE FROM workers WHERE alive_until < $1")
        .bind(crate::db::ago(Duration::from_secs(24 * 3600)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(abandoned)
}

/// Takes the oldest queued job this runner may run (a GPU runner takes the jobs that ask for a
/// GPU first), or the job `only` names; `None` when there is none (or another process took it).
pub async fn claim(db: &AnyPool, runner: &Runner, only: Option<i64>) -> Result<Option<i64>, ApiError> {
    let skip_locked = match Engine::of(db) {
        Engine::Postgres => "FOR UPDATE SKIP LOCKED",
        Engine::Sqlite => "",
    };
    let device = runner.gpu_jobs_condition("q");
    let which = if only.is_some() { "AND q.id = $4" } else { "" };
    let sql = format!(
        "UPDATE jobs SET state = 'running', worker = $1, lease_until = $2, attempts = attempts + 1, \
         started_at = COALESCE(started_at, $3) \
         WHERE id = (SELECT q.id FROM jobs q WHERE q.state = 'queued' {device} {which} \
                     ORDER BY CASE WHEN q.device = 'gpu' THEN 0 ELSE 1 END, q.id LIMIT 1 {skip_locked}) \
         AND state = 'queued' RETURNING id"
    );
    let mut query = sqlx::query_scalar(crate::db::constant_sql(sql))
        .bind(runner.label())
        .bind(crate::db::after(runner.lease))
        .bind(crate::db::now());
    if let Some(id) = only {
        query = query.bind(id);
    }
    Ok(query.fetch_optional(db).await?)
}

/// A running job this runner can help with: a teacher job with images nobody holds.
pub async fn joinable(db: &AnyPool, runner: &Runner) -> Result<Option<i64>, ApiError> {
    let device = runner.gpu_jobs_condition("j");
    let sql = format!(
        "SELECT j.id FROM jobs j WHERE j.state = 'running' AND j.cancel_requested = 0 {device} \
         AND (j.worker IS NULL OR j.worker <> $1) AND EXISTS (SELECT 1 FROM job_items i \
         WHERE i.job_id = j.id AND i.done = 0 AND (i.lease_until IS NULL OR i.lease_until < $2)) \
         ORDER BY j.id LIMIT 1"
    );
    Ok(sqlx::query_scalar(crate::db::constant_sql(sql))
        .bind(runner.label())
        .bind(crate::db::now())
        .fetch_optional(db)
        .await?)
}

/// Whether the runner still holds the job (its lease was not taken over) and nobody asked it
/// to stop.
pub async fn standing(db: &AnyPool, job_id: i64, holder: Option<&str>) -> Standing {
    let row: Result<Option<(String, Option<String>, Flag)>, _> =
        sqlx::query_as("SELECT state, worker, cancel_requested FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(db)
            .await;
    match row {
        // A database hiccup is not a reason to stop; the next check decides.
        Err(_) => Standing::Go,
        Ok(None) => Standing::Lost,
        Ok(Some((state, worker, Flag(cancel)))) => {
            let held = match holder {
                Some(me) => state == "running" && worker.as_deref() == Some(me),
                None => state == "running",
            };
            if !held {
                Standing::Lost
            } else if cancel {
                Standing::Cancel
            } else {
                Standing::Go
            }
        }
    }
}

/// What a running job should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Go,
    /// Someone asked it to stop.
    Cancel,
    /// Its lease went to another process (or the job is gone): stop without writing anything.
    Lost,
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn queue_job(db: &AnyPool, device: &str) -> anyhow::Result<i64> {
        queue_kind(db, "score", device).await
    }

    async fn queue_kind(db: &AnyPool, kind: &str, device: &str) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("INSERT INTO jobs (project_id, kind, device) VALUES (1, $1, $2) RETURNING id")
                .bind(kind)
                .bind(device)
                .fetch_one(db)
                .await?,
        )
    }

    async fn state(db: &AnyPool, job: i64) -> anyhow::Result<(String, Option<String>, i64)> {
        Ok(
            sqlx::query_as("SELECT state, message, attempts FROM jobs WHERE id = $1")
                .bind(job)
                .fetch_one(db)
                .await?,
        )
    }

    fn runner(name: &str, gpu: bool, lease_ms: u64) -> Runner {
        Runner {
            name: name.into(),
            gpu: Gpu {
                inference: gpu,
                training: gpu,
            },
            dedicated: true,
            lease: Duration::from_millis(lease_ms),
        }
    }

    #[tokio::test]
    async fn gpu_jobs_wait_for_a_gpu_runner_which_takes_them_first() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let plain = queue_job(&db, "any").await?;
        let gpu = queue_job(&db, "gpu").await?;
        let cpu_runner = runner("cpu", false, 60_000);
        let gpu_runner = runner("gpu", true, 60_000);
        assert_eq!(claim(&db, &gpu_runner, None).await?, Some(gpu));
        assert_eq!(claim(&db, &cpu_runner, None).await?, Some(plain));
        assert_eq!(claim(&db, &cpu_runner, None).await?, None);
        let other_gpu = queue_job(&db, "gpu").await?;
        assert_eq!(claim(&db, &cpu_runner, Some(other_gpu)).await?, None);
        let (held_by,): (Option<String>,) = sqlx::query_as("SELECT worker FROM jobs WHERE id = $1")
            .bind(gpu)
            .fetch_one(&db)
            .await?;
        assert_eq!(held_by.as_deref(), Some("gpu (gpu)"));
        Ok(())
    }

    #[tokio::test]
    async fn a_training_that_asks_for_a_gpu_waits_for_a_runner_that_trains_on_one() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let training = queue_kind(&db, "train", "gpu").await?;
        let labeling = queue_kind(&db, "teacher", "gpu").await?;
        let detects_on_gpu = Runner {
            gpu: Gpu {
                inference: true,
                training: false,
            },
            ..runner("detects", false, 60_000)
        };
        let trains_on_gpu = Runner {
            gpu: Gpu {
                inference: false,
                training: true,
            },
            ..runner("trains", false, 60_000)
        };
        assert_eq!(claim(&db, &detects_on_gpu, None).await?, Some(labeling));
        assert_eq!(claim(&db, &detects_on_gpu, None).await?, None);
        assert_eq!(claim(&db, &trains_on_gpu, None).await?, Some(training));
        assert_eq!(trains_on_gpu.label(), "trains (cpu, gpu training)");
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_lease_queues_the_job_again_until_the_last_attempt_fails_it() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let job = queue_job(&db, "any").await?;
        let dying = runner("dying", false, 1);
        for attempt in 1..=MAX_ATTEMPTS {
            assert_eq!(claim(&db, &dying, None).await?, Some(job));
            // Nothing expires while the lease holds.
            let (running, _, attempts) = state(&db, job).await?;
            assert_eq!((running.as_str(), attempts), ("running", attempt));
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(reap(&db).await?.len(), 1);
            let (after, message, _) = state(&db, job).await?;
            let message = message.unwrap_or_default();
            assert!(message.contains("dying (cpu) stopped answering"), "{message}");
            if attempt < MAX_ATTEMPTS {
                assert_eq!(after, "queued", "{message}");
            } else {
                assert_eq!(after, "failed", "{message}");
                assert!(message.contains(&format!("started {MAX_ATTEMPTS} times")), "{message}");
            }
        }
        assert!(reap(&db).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_held_lease_is_not_reaped_and_a_handed_back_job_keeps_its_attempts() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let job = queue_job(&db, "any").await?;
        let alive = runner("alive", false, 60_000);
        register(&db, &alive).await?;
        assert_eq!(claim(&db, &alive, None).await?, Some(job));
        heartbeat(&db, &alive).await?;
        assert!(reap(&db).await?.is_empty());
        assert!(workers_alive(&db).await?);
        assert_eq!(release(&db, &alive).await?, vec![(job, 1)]);
        let (after, _, attempts) = state(&db, job).await?;
        assert_eq!((after.as_str(), attempts), ("queued", 0));
        unregister(&db, &alive).await?;
        assert!(!workers_alive(&db).await?);
        Ok(())
    }
}
