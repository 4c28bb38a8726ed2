//! The model registry: ONNX detectors uploaded per project as teacher or student, validated by
//! loading them (the same `models` runtime the browser runs), their classes mapped onto the
//! project's, and their bytes served at immutable, content-addressed URLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api::{ActiveStudent, ModelPatch, ModelRole, RegisteredModel, map_classes_by_name};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use models::Detector;
use sqlx::{AnyConnection, AnyPool};

use crate::AppState;
use crate::error::ApiError;
use crate::events::ProjectEvents;
use crate::extract::{JsonBody, MultipartForm, PathParams};
use crate::images::{multipart_error, stage_error};
use crate::store::{Staged, Store};
use crate::stored_file::{self, Served};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{pid}/models",
            // The ONNX file is streamed to disk under the upload limit.
            axum::routing::post(upload).layer(DefaultBodyLimit::disable()).get(list),
        )
        .route("/projects/{pid}/active-student", axum::routing::put(set_active_student))
        .route("/models/{mid}", get(read).patch(update))
        .route("/models/{mid}/file", get(file_by_id))
        .route("/model-files/{name}", get(file_by_hash))
}

async fn upload(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    MultipartForm(mut multipart): MultipartForm,
) -> Result<(StatusCode, Json<RegisteredModel>), ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let mut role = None;
    let mut upload: Option<(String, Staged)> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            // Checked once the whole body is read, so the client gets the answer, not a reset.
            Some("role") => role = Some(field.text().await.map_err(multipart_error)?),
            Some("file") => {
                let name = crate::images::clean_file_name(field.file_name().unwrap_or("model.onnx"));
                let staged = state
                    .store
                    .stage(field, state.limits.max_upload_bytes())
                    .await
                    .map_err(|e| stage_error(&name, e))?;
                upload = Some((name, staged));
            }
            _ => {}
        }
    }
    let (file_name, staged) = upload
        .ok_or_else(|| ApiError::bad_request("no_file", "Send the ONNX model as a multipart part named `file`."))?;
    let role = match role.as_deref().map(str::trim) {
        None => ModelRole::Student,
        Some(text) => ModelRole::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_role",
                format!("role must be teacher or student, not {text:?}."),
            )
        })?,
    };
    let new = NewModel {
        project_id,
        role,
        file_name: &file_name,
        trained: None,
    };
    let model = add_model(&state.db, &state.store, &state.events, new, staged).await?;
    Ok((StatusCode::CREATED, Json(model)))
}

/// What is known of a model before its bytes are checked.
pub struct NewModel<'a> {
    pub project_id: i64,
    pub role: ModelRole,
    pub file_name: &'a str,
    /// The training that made it, when the studio did.
    pub trained: Option<api::TrainedBy>,
}

/// Validates staged ONNX bytes by loading them, stores them and registers the model; a student
/// becomes the one browsers run, and the project's open pages are told. Shared by the upload
/// route, the training job and `distillery model add`.
pub async fn add_model(
    db: &AnyPool,
    store: &Store,
    events: &ProjectEvents,
    new: NewModel<'_>,
    staged: Staged,
) -> Result<RegisteredModel, ApiError> {
    let NewModel {
        project_id,
        role,
        file_name,
        trained,
    } = new;
    let (info, staged) = tokio::task::spawn_blocking(move || {
        let info = std::fs::read(staged.path())
            .map_err(ApiError::internal)
            .and_then(|bytes| Detector::load(&bytes).map(|d| d.info().clone()).map_err(unsupported));
        (info, staged)
    })
    .await
    .map_err(ApiError::internal)?;
    let info = info?;
    let sha256 = staged.sha256.clone();
    let byte_size = staged.byte_size as i64;
    store.commit_model(staged).await.map_err(ApiError::internal)?;

    let mut tx = crate::db::write_transaction(db).await?;
    let project = crate::projects::load_project(&mut tx, project_id).await?;
    let project_classes: Vec<(u32, &str)> = project.classes.iter().map(|c| (c.id, c.name.as_str())).collect();
    let class_map = map_classes_by_name(&info.class_names, &project_classes);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO models (project_id, role, sha256, file_name, byte_size, input_size, layout, class_names, \
         class_map, embedding_len, train_job_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(project_id)
    .bind(role.as_str())
    .bind(&sha256)
    .bind(file_name)
    .bind(byte_size)
    .bind(info.input_size_px as i64)
    .bind(info.layout.to_string())
    .bind(to_json(&info.class_names)?)
    .bind(to_json(&class_map)?)
    .bind(info.embedding_len.map(|n| n as i64))
    .bind(trained.as_ref().map(|t| t.job_id))
    .fetch_one(&mut *tx)
    .await?;
    // Set apart from the insert, and only when known: sqlx's `Any` driver types a NULL double
    // as a float4 for PostgreSQL, which then keeps that type for the cached statement and
    // refuses the next non-NULL double.
    if let Some(api::TrainedBy {
        map50: Some(map50),
        map50_95: Some(map50_95),
        ..
    }) = &trained
    {
        sqlx::query("UPDATE models SET map50 = $1, map50_95 = $2 WHERE id = $3")
            .bind(*map50)
            .bind(*map50_95)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if role == ModelRole::Student {
        point_active_student(&mut tx, project_id, id).await?;
    }
    let model = load_model(&mut tx, id).await?;
    tx.commit().await?;
    if role == ModelRole::Student {
        events.student_changed(project_id);
    }
    Ok(model)
}

/// `PUT /api/projects/{pid}/active-student {model_id}`: makes an earlier (or later) student the
/// one browsers run — rolling back is one request. Open pages are told.
async fn set_active_student(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    JsonBody(choice): JsonBody<ActiveStudent>,
) -> Result<Json<RegisteredModel>, ApiError> {
    let mut conn = state.db.acquire().await?;
    crate::projects::load_project(&mut conn, project_id).await?;
    let model = load_model(&mut conn, choice.model_id).await?;
    if model.project_id != project_id {
        return Err(ApiError::not_found(format_args!(
            "model {} in project {project_id}",
            choice.model_id
        )));
    }
    if model.role != ModelRole::Student {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_student",
            format!(
                "Model {} is a teacher; only a student can pre-label in the browser.",
                model.id
            ),
        ));
    }
    point_active_student(&mut conn, project_id, model.id).await?;
    let model = load_model(&mut conn, model.id).await?;
    state.events.student_changed(project_id);
    Ok(Json(model))
}

