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
    /// Where images, thumbnails and models are kept: the data folder when left out, or an
    /// S3-compatible bucket, `s3://bucket/prefix` (endpoint, region and credentials from the
    /// usual AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY variables;
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint).
    #[arg(long, env = "DISTILLERY_STORE")]
    pub store: Option<String>,
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
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub inference: InferenceConfig,
}

/// How the server runs its heavy work: detectors (teacher, evaluation and scoring jobs) and
/// trainings.
#[derive(Debug, Clone, Args)]
pub struct InferenceConfig {
    /// Images a job runs at once, one thread each (default: every core); with onnxruntime, the
    /// threads inside each operator.
    #[arg(long = "inference-threads", env = "DISTILLERY_INFERENCE_THREADS")]
    pub inference_threads: Option<usize>,
    /// Run detectors on onnxruntime loaded from this library (`libonnxruntime.so`, e.g. from the
    /// `onnxruntime` or `onnxruntime-gpu` wheel) instead of tract.
    #[arg(long = "onnxruntime", env = "DISTILLERY_ONNXRUNTIME")]
    pub onnxruntime: Option<PathBuf>,
    /// `cpu`, or `gpu` (onnxruntime's CUDA provider; needs `--onnxruntime` with a GPU build).
    #[arg(long = "device", env = "DISTILLERY_DEVICE", default_value = "cpu", value_parser = ["cpu", "gpu"])]
    pub device: String,
    /// Where training jobs run: `cpu` (burn's pure-Rust backend), or `gpu` (a CUDA GPU through
    /// libtorch; needs a distillery built with the `libtorch` feature).
    #[arg(long = "train-device", env = "DISTILLERY_TRAIN_DEVICE", default_value = "cpu", value_parser = ["cpu", "gpu"])]
    pub train_device: String,
}

/// Limits on what clients may send; exceeding one is a 4xx, never an outage.
#[derive(Debug, Clone, Copy, Args)]
pub struct Limits {
    /// Largest image file accepted, in MiB.
    #[arg(long = "max-upload-mb", env = "DISTILLERY_MAX_UPLOAD_MB", default_value_t = 256)]
    pub max_upload_mb: u64,
    /// Most pixels an image may decode to, in megapixels (decompression-bomb guard).
    #[arg(long = "max-megapixels", env = "DISTILLERY_MAX_MEGAPIXELS", default_value_t = 150)]
    pub max_megapixels: u64,
    /// Largest dataset archive accepted by import, in MiB.
    #[arg(long = "max-import-mb", env = "DISTILLERY_MAX_IMPORT_MB", default_value_t = 8192)]
    pub max_import_mb: u64,
    /// Most files one imported dataset may contain.
    #[arg(
        long = "max-import-entries",
        env = "DISTILLERY_MAX_IMPORT_ENTRIES",
        default_value_t = 100_000
    )]
    pub max_import_entries: usize,
}

impl Limits {
    /// Largest upload, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_mb * 1024 * 1024
    }

    /// Most decoded pixels.
    pub fn max_pixels(&self) -> u64 {
        self.max_megapixels * 1_000_000
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_mb: 256,
            max_megapixels: 150,
            max_import_mb: 8192,
            max_import_entries: 100_000,
        }
    }
}
