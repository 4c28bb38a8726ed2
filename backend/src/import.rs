//! Dataset import: Ultralytics-layout zips and folders (`data.yaml` or `classes.txt`, splits kept
//! as fixed splits), flat image + label folders, COCO JSON + images, or plain images.
//!
//! Two phases, so a bad dataset changes nothing: [`plan`] (blocking) reads and checks everything
//! — archive safety, every label line, every image — and collects *all* problems with
//! `file:line`; only a clean plan reaches [`apply`], which writes it in one transaction.
//!
//! `data.yaml` is read with `yaml-rust2`: real Ultralytics files use flow lists, block lists and
//! dicts for `names`, which a hand-written reader would get wrong.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use api::coco::CocoDataset;
use api::yolo::{LineError, parse_labels};
use api::{BoundingBox, BoxSource, ImageStatus, ImportReport, OpKind, Split};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use sqlx::AnyPool;

use crate::AppState;
use crate::annotations::record_box_event;
use crate::error::ApiError;
use crate::extract::{MultipartForm, PathParams};
use crate::images::{NewImageRow, insert_image};
use crate::imaging;
use crate::store::{StageError, Staged, StagedThumbnail, Store};

/// Guards against archives built to hurt the server.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Most files in one dataset.
    pub max_entries: usize,
    /// Most bytes once unpacked.
    pub max_total_bytes: u64,
    /// Largest unpacked/packed ratio of one zip entry (zip bombs reach thousands).
    pub max_ratio: u64,
    /// Most decoded pixels per image.
    pub max_pixels: u64,
}

impl ImportLimits {
    /// The limits in force for a server or CLI with these settings.
    pub fn from(limits: crate::config::Limits) -> Self {
        Self {
            max_entries: limits.max_import_entries,
            max_total_bytes: 20 << 30,
            max_ratio: 200,
            max_pixels: limits.max_pixels(),
        }
    }
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/projects/{pid}/import",
        post(import_upload).layer(DefaultBodyLimit::disable()),
    )
}

async fn import_upload(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    MultipartForm(mut multipart): MultipartForm,
) -> Result<Json<ImportReport>, ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let mut staged = None;
    while let Some(field) = multipart.next_field().await.map_err(crate::images::multipart_error)? {
        if field.name() == Some("file") {
            let limit = state.limits.max_import_mb * 1024 * 1024;
            staged = Some(state.store.stage(field, limit).await.map_err(|error| match error {
                crate::store::StageError::TooLarge { limit_mb } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "file_too_large",
                    format!("The archive is larger than the {limit_mb} MiB import limit."),
                ),
                other => crate::images::stage_error("The archive", other),
            })?);
            break;
        }
    }
    let staged =
        staged.ok_or_else(|| ApiError::bad_request("no_files", "Send the dataset as a zip in a `file` part."))?;
    let store = state.store.clone();
    let limits = ImportLimits::from(state.limits);
    let planned =
        tokio::task::spawn_blocking(move || plan(&DatasetSource::Zip(staged.path().to_owned()), &store, limits))
            .await
            .map_err(ApiError::internal)?;
    let planned = planned.map_err(rejection)?;
    Ok(Json(apply(&state.db, &state.store, project_id, planned).await?))
}

/// Where a dataset is read from.
#[derive(Debug, Clone)]
pub enum DatasetSource {
    /// A folder on disk.
    Folder(PathBuf),
    /// A zip archive on disk.
    Zip(PathBuf),
}

/// Why an import was refused: every problem found, each naming its file (and line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 20;
        write!(
            f,
            "The import was refused and nothing was changed ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for problem in self.0.iter().take(SHOWN) {
            write!(f, "\n{problem}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, "\n… and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// Why [`plan`] gave no plan: the dataset's fault, or the server's.
#[derive(Debug)]
pub enum ImportError {
    /// The dataset has problems (every one is listed).
    Rejected(Problems),
    /// The server could not stage what it read (the disk refused).
    Failed(std::io::Error),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected(problems) => problems.fmt(f),
            Self::Failed(error) => write!(f, "cannot stage the dataset: {error}"),
        }
    }
}

/// The answer for an import without a plan: 422 with every problem, or a 500 when the server
/// itself failed.
pub fn rejection(error: ImportError) -> ApiError {
    match error {
        ImportError::Rejected(problems) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "import_rejected",
            problems.to_string(),
        ),
        ImportError::Failed(error) => ApiError::internal(error),
    }
}

