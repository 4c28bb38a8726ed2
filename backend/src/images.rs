//! Images: upload (streamed, deduplicated, decoded under limits), listing for the gallery,
//! metadata, original bytes and thumbnails.

use api::{ErrorDetail, ImageInfo, ImagePage, ImageStatus, Split, UploadedFile};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sqlx::{AnyConnection, FromRow};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{MultipartForm, PathParams, QueryParams};
use crate::imaging::{self, InspectError};
use crate::store::{Key, StageError, Staged, Store};
use crate::stored_file::{self, Served};

/// Most images one gallery page returns.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{pid}/images",
            // Uploads are streamed to disk with a per-file limit, so the request-wide in-memory
            // limit does not apply.
            post(upload).layer(DefaultBodyLimit::disable()).get(list),
        )
        .route("/images/{iid}", get(read))
        .route("/images/{iid}/file", get(original))
        .route("/images/{iid}/thumb", get(thumbnail))
}

async fn upload(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    MultipartForm(mut multipart): MultipartForm,
) -> Result<Json<Vec<UploadedFile>>, ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let mut results = Vec::new();
    let mut first_error = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let file_name = clean_file_name(field.file_name().unwrap_or("image"));
        let staged = state.store.stage(field, state.limits.max_upload_bytes()).await;
        let outcome = match staged {
            Ok(staged) => add_image(&state, project_id, &file_name, staged, None).await,
            Err(error) => Err(stage_error(&file_name, error)),
        };
        match outcome {
            Ok(uploaded) => results.push(uploaded),
            Err(error) => {
                results.push(UploadedFile {
                    file_name,
                    id: None,
                    width: 0,
                    height: 0,
                    sha256: String::new(),
                    duplicate: false,
                    error: Some(ErrorDetail {
                        code: error.code.to_owned(),
                        message: error.message.clone(),
                    }),
                });
                first_error.get_or_insert(error);
            }
        }
    }
    if results.is_empty() {
        return Err(ApiError::bad_request(
            "no_files",
            "Send the images as multipart parts named `file`.",
        ));
    }
    // All refused: the request as a whole failed, with the first reason.
    if results.iter().all(|r| r.error.is_some())
        && let Some(error) = first_error
    {
        return Err(error);
    }
    Ok(Json(results))
}

