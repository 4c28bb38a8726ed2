//! Server configuration: flags, each with a `DISTILLERY_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Where a studio keeps its data. Shared by `serve` and every subcommand that touches the data,
/// so they can all point at the same studio (also while the server runs: SQLite is in WAL mode).
#[derive(Debug, Clone, Args)]
pub struct DataConfig {
    /// Folder for the database and stored files (images, models); created when missing.
    #[arg(long, env = "DISTILLERY_DATA_DIR", default_value = "distillery-data")]
    pub data_dir: PathBuf,
    /// Database URL; defaults to the SQLite file `distillery.db` in the data folder.
    #[arg(long, env = "DISTILLERY_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl DataConfig {
    /// The database URL in force: the explicit one, or SQLite inside the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("distillery.db").display()),
        }
    }
}

/// `distillery serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on; port 0 picks a free port (the URL printed at start says which).
    #[arg(long, env = "DISTILLERY_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Folder holding the built web app (Trunk's `dist/`).
    #[arg(long, env = "DISTILLERY_WEB_DIR", default_value = "dist")]
    pub web_dir: PathBuf,
    #[command(flatten)]
    pub data: DataConfig,
}
