//! Dataset export: the Ultralytics YOLO layout or COCO JSON, as a zip streamed while it is
//! written (constant memory whatever the dataset size; images STORED, never recompressed).
//!
//! Everything to export is read from the database first ([`plan`]), so a database problem is a
//! proper error response rather than a truncated download; the zip is then written on a
//! blocking thread ([`write_zip`]) into a bounded channel that the response body drains.

use std::collections::HashMap;
use std::io::{self, Write};

use api::coco::{CocoAnnotation, CocoCategory, CocoDataset, CocoImage, bbox_from_corners};
use api::yolo::{YoloLabel, data_yaml};
use api::{ImageStatus, Project, Split};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use sqlx::AnyPool;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::AppState;
use crate::annotations::{BOX_COLUMNS, BoxRow};
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};
use crate::images::{IMAGE_COLUMNS, ImageRow};
use crate::store::{Key, Store};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/{pid}/export", get(export))
}

/// Which dataset format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Ultralytics YOLO detection layout.
    Yolo,
    /// COCO detection JSON.
    Coco,
}

/// Which images to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// Only approved images.
    Approved,
    /// Every image with human labels or marked as having no objects (rejected ones excepted).
    Labeled,
    /// `Labeled`, plus unreviewed images with model boxes at or above the confidence threshold.
    Auto,
}

impl Format {
    /// Parses `yolo` / `coco`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "yolo" => Some(Self::Yolo),
            "coco" => Some(Self::Coco),
            _ => None,
        }
    }
}

impl Include {
    /// Parses `approved` / `labeled` / `auto`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "approved" => Some(Self::Approved),
            "labeled" | "labelled" => Some(Self::Labeled),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

/// One image as it goes into the zip.
#[derive(Debug, Clone)]
pub struct Entry {
    image_id: i64,
    source: Key,
    original_name: String,
    /// Safe, unique file name inside the zip (`000012-street.jpg`).
    zip_name: String,
    split: Split,
    width: u32,
    height: u32,
    /// (class index, corners in pixels)
    labels: Vec<(usize, [f64; 4])>,
    /// Where the labels came from: `human`, `teacher`, `student` or `negative`.
    label_source: &'static str,
}

/// Everything an export writes.
#[derive(Debug, Clone)]
pub struct Plan {
    project: Project,
    format: Format,
    include: Include,
    min_confidence: f32,
    entries: Vec<Entry>,
    /// Where the originals are read from.
    store: Store,
}

impl Plan {
    /// Name offered for the download.
    pub fn file_name(&self) -> String {
        let suffix = match self.format {
            Format::Yolo => "yolo",
            Format::Coco => "coco",
        };
        format!("{}-{suffix}.zip", safe_stem(&self.project.name, 60))
    }

    /// Number of images exported.
    pub fn image_count(&self) -> usize {
        self.entries.len()
    }

    /// The project's class names, in class-index order (what the labels' indices mean).
    pub fn class_names(&self) -> Vec<String> {
        self.project.classes.iter().map(|c| c.name.clone()).collect()
    }

    /// The exported images: what training learns from, exactly what the zip would hold.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Entry {
    /// The stored original bytes.
    pub fn source(&self) -> &Key {
        &self.source
    }

    pub fn split(&self) -> Split {
        self.split
    }