/// Decodes a staged upload and adds it to the project, unless the project already has these
/// bytes. Shared by upload and import.
pub async fn add_image(
    state: &AppState,
    project_id: i64,
    file_name: &str,
    staged: Staged,
    fixed_split: Option<Split>,
) -> Result<UploadedFile, ApiError> {
    let mut conn = state.db.acquire().await?;
    if let Some(existing) = find_by_hash(&mut conn, project_id, &staged.sha256).await? {
        return Ok(UploadedFile {
            file_name: file_name.to_owned(),
            id: Some(existing.id),
            width: existing.width,
            height: existing.height,
            sha256: existing.sha256,
            duplicate: true,
            error: None,
        });
    }
    drop(conn);
    let store = state.store.clone();
    let max_pixels = state.limits.max_pixels();
    let name = file_name.to_owned();
    let (inspected, staged) = tokio::task::spawn_blocking(move || {
        let inspected = imaging::inspect(staged.path(), max_pixels);
        (inspected, staged)
    })
    .await
    .map_err(ApiError::internal)?;
    let inspected = inspected.map_err(|error| match error {
        InspectError::TooManyPixels { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_pixels",
            format!("{name}: {error}."),
        ),
        InspectError::Unsupported => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_image",
            format!("{name}: {error}."),
        ),
        InspectError::Corrupt(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt_image",
            format!("{name}: {error}."),
        ),
    })?;
    let sha256 = staged.sha256.clone();
    let byte_size = staged.byte_size as i64;
    let extension = inspected.extension;
    store
        .commit(staged, extension, inspected.thumbnail_jpeg)
        .await
        .map_err(ApiError::internal)?;
    let mut conn = state.db.acquire().await?;
    let row = NewImageRow {
        project_id,
        sha256: &sha256,
        file_name,
        extension: inspected.extension,
        byte_size,
        width: inspected.width,
        height: inspected.height,
        fixed_split,
        status: ImageStatus::New,
        negative: false,
    };
    let inserted = insert_image(&mut conn, &row).await?;
    drop(conn);
    // None: the same bytes were added concurrently a moment ago; report that copy.
    let (id, duplicate) = match inserted {
        Some(id) => (id, false),
        None => {
            let mut conn = state.db.acquire().await?;
            let existing = find_by_hash(&mut conn, project_id, &sha256).await?;
            (existing.map(|e| e.id).unwrap_or_default(), true)
        }
    };
    Ok(UploadedFile {
        file_name: file_name.to_owned(),
        id: Some(id),
        width: inspected.width,
        height: inspected.height,
        sha256,
        duplicate,
        error: None,
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    class_id: Option<u32>,
    /// Only images with at least one box from this source (`human`, `teacher`).
    source: Option<String>,
    limit: Option<u32>,
    /// Images after this id (ascending).
    cursor: Option<i64>,
    /// Images before this id (descending): the editor's "previous image".
    before: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<ImagePage>, ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => Some(
            ImageStatus::parse(text)
                .ok_or_else(|| ApiError::bad_request("invalid_status", format!("Unknown status {text:?}.")))?,
        ),
        None => None,
    };
    let source = match query.source.as_deref().filter(|s| !s.is_empty()) {
        Some(text) => Some(
            api::BoxSource::parse(text)
                .ok_or_else(|| ApiError::bad_request("invalid_source", format!("Unknown box source {text:?}.")))?,
        ),
        None => None,
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE_SIZE);
    let filter = "project_id = $1 AND ($2 IS NULL OR status = $2)
        AND ($3 IS NULL OR EXISTS (SELECT 1 FROM boxes b WHERE b.image_id = images.id AND b.class_id = $3))
        AND ($4 IS NULL OR EXISTS (SELECT 1 FROM boxes b WHERE b.image_id = images.id AND b.source = $4))";
    let (range, order, bound) = match query.before {
        Some(before) => ("id < $5", "DESC", before),
        None => ("id > $5", "ASC", query.cursor.unwrap_or(0)),
    };
    let mut rows: Vec<ImageRow> = sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE {filter} AND {range} ORDER BY id {order} LIMIT $6"
    )))
    .bind(project_id)
    .bind(status.map(ImageStatus::as_str))
    .bind(query.class_id.map(i64::from))
    .bind(source.map(api::BoxSource::as_str))
    .bind(bound)
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.db)
    .await?;
    let next_cursor = if rows.len() > limit as usize && query.before.is_none() {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    } else {
        rows.truncate(limit as usize);
        None
    };
    let total: i64 = sqlx::query_scalar(crate::db::constant_sql(format!(
        "SELECT COUNT(*) FROM images WHERE {filter}"
    )))
    .bind(project_id)
    .bind(status.map(ImageStatus::as_str))
    .bind(query.class_id.map(i64::from))
    .bind(source.map(api::BoxSource::as_str))
    .fetch_one(&state.db)
    .await?;
    Ok(Json(ImagePage {
        images: rows.into_iter().map(ImageRow::into_info).collect(),
        next_cursor,
        total: total as u64,
    }))
}

async fn read(
    State(state): State<AppState>,
    PathParams(image_id): PathParams<i64>,
) -> Result<Json<ImageInfo>, ApiError> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(load_image(&mut conn, image_id).await?.into_info()))
}

async fn original(state: State<AppState>, image_id: PathParams<i64>, headers: HeaderMap) -> Result<Response, ApiError> {
    serve_image_file(state, image_id, &headers, |image| {
        (
            Store::original_key(&image.sha256, &image.extension),
            stored_file::image_type(&image.extension),
        )
    })
    .await
}

async fn thumbnail(
    state: State<AppState>,
    image_id: PathParams<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_image_file(state, image_id, &headers, |image| {
        (Store::thumb_key(&image.sha256), "image/jpeg")
    })
    .await
}

/// Serves one of an image's files (original or thumbnail): `file_of` names its key and type.
async fn serve_image_file(
    State(state): State<AppState>,
    PathParams(image_id): PathParams<i64>,
    headers: &HeaderMap,
    file_of: impl FnOnce(&ImageRow) -> (Key, &'static str),
) -> Result<Response, ApiError> {
    let image = load_image(&mut *state.db.acquire().await?, image_id).await?;
    let (key, content_type) = file_of(&image);
    let file = Served {
        key,
        sha256: &image.sha256,
        content_type,
        cache_control: IMAGE_CACHING,
    };
    stored_file::serve(&state.store, file, headers).await
}

/// An image id always names the same bytes, so the browser may keep them; only its own cache,
/// as they are the project's.
const IMAGE_CACHING: &str = "private, max-age=31536000, immutable";

/// A new row of `images`.
pub struct NewImageRow<'a> {
    pub project_id: i64,
    pub sha256: &'a str,
    pub file_name: &'a str,
    pub extension: &'a str,
    pub byte_size: i64,
    pub width: u32,
    pub height: u32,
    pub fixed_split: Option<Split>,
    pub status: ImageStatus,
    pub negative: bool,
}

