//! A running `distillery serve` process.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::accounts::SignedIn;

/// The server under test, with its admin signed in. Killed when dropped; [`Studio::stop`] shuts
/// it down gracefully.
pub struct Studio {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The admin's browser session (what [`crate::Browser::sign_in`] gives a browser).
    pub admin: SignedIn,
    http: reqwest::Client,
    child: Child,
    data_dir: PathBuf,
    log_path: PathBuf,
    _temp: Option<TempDir>,
}

impl Studio {
    /// Starts a studio with a fresh, empty data folder.
    pub async fn start() -> anyhow::Result<Studio> {
        Self::start_with(&[]).await
    }

    /// Starts a studio with a fresh data folder and extra `serve` flags.
    pub async fn start_with(flags: &[&str]) -> anyhow::Result<Studio> {
        let temp = tempfile::tempdir().context("cannot create a temp folder")?;
        let data_dir = temp.path().join("data");
        let mut studio = Self::launch(&data_dir, flags).await?;
        studio._temp = Some(temp);
        Ok(studio)
    }

    /// Starts a studio with a fresh data folder, extra `serve` flags and environment variables
    /// (an object store's endpoint and credentials).
    pub async fn start_with_env(flags: &[&str], env: &[(&str, String)]) -> anyhow::Result<Studio> {
        let temp = tempfile::tempdir().context("cannot create a temp folder")?;
        let data_dir = temp.path().join("data");
        let mut studio = Self::launch_limited(&data_dir, flags, env, None).await?;
        studio._temp = Some(temp);
        Ok(studio)
    }

    /// Starts a studio on an existing data folder (to prove what survives a restart).
    pub async fn start_in(data_dir: &Path) -> anyhow::Result<Studio> {
        Self::launch(data_dir, &[]).await
    }

    /// Starts a studio on an existing data folder with extra `serve` flags and environment
    /// variables (a benchmark's object store, restarted on the same bucket).
    pub async fn start_in_with_env(data_dir: &Path, flags: &[&str], env: &[(&str, String)]) -> anyhow::Result<Studio> {
        Self::launch_limited(data_dir, flags, env, None).await
    }

    /// Starts a studio with a fresh data folder whose process may open at most `limit` files
    /// (`ulimit -n`; 1024 is Linux's usual default, whatever this machine allows).
    pub async fn start_with_open_files_limit(limit: u32, flags: &[&str]) -> anyhow::Result<Studio> {
        let temp = tempfile::tempdir().context("cannot create a temp folder")?;
        let data_dir = temp.path().join("data");
        let mut studio = Self::launch_limited(&data_dir, flags, &[], Some(limit)).await?;
        studio._temp = Some(temp);
        Ok(studio)
    }

    /// Starts a studio on an existing data folder at a fixed address (a restart the open
    /// browser tabs can reconnect to).
    pub async fn start_at(data_dir: &Path, addr: &str) -> anyhow::Result<Studio> {
        Self::launch(data_dir, &["--addr", addr]).await
    }

    async fn launch(data_dir: &Path, flags: &[&str]) -> anyhow::Result<Studio> {
        Self::launch_limited(data_dir, flags, &[], None).await
    }

    async fn launch_limited(
        data_dir: &Path,
        flags: &[&str],
        env: &[(&str, String)],
        open_files: Option<u32>,
    ) -> anyhow::Result<Studio> {
        let bin = binary_path();
        if !bin.is_file() {
            bail!("{} is not built: run the tests with `cargo xtask test`", bin.display());
        }
        let log_path = data_dir.with_extension(format!("{}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).context("cannot create the server log")?;
        // The shell lowers its limit and then becomes the server (same pid, so `peak_rss_kib`
        // and `stop` still reach it).
        let mut command = match open_files {
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&bin);
                shell
            }
            None => Command::new(&bin),
        };
        let mut child = command
            .arg("serve")
            .args(if flags.contains(&"--addr") {
                &[][..]
            } else {
                &["--addr", "127.0.0.1:0"][..]
            })
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--web-dir")
            .arg(web_dir())
            .args(flags)
            .env("DISTILLERY_LOG", "info")
            .envs(crate::postgres::database_env(data_dir).await?)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let printed = announced(&mut child, "Distillery is running at ", "the server").await?;
        let url = printed.split_whitespace().next().unwrap_or_default();
        let url = url.trim_end_matches('/').to_owned();
        // Every route but health and login needs an account: the first start creates the admin,
        // a restart on the same data signs in again.
        let admin = crate::accounts::sign_in_admin(&url).await?;
        let token = admin.create_token(&url, "tests").await?;
        let http = crate::accounts::bearer_client(&token.token)?;
        Ok(Studio {
            url,
            admin,
            http,
            child,
            data_dir: data_dir.to_owned(),
            log_path,
            _temp: None,
        })
    }