    /// `(class index, [x0, y0, x1, y1] in pixels)` per box.
    pub fn labels(&self) -> &[(usize, [f64; 4])] {
        &self.labels
    }
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
    include: Option<String>,
    min_conf: Option<f32>,
    /// Answer with what would be exported (counts) instead of the zip.
    #[serde(default)]
    dry_run: bool,
}

async fn export(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    QueryParams(query): QueryParams<ExportQuery>,
) -> Result<Response, ApiError> {
    let format_text = query.format.as_deref().unwrap_or("yolo");
    let format = Format::parse(format_text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_format",
            format!("Unknown format {format_text:?}; use yolo or coco."),
        )
    })?;
    let include_text = query.include.as_deref().unwrap_or("labeled");
    let include = Include::parse(include_text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_include",
            format!("Unknown include {include_text:?}; use approved, labeled or auto."),
        )
    })?;
    let min_confidence = query.min_conf.unwrap_or(0.25);
    if !(0.0..=1.0).contains(&min_confidence) {
        return Err(ApiError::bad_request(
            "invalid_min_conf",
            "min_conf must be between 0 and 1.",
        ));
    }
    let plan = plan(&state.db, &state.store, project_id, format, include, min_confidence).await?;
    if query.dry_run {
        return Ok(axum::Json(manifest(&plan)["counts"].clone()).into_response());
    }
    let file_name = plan.file_name();

    // A few 64 KiB chunks in flight at most: memory stays flat however large the dataset is.
    let (sender, mut receiver) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK_BYTES),
        };
        if let Err(error) = write_zip(&plan, writer).and_then(|mut w| w.flush()) {
            // Abort the body so the client sees a failed download, not a short zip.
            tracing::warn!(%error, "export stopped");
            let _ = sender.blocking_send(Err(error));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// Reads what to export. Fails with 404 for an unknown project and 422 for an export that would
/// contain no image (nothing for Ultralytics to train on).
pub async fn plan(
    db: &AnyPool,
    store: &Store,
    project_id: i64,
    format: Format,
    include: Include,
    min_confidence: f32,
) -> Result<Plan, ApiError> {
    let mut conn = db.acquire().await?;
    let project = crate::projects::load_project(&mut conn, project_id).await?;
    let class_index: HashMap<u32, usize> = project.classes.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let images: Vec<ImageRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE project_id = $1 ORDER BY id"
    )))
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    let box_rows: Vec<BoxRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {BOX_COLUMNS} FROM boxes WHERE image_id IN (SELECT id FROM images WHERE project_id = $1) ORDER BY rowid"
    )))
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut boxes_by_image: HashMap<i64, Vec<BoxRow>> = HashMap::new();
    for row in box_rows {
        boxes_by_image.entry(row.image_id).or_default().push(row);
    }

    let mut chosen = Vec::new();
    for image in images {
        let boxes = boxes_by_image.remove(&image.id).unwrap_or_default();
        let (human, model): (Vec<BoxRow>, Vec<BoxRow>) = boxes.into_iter().partition(|b| b.source == "human");
        let status = image.status();
        let reviewed = matches!(status, ImageStatus::Submitted | ImageStatus::Approved);
        let human_labeled = status != ImageStatus::Rejected && (!human.is_empty() || image.negative || reviewed);
        let (rows, source) = match include {
            Include::Approved if status == ImageStatus::Approved => (human, "human"),
            Include::Labeled | Include::Auto if human_labeled => (human, "human"),
            Include::Auto if status != ImageStatus::Rejected => {
                let confident: Vec<BoxRow> = model
                    .into_iter()
                    .filter(|b| b.confidence.unwrap_or(0.0) >= f64::from(min_confidence))
                    .collect();
                if confident.is_empty() {
                    continue;
                }
                let source = if confident.iter().any(|b| b.source == "teacher") {
                    "teacher"
                } else {
                    "student"
                };
                (confident, source)
            }
            _ => continue,
        };
        let labels: Vec<(usize, [f64; 4])> = rows
            .iter()
            .filter_map(|b| {
                class_index
                    .get(&b.class_id)
                    .map(|&index| (index, [b.x0, b.y0, b.x1, b.y1]))
            })
            .collect();
        let label_source = if labels.is_empty() { "negative" } else { source };
        chosen.push((image, labels, label_source));
    }
    if chosen.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing_to_export",
            "No image matches this export yet: label (or approve) some images first.",
        ));
    }

    let ids: Vec<(i64, Option<Split>)> = chosen
        .iter()
        .map(|(image, _, _)| (image.id, image.fixed_split.as_deref().and_then(Split::parse)))
        .collect();
    let splits = api::split::assign_splits(&ids, project.split_seed, project.split);
    let entries = chosen
        .into_iter()
        .zip(splits)
        .map(|((image, labels, label_source), split)| Entry {
            image_id: image.id,
            source: Store::original_key(&image.sha256, &image.extension),
            zip_name: format!(
                "{:06}-{}.{}",
                image.id,
                safe_stem(stem_of(&image.file_name), 60),
                image.extension
            ),
            original_name: image.file_name,
            split,
            width: image.width,
            height: image.height,
            labels,
            label_source,
        })
        .collect();
    Ok(Plan {
        project,
        format,
        include,
        min_confidence,
        entries,
        store: store.clone(),
    })
}

/// Writes the zip for `plan` into `out` (blocking IO) and returns the writer.
pub fn write_zip<W: Write>(plan: &Plan, out: W) -> io::Result<W> {
    let mut zip = ZipWriter::new_stream(out);
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(true);
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let image_folder = |entry: &Entry| match plan.format {
        Format::Yolo => format!("images/{}/{}", entry.split.as_str(), entry.zip_name),
        Format::Coco => format!("images/{}", entry.zip_name),
    };
    let mut sources = plan
        .store
        .blocking_readers(plan.entries.iter().map(|e| e.source.clone()).collect(), OBJECTS_AHEAD);
    for entry in &plan.entries {
        zip.start_file(image_folder(entry), stored).map_err(io::Error::other)?;
        let mut source = sources
            .next()
            .ok_or_else(|| io::Error::other("an image's bytes went missing"))??;
        io::copy(&mut source, &mut zip)?;
        if plan.format == Format::Yolo {
            let stem = entry
                .zip_name
                .rsplit_once('.')
                .map_or(entry.zip_name.as_str(), |(stem, _)| stem);
            zip.start_file(format!("labels/{}/{stem}.txt", entry.split.as_str()), deflated)
                .map_err(io::Error::other)?;
            for (class_index, corners) in &entry.labels {
                let line = YoloLabel::from_corners(*class_index, *corners, entry.width, entry.height).to_line();
                writeln!(zip, "{line}")?;
            }
        }
    }
    let class_names: Vec<&str> = plan.project.classes.iter().map(|c| c.name.as_str()).collect();
    match plan.format {
        Format::Yolo => {
            let with_test = plan.entries.iter().any(|e| e.split == Split::Test);
            zip.start_file("data.yaml", deflated).map_err(io::Error::other)?;
            zip.write_all(data_yaml(&class_names, with_test).as_bytes())?;
        }
        Format::Coco => {
            zip.start_file("annotations.json", deflated).map_err(io::Error::other)?;
            serde_json::to_writer(&mut zip, &coco_dataset(plan))?;
        }
    }
    zip.start_file("manifest.json", deflated).map_err(io::Error::other)?;
    serde_json::to_writer_pretty(&mut zip, &manifest(plan))?;
    let inner = zip.finish().map_err(io::Error::other)?;
    Ok(inner.into_inner())
}

