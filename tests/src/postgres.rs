//! A real PostgreSQL server for the tests (Debian's `postgresql` package): started on first use
//! in its own temporary data directory, listening on loopback only, and stopped when the test
//! process ends — however it ends. Each studio gets its own database on it.
//!
//! Which engine a test run's studios use is chosen by `DISTILLERY_TEST_DATABASE` (`sqlite`, the
//! default, or `postgres`): `cargo xtask test` runs the e2e suite once with each.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::Digest;
use sqlx::Connection;

/// The database engine this test run's studios keep their metadata in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The engine `DISTILLERY_TEST_DATABASE` names (SQLite when unset).
pub fn engine() -> Engine {
    match std::env::var("DISTILLERY_TEST_DATABASE").as_deref() {
        Ok("postgres") => Engine::Postgres,
        _ => Engine::Sqlite,
    }
}

/// The environment a `distillery` process on `data_dir` needs for this run's engine: nothing for
/// SQLite (the database file lives in the data folder), `DISTILLERY_DATABASE_URL` naming the
/// folder's own PostgreSQL database otherwise — the same one each time for one folder, so a
/// restarted studio finds its data.
pub async fn database_env(data_dir: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    match engine() {
        Engine::Sqlite => Ok(Vec::new()),
        Engine::Postgres => {
            let name = format!(
                "studio_{}",
                hex_prefix(&sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes()))
            );
            let server = Postgres::started().await?;
            let url = server.database(&name).await?;
            Ok(vec![("DISTILLERY_DATABASE_URL", url)])
        }
    }
}

/// [`database_env`] for a test without an async runtime of its own.
pub fn database_env_blocking(data_dir: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(database_env(data_dir))
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The test process's PostgreSQL server.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    /// Holds the folder's server log, read when the server does not come up.
    log: PathBuf,
    /// The shell that stops the server when its standard input closes (see [`Postgres::start`]);
    /// kept, with that pipe open, for as long as the process lives.
    _guard: Child,
}

impl Postgres {
    /// The server, started on first use (initdb and start take a few seconds, once per process).
    pub fn shared() -> anyhow::Result<&'static Postgres> {
        static SERVER: OnceLock<Result<Postgres, String>> = OnceLock::new();
        SERVER
            .get_or_init(|| Postgres::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("cannot start PostgreSQL for the tests: {e}"))
    }

    /// [`Postgres::shared`] from async code (starting it blocks for those few seconds).
    pub async fn started() -> anyhow::Result<&'static Postgres> {
        tokio::task::spawn_blocking(Postgres::shared).await?
    }

    /// The URL of a database on this server, created if it does not exist yet.
    pub async fn database(&self, name: &str) -> anyhow::Result<String> {
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut admin)
            .await?;
        if exists.is_none() {
            // The name is this harness's own (letters, digits and `_`), never a test's input.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut admin)
                .await
                .with_context(|| format!("cannot create the database {name}"))?;
        }
        admin.close().await?;
        Ok(self.url(name))
    }

    /// `postgres://` URL of `database` (trust authentication on loopback: a test server).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    fn start() -> anyhow::Result<Postgres> {
        let bin = server_binaries()?;
        // Removed by the shell that stops the server (a static is never dropped).
        let dir = tempfile::Builder::new().prefix("distillery-pg").tempdir()?.keep();
        // PostgreSQL refuses to run as root; a root test run hands the folder to the `postgres`
        // account the Debian package creates and runs the server as it.
        let as_user = running_as_root().then_some("postgres");
        if let Some(user) = as_user {
            let uid = command_output(Command::new("id").args(["-u", user]))?;
            let gid = command_output(Command::new("id").args(["-g", user]))?;
            std::os::unix::fs::chown(&dir, Some(uid.trim().parse()?), Some(gid.trim().parse()?))?;
        }
        let data = dir.join("data");
        let initdb = run_as(as_user, &bin.join("initdb"))
            .args([
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--username",
                USER,
                "-D",
            ])
            .arg(&data)
            .output()
            .context("cannot run initdb")?;
        if !initdb.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        }
        let port = free_port()?;
        // The server runs under a shell that waits on its standard input, a pipe this process
        // holds until it exits: then `read` returns and the shell stops the server (fast
        // shutdown) and removes its folder, so no server outlives a test run, even one that is
        // killed. A test server needs no durability: fsync and full-page writes are off.
        let script = format!(
            "\"$0\" -D \"$1/data\" -p {port} -k \"$1\" -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
             > \"$1/server.log\" 2>&1 & pid=$!; read _; kill -INT $pid; wait $pid; rm -rf \"$1\""
        );
        let guard = run_as(as_user, Path::new("sh"))
            .arg("-c")
            .arg(script)
            .arg(bin.join("postgres"))
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start postgres")?;
        let server = Postgres {
            port,
            log: dir.join("server.log"),
            bin,
            _guard: guard,
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    fn wait_until_ready(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()?;
            if ready.success() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("PostgreSQL did not accept connections within 30 s; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The role the tests connect as (initdb makes it the superuser).
const USER: &str = "distillery";

/// The folder of the newest installed PostgreSQL's server programs (Debian keeps them in
/// `/usr/lib/postgresql/<major>/bin`, off the PATH).
fn server_binaries() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .with_context(|| format!("{} is missing: install Debian's postgresql package", root.display()))?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .with_context(|| format!("no PostgreSQL version in {}", root.display()))?;
    Ok(root.join(newest.to_string()).join("bin"))
}

fn running_as_root() -> bool {
    command_output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

fn run_as(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn command_output(command: &mut Command) -> anyhow::Result<String> {
    let output = command.output()?;
    anyhow::ensure!(output.status.success(), "{command:?} failed");
    Ok(String::from_utf8(output.stdout)?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