    /// A client signed in as the admin (an API token), for every API call a test makes.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET` an API path as the admin.
    pub async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.http.get(self.api(path)).send().await
    }

    /// Creates an account (as the admin) and signs it in.
    pub async fn add_user(&self, username: &str, password: &str) -> anyhow::Result<SignedIn> {
        let response = self
            .http
            .post(self.api("/api/users"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "add user {username}: {}",
            response.text().await?
        );
        crate::accounts::sign_in(&self.url, username, password).await
    }

    /// Makes `username` a member of the project with `role` (as the admin).
    pub async fn add_member(&self, project_id: i64, username: &str, role: api::Role) -> anyhow::Result<()> {
        let response = self
            .http
            .post(self.api(&format!("/api/projects/{project_id}/members")))
            .json(&serde_json::json!({"username": username, "role": role}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "add member {username}: {}",
            response.text().await?
        );
        Ok(())
    }

    /// Absolute URL of an API path such as `/api/projects`.
    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `POST /api/projects/{pid}/jobs` with `body`: the status and the JSON answer.
    pub async fn post_job(
        &self,
        project_id: i64,
        body: serde_json::Value,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let response = self
            .http
            .post(self.api(&format!("/api/projects/{project_id}/jobs")))
            .json(&body)
            .send()
            .await?;
        Ok((response.status(), response.json().await?))
    }

    /// Polls a job until it reaches a final state; fails with the server's log after `limit`.
    pub async fn until_job_final(&self, job_id: i64, limit: Duration) -> anyhow::Result<api::Job> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            let job: api::Job = self.get(&format!("/api/jobs/{job_id}")).await?.json().await?;
            if job.state.is_final() {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("job {job_id} did not finish in {limit:?}:\n{}", self.log())
    }

    /// Creates a project through the API and returns it.
    pub async fn create_project(&self, name: &str, classes: &[&str]) -> anyhow::Result<api::Project> {
        let classes: Vec<serde_json::Value> = classes.iter().map(|c| serde_json::json!({"name": c})).collect();
        let response = self
            .http
            .post(self.api("/api/projects"))
            .json(&serde_json::json!({"name": name, "classes": classes}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "create project: {}",
            response.text().await?
        );
        Ok(response.json().await?)
    }

    /// Uploads files (name, bytes) in one multipart request; returns the status and JSON body.
    pub async fn upload(
        &self,
        project_id: i64,
        files: &[(&str, Vec<u8>)],
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        let response = self
            .http
            .post(self.api(&format!("/api/projects/{project_id}/images")))
            .multipart(form)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// Registers one of the reference models (`../shared/models/NAME`) as a `role` ("teacher" or
    /// "student") of the project.
    pub async fn register_reference_model(
        &self,
        project_id: i64,
        role: &str,
        name: &str,
    ) -> anyhow::Result<api::RegisteredModel> {
        let form = reqwest::multipart::Form::new().text("role", role.to_owned()).part(
            "file",
            reqwest::multipart::Part::bytes(crate::reference_model_file(name)?).file_name(name.to_owned()),
        );
        let response = self
            .http
            .post(self.api(&format!("/api/projects/{project_id}/models")))
            .multipart(form)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "register {name}: {}", response.text().await?);
        Ok(response.json().await?)
    }

    /// The data folder this studio uses.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What the server has logged so far (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `outcome`, with what the server logged joined to an error.
    pub fn with_log<T>(&self, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        outcome.map_err(|error| error.context(format!("server log:\n{}", self.log())))
    }

    /// The server process's peak resident memory so far (Linux `VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the server at once (SIGKILL: no shutdown, no flushing — a power cut, as far as the
    /// process can tell) and waits for it to be gone.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill().context("cannot kill the server")?;
        self.child.wait().await?;
        Ok(())
    }

    /// Sends SIGTERM and waits for the server to finish on its own.
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        let pid = self.child.id().context("the server already exited")?;
        let signal = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        anyhow::ensure!(signal.success(), "kill -TERM {pid} failed");
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .context("the server did not stop within 15 s of SIGTERM")??;
        Ok(status)
    }
}

/// What a `distillery` process started by the harness prints after `prefix` on the stdout line
/// saying it is ready (30 s at most); its stdout is drained from then on, so the process never
/// blocks on a full pipe.
pub(crate) async fn announced(child: &mut Child, prefix: &str, what: &str) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_owned());
            }
        }
        bail!("{what} exited before it was ready")
    })
    .await
    .with_context(|| format!("{what} was not ready within 30 s"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(rest)
}

/// The `distillery` binary under test.
pub fn binary_path() -> PathBuf {
    if let Some(path) = std::env::var_os("DISTILLERY_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    target.join("debug").join("distillery")
}

fn web_dir() -> PathBuf {
    std::env::var_os("DISTILLERY_WEB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("dist"))
}