fn coco_dataset(plan: &Plan) -> CocoDataset {
    let mut annotations = Vec::new();
    let images = plan
        .entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let coco_id = index as u64 + 1;
            for (class_index, corners) in &entry.labels {
                let bbox = bbox_from_corners(*corners);
                annotations.push(CocoAnnotation {
                    id: annotations.len() as u64 + 1,
                    image_id: coco_id,
                    category_id: *class_index as u64 + 1,
                    bbox,
                    area: bbox[2] * bbox[3],
                    iscrowd: 0,
                });
            }
            CocoImage {
                id: coco_id,
                file_name: entry.zip_name.clone(),
                width: entry.width,
                height: entry.height,
            }
        })
        .collect();
    let categories = plan
        .project
        .classes
        .iter()
        .enumerate()
        .map(|(index, class)| CocoCategory {
            id: index as u64 + 1,
            name: class.name.clone(),
            supercategory: "object".into(),
        })
        .collect();
    CocoDataset {
        images,
        annotations,
        categories,
    }
}

/// Provenance: how export indices map to project classes, and where every file came from.
fn manifest(plan: &Plan) -> serde_json::Value {
    let count = |split: Split| plan.entries.iter().filter(|e| e.split == split).count();
    serde_json::json!({
        "project": {"id": plan.project.id, "name": plan.project.name},
        "format": match plan.format { Format::Yolo => "yolo", Format::Coco => "coco" },
        "include": match plan.include { Include::Approved => "approved", Include::Labeled => "labeled", Include::Auto => "auto" },
        "min_confidence": plan.min_confidence,
        "split": {"train_pct": plan.project.split.train_pct, "val_pct": plan.project.split.val_pct,
                  "test_pct": plan.project.split.test_pct, "seed": plan.project.split_seed},
        "classes": plan.project.classes.iter().enumerate().map(|(index, class)| serde_json::json!({
            "index": index, "class_id": class.id, "name": class.name,
        })).collect::<Vec<_>>(),
        "images": plan.entries.iter().map(|entry| serde_json::json!({
            "file": entry.zip_name, "image_id": entry.image_id, "original_name": entry.original_name,
            "split": entry.split.as_str(), "labels": entry.label_source, "boxes": entry.labels.len(),
        })).collect::<Vec<_>>(),
        "counts": {
            "images": plan.entries.len(),
            "boxes": plan.entries.iter().map(|e| e.labels.len()).sum::<usize>(),
            "train": count(Split::Train), "val": count(Split::Val), "test": count(Split::Test),
        },
    })
}

fn stem_of(file_name: &str) -> &str {
    file_name.rsplit_once('.').map_or(file_name, |(stem, _)| stem)
}

/// ASCII letters, digits, `-` and `_` only (safe on every filesystem and in zip tools), at most
/// `max_chars`, never empty.
fn safe_stem(text: &str, max_chars: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(max_chars)
        .collect();
    let trimmed = cleaned.trim_matches('_');
    if trimmed.is_empty() {
        "image".to_owned()
    } else {
        trimmed.to_owned()
    }
}

const CHUNK_BYTES: usize = 64 * 1024;
/// Images whose requests are under way while one is written into the zip: a bucket answers
/// each GET after tens of milliseconds, which one at a time would dominate an export. Memory
/// stays bounded: the bodies are streamed, at most this many opened at once.
const OBJECTS_AHEAD: usize = 8;

/// `Write` into the response body: fills 64 KiB chunks and hands them over, blocking while the
/// client is slower than the disk.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES)));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client stopped the download"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_BYTES - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::safe_stem;

    #[test]
    fn stems_are_safe() {
        let cases = [
            ("street scene", "street_scene"),
            ("../../evil", "evil"),
            ("Ünïcode", "n_code"),
            ("___", "image"),
            ("a-b_c", "a-b_c"),
        ];
        for (input, expected) in cases {
            assert_eq!(safe_stem(input, 60), expected, "{input}");
        }
        assert_eq!(safe_stem(&"x".repeat(100), 60).len(), 60);
    }
}
