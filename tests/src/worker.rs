//! A running `distillery worker` process: the fleet's job runner, with no HTTP of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

/// A worker under test. Killed when dropped.
pub struct Worker {
    /// How the jobs it runs name it: "NAME (cpu)".
    pub label: String,
    child: Child,
    log_path: PathBuf,
}

impl Worker {
    /// Starts `distillery worker --name NAME` with its own data folder inside `dir`, extra
    /// flags and environment (the fleet's database URL and bucket), and waits until it takes
    /// jobs.
    pub async fn start(dir: &Path, name: &str, flags: &[&str], env: &[(&str, String)]) -> anyhow::Result<Worker> {
        let bin = crate::studio::binary_path();
        let data_dir = dir.join(name);
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).context("cannot create the worker log")?;
        let mut child = Command::new(&bin)
            .arg("worker")
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(flags)
            .env("DISTILLERY_LOG", "info")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let what = format!("the worker (log: {})", log_path.display());
        let printed = crate::studio::announced(&mut child, "Distillery worker ", &what).await?;
        let label = printed.trim_end_matches(" is taking jobs").to_owned();
        Ok(Worker { label, child, log_path })
    }

    /// Kills the worker at once (SIGKILL: nothing handed back — a machine lost, as far as the
    /// fleet can tell) and waits for it to be gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("cannot kill the worker")?;
        self.child.wait().await?;
        Ok(())
    }

    /// What the worker logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}
