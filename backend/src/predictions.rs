//! What models predicted per image and model version (reported by browsers as they pre-label,
//! or by the server's scoring job), and the uncertainty-ranked queue built from it.
//!
//! Scores are keyed by model id: a new student starts an empty ranking instead of mixing its
//! scores with the previous version's.

use api::uncertainty::{self, Aggregation, Strategy};
use api::{ImagePrediction, PendingImages, PredictedBox, PredictionReport, Queue, QueueEntry, RegisteredModel};
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use sqlx::{AnyConnection, AnyPool};

use crate::AppState;
use crate::db::Flag;
use crate::error::ApiError;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::registry::{active_student, load_model};

/// Statuses that count as "not labeled yet": the queue ranks these.
pub const UNLABELED: &str = "('new', 'prelabeled')";
/// Most images one queue or pending answer lists.
const MAX_LIMIT: u32 = 1000;
/// Largest prediction report accepted (JSON), in bytes.
const MAX_REPORT_BYTES: usize = 32 * 1024 * 1024;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{pid}/predictions",
            post(report).layer(DefaultBodyLimit::max(MAX_REPORT_BYTES)),
        )
        .route("/projects/{pid}/predictions/pending", get(pending))
        .route("/projects/{pid}/queue", get(queue))
        .route("/images/{iid}/prediction", get(read_prediction))
}

#[derive(Debug, Deserialize)]
struct PredictionQuery {
    model_id: Option<i64>,
}

/// What one model version (the active student unless `model_id` says otherwise) predicted for
/// one image: its boxes, best candidate and every score, as stored.
async fn read_prediction(
    State(state): State<AppState>,
    PathParams(image_id): PathParams<i64>,
    QueryParams(query): QueryParams<PredictionQuery>,
) -> Result<Json<ImagePrediction>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let image = crate::images::load_image(&mut conn, image_id).await?;
    let model = resolve_model(&mut conn, image.project_id, query.model_id).await?;
    let row: Option<(String, f64)> =
        sqlx::query_as("SELECT boxes, best_candidate FROM predictions WHERE model_id = $1 AND image_id = $2")
            .bind(model.id)
            .bind(image_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((boxes, best_candidate_score)) = row else {
        return Err(ApiError::not_found(format_args!(
            "prediction of model {} for image {image_id}",
            model.id
        )));
    };
    let scores: Vec<(String, String, f64)> =
        sqlx::query_as("SELECT strategy, aggregation, score FROM image_scores WHERE model_id = $1 AND image_id = $2")
            .bind(model.id)
            .bind(image_id)
            .fetch_all(&mut *conn)
            .await?;
    let scores = scores
        .into_iter()
        .filter_map(|(strategy, aggregation, score)| {
            Some(uncertainty::MeasuredScore {
                strategy: Strategy::parse(&strategy)?,
                aggregation: Aggregation::parse(&aggregation)?,
                score: score as f32,
            })
        })
        .collect();
    Ok(Json(ImagePrediction {
        image_id,
        boxes: serde_json::from_str(&boxes).map_err(ApiError::internal)?,
        best_candidate_score: best_candidate_score as f32,
        scores,
        embedding: None,
    }))
}

