//! `distillery import` and `distillery export`: the same code paths as the HTTP routes, run
//! against a studio's data folder directly (safe while the server runs: SQLite is in WAL mode).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sqlx::AnyPool;

use crate::config::{DataConfig, Limits};
use crate::export::{self, Format, Include};
use crate::import::{self, DatasetSource, ImportLimits};
use crate::store::Store;
use crate::{db, projects};

/// `distillery import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// A zip archive or a folder: Ultralytics YOLO layout (data.yaml or classes.txt), COCO JSON
    /// with its images, or just images.
    pub path: PathBuf,
    /// Project to import into; created when it does not exist.
    #[arg(long)]
    pub project: String,
    #[command(flatten)]
    pub data: DataConfig,
    #[command(flatten)]
    pub limits: Limits,
}

/// `distillery export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Project to export.
    #[arg(long)]
    pub project: String,
    /// `yolo` (Ultralytics layout) or `coco`.
    #[arg(long, default_value = "yolo")]
    pub format: String,
    /// `approved`, `labeled`, or `auto` (also confident model boxes on unreviewed images).
    #[arg(long, default_value = "labeled")]
    pub include: String,
    /// Confidence threshold for `--include auto`.
    #[arg(long, default_value_t = 0.25)]
    pub min_conf: f32,
    /// Zip file to write.
    #[arg(long, short)]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataConfig,
}

/// `distillery model add`.
#[derive(Debug, Clone, Args)]
pub struct ModelAddArgs {
    /// The ONNX file.
    pub path: PathBuf,
    /// Project to register it in.
    #[arg(long)]
    pub project: String,
    /// `student` (runs in browsers) or `teacher` (auto-labels on the server).
    #[arg(long, default_value = "student")]
    pub role: String,
    #[command(flatten)]
    pub data: DataConfig,
}

/// `distillery teacher`.
#[derive(Debug, Clone, Args)]
pub struct TeacherArgs {
    /// Project whose images to label.
    #[arg(long)]
    pub project: String,
    /// The teacher's model id (default: the project's newest teacher).
    #[arg(long)]
    pub model_id: Option<i64>,
    /// `all` images, or only `unlabeled` ones.
    #[arg(long, default_value = "all")]
    pub images: String,
    /// Lowest confidence kept as a proposal.
    #[arg(long)]
    pub min_conf: Option<f32>,
    #[command(flatten)]
    pub inference: crate::config::InferenceConfig,
    #[command(flatten)]
    pub data: DataConfig,
    #[command(flatten)]
    pub limits: Limits,
}

/// Queues a teacher job and runs it here (or waits for the running server's runner to finish
/// it), then prints what it did.
pub async fn teacher(args: TeacherArgs) -> anyhow::Result<()> {
    let images = match args.images.as_str() {
        "all" => api::NamedSelection::All,
        "unlabeled" => api::NamedSelection::Unlabeled,
        other => anyhow::bail!("--images must be all or unlabeled, not {other:?}"),
    };
    let (pool, store) = open(&args.data).await?;
    let project_id = projects::find_by_name(&pool, &args.project)
        .await?
        .with_context(|| format!("there is no project named \"{}\"", args.project))?;
    let new_job = api::NewJob {
        kind: api::JobKind::Teacher,
        model_id: args.model_id,
        images: Some(api::ImageSelection::Named(images)),
        min_conf: args.min_conf,
        train: None,
        gpu: false,
    };
    let mut conn = pool.acquire().await?;
    let job = crate::jobs::queue_job(&mut conn, project_id, &new_job)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    drop(conn);
    // Servers sharing a PostgreSQL database show the job's progress as it runs here.
    let events = crate::events::ProjectEvents::new(crate::fanout::Fanout::for_database(&pool));
    let jobs = crate::jobs::Jobs::new(
        &args.inference,
        events.clone(),
        crate::jobs::queue::Runner::command_line_name(),
        false,
    )?;
    let finished = jobs
        .run_here(&pool, &store, args.limits.max_pixels(), job)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    events.fanout().flush().await;
    pool.close().await;
    let message = finished.message.unwrap_or_default();
    match finished.state {
        api::JobState::Succeeded => {
            println!("{message}");
            Ok(())
        }
        state => anyhow::bail!("the teacher job {}: {message}", state.as_str()),
    }
}

