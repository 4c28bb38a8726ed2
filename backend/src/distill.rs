//! `distillery distill`: autodistill's one-liner in one binary. A folder of images and a teacher
//! go in; a YOLO dataset zip (what the teacher labeled) and a trained student ONNX file come out.
//! It creates a project in a studio's data folder and runs the same code the studio runs — the
//! import, a teacher job, a training job, the YOLO export — so the project can be opened with
//! `distillery serve` afterwards to look at, correct and retrain.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use api::{Job, JobKind, JobState, ModelRole, NewJob, TrainSettings};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::AnyPool;

use crate::config::{DataConfig, InferenceConfig, Limits};
use crate::export::{Format, Include};
use crate::import::{DatasetSource, ImportLimits};
use crate::jobs::Jobs;
use crate::store::Store;

/// `distillery distill`.
#[derive(Debug, Clone, Args)]
pub struct DistillArgs {
    /// Folder of images to label (labels already beside them are imported too).
    pub images: PathBuf,
    /// The teacher: an ONNX detector (Ultralytics, YOLOv5 or end-to-end output).
    #[arg(long)]
    pub teacher: PathBuf,
    /// Which of the teacher's classes to keep and what to call them, as JSON:
    /// '{"teacher class": "class", …}' (several teacher classes may share one class).
    #[arg(long)]
    pub ontology: String,
    /// Training epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: u32,
    /// The student's square input side, a multiple of 32.
    #[arg(long, default_value_t = 320)]
    pub imgsz: u32,
    /// Images per training step.
    #[arg(long, default_value_t = 16)]
    pub batch: u32,
    /// Lowest teacher confidence that the student learns from and the zip holds.
    #[arg(long, default_value_t = 0.25)]
    pub min_conf: f32,
    /// Name of the project to create (default: the folder's name).
    #[arg(long)]
    pub project: Option<String>,
    /// The YOLO dataset zip to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The student ONNX file to write.
    #[arg(long)]
    pub student_out: PathBuf,
    #[command(flatten)]
    pub inference: InferenceConfig,
    #[command(flatten)]
    pub data: DataConfig,
    #[command(flatten)]
    pub limits: Limits,
}

/// Teacher class → project class, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Ontology(pub Vec<(String, String)>);

impl Ontology {
    /// Reads `{"teacher class": "class", …}`, keeping the order (the project's classes, and so
    /// the dataset's class indices, follow it).
    pub fn parse(json: &str) -> Result<Self, String> {
        let ontology: Ontology = serde_json::from_str(json)
            .map_err(|e| format!("--ontology must be a JSON object of names, {{\"teacher class\": \"class\"}}: {e}"))?;
        if ontology.0.is_empty() {
            return Err("--ontology names no class".into());
        }
        for (i, (caption, class)) in ontology.0.iter().enumerate() {
            if caption.trim().is_empty() || class.trim().is_empty() {
                return Err(format!("--ontology has an empty name in entry {}", i + 1));
            }
            if ontology.0[..i].iter().any(|(c, _)| c.eq_ignore_ascii_case(caption)) {
                return Err(format!("--ontology names \"{caption}\" twice"));
            }
        }
        Ok(ontology)
    }

    /// The project's classes: each distinct class once, in first-mention order.
    pub fn classes(&self) -> Vec<String> {
        let mut classes: Vec<String> = Vec::new();
        for (_, class) in &self.0 {
            if !classes.iter().any(|c| c.eq_ignore_ascii_case(class)) {
                classes.push(class.trim().to_owned());
            }
        }
        classes
    }

    /// The class a teacher class becomes (names compared case-insensitively), if it is kept.
    pub fn class_of(&self, teacher_class: &str) -> Option<&str> {
        let wanted = teacher_class.trim();
        self.0
            .iter()
            .find(|(caption, _)| caption.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, class)| class.trim())
    }
}