async fn report(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    JsonBody(report): JsonBody<PredictionReport>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.db.acquire().await?;
    let model = load_model(&mut conn, report.model_id).await?;
    drop(conn);
    if model.project_id != project_id {
        return Err(ApiError::bad_request(
            "wrong_project",
            format!("Model {} belongs to another project.", model.id),
        ));
    }
    for prediction in &report.images {
        validate(&model, prediction)?;
    }
    store_predictions(&state.db, project_id, model.id, &report.images).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn validate(model: &RegisteredModel, prediction: &ImagePrediction) -> Result<(), ApiError> {
    let bad = |message: String| ApiError::bad_request("invalid_prediction", message);
    let image = prediction.image_id;
    let finite = |v: f32| v.is_finite() && v >= 0.0;
    if !finite(prediction.best_candidate_score) || prediction.best_candidate_score > 1.0 {
        return Err(bad(format!("image {image}: best_candidate_score must be within 0..1")));
    }
    for b in &prediction.boxes {
        if b.class_index as usize >= model.class_names.len() {
            return Err(bad(format!("image {image}: the model has no class {}", b.class_index)));
        }
        if ![b.score, b.x0, b.y0, b.x1, b.y1].into_iter().all(finite) || b.x1 < b.x0 || b.y1 < b.y0 {
            return Err(bad(format!("image {image}: a box has a bad score or corners")));
        }
    }
    if let Some(score) = prediction.scores.iter().find(|s| !finite(s.score)) {
        return Err(bad(format!(
            "image {image}: {} is not a non-negative number",
            score.strategy.as_str()
        )));
    }
    if let (Some(embedding), Some(expected)) = (&prediction.embedding, model.embedding_len)
        && (embedding.len() != expected as usize || !embedding.iter().all(|v| v.is_finite()))
    {
        return Err(bad(format!(
            "image {image}: the embedding must hold {expected} finite numbers"
        )));
    }
    Ok(())
}

/// Replaces what `model_id` said about each image, in one transaction; images of other projects
/// are refused. New images become `prelabeled`.
pub async fn store_predictions(
    db: &AnyPool,
    project_id: i64,
    model_id: i64,
    predictions: &[ImagePrediction],
) -> Result<(), ApiError> {
    let mut tx = crate::db::write_transaction(db).await?;
    write_predictions(&mut tx, project_id, model_id, predictions).await?;
    tx.commit().await?;
    Ok(())
}

/// [`store_predictions`] inside a transaction the caller holds: the scoring job counts the image
/// done in the same one.
pub(crate) async fn write_predictions(
    tx: &mut AnyConnection,
    project_id: i64,
    model_id: i64,
    predictions: &[ImagePrediction],
) -> Result<(), ApiError> {
    for prediction in predictions {
        let owner: Option<i64> = sqlx::query_scalar("SELECT project_id FROM images WHERE id = $1")
            .bind(prediction.image_id)
            .fetch_optional(&mut *tx)
            .await?;
        if owner != Some(project_id) {
            return Err(ApiError::bad_request(
                "unknown_image",
                format!("Project {project_id} has no image {}.", prediction.image_id),
            ));
        }
        let embedding: Option<Vec<u8>> = prediction
            .embedding
            .as_ref()
            .map(|e| e.iter().flat_map(|v| v.to_le_bytes()).collect());
        sqlx::query(
            "INSERT INTO predictions (model_id, image_id, boxes, best_candidate, embedding) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (model_id, image_id) DO UPDATE SET boxes = excluded.boxes, \
             best_candidate = excluded.best_candidate, embedding = excluded.embedding, \
             scored_at = excluded.scored_at",
        )
        .bind(model_id)
        .bind(prediction.image_id)
        .bind(serde_json::to_string(&prediction.boxes).map_err(ApiError::internal)?)
        .bind(f64::from(prediction.best_candidate_score))
        .bind(embedding)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM image_scores WHERE model_id = $1 AND image_id = $2")
            .bind(model_id)
            .bind(prediction.image_id)
            .execute(&mut *tx)
            .await?;
        for score in &prediction.scores {
            sqlx::query(
                "INSERT INTO image_scores (model_id, image_id, strategy, aggregation, score) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (model_id, strategy, aggregation, image_id) DO UPDATE SET score = excluded.score",
            )
            .bind(model_id)
            .bind(prediction.image_id)
            .bind(score.strategy.as_str())
            .bind(score.aggregation.as_str())
            .bind(f64::from(score.score))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE images SET status = 'prelabeled' WHERE id = $1 AND status = 'new'")
            .bind(prediction.image_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct PendingQuery {
    model_id: Option<i64>,
    limit: Option<u32>,
}

async fn pending(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    QueryParams(query): QueryParams<PendingQuery>,
) -> Result<Json<PendingImages>, ApiError> {
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let mut conn = state.db.acquire().await?;
    let model = resolve_model(&mut conn, project_id, query.model_id).await?;
    let image_ids = unscored_images(
        &mut conn,
        project_id,
        model.id,
        query.limit.unwrap_or(100).min(MAX_LIMIT),
    )
    .await?;
    Ok(Json(PendingImages {
        model_id: model.id,
        image_ids,
    }))
}

/// Unlabeled images of the project that `model_id` has not predicted yet, oldest first.
pub async fn unscored_images(
    conn: &mut AnyConnection,
    project_id: i64,
    model_id: i64,
    limit: u32,
) -> Result<Vec<i64>, ApiError> {
    let sql = format!(
        "SELECT id FROM images i WHERE project_id = $1 AND status IN {UNLABELED} AND NOT EXISTS \
         (SELECT 1 FROM predictions p WHERE p.model_id = $2 AND p.image_id = i.id) ORDER BY id LIMIT $3"
    );
    Ok(sqlx::query_scalar(crate::db::constant_sql(sql))
        .bind(project_id)
        .bind(model_id)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?)
}

/// The named model (which must belong to the project), or the project's active student.
async fn resolve_model(
    conn: &mut AnyConnection,
    project_id: i64,
    model_id: Option<i64>,
) -> Result<RegisteredModel, ApiError> {
    let model = match model_id {
        Some(id) => Some(load_model(conn, id).await?).filter(|m| m.project_id == project_id),
        None => active_student(conn, project_id).await?,
    };
    model.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_student",
            "This project has no student model yet: upload one on the Models page.",
        )
    })
}

#[derive(Debug, Deserialize)]
struct QueueQuery {
    strategy: Option<String>,
    aggregation: Option<String>,
    model_id: Option<i64>,
    limit: Option<u32>,
    seed: Option<u64>,
}

async fn queue(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    QueryParams(query): QueryParams<QueueQuery>,
) -> Result<Json<Queue>, ApiError> {
    let strategy_name = query.strategy.as_deref().unwrap_or("least_confidence");
    let strategy = Strategy::parse(strategy_name).ok_or_else(|| {
        let known: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::bad_request(
            "unknown_strategy",
            format!("Unknown strategy {strategy_name:?}; use one of {}.", known.join(", ")),
        )
    })?;
    let aggregation = match query.aggregation.as_deref() {
        None => Aggregation::Max,
        Some(text) => Aggregation::parse(text)
            .ok_or_else(|| ApiError::bad_request("unknown_aggregation", "aggregation must be max, mean or sum."))?,
    };
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT) as usize;
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let mut conn = state.db.acquire().await?;
    let ranking = Ranking {
        strategy,
        aggregation,
        model_id: query.model_id,
        seed: query.seed,
    };
    Ok(Json(rank(&state, &mut conn, project_id, ranking, limit).await?))
}

/// How to order a project's unlabeled images.
#[derive(Debug, Clone, Copy)]
pub struct Ranking {
    /// By what.
    pub strategy: Strategy,
    /// How an image's detections combine into its score.
    pub aggregation: Aggregation,
    /// The model whose predictions rank them (the active student when absent).
    pub model_id: Option<i64>,
    /// The random order's seed (the project's split seed when absent).
    pub seed: Option<u64>,
}

/// The first `limit` images in `ranking`'s order: the queue's answer, and where the shared
/// "Next" starts.
pub async fn rank(
    state: &AppState,
    conn: &mut AnyConnection,
    project_id: i64,
    Ranking {
        strategy,
        aggregation,
        model_id,
        seed,
    }: Ranking,
    limit: usize,
) -> Result<Queue, ApiError> {
    if strategy == Strategy::Random {
        let project = crate::projects::load_project(conn, project_id).await?;
        let seed = seed.unwrap_or(u64::from(project.split_seed));
        let mut entries: Vec<QueueEntry> = unlabeled(conn, project_id)
            .await?
            .into_iter()
            .map(|(image_id, file_name)| QueueEntry {
                image_id,
                file_name,
                score: uncertainty::random_score(image_id, seed),
            })
            .collect();
        sort_and_cut(&mut entries, limit);
        return Ok(Queue {
            strategy,
            aggregation,
            model_id: None,
            entries,
            unscored: 0,
        });
    }
    if strategy == Strategy::LabelErrors {
        let (model, entries, unseen) = crate::label_errors::ranked(state, conn, project_id, model_id, limit).await?;
        return Ok(Queue {
            strategy,
            aggregation,
            model_id: Some(model.id),
            entries,
            unscored: unseen,
        });
    }
    let model = resolve_model(conn, project_id, model_id).await?;
    let unscored = count_unscored(conn, project_id, model.id).await?;
    let entries = match strategy {
        Strategy::Disagreement => by_disagreement(conn, project_id, &model, limit).await?,
        Strategy::Diversity => by_diversity(conn, project_id, &model, limit).await?,
        _ => {
            let sql = format!(
                "SELECT i.id, i.file_name, s.score FROM image_scores s JOIN images i ON i.id = s.image_id \
                 WHERE s.model_id = $1 AND s.strategy = $2 AND s.aggregation = $3 AND i.project_id = $4 \
                 AND i.status IN {UNLABELED} ORDER BY s.score DESC, i.id LIMIT $5"
            );
            let rows: Vec<(i64, String, f64)> = sqlx::query_as(crate::db::constant_sql(sql))
                .bind(model.id)
                .bind(strategy.as_str())
                .bind(aggregation.as_str())
                .bind(project_id)
                .bind(limit as i64)
                .fetch_all(&mut *conn)
                .await?;
            rows.into_iter()
                .map(|(image_id, file_name, score)| QueueEntry {
                    image_id,
                    file_name,
                    score: score as f32,
                })
                .collect()
        }
    };
    Ok(Queue {
        strategy,
        aggregation,
        model_id: Some(model.id),
        entries,
        unscored,
    })
}

async fn unlabeled(conn: &mut AnyConnection, project_id: i64) -> Result<Vec<(i64, String)>, ApiError> {
    let sql = format!("SELECT id, file_name FROM images WHERE project_id = $1 AND status IN {UNLABELED} ORDER BY id");
    Ok(sqlx::query_as(crate::db::constant_sql(sql))
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?)
}

async fn count_unscored(conn: &mut AnyConnection, project_id: i64, model_id: i64) -> Result<u64, ApiError> {
    let sql = format!(
        "SELECT COUNT(*) FROM images i WHERE project_id = $1 AND status IN {UNLABELED} AND NOT EXISTS \
         (SELECT 1 FROM predictions p WHERE p.model_id = $2 AND p.image_id = i.id)"
    );
    let count: i64 = sqlx::query_scalar(crate::db::constant_sql(sql))
        .bind(project_id)
        .bind(model_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(count as u64)
}

/// Highest score first; ties by image id so the order is stable.
fn sort_and_cut(entries: &mut Vec<QueueEntry>, limit: usize) {
    entries.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.image_id.cmp(&b.image_id)));
    entries.truncate(limit);
}