pub(crate) async fn open(data: &DataConfig) -> anyhow::Result<(AnyPool, Store)> {
    std::fs::create_dir_all(&data.data_dir)
        .with_context(|| format!("cannot create the data folder {}", data.data_dir.display()))?;
    let pool = db::open(&data.database_url()).await?;
    let store = Store::open(&data.data_dir, data.store.as_deref()).await?;
    Ok((pool, store))
}

/// Imports a dataset and prints what happened.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let (pool, store) = open(&args.data).await?;
    let source = if args.path.is_dir() {
        DatasetSource::Folder(args.path.clone())
    } else if args.path.is_file() {
        DatasetSource::Zip(args.path.clone())
    } else {
        anyhow::bail!("{} is neither a folder nor a file", args.path.display());
    };
    let limits = ImportLimits::from(args.limits);
    let plan_store = store.clone();
    let plan = tokio::task::spawn_blocking(move || import::plan(&source, &plan_store, limits)).await?;
    let plan = plan.map_err(|problems| anyhow::anyhow!("{problems}"))?;
    let project_id = match projects::find_by_name(&pool, &args.project).await? {
        Some(id) => id,
        None => projects::create_empty(&pool, &args.project).await?,
    };
    let report = import::apply(&pool, &store, project_id, plan).await?;
    println!(
        "Imported {} ({}) into \"{}\": {} images added ({} duplicates skipped, {} negatives, {} unlabeled), {} boxes{}",
        args.path.display(),
        report.format,
        args.project,
        report.images_added,
        report.duplicates,
        report.negatives,
        report.unlabeled,
        report.boxes_added,
        if report.classes_created.is_empty() {
            String::new()
        } else {
            format!(", new classes: {}", report.classes_created.join(", "))
        }
    );
    pool.close().await;
    Ok(())
}

/// Writes a project's dataset zip and prints its counts.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let (pool, store) = open(&args.data).await?;
    let format = Format::parse(&args.format).context("--format must be yolo or coco")?;
    let include = Include::parse(&args.include).context("--include must be approved, labeled or auto")?;
    let project_id = projects::find_by_name(&pool, &args.project)
        .await?
        .with_context(|| format!("there is no project named \"{}\"", args.project))?;
    let plan = export::plan(&pool, &store, project_id, format, include, args.min_conf).await?;
    let images = plan.image_count();
    write_zip_file(plan, args.out.clone()).await?;
    println!("Wrote {} ({images} images)", args.out.display());
    pool.close().await;
    Ok(())
}

/// Writes `plan`'s zip at `out`: beside it first, then renamed, so a failed export never
/// leaves a broken zip.
pub(crate) async fn write_zip_file(plan: export::Plan, out: PathBuf) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let folder = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let temp =
            tempfile::NamedTempFile::new_in(folder).with_context(|| format!("cannot write in {}", folder.display()))?;
        let writer = std::io::BufWriter::with_capacity(1 << 20, temp.reopen()?);
        export::write_zip(&plan, writer)?.flush()?;
        temp.persist(&out)?;
        Ok(())
    })
    .await?
}

/// Validates and registers an ONNX model, printing what was found in it.
pub async fn model_add(args: ModelAddArgs) -> anyhow::Result<()> {
    let role = api::ModelRole::parse(&args.role).context("--role must be student or teacher")?;
    let (pool, store) = open(&args.data).await?;
    let project_id = projects::find_by_name(&pool, &args.project)
        .await?
        .with_context(|| format!("there is no project named \"{}\"", args.project))?;
    let mut file = std::fs::File::open(&args.path).with_context(|| format!("cannot open {}", args.path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let staged = store
        .stage_reader(&mut file, size)
        .context("cannot copy the model into the data folder")?;
    let file_name = crate::images::clean_file_name(&args.path.file_name().unwrap_or_default().to_string_lossy());
    let new = crate::registry::NewModel {
        project_id,
        role,
        file_name: &file_name,
        trained: None,
    };
    // Open pages of a running server find out when their event stream next reconnects.
    let events = crate::events::ProjectEvents::default();
    let model = crate::registry::add_model(&pool, &store, &events, new, staged)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let mapped = model.class_map.iter().flatten().count();
    println!(
        "Registered {} as {} model {} of \"{}\": input {}×{}, {}, {} classes ({mapped} mapped to project classes)",
        model.file_name,
        model.role.as_str(),
        model.id,
        args.project,
        model.input_size,
        model.input_size,
        model.layout,
        model.class_names.len()
    );
    pool.close().await;
    Ok(())
}
