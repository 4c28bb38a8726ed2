//! `distillery worker`: a process that runs jobs and nothing else — no HTTP — taking them from
//! the queue the servers share (`jobs::queue`). Started beside servers that share its
//! PostgreSQL database and bucket; while one is alive, the servers run no job themselves.

use clap::Args;

use crate::config::{DataConfig, InferenceConfig, Limits};
use crate::events::ProjectEvents;
use crate::fanout::Fanout;
use crate::jobs::Jobs;
use crate::jobs::queue::Runner;

/// `distillery worker` settings.
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Its name on the jobs it runs, unique in the fleet (default: this machine and the data
    /// folder, e.g. `gpu-box:/var/lib/distillery`).
    #[arg(long, env = "DISTILLERY_WORKER_NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub data: DataConfig,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub inference: InferenceConfig,
}

/// Runs jobs until SIGINT/SIGTERM, then hands back the one it was running (queued again at once,
/// to continue where it was on another worker) and leaves the queue.
pub async fn work(config: WorkerConfig) -> anyhow::Result<()> {
    let (db, store) = crate::commands::open(&config.data).await?;
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| Runner::default_name(&config.data.data_dir));
    // Its job progress and published students reach the servers' open pages through the
    // database's notifications.
    let events = ProjectEvents::new(Fanout::for_database(&db));
    let jobs = Jobs::new(&config.inference, events, name, true)?;
    jobs.start(db.clone(), store, config.limits.max_pixels()).await?;
    println!("Distillery worker {} is taking jobs", jobs.runner.label());
    crate::server::shutdown_signal().await;
    jobs.stop(&db).await;
    jobs.events.fanout().flush().await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}