/// Teacher boxes against the student's predictions, on unlabeled images the teacher has labeled.
async fn by_disagreement(
    conn: &mut AnyConnection,
    project_id: i64,
    model: &RegisteredModel,
    limit: usize,
) -> Result<Vec<QueueEntry>, ApiError> {
    let sql = format!(
        "SELECT i.id, i.file_name, p.boxes FROM images i JOIN predictions p ON p.image_id = i.id AND p.model_id = $1 \
         WHERE i.project_id = $2 AND i.status IN {UNLABELED} \
         AND EXISTS (SELECT 1 FROM boxes b WHERE b.image_id = i.id AND b.source = 'teacher')"
    );
    let rows: Vec<(i64, String, String)> = sqlx::query_as(crate::db::constant_sql(sql))
        .bind(model.id)
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for (image_id, file_name, boxes) in rows {
        let teacher: Vec<(i64, f64, f64, f64, f64)> =
            sqlx::query_as("SELECT class_id, x0, y0, x1, y1 FROM boxes WHERE image_id = $1 AND source = 'teacher'")
                .bind(image_id)
                .fetch_all(&mut *conn)
                .await?;
        let teacher: Vec<uncertainty::ClassBox> = teacher
            .into_iter()
            .map(|(c, x0, y0, x1, y1)| (c as u32, [x0 as f32, y0 as f32, x1 as f32, y1 as f32]))
            .collect();
        let predicted: Vec<PredictedBox> = serde_json::from_str(&boxes).map_err(ApiError::internal)?;
        let student: Vec<uncertainty::ClassBox> = predicted
            .iter()
            .filter_map(|b| {
                let class = model.class_map.get(b.class_index as usize).copied().flatten()?;
                Some((class, [b.x0, b.y0, b.x1, b.y1]))
            })
            .collect();
        entries.push(QueueEntry {
            image_id,
            file_name,
            score: uncertainty::disagreement(&teacher, &student),
        });
    }
    sort_and_cut(&mut entries, limit);
    Ok(entries)
}