/// An image ready to be added: its bytes and thumbnail staged on disk (not in memory, and with
/// no file left open), its size read.
pub struct PlannedImage {
    file_name: String,
    staged: Staged,
    thumbnail: StagedThumbnail,
    extension: &'static str,
    width: u32,
    height: u32,
    split: Option<Split>,
    /// `None`: no label file (not labeled yet). `Some(empty)`: a reviewed negative.
    labels: Option<Vec<(usize, [f64; 4])>>,
}

/// A checked dataset, ready to be written.
pub struct Plan {
    format: &'static str,
    class_names: Vec<String>,
    images: Vec<PlannedImage>,
}

/// Reads and checks a dataset. Blocking: decodes every image.
pub fn plan(source: &DatasetSource, store: &Store, limits: ImportLimits) -> Result<Plan, ImportError> {
    let mut problems = Vec::new();
    let tree = Tree::read(source, limits, &mut problems).map_err(|p| ImportError::Rejected(Problems(vec![p])))?;
    let (format, class_names, candidates) = if let Some((json_path, dataset)) = tree.coco(&mut problems) {
        let (names, images) = coco_candidates(&tree, &json_path, dataset, &mut problems);
        ("coco", names, images)
    } else {
        let class_names = tree.class_names(&mut problems);
        let images = yolo_candidates(&tree, class_names.as_ref(), &mut problems);
        (
            if class_names.is_some() { "yolo" } else { "images" },
            class_names.unwrap_or_default(),
            images,
        )
    };
    if candidates.is_empty() && problems.is_empty() {
        problems.push("no JPEG, PNG, WebP or BMP images were found".to_owned());
    }

    let mut images = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let staged = match tree.stage(&candidate.path, store) {
            Ok(staged) => staged,
            Err(StageError::Io(error)) => return Err(ImportError::Failed(error)),
            Err(error) => {
                problems.push(format!("{}: {error}", candidate.path));
                continue;
            }
        };
        let inspected = match imaging::inspect(staged.path(), limits.max_pixels) {
            Ok(inspected) => inspected,
            Err(error) => {
                problems.push(format!("{}: {error}", candidate.path));
                continue;
            }
        };
        let labels = candidate.labels.map(|labels| match labels {
            Labels::Normalised(list) => list
                .into_iter()
                .map(|l| (l.class_index, l.to_corners(inspected.width, inspected.height)))
                .collect(),
            Labels::Pixels(list) => list,
        });
        if let Some(labels) = &labels {
            for (_, [x0, y0, x1, y1]) in labels {
                let (w, h) = (f64::from(inspected.width) + 1.0, f64::from(inspected.height) + 1.0);
                if *x0 < -1.0 || *y0 < -1.0 || *x1 > w || *y1 > h {
                    problems.push(format!(
                        "{}: a box reaches outside the {}×{} image",
                        candidate.path, inspected.width, inspected.height
                    ));
                    break;
                }
            }
        }
        let thumbnail = store
            .stage_thumbnail(&inspected.thumbnail_jpeg)
            .map_err(ImportError::Failed)?;
        let file_name = candidate.path.rsplit('/').next().unwrap_or(&candidate.path).to_owned();
        images.push(PlannedImage {
            file_name,
            staged,
            thumbnail,
            extension: inspected.extension,
            width: inspected.width,
            height: inspected.height,
            split: candidate.split,
            labels,
        });
    }
    if problems.is_empty() {
        Ok(Plan {
            format,
            class_names,
            images,
        })
    } else {
        Err(ImportError::Rejected(Problems(problems)))
    }
}