impl<'de> serde::Deserialize<'de> for Ontology {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Ontology;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of teacher class → class names")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ontology, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Ontology(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

/// How long each step took, for the final table.
struct Timings {
    import: Duration,
    teacher: Duration,
    training: Duration,
    export: Duration,
}

/// Runs the whole pipeline and prints a table of what it produced.
pub async fn distill(args: DistillArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let ontology = Ontology::parse(&args.ontology).map_err(anyhow::Error::msg)?;
    ensure!(
        args.images.is_dir(),
        "{} is not a folder of images",
        args.images.display()
    );
    ensure!(
        args.teacher.is_file(),
        "there is no teacher file {}",
        args.teacher.display()
    );
    let params = crate::jobs::TrainParams {
        settings: TrainSettings {
            epochs: Some(args.epochs),
            batch: Some(args.batch),
            imgsz: Some(args.imgsz),
            ..TrainSettings::default()
        },
        min_conf: args.min_conf,
    };
    params.config().map_err(anyhow::Error::msg)?;
    let name = match &args.project {
        Some(name) => name.clone(),
        None => folder_name(&args.images)?,
    };

    // First, so a device or engine that cannot run fails before anything is created.
    let jobs = Jobs::new(
        &args.inference,
        crate::events::ProjectEvents::default(),
        crate::jobs::queue::Runner::command_line_name(),
        false,
    )?;
    let (pool, store) = crate::commands::open(&args.data).await?;
    if crate::projects::find_by_name(&pool, &name).await?.is_some() {
        bail!(
            "the data folder {} already has a project named \"{name}\": pick another --project or --data-dir",
            args.data.data_dir.display()
        );
    }
    let project_id = crate::projects::create_empty(&pool, &name).await?;
    let result = run(&args, &ontology, &jobs, &pool, &store, project_id, &name, started).await;
    pool.close().await;
    result.with_context(|| {
        format!(
            "distilling stopped; what was done is in project \"{name}\" of {} (`distillery serve --data-dir {}` \
             shows it)",
            args.data.data_dir.display(),
            args.data.data_dir.display()
        )
    })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    args: &DistillArgs,
    ontology: &Ontology,
    jobs: &Jobs,
    pool: &AnyPool,
    store: &Store,
    project_id: i64,
    name: &str,
    started: Instant,
) -> anyhow::Result<()> {
    let max_pixels = args.limits.max_pixels();
    let classes = ontology.classes();
    let mut conn = pool.acquire().await?;
    let (class_ids, _) = crate::projects::ensure_classes(&mut conn, project_id, &classes).await?;
    drop(conn);

    // 1. The images.
    let step = Instant::now();
    let bar = spinner(format!("Importing {}", args.images.display()));
    let source = DatasetSource::Folder(args.images.clone());
    let plan_store = store.clone();
    let limits = ImportLimits::from(args.limits);
    let plan = tokio::task::spawn_blocking(move || crate::import::plan(&source, &plan_store, limits))
        .await?
        .map_err(|problems| anyhow::anyhow!("{problems}"))?;
    let report = crate::import::apply(pool, store, project_id, plan).await?;
    ensure!(report.images_added > 0, "{} holds no image", args.images.display());
    bar.finish_with_message(format!("Imported {} images", report.images_added));
    let import_time = step.elapsed();

    // 2. The teacher labels them.
    let teacher = register_teacher(pool, store, project_id, &args.teacher).await?;
    let class_map: Vec<Option<u32>> = teacher
        .class_names
        .iter()
        .map(|c| {
            let class = ontology.class_of(c)?;
            classes
                .iter()
                .position(|k| k.eq_ignore_ascii_case(class))
                .map(|i| class_ids[i])
        })
        .collect();
    if class_map.iter().all(Option::is_none) {
        bail!(
            "no class of the ontology is one of the teacher's: it detects {}",
            teacher.class_names.join(", ")
        );
    }
    let mut conn = pool.acquire().await?;
    crate::registry::set_class_map(&mut conn, teacher.id, &class_map).await?;
    drop(conn);
    let step = Instant::now();
    let teacher_job = NewJob {
        kind: JobKind::Teacher,
        model_id: Some(teacher.id),
        images: Some(api::ImageSelection::Named(api::NamedSelection::All)),
        min_conf: None,
        train: None,
        gpu: false,
    };
    run_job(jobs, pool, store, max_pixels, project_id, &teacher_job, "Teacher").await?;
    let teacher_time = step.elapsed();

    // 3. The student learns from what the teacher found.
    let step = Instant::now();
    let train_job = NewJob {
        kind: JobKind::Train,
        model_id: None,
        images: None,
        min_conf: Some(args.min_conf),
        train: Some(TrainSettings {
            epochs: Some(args.epochs),
            batch: Some(args.batch),
            imgsz: Some(args.imgsz),
            ..TrainSettings::default()
        }),
        gpu: false,
    };
    run_job(jobs, pool, store, max_pixels, project_id, &train_job, "Training").await?;
    let training_time = step.elapsed();

    // 4. The dataset and the student, as files.
    let step = Instant::now();
    let plan = crate::export::plan(pool, store, project_id, Format::Yolo, Include::Auto, args.min_conf).await?;
    let (images, boxes) = (
        plan.image_count(),
        plan.entries().iter().map(|e| e.labels().len()).sum::<usize>(),
    );
    crate::commands::write_zip_file(plan, args.out.clone()).await?;
    let mut conn = pool.acquire().await?;
    let student = crate::registry::active_student(&mut conn, project_id)
        .await?
        .context("the training registered no student")?;
    drop(conn);
    let onnx = store.read(&Store::model_key(&student.sha256)).await?;
    std::fs::write(&args.student_out, onnx).with_context(|| format!("cannot write {}", args.student_out.display()))?;
    let times = Timings {
        import: import_time,
        teacher: teacher_time,
        training: training_time,
        export: step.elapsed(),
    };

    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let figure = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3}"));
    let trained = student.trained.clone().unwrap_or(api::TrainedBy {
        job_id: 0,
        map50: None,
        map50_95: None,
    });
    println!();
    println!(
        "Distilled \"{name}\" ({} classes: {})",
        classes.len(),
        classes.join(", ")
    );
    println!("{:<10} {:>9}  result", "step", "time");
    let row = |step: &str, time: Duration, result: String| {
        println!("{step:<10} {:>9}  {result}", duration(time));
    };
    row("import", times.import, format!("{} images", report.images_added));
    row(
        "teacher",
        times.teacher,
        format!("{boxes} boxes on {images} images (confidence ≥ {})", args.min_conf),
    );
    row(
        "training",
        times.training,
        format!(
            "student val mAP50 {}, mAP50-95 {} ({} epochs at {} px)",
            figure(trained.map50),
            figure(trained.map50_95),
            args.epochs,
            args.imgsz
        ),
    );
    row(
        "export",
        times.export,
        format!(
            "{} ({}), {} ({})",
            args.out.display(),
            megabytes(size(&args.out)),
            args.student_out.display(),
            megabytes(size(&args.student_out))
        ),
    );
    row("total", started.elapsed(), String::new());
    Ok(())
}