/// Makes `model_id` the project's active student (the caller announces it once committed).
async fn point_active_student(conn: &mut AnyConnection, project_id: i64, model_id: i64) -> Result<(), ApiError> {
    sqlx::query("UPDATE projects SET active_student_id = $1 WHERE id = $2")
        .bind(model_id)
        .bind(project_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A model the runtime refused: 422 with the runtime's reason.
fn unsupported(error: models::ModelError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported_model",
        format!("This model cannot be used: {error}."),
    )
}

async fn list(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
) -> Result<Json<Vec<RegisteredModel>>, ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let mut conn = state.db.acquire().await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM models WHERE project_id = $1 ORDER BY id DESC")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut models = Vec::with_capacity(ids.len());
    for id in ids {
        models.push(load_model(&mut conn, id).await?);
    }
    Ok(Json(models))
}

async fn read(
    State(state): State<AppState>,
    PathParams(model_id): PathParams<i64>,
) -> Result<Json<RegisteredModel>, ApiError> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(load_model(&mut conn, model_id).await?))
}

async fn update(
    State(state): State<AppState>,
    PathParams(model_id): PathParams<i64>,
    JsonBody(patch): JsonBody<ModelPatch>,
) -> Result<Json<RegisteredModel>, ApiError> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(set_class_map(&mut conn, model_id, &patch.class_map).await?))
}

/// Maps a model's classes (by index) onto project class ids, `None` for a class left out.
pub async fn set_class_map(
    conn: &mut AnyConnection,
    model_id: i64,
    class_map: &[Option<u32>],
) -> Result<RegisteredModel, ApiError> {
    let model = load_model(conn, model_id).await?;
    if class_map.len() != model.class_names.len() {
        return Err(ApiError::bad_request(
            "invalid_class_map",
            format!(
                "The model has {} classes; the mapping names {}.",
                model.class_names.len(),
                class_map.len()
            ),
        ));
    }
    let project = crate::projects::load_project(conn, model.project_id).await?;
    if let Some(unknown) = class_map
        .iter()
        .flatten()
        .find(|id| !project.classes.iter().any(|c| c.id == **id))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_class",
            format!("The project has no class {unknown}."),
        ));
    }
    sqlx::query("UPDATE models SET class_map = $1 WHERE id = $2")
        .bind(to_json(&class_map)?)
        .bind(model_id)
        .execute(&mut *conn)
        .await?;
    load_model(conn, model_id).await
}

async fn file_by_id(
    State(state): State<AppState>,
    PathParams(model_id): PathParams<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let model = load_model(&mut *state.db.acquire().await?, model_id).await?;
    serve_model(&state.store, &model.sha256, &headers).await
}

/// `/api/model-files/<sha256>.onnx`: the URL names the content, so it can be cached forever.
async fn file_by_hash(
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sha256 = name.strip_suffix(".onnx").unwrap_or(&name);
    let known: Option<i64> = if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        sqlx::query_scalar("SELECT id FROM models WHERE sha256 = $1 LIMIT 1")
            .bind(sha256)
            .fetch_optional(&state.db)
            .await?
    } else {
        None
    };
    if known.is_none() {
        return Err(ApiError::not_found(format_args!("model file {name}")));
    }
    serve_model(&state.store, sha256, &headers).await
}