/// Writes a checked plan into the project: the files first, outside any transaction (the store
/// is content-addressed, so a file whose rows never arrive is only an unreferenced copy), then
/// every row in one short transaction — other people's edits wait for the rows, not for the
/// disk.
pub async fn apply(db: &AnyPool, store: &Store, project_id: i64, plan: Plan) -> Result<ImportReport, ApiError> {
    let mut report = ImportReport {
        format: plan.format.to_owned(),
        images_added: 0,
        duplicates: 0,
        boxes_added: 0,
        negatives: 0,
        unlabeled: 0,
        classes_created: Vec::new(),
    };
    let images = {
        let mut rows = Vec::with_capacity(plan.images.len());
        for image in plan.images {
            let row = ImportedRow {
                file_name: image.file_name,
                sha256: image.staged.sha256.clone(),
                byte_size: image.staged.byte_size,
                extension: image.extension,
                width: image.width,
                height: image.height,
                split: image.split,
                labels: image.labels,
            };
            store
                .commit_with_thumbnail(image.staged, image.extension, image.thumbnail)
                .await
                .map_err(ApiError::internal)?;
            rows.push(row);
        }
        rows
    };

    let mut tx = crate::db::write_transaction(db).await?;
    let (class_ids, created) = crate::projects::ensure_classes(&mut tx, project_id, &plan.class_names).await?;
    report.classes_created = created;
    for image in &images {
        let negative = image.labels.as_ref().is_some_and(Vec::is_empty);
        // Imported labels are someone's finished work: ready for review.
        let status = if image.labels.is_some() {
            ImageStatus::Submitted
        } else {
            ImageStatus::New
        };
        let row = NewImageRow {
            project_id,
            sha256: &image.sha256,
            file_name: &image.file_name,
            extension: image.extension,
            byte_size: image.byte_size as i64,
            width: image.width,
            height: image.height,
            fixed_split: image.split,
            status,
            negative,
        };
        let Some(image_id) = insert_image(&mut tx, &row).await? else {
            report.duplicates += 1;
            continue;
        };
        report.images_added += 1;
        match &image.labels {
            None => report.unlabeled += 1,
            Some(labels) if labels.is_empty() => report.negatives += 1,
            Some(labels) => {
                for (class_index, [x0, y0, x1, y1]) in labels {
                    let Ok([x0, y0, x1, y1]) = api::normalize_box([*x0, *y0, *x1, *y1], image.width, image.height)
                    else {
                        continue;
                    };
                    let created = BoundingBox::human(
                        uuid::Uuid::new_v4().to_string(),
                        class_ids.get(*class_index).copied().unwrap_or_default(),
                        [x0, y0, x1, y1],
                        1,
                    );
                    sqlx::query(
                        "INSERT INTO boxes (id, image_id, class_id, x0, y0, x1, y1, source, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)",
                    )
                    .bind(&created.id)
                    .bind(image_id)
                    .bind(i64::from(created.class_id))
                    .bind(x0)
                    .bind(y0)
                    .bind(x1)
                    .bind(y1)
                    .bind(BoxSource::Human.as_str())
                    .execute(&mut *tx)
                    .await?;
                    // Numbered and logged like an edit made in the editor.
                    record_box_event(
                        &mut tx,
                        project_id,
                        image_id,
                        OpKind::Create,
                        None,
                        Some(&created),
                        None,
                    )
                    .await?;
                    report.boxes_added += 1;
                }
            }
        }
    }
    tx.commit().await?;
    tracing::info!(project_id, images = report.images_added, boxes = report.boxes_added, format = %report.format, "import finished");
    Ok(report)
}

/// What one imported image's rows are made from, once its files are in the store.
struct ImportedRow {
    file_name: String,
    sha256: String,
    byte_size: u64,
    extension: &'static str,
    width: u32,
    height: u32,
    split: Option<Split>,
    labels: Option<Vec<(usize, [f64; 4])>>,
}

/// Labels as the dataset gave them.
enum Labels {
    /// YOLO: normalised to the upright image.
    Normalised(Vec<api::yolo::YoloLabel>),
    /// COCO: pixel corners.
    Pixels(Vec<(usize, [f64; 4])>),
}

struct Candidate {
    path: String,
    split: Option<Split>,
    labels: Option<Labels>,
}

const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "bmp"];
/// Largest text file (labels, yaml, json) read.
const MAX_TEXT_BYTES: u64 = 256 << 20;

