//! Command-line entry: parses the subcommand and runs it on a Tokio runtime.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::accounts::commands::{TokenCreateArgs, UserAddArgs};
use crate::commands::{ExportArgs, ImportArgs, ModelAddArgs, TeacherArgs};
use crate::config::ServeConfig;
#[cfg(feature = "student")]
use crate::distill::DistillArgs;
use crate::worker::WorkerConfig;

/// Distillery: a labeling studio with in-browser pre-labels and model distillation.
#[derive(Debug, Parser)]
#[command(name = "distillery", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The `distillery` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the studio: web app, HTTP API and background jobs.
    Serve(ServeConfig),
    /// Run jobs (teacher labeling, training, scoring) for servers sharing its database and store.
    Worker(WorkerConfig),
    /// Import a dataset (YOLO or COCO, zip or folder, or plain images) into a project.
    Import(ImportArgs),
    /// Write a project's dataset as a YOLO or COCO zip.
    Export(ExportArgs),
    /// Manage a project's models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Auto-label a project's images with its teacher model (a teacher job, run here).
    Teacher(TeacherArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// A folder of images and a teacher in, a labeled YOLO zip and a trained student out.
    #[cfg(feature = "student")]
    Distill(DistillArgs),
}

/// `distillery model …`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Validate an ONNX detector and register it in a project.
    Add(ModelAddArgs),
}

/// `distillery user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (`--admin` for the first one on a headless install).
    Add(UserAddArgs),
}

/// `distillery token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for an account and print it (sent as `Authorization: Bearer …`).
    Create(TokenCreateArgs),
}

/// Runs the parsed command; errors are printed once, here, with their causes.
pub fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("DISTILLERY_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(config) => crate::server::serve(config).await,
            Command::Worker(config) => crate::worker::work(config).await,
            Command::Import(args) => crate::commands::import(args).await,
            Command::Export(args) => crate::commands::export(args).await,
            Command::Model(ModelCommand::Add(args)) => crate::commands::model_add(args).await,
            Command::Teacher(args) => crate::commands::teacher(args).await,
            Command::User(UserCommand::Add(args)) => crate::accounts::commands::user_add(args).await,
            Command::Token(TokenCommand::Create(args)) => crate::accounts::commands::token_create(args).await,
            #[cfg(feature = "student")]
            Command::Distill(args) => crate::distill::distill(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