/// A model file: the same bytes under the same hash for everyone, so shared caches may keep it.
async fn serve_model(store: &Store, sha256: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let file = Served {
        key: Store::model_key(sha256),
        sha256,
        content_type: "application/octet-stream",
        cache_control: "public, max-age=31536000, immutable",
    };
    stored_file::serve(store, file, headers).await
}

/// Reads one registered model; 404 when there is none.
pub async fn load_model(conn: &mut AnyConnection, model_id: i64) -> Result<RegisteredModel, ApiError> {
    let row: Option<ModelRow> = sqlx::query_as(
        "SELECT id, project_id, role, sha256, file_name, byte_size, input_size, layout, class_names, class_map, \
         embedding_len, created_at, train_job_id, map50, map50_95, \
         (SELECT COUNT(*) FROM models s WHERE s.project_id = models.project_id AND s.role = models.role \
          AND s.id <= models.id) AS version, \
         id IS NOT DISTINCT FROM (SELECT active_student_id FROM projects p WHERE p.id = models.project_id) AS active \
         FROM models WHERE id = $1",
    )
    .bind(model_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.ok_or_else(|| ApiError::not_found(format_args!("model {model_id}")))?
        .into_model()
}

/// The project's active student, if it has any: the newest unless someone chose another.
pub async fn active_student(conn: &mut AnyConnection, project_id: i64) -> Result<Option<RegisteredModel>, ApiError> {
    let id: Option<i64> = sqlx::query_scalar("SELECT active_student_id FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    match id {
        Some(id) => load_model(conn, id).await.map(Some),
        None => Ok(None),
    }
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: i64,
    project_id: i64,
    role: String,
    sha256: String,
    file_name: String,
    byte_size: i64,
    input_size: i64,
    layout: String,
    class_names: String,
    class_map: String,
    embedding_len: Option<i64>,
    created_at: String,
    train_job_id: Option<i64>,
    map50: Option<f64>,
    map50_95: Option<f64>,
    version: i64,
    #[sqlx(try_from = "crate::db::Flag")]
    active: bool,
}

impl ModelRow {
    fn into_model(self) -> Result<RegisteredModel, ApiError> {
        Ok(RegisteredModel {
            url: format!("/api/model-files/{}.onnx", self.sha256),
            id: self.id,
            project_id: self.project_id,
            role: ModelRole::parse(&self.role).ok_or_else(|| ApiError::internal("unknown model role stored"))?,
            version: self.version as u32,
            sha256: self.sha256,
            file_name: self.file_name,
            byte_size: self.byte_size as u64,
            input_size: self.input_size as u32,
            layout: self.layout,
            class_names: serde_json::from_str(&self.class_names).map_err(ApiError::internal)?,
            class_map: serde_json::from_str(&self.class_map).map_err(ApiError::internal)?,
            embedding_len: self.embedding_len.map(|n| n as u32),
            active: self.active,
            created_at: self.created_at,
            trained: self.train_job_id.map(|job_id| api::TrainedBy {
                job_id,
                map50: self.map50,
                map50_95: self.map50_95,
            }),
        })
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

/// Loaded detectors by model id, so the server parses and optimises each version once.
#[derive(Clone, Default)]
pub struct DetectorCache {
    loaded: Arc<Mutex<HashMap<i64, Arc<Detector>>>>,
    runtime: models::Runtime,
}

impl DetectorCache {
    /// A cache whose detectors run on `runtime`.
    pub fn new(runtime: models::Runtime) -> Self {
        Self {
            loaded: Arc::default(),
            runtime,
        }
    }

    /// The detector of a registered model, loading it on first use (parsing and optimising
    /// on a blocking thread).
    pub async fn get(&self, store: &Store, model: &RegisteredModel) -> Result<Arc<Detector>, models::ModelError> {
        if let Some(found) = self.loaded.lock().ok().and_then(|m| m.get(&model.id).cloned()) {
            return Ok(found);
        }
        let bytes = store
            .read(&Store::model_key(&model.sha256))
            .await
            .map_err(|e| models::ModelError(format!("cannot read the model file: {e}")))?;
        let runtime = self.runtime.clone();
        let detector = tokio::task::spawn_blocking(move || Detector::load_with(&bytes, runtime))
            .await
            .map_err(|e| models::ModelError(e.to_string()))??;
        let detector = Arc::new(detector);
        if let Some(why) = detector.gpu_fallback() {
            tracing::warn!(model = %model.file_name, "tract runs this model on the CPU: {why}");
        }
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.insert(model.id, detector.clone());
        }
        Ok(detector)
    }
}