/// Inserts an image unless the project already has these bytes; `None` then.
pub async fn insert_image(conn: &mut AnyConnection, row: &NewImageRow<'_>) -> Result<Option<i64>, ApiError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO images (project_id, sha256, file_name, extension, byte_size, width, height, fixed_split, status, negative)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (project_id, sha256) DO NOTHING RETURNING id",
    )
    .bind(row.project_id)
    .bind(row.sha256)
    .bind(row.file_name)
    .bind(row.extension)
    .bind(row.byte_size)
    .bind(i64::from(row.width))
    .bind(i64::from(row.height))
    .bind(row.fixed_split.map(Split::as_str))
    .bind(row.status.as_str())
    .bind(i64::from(row.negative))
    .fetch_optional(&mut *conn)
    .await?)
}

/// Columns read into [`ImageRow`], including the box count.
pub const IMAGE_COLUMNS: &str = "id, project_id, sha256, file_name, extension, width, height, status, negative,
    fixed_split, review_comment, (SELECT COUNT(*) FROM boxes b WHERE b.image_id = images.id) AS box_count";

/// One row of `images`.
#[derive(Debug, Clone, FromRow)]
pub struct ImageRow {
    pub id: i64,
    pub project_id: i64,
    pub sha256: String,
    pub file_name: String,
    pub extension: String,
    #[sqlx(try_from = "i64")]
    pub width: u32,
    #[sqlx(try_from = "i64")]
    pub height: u32,
    pub status: String,
    #[sqlx(try_from = "crate::db::Flag")]
    pub negative: bool,
    pub fixed_split: Option<String>,
    pub review_comment: Option<String>,
    #[sqlx(try_from = "i64")]
    pub box_count: u32,
}

impl ImageRow {
    /// The row's workflow status (unknown spellings read as `new`).
    pub fn status(&self) -> ImageStatus {
        ImageStatus::parse(&self.status).unwrap_or(ImageStatus::New)
    }

    /// The API view of the row.
    pub fn into_info(self) -> ImageInfo {
        ImageInfo {
            status: self.status(),
            id: self.id,
            project_id: self.project_id,
            file_name: self.file_name,
            width: self.width,
            height: self.height,
            sha256: self.sha256,
            negative: self.negative,
            fixed_split: self.fixed_split.as_deref().and_then(Split::parse),
            box_count: self.box_count,
            review_comment: self.review_comment,
        }
    }
}

/// The image with this id, or 404.
pub async fn load_image(conn: &mut AnyConnection, image_id: i64) -> Result<ImageRow, ApiError> {
    sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE id = $1"
    )))
    .bind(image_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found(format_args!("image {image_id}")))
}

async fn find_by_hash(conn: &mut AnyConnection, project_id: i64, sha256: &str) -> Result<Option<ImageRow>, ApiError> {
    Ok(sqlx::query_as(crate::db::constant_sql(format!(
        "SELECT {IMAGE_COLUMNS} FROM images WHERE project_id = $1 AND sha256 = $2"
    )))
    .bind(project_id)
    .bind(sha256)
    .fetch_optional(&mut *conn)
    .await?)
}

/// An upload that could not be staged, as an API error naming the file (shared by every upload
/// route).
pub fn stage_error(file_name: &str, error: StageError) -> ApiError {
    match error {
        StageError::TooLarge { limit_mb } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("{file_name} is larger than the {limit_mb} MiB upload limit."),
        ),
        StageError::Body(message) => ApiError::bad_request("upload_broken", message),
        StageError::LongerThanDeclared { .. } | StageError::Unreadable(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_archive",
            format!("{file_name}: {error}"),
        ),
        // The disk refused: the server's fault, not the client's.
        StageError::Io(error) => ApiError::internal(error),
    }
}

/// A broken multipart body as an API error (shared by every multipart route).
pub fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::new(error.status(), "invalid_multipart", error.body_text())
}

/// The last path component of a client-supplied name, without control characters, at most 200
/// characters; never empty.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "image".to_owned()
    } else {
        cleaned.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::clean_file_name;

    #[test]
    fn file_names_are_cleaned() {
        let cases = [
            ("cat.jpg", "cat.jpg"),
            ("../../etc/passwd", "passwd"),
            ("C:\\photos\\dog.png", "dog.png"),
            ("a\nb.jpg", "ab.jpg"),
            ("", "image"),
            ("..", "image"),
            ("dir/", "image"),
        ];
        for (input, expected) in cases {
            assert_eq!(clean_file_name(input), expected, "{input:?}");
        }
    }
}