/// k-center greedy over the model's embeddings: labeled images are the centres.
async fn by_diversity(
    conn: &mut AnyConnection,
    project_id: i64,
    model: &RegisteredModel,
    limit: usize,
) -> Result<Vec<QueueEntry>, ApiError> {
    if model.embedding_len.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_embedding",
            format!(
                "Model {} has no `embedding` output, so it cannot rank by diversity.",
                model.file_name
            ),
        ));
    }
    let sql = format!(
        "SELECT i.id, i.file_name, i.status IN {UNLABELED}, p.embedding FROM images i \
         JOIN predictions p ON p.image_id = i.id AND p.model_id = $1 \
         WHERE i.project_id = $2 AND p.embedding IS NOT NULL ORDER BY i.id"
    );
    let rows: Vec<(i64, String, Flag, Vec<u8>)> = sqlx::query_as(crate::db::constant_sql(sql))
        .bind(model.id)
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let decode = |bytes: &[u8]| -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let (candidates, centres): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, _, Flag(unlabeled), _)| *unlabeled);
    // k-center greedy is quadratic in the images: a blocking thread's work, not the executor's.
    let picked = tokio::task::spawn_blocking(move || {
        let candidate_vectors: Vec<Vec<f32>> = candidates.iter().map(|(_, _, _, e)| decode(e)).collect();
        let centre_vectors: Vec<Vec<f32>> = centres.iter().map(|(_, _, _, e)| decode(e)).collect();
        let candidate_refs: Vec<&[f32]> = candidate_vectors.iter().map(Vec::as_slice).collect();
        let centre_refs: Vec<&[f32]> = centre_vectors.iter().map(Vec::as_slice).collect();
        uncertainty::k_center_greedy(&candidate_refs, &centre_refs, limit)
            .into_iter()
            .map(|(index, distance)| QueueEntry {
                image_id: candidates[index].0,
                file_name: candidates[index].1.clone(),
                score: distance,
            })
            .collect()
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(picked)
}