/// Stores and registers the teacher file in the project.
async fn register_teacher(
    pool: &AnyPool,
    store: &Store,
    project_id: i64,
    path: &Path,
) -> anyhow::Result<api::RegisteredModel> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let staged = store
        .stage_reader(&mut file, size)
        .context("cannot copy the teacher into the data folder")?;
    let file_name = crate::images::clean_file_name(&path.file_name().unwrap_or_default().to_string_lossy());
    let new = crate::registry::NewModel {
        project_id,
        role: ModelRole::Teacher,
        file_name: &file_name,
        trained: None,
    };
    let events = crate::events::ProjectEvents::default();
    crate::registry::add_model(pool, store, &events, new, staged)
        .await
        .map_err(|e| anyhow::anyhow!("the teacher {}: {}", path.display(), e.message))
}

/// Queues `new_job`, runs it here with a progress bar, and fails with its message unless it
/// succeeded.
async fn run_job(
    jobs: &Jobs,
    pool: &AnyPool,
    store: &Store,
    max_pixels: u64,
    project_id: i64,
    new_job: &NewJob,
    label: &str,
) -> anyhow::Result<Job> {
    let mut conn = pool.acquire().await?;
    let job = crate::jobs::queue_job(&mut conn, project_id, new_job)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    drop(conn);
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let watcher = tokio::spawn(follow(pool.clone(), job.id, bar.clone()));
    let finished = jobs.run_here(pool, store, max_pixels, job).await;
    watcher.abort();
    let finished = finished.map_err(|e| anyhow::anyhow!(e.message))?;
    let message = finished.message.clone().unwrap_or_default();
    if finished.state != JobState::Succeeded {
        bar.abandon_with_message(message.clone());
        bail!(
            "the {} job {}: {message}",
            label.to_lowercase(),
            finished.state.as_str()
        );
    }
    bar.set_length(finished.total);
    bar.set_position(finished.done);
    bar.finish_with_message(message);
    Ok(finished)
}

/// Mirrors a job's row onto `bar` until aborted.
async fn follow(pool: AnyPool, job_id: i64, bar: ProgressBar) {
    loop {
        if let Ok(mut conn) = pool.acquire().await
            && let Ok(job) = crate::jobs::load_job(&mut conn, job_id).await
        {
            bar.set_length(job.total);
            bar.set_position(job.done);
            bar.set_message(job.message.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn folder_name(folder: &Path) -> anyhow::Result<String> {
    let absolute = std::path::absolute(folder)?;
    absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the images folder has no name: pass --project")
}

fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ontology_keeps_its_order_and_may_merge_classes() {
        let ontology = Ontology::parse(r#"{"star": "pointy", "circle": "round", "Triangle": "pointy"}"#);
        let ontology = ontology.as_ref().map_err(String::as_str);
        let Ok(ontology) = ontology else {
            panic!("{ontology:?}");
        };
        assert_eq!(ontology.classes(), ["pointy", "round"]);
        assert_eq!(ontology.class_of("triangle"), Some("pointy"));
        assert_eq!(ontology.class_of("circle"), Some("round"));
        assert_eq!(ontology.class_of("square"), None);
    }

    #[test]
    fn a_bad_ontology_says_what_is_wrong() {
        let error = |json: &str| Ontology::parse(json).err().unwrap_or_default();
        assert!(error(r#"["circle"]"#).contains("JSON object"));
        assert!(error(r#"{"circle": 3}"#).contains("JSON object"));
        assert_eq!(error("{}"), "--ontology names no class");
        assert_eq!(error(r#"{"circle": " "}"#), "--ontology has an empty name in entry 1");
        assert_eq!(
            error(r#"{"circle": "a", "Circle": "b"}"#),
            "--ontology names \"Circle\" twice"
        );
    }
}