fn is_image(path: &str) -> bool {
    path.rsplit_once('.')
        .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// The split named by a path like `images/train/x.jpg` or `train/images/x.jpg`.
fn split_in_path(path: &str) -> Option<Split> {
    path.split('/').rev().skip(1).find_map(Split::parse)
}

/// The label file Ultralytics pairs with an image: the last `images` folder becomes `labels`,
/// the extension `.txt`. Flat folders keep labels beside their images.
fn label_paths(image: &str) -> [String; 2] {
    let stem = image.rsplit_once('.').map_or(image, |(stem, _)| stem);
    let swapped = match stem.rfind("images/") {
        Some(at) if at == 0 || stem[..at].ends_with('/') => format!("{}labels/{}.txt", &stem[..at], &stem[at + 7..]),
        _ => format!("{stem}.txt"),
    };
    [swapped, format!("{stem}.txt")]
}

fn yolo_candidates(tree: &Tree, class_names: Option<&Vec<String>>, problems: &mut Vec<String>) -> Vec<Candidate> {
    let class_count = class_names.map_or(0, Vec::len);
    let mut candidates = Vec::new();
    for path in tree.files.keys().filter(|p| is_image(p)) {
        let label_path = label_paths(path).into_iter().find(|l| tree.files.contains_key(l));
        let labels = match (&label_path, class_names) {
            (Some(label_path), Some(_)) => match tree.read_text(label_path) {
                Ok(text) => match parse_labels(&text, class_count) {
                    Ok(labels) => Some(Labels::Normalised(labels)),
                    Err(errors) => {
                        problems.extend(
                            errors
                                .into_iter()
                                .map(|LineError { line, message }| format!("{label_path}:{line}: {message}")),
                        );
                        None
                    }
                },
                Err(message) => {
                    problems.push(format!("{label_path}: {message}"));
                    None
                }
            },
            (Some(label_path), None) => {
                problems.push(format!(
                    "{label_path}: labels without class names (add data.yaml or classes.txt)"
                ));
                None
            }
            (None, _) => None,
        };
        candidates.push(Candidate {
            path: path.clone(),
            split: split_in_path(path),
            labels,
        });
    }
    candidates
}

fn coco_candidates(
    tree: &Tree,
    json_path: &str,
    dataset: CocoDataset,
    problems: &mut Vec<String>,
) -> (Vec<String>, Vec<Candidate>) {
    let mut categories = dataset.categories.clone();
    categories.sort_by_key(|c| c.id);
    let index_of: HashMap<u64, usize> = categories.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let names: Vec<String> = categories.into_iter().map(|c| c.name).collect();
    let base = json_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut by_image: BTreeMap<u64, Vec<(usize, [f64; 4])>> = BTreeMap::new();
    for annotation in &dataset.annotations {
        let Some(&class_index) = index_of.get(&annotation.category_id) else {
            problems.push(format!(
                "{json_path}: annotation {} names unknown category {}",
                annotation.id, annotation.category_id
            ));
            continue;
        };
        let [x, y, w, h] = annotation.bbox;
        if !(w > 0.0 && h > 0.0 && x.is_finite() && y.is_finite()) {
            problems.push(format!(
                "{json_path}: annotation {} has an empty or invalid bbox",
                annotation.id
            ));
            continue;
        }
        by_image
            .entry(annotation.image_id)
            .or_default()
            .push((class_index, [x, y, x + w, y + h]));
    }
    let mut candidates = Vec::new();
    for image in &dataset.images {
        let name = image.file_name.trim_start_matches("./");
        let tries = [
            if base.is_empty() {
                name.to_owned()
            } else {
                format!("{base}/{name}")
            },
            if base.is_empty() {
                format!("images/{name}")
            } else {
                format!("{base}/images/{name}")
            },
            name.to_owned(),
        ];
        let Some(path) = tries.into_iter().find(|p| tree.files.contains_key(p)) else {
            problems.push(format!(
                "{json_path}: image {} ({name}) is not in the dataset",
                image.id
            ));
            continue;
        };
        let labels = by_image.remove(&image.id).unwrap_or_default();
        candidates.push(Candidate {
            split: split_in_path(&path),
            path,
            labels: Some(Labels::Pixels(labels)),
        });
    }
    (names, candidates)
}

/// Where one file of the dataset is, and how many bytes it says it holds (a zip entry's header,
/// a file's metadata): no more than that is ever read from it.
enum Location {
    Disk(PathBuf, u64),
    ZipEntry(usize, u64),
}

/// Every file of a dataset by relative path (`/`-separated), after the safety checks.
struct Tree {
    files: BTreeMap<String, Location>,
    /// The open archive for `ZipEntry` locations (entries are read one at a time).
    zip: Option<std::cell::RefCell<zip::ZipArchive<std::fs::File>>>,
}

impl Tree {
    fn read(source: &DatasetSource, limits: ImportLimits, problems: &mut Vec<String>) -> Result<Tree, String> {
        let mut files = BTreeMap::new();
        let mut total_bytes = 0u64;
        match source {
            DatasetSource::Folder(root) => {
                let mut stack = vec![root.clone()];
                while let Some(dir) = stack.pop() {
                    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                    for entry in entries {
                        let entry = entry.map_err(|e| e.to_string())?;
                        let path = entry.path();
                        let relative = relative_name(root, &path);
                        let kind = entry.file_type().map_err(|e| e.to_string())?;
                        if kind.is_symlink() {
                            problems.push(format!("{relative}: symbolic links are not followed"));
                        } else if kind.is_dir() {
                            stack.push(path);
                        } else if !is_junk(&relative) {
                            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                            total_bytes += size;
                            files.insert(relative, Location::Disk(path, size));
                        }
                        if files.len() > limits.max_entries {
                            return Err(format!("more than {} files", limits.max_entries));
                        }
                    }
                }
            }
            DatasetSource::Zip(zip_path) => {
                let file = std::fs::File::open(zip_path).map_err(|e| e.to_string())?;
                let mut archive =
                    zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip archive ({e})"))?;
                if archive.len() > limits.max_entries {
                    return Err(format!(
                        "the archive has {} entries, more than {}",
                        archive.len(),
                        limits.max_entries
                    ));
                }
                for index in 0..archive.len() {
                    let entry = archive.by_index_raw(index).map_err(|e| e.to_string())?;
                    let raw_name = String::from_utf8_lossy(entry.name_raw()).into_owned();
                    if entry.is_dir() {
                        continue;
                    }
                    if entry.is_symlink() {
                        problems.push(format!("{raw_name}: symbolic links are not allowed"));
                        continue;
                    }
                    let Some(enclosed) = entry.enclosed_name() else {
                        problems.push(format!("{raw_name}: absolute or escaping path (zip-slip)"));
                        continue;
                    };
                    if raw_name.starts_with('/') || raw_name.contains("..") {
                        problems.push(format!("{raw_name}: absolute or escaping path (zip-slip)"));
                        continue;
                    }
                    let ratio = entry.size() / entry.compressed_size().max(1);
                    if entry.size() > 1 << 20 && ratio > limits.max_ratio {
                        problems.push(format!("{raw_name}: compressed {ratio}:1, a zip bomb"));
                        continue;
                    }
                    total_bytes += entry.size();
                    let name = enclosed.to_string_lossy().replace('\\', "/");
                    if !is_junk(&name) {
                        files.insert(name, Location::ZipEntry(index, entry.size()));
                    }
                }
            }
        }
        if total_bytes > limits.max_total_bytes {
            return Err(format!(
                "the dataset unpacks to {} MiB, more than {} MiB",
                total_bytes >> 20,
                limits.max_total_bytes >> 20
            ));
        }
        let zip = match source {
            DatasetSource::Zip(path) => {
                let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
                Some(std::cell::RefCell::new(
                    zip::ZipArchive::new(file).map_err(|e| e.to_string())?,
                ))
            }
            DatasetSource::Folder(_) => None,
        };
        // A dataset zipped with its folder (`coco128/images/...`) reads like the folder itself.
        let files = strip_common_root(files);
        Ok(Tree { files, zip })
    }

    /// Runs `use_reader` on the bytes of `path`, with the size it declares; a file that cannot
    /// be opened fails as `E::from(reason)`.
    fn with_reader<T, E: From<String>>(
        &self,
        path: &str,
        use_reader: impl FnOnce(&mut dyn Read, u64) -> Result<T, E>,
    ) -> Result<T, E> {
        match self.files.get(path) {
            Some(Location::Disk(disk, size)) => {
                use_reader(&mut std::fs::File::open(disk).map_err(|e| e.to_string())?, *size)
            }
            Some(Location::ZipEntry(index, size)) => {
                let archive = self.zip.as_ref().ok_or_else(|| "no archive".to_owned())?;
                let mut archive = archive.borrow_mut();
                let mut entry = archive.by_index(*index).map_err(|e| e.to_string())?;
                use_reader(&mut entry, *size)
            }
            None => Err(E::from("missing".to_owned())),
        }
    }

    fn read_text(&self, path: &str) -> Result<String, String> {
        self.with_reader(path, |reader, declared| {
            let mut text = String::new();
            reader
                .take(MAX_TEXT_BYTES.min(declared))
                .read_to_string(&mut text)
                .map_err(|e| format!("not UTF-8 text ({e})"))?;
            Ok(text)
        })
    }

    fn stage(&self, path: &str, store: &Store) -> Result<Staged, StageError> {
        self.with_reader(path, |reader, declared| store.stage_reader(reader, declared))
    }

    /// The first JSON file that is a COCO detection document.
    fn coco(&self, problems: &mut Vec<String>) -> Option<(String, CocoDataset)> {
        let json_files: Vec<&String> = self
            .files
            .keys()
            .filter(|p| p.ends_with(".json") && !p.ends_with("manifest.json"))
            .collect();
        for path in json_files {
            let Ok(text) = self.read_text(path) else { continue };
            let value: serde_json::Value = match serde_json::from_str(&text) {
                Ok(value) => value,
                Err(error) => {
                    problems.push(format!("{path}:{}: not valid JSON ({error})", error.line()));
                    continue;
                }
            };
            if value.get("images").is_none() || value.get("annotations").is_none() {
                continue;
            }
            match serde_json::from_value::<CocoDataset>(value) {
                Ok(dataset) => return Some((path.clone(), dataset)),
                Err(error) => problems.push(format!("{path}: not a COCO detection file ({error})")),
            }
        }
        None
    }

    /// Class names from `data.yaml` (any `*.yaml` with `names`) or `classes.txt`.
    fn class_names(&self, problems: &mut Vec<String>) -> Option<Vec<String>> {
        let yaml = self
            .files
            .keys()
            .find(|p| p.ends_with("data.yaml"))
            .or_else(|| self.files.keys().find(|p| p.ends_with(".yaml") || p.ends_with(".yml")));
        if let Some(path) = yaml {
            let text = match self.read_text(path) {
                Ok(text) => text,
                Err(message) => {
                    problems.push(format!("{path}: {message}"));
                    return None;
                }
            };
            match names_from_yaml(&text) {
                Ok(names) => return Some(names),
                Err(message) => {
                    problems.push(format!("{path}: {message}"));
                    return None;
                }
            }
        }
        let classes = self.files.keys().find(|p| p.ends_with("classes.txt"))?;
        match self.read_text(classes) {
            Ok(text) => Some(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Err(message) => {
                problems.push(format!("{classes}: {message}"));
                None
            }
        }
    }
}

/// `names` of an Ultralytics `data.yaml`: a list (`[a, b]` or block) or a dict `{0: a, 1: b}`
/// whose keys must be 0..nc-1.
pub fn names_from_yaml(text: &str) -> Result<Vec<String>, String> {
    let documents = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| format!("not valid YAML ({e})"))?;
    let document = documents.first().ok_or("empty YAML")?;
    let names = &document["names"];
    let as_text = |value: &yaml_rust2::Yaml| -> Option<String> {
        value
            .as_str()
            .map(str::to_owned)
            .or_else(|| value.as_i64().map(|n| n.to_string()))
    };
    let list: Vec<String> = if let Some(list) = names.as_vec() {
        list.iter()
            .map(|v| as_text(v).ok_or("a class name is not text"))
            .collect::<Result<_, _>>()?
    } else if let Some(map) = names.as_hash() {
        let mut indexed = Vec::with_capacity(map.len());
        for (key, value) in map {
            let index = key.as_i64().ok_or("names keys must be class indices 0, 1, …")?;
            indexed.push((index, as_text(value).ok_or("a class name is not text")?));
        }
        indexed.sort();
        if indexed.iter().enumerate().any(|(i, (index, _))| *index != i as i64) {
            return Err("names keys must be 0, 1, … without gaps".into());
        }
        indexed.into_iter().map(|(_, name)| name).collect()
    } else {
        return Err("no `names` list or dict".into());
    };
    if let Some(nc) = document["nc"].as_i64()
        && nc != list.len() as i64
    {
        return Err(format!("nc is {nc} but {} names are given", list.len()));
    }
    Ok(list)
}

fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// macOS and editor droppings that are never part of a dataset.
fn is_junk(path: &str) -> bool {
    path.starts_with("__MACOSX/") || path.rsplit('/').next().is_some_and(|name| name.starts_with('.'))
}

fn strip_common_root(files: BTreeMap<String, Location>) -> BTreeMap<String, Location> {
    let first_segment = |p: &str| p.split_once('/').map(|(head, _)| head.to_owned());
    let Some(root) = files.keys().next().and_then(|p| first_segment(p)) else {
        return files;
    };
    let shared = files.keys().all(|p| first_segment(p).as_deref() == Some(root.as_str()));
    if !shared || ["images", "labels", "train", "val", "valid", "test"].contains(&root.as_str()) {
        return files;
    }
    files
        .into_iter()
        .map(|(path, location)| (path[root.len() + 1..].to_owned(), location))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` deflated as the zip entry `name`, then rewrites the entry's declared
    /// (uncompressed) size in both headers to `declared`: what a hostile archive can do.
    fn zip_declaring(name: &str, bytes: &[u8], declared: u32) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        writer.start_file(name, options).unwrap_or_else(|e| panic!("{e}"));
        writer.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
        let mut zip = writer.finish().unwrap_or_else(|e| panic!("{e}")).into_inner();
        for (signature, offset) in [(0x0403_4b50u32, 22), (0x0201_4b50, 24)] {
            let at = (0..zip.len() - 4)
                .find(|&i| zip[i..i + 4] == signature.to_le_bytes())
                .unwrap_or_else(|| panic!("no header {signature:x}"));
            zip[at + offset..at + offset + 4].copy_from_slice(&declared.to_le_bytes());
        }
        zip
    }

    #[test]
    fn reads_no_more_than_an_entry_declares() {
        let mut png = Vec::new();
        image::DynamicImage::new_rgb8(64, 64)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap_or_else(|e| panic!("{e}"));
        let (Ok(folder), Ok(data)) = (tempfile::tempdir(), tempfile::tempdir()) else {
            panic!("no temp folder");
        };
        let archive = folder.path().join("lying.zip");
        std::fs::write(&archive, zip_declaring("a.png", &png, 16)).unwrap_or_else(|e| panic!("{e}"));
        let store = Store::data_folder(data.path()).unwrap_or_else(|e| panic!("{e}"));
        let limits = ImportLimits {
            max_entries: 10,
            max_total_bytes: 1 << 20,
            max_ratio: 200,
            max_pixels: 1 << 20,
        };
        match plan(&DatasetSource::Zip(archive), &store, limits) {
            Ok(_) => panic!("an entry longer than its header was imported"),
            Err(ImportError::Failed(error)) => panic!("{error}"),
            // The zip crate checks this itself when it inflates (its own words); the cap in
            // `stage_reader` is the same rule for folders and for any reader.
            Err(ImportError::Rejected(Problems(problems))) => assert!(
                problems.iter().any(|p| p.starts_with("a.png: it cannot be read")
                    && p.contains("larger than its declared uncompressed size")),
                "{problems:?}"
            ),
        }
    }

    #[test]
    fn yaml_names_in_every_spelling() {
        let cases: [(&str, Result<Vec<&str>, &str>); 7] = [
            ("names: [car, person]\n", Ok(vec!["car", "person"])),
            (
                "nc: 2\nnames: ['car', \"traffic light\"]\n",
                Ok(vec!["car", "traffic light"]),
            ),
            ("names:\n  - car\n  - person\n", Ok(vec!["car", "person"])),
            (
                "path: ../datasets/coco8\ntrain: images/train\nnames:\n  0: person\n  1: bicycle\n",
                Ok(vec!["person", "bicycle"]),
            ),
            ("names: {1: b, 0: a}\n", Ok(vec!["a", "b"])),
            ("names: {0: a, 2: c}\n", Err("without gaps")),
            ("nc: 3\nnames: [a, b]\n", Err("nc is 3")),
        ];
        for (yaml, expected) in cases {
            match (names_from_yaml(yaml), expected) {
                (Ok(names), Ok(want)) => assert_eq!(names, want, "{yaml}"),
                (Err(message), Err(want)) => assert!(message.contains(want), "{yaml}: {message}"),
                (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn labels_are_found_the_ultralytics_way() {
        assert_eq!(label_paths("images/train/a.jpg")[0], "labels/train/a.txt");
        assert_eq!(label_paths("coco/images/val/b.png")[0], "coco/labels/val/b.txt");
        assert_eq!(label_paths("train/images/c.jpg")[0], "train/labels/c.txt");
        assert_eq!(label_paths("flat/d.jpg")[0], "flat/d.txt");
        assert_eq!(
            label_paths("myimages/e.jpg")[0],
            "myimages/e.txt",
            "only a whole `images` folder is swapped"
        );
        assert_eq!(split_in_path("images/valid/x.jpg"), Some(Split::Val));
        assert_eq!(split_in_path("test/images/x.jpg"), Some(Split::Test));
        assert_eq!(split_in_path("flat/x.jpg"), None);
    }
}
