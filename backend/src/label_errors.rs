//! Label-error finding on approved images: a model's stored evaluation detections against the
//! human boxes (`api::label_errors::suspicions`), per image for the editor
//! (`GET /api/images/{iid}/label-errors`), ranked for the queue (`strategy=label_errors`), and a
//! person's "the label is right" kept per model version
//! (`POST /api/images/{iid}/label-errors/confirm`) so the same suspicion is not raised again.
//! Fixing needs no route of its own: it is an ordinary box edit, after which the suspicion no
//! longer holds.

use std::collections::{HashMap, HashSet};

use api::label_errors::{HumanBox, suspicions};
use api::{ConfirmLabel, ImageLabelErrors, Project, QueueEntry, RegisteredModel, Suspicion};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use sqlx::AnyConnection;

use crate::AppState;
use crate::error::ApiError;
use crate::evaluation::{approved_detections, approved_human_boxes};
use crate::extract::{JsonBody, PathParams, QueryParams};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/images/{iid}/label-errors", get(for_image))
        .route("/images/{iid}/label-errors/confirm", post(confirm))
}

#[derive(Debug, Deserialize)]
struct ModelQuery {
    model_id: Option<i64>,
}

/// The model whose detections accuse: the one named (of the project), else the newest teacher
/// (the stronger model, in autodistill's setting), else the active student.
pub(crate) async fn accusing_model(
    conn: &mut AnyConnection,
    project_id: i64,
    model_id: Option<i64>,
) -> Result<RegisteredModel, ApiError> {
    let model = match model_id {
        Some(id) => Some(crate::registry::load_model(conn, id).await?).filter(|m| m.project_id == project_id),
        None => {
            let teacher: Option<i64> =
                sqlx::query_scalar("SELECT MAX(id) FROM models WHERE project_id = $1 AND role = 'teacher'")
                    .bind(project_id)
                    .fetch_one(&mut *conn)
                    .await?;
            match teacher {
                Some(id) => Some(crate::registry::load_model(conn, id).await?),
                None => crate::registry::active_student(conn, project_id).await?,
            }
        }
    };
    model.ok_or_else(|| {
        ApiError::conflict(
            "no_model",
            "Finding label errors needs a model: upload a teacher or a student on the Models page.",
        )
    })
}

/// The open suspicions of every approved image the model has seen: `image id → suspicions`,
/// strongest first, confirmed ones left out.
async fn open_suspicions(
    conn: &mut AnyConnection,
    project: &Project,
    model: &RegisteredModel,
    image_id: Option<i64>,
) -> Result<HashMap<i64, Vec<Suspicion>>, ApiError> {
    let detections = approved_detections(conn, model, image_id).await?;
    let human = approved_human_boxes(conn, project.id, image_id).await?;
    let confirmed: HashSet<(i64, String)> = sqlx::query_as(
        "SELECT image_id, key FROM confirmed_labels WHERE model_id = $1 AND ($2 IS NULL OR image_id = $3)",
    )
    .bind(model.id)
    .bind(image_id)
    .bind(image_id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let names: HashMap<u32, String> = project.classes.iter().map(|c| (c.id, c.name.clone())).collect();
    let class_name = |id: u32| names.get(&id).cloned().unwrap_or_else(|| format!("class {id}"));
    let mut found = HashMap::new();
    for (image_id, detected) in detections {
        let Ok(model_boxes) = detected else {
            continue;
        };
        let boxes = human.get(&image_id).map(Vec::as_slice).unwrap_or_default();
        let human_boxes: Vec<HumanBox<'_>> = boxes
            .iter()
            .map(|(id, c, corners)| (id.as_str(), *c, *corners))
            .collect();
        let open: Vec<Suspicion> = suspicions(&human_boxes, &model_boxes, &class_name)
            .into_iter()
            .filter(|s| !confirmed.contains(&(image_id, s.key.clone())))
            .collect();
        found.insert(image_id, open);
    }
    Ok(found)
}

/// The queue's `label_errors` ranking: approved images by their strongest open suspicion,
/// images with none left out. Also how many approved images the model has not seen.
pub(crate) async fn ranked(
    state: &AppState,
    conn: &mut AnyConnection,
    project_id: i64,
    model_id: Option<i64>,
    limit: usize,
) -> Result<(RegisteredModel, Vec<QueueEntry>, u64), ApiError> {
    let model = accusing_model(conn, project_id, model_id).await?;
    crate::jobs::evaluate::ensure_queued(&state.jobs, &state.db, project_id).await?;
    let project = crate::projects::load_project(conn, project_id).await?;
    let open = open_suspicions(conn, &project, &model, None).await?;
    let names: HashMap<i64, String> =
        sqlx::query_as("SELECT id, file_name FROM images WHERE project_id = $1 AND status = 'approved'")
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let unseen = names.keys().filter(|id| !open.contains_key(id)).count() as u64;
    let mut entries: Vec<QueueEntry> = open
        .into_iter()
        .filter(|(_, found)| !found.is_empty())
        .filter_map(|(image_id, found)| {
            Some(QueueEntry {
                image_id,
                file_name: names.get(&image_id)?.clone(),
                score: found.iter().map(|s| s.strength).fold(0.0, f32::max),
            })
        })
        .collect();
    entries.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.image_id.cmp(&b.image_id)));
    entries.truncate(limit);
    Ok((model, entries, unseen))
}

async fn for_image(
    State(state): State<AppState>,
    PathParams(image_id): PathParams<i64>,
    QueryParams(query): QueryParams<ModelQuery>,
) -> Result<Json<ImageLabelErrors>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let project_id = crate::images::load_image(&mut conn, image_id).await?.project_id;
    let model = accusing_model(&mut conn, project_id, query.model_id).await?;
    let project = crate::projects::load_project(&mut conn, project_id).await?;
    let mut open = open_suspicions(&mut conn, &project, &model, Some(image_id)).await?;
    let evaluated = open.contains_key(&image_id);
    Ok(Json(ImageLabelErrors {
        model_id: model.id,
        evaluated,
        suspicions: open.remove(&image_id).unwrap_or_default(),
    }))
}

async fn confirm(
    State(state): State<AppState>,
    PathParams(image_id): PathParams<i64>,
    JsonBody(body): JsonBody<ConfirmLabel>,
) -> Result<Json<ImageLabelErrors>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let project_id = crate::images::load_image(&mut conn, image_id).await?.project_id;
    let model = accusing_model(&mut conn, project_id, Some(body.model_id)).await?;
    let project = crate::projects::load_project(&mut conn, project_id).await?;
    let open = open_suspicions(&mut conn, &project, &model, Some(image_id)).await?;
    let raised = open
        .get(&image_id)
        .is_some_and(|found| found.iter().any(|s| s.key == body.key));
    if !raised {
        return Err(ApiError::not_found(format_args!(
            "suspicion {:?} on image {image_id} under model {}",
            body.key, model.id
        )));
    }
    sqlx::query("INSERT INTO confirmed_labels (model_id, image_id, key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(model.id)
        .bind(image_id)
        .bind(&body.key)
        .execute(&mut *conn)
        .await?;
    let mut open = open_suspicions(&mut conn, &project, &model, Some(image_id)).await?;
    Ok(Json(ImageLabelErrors {
        model_id: model.id,
        evaluated: true,
        suspicions: open.remove(&image_id).unwrap_or_default(),
    }))
}
