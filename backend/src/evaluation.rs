//! `GET /api/projects/{pid}/evaluation` (the Quality page): every model version against the
//! human boxes of the approved images — mAP50, mAP50-95, per-class AP, precision, recall and
//! precision–recall curve, the confusion matrix (`train`, Ultralytics' definitions) — and how
//! far each student agrees with each teacher.
//!
//! The figures are computed on each request from the stored detections of the evaluation job
//! and the human boxes as they are now, so approving an image or fixing a box shows at once; an
//! image or model version that has no detections yet queues that job, and the answer carries it.

use std::collections::{HashMap, HashSet};

use api::evaluation::CONFUSION_CONFIDENCE;
use api::{
    Agreement, ClassEvaluation, ModelEvaluation, ModelRole, PredictedBox, ProjectEvaluation, RegisteredModel, Split,
};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Deserialize;
use sqlx::AnyConnection;
use train::{ConfusionMatrix, GroundTruth, Prediction};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};

// The page states the matrix's threshold from `api`; `train` applies its own: one number.
const _: () = assert!(CONFUSION_CONFIDENCE == ConfusionMatrix::CONFIDENCE);

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/{pid}/evaluation", get(evaluation))
}

#[derive(Debug, Deserialize)]
struct EvaluationQuery {
    /// Only approved images of this split (as an export of the approved images assigns them).
    split: Option<String>,
}

/// A model's detections on one image, mapped onto project classes (unmapped ones dropped):
/// `(class id, confidence, corners)`.
pub(crate) type Detections = Vec<(u32, f32, [f32; 4])>;

/// What a model version detected on the project's approved images: per image, its detections or
/// why the image could not be read. Images it has not seen are absent.
pub(crate) async fn approved_detections(
    conn: &mut AnyConnection,
    model: &RegisteredModel,
    image_id: Option<i64>,
) -> Result<HashMap<i64, Result<Detections, String>>, ApiError> {
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        "SELECT e.image_id, e.boxes, e.error FROM evaluation_detections e JOIN images i ON i.id = e.image_id \
         WHERE e.model_id = $1 AND i.status = 'approved' AND ($2 IS NULL OR i.id = $3)",
    )
    .bind(model.id)
    .bind(image_id)
    .bind(image_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for (image_id, boxes, error) in rows {
        let detected = match error {
            Some(reason) => Err(reason),
            None => {
                let boxes: Vec<PredictedBox> = serde_json::from_str(&boxes).map_err(ApiError::internal)?;
                Ok(boxes
                    .into_iter()
                    .filter_map(|b| {
                        let class_id = model.class_map.get(b.class_index as usize).copied().flatten()?;
                        Some((class_id, b.score, [b.x0, b.y0, b.x1, b.y1]))
                    })
                    .collect())
            }
        };
        found.insert(image_id, detected);
    }
    Ok(found)
}

/// The human boxes of approved images (or of one of them): `image id → (box id, class id,
/// corners)`.
pub(crate) async fn approved_human_boxes(
    conn: &mut AnyConnection,
    project_id: i64,
    image_id: Option<i64>,
) -> Result<HashMap<i64, Vec<(String, u32, [f32; 4])>>, ApiError> {
    let rows: Vec<(i64, String, i64, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT b.image_id, b.id, b.class_id, b.x0, b.y0, b.x1, b.y1 FROM boxes b JOIN images i ON i.id = b.image_id \
         WHERE i.project_id = $1 AND i.status = 'approved' AND b.source = 'human' AND ($2 IS NULL OR i.id = $3) \
         ORDER BY b.image_id, b.id",
    )
    .bind(project_id)
    .bind(image_id)
    .bind(image_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut boxes: HashMap<i64, Vec<(String, u32, [f32; 4])>> = HashMap::new();
    for (image_id, id, class_id, x0, y0, x1, y1) in rows {
        let corners = [x0 as f32, y0 as f32, x1 as f32, y1 as f32];
        boxes.entry(image_id).or_default().push((id, class_id as u32, corners));
    }
    Ok(boxes)
}

async fn evaluation(
    State(state): State<AppState>,
    PathParams(project_id): PathParams<i64>,
    QueryParams(query): QueryParams<EvaluationQuery>,
) -> Result<Json<ProjectEvaluation>, ApiError> {
    let split = match query.split.as_deref() {
        None | Some("") | Some("all") => None,
        Some(text) => Some(
            Split::parse(text)
                .ok_or_else(|| ApiError::bad_request("unknown_split", "split must be train, val, test or all."))?,
        ),
    };
    crate::projects::ensure_exists(&state.db, project_id).await?;
    let job = crate::jobs::evaluate::ensure_queued(&state.jobs, &state.db, project_id).await?;
    let mut conn = state.db.acquire().await?;
    let project = crate::projects::load_project(&mut conn, project_id).await?;

    // The approved images, in a fixed order that numbers them for `train`.
    let approved: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT id, fixed_split FROM images WHERE project_id = $1 AND status = 'approved' ORDER BY id")
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?;
    let keyed: Vec<(i64, Option<Split>)> = approved
        .iter()
        .map(|(id, fixed)| (*id, fixed.as_deref().and_then(Split::parse)))
        .collect();
    let splits = api::split::assign_splits(&keyed, project.split_seed, project.split);
    let images: Vec<i64> = keyed
        .iter()
        .zip(splits)
        .filter(|(_, assigned)| split.is_none_or(|wanted| *assigned == wanted))
        .map(|((id, _), _)| *id)
        .collect();
    let index_of_image: HashMap<i64, usize> = images.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let class_ids: Vec<u32> = project.classes.iter().map(|c| c.id).collect();
    let index_of_class: HashMap<u32, usize> = class_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();

    let human = approved_human_boxes(&mut conn, project_id, None).await?;
    let index_of_class = &index_of_class;
    let truth: Vec<GroundTruth> = human
        .iter()
        .filter_map(|(image_id, boxes)| Some((*index_of_image.get(image_id)?, boxes)))
        .flat_map(|(image, boxes)| {
            boxes.iter().filter_map(move |(_, class_id, corners)| {
                Some(GroundTruth {
                    image,
                    class_index: *index_of_class.get(class_id)?,
                    bbox: *corners,
                })
            })
        })
        .collect();

    let model_ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM models WHERE project_id = $1 ORDER BY id DESC")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    // Per model: its record, the images it saw and its predictions over them.
    let mut seen = Vec::with_capacity(model_ids.len());
    for model_id in model_ids {
        let model = crate::registry::load_model(&mut conn, model_id).await?;
        let detections = approved_detections(&mut conn, &model, None).await?;
        let mut unreadable = 0u64;
        let mut evaluated = HashSet::new();
        let mut predictions = Vec::new();
        for (image_id, detected) in detections {
            let Some(&image) = index_of_image.get(&image_id) else {
                continue; // another split
            };
            let Ok(boxes) = detected else {
                unreadable += 1;
                continue;
            };
            evaluated.insert(image);
            predictions.extend(boxes.into_iter().filter_map(|(class_id, score, bbox)| {
                Some(Prediction {
                    image,
                    class_index: *index_of_class.get(&class_id)?,
                    score,
                    bbox,
                })
            }));
        }
        seen.push((model, unreadable, evaluated, predictions));
    }
    drop(conn);

    let class_count = class_ids.len();
    let approved_images = images.len() as u64;
    let answer = tokio::task::spawn_blocking(move || {
        let models = seen
            .iter()
            .map(|(model, unreadable, evaluated, predictions)| {
                // Truths of the images this model saw: an unseen image is not a miss.
                let truth: Vec<GroundTruth> = truth.iter().filter(|t| evaluated.contains(&t.image)).cloned().collect();
                model_evaluation(model, *unreadable, evaluated.len(), &truth, predictions, &class_ids)
            })
            .collect();
        let agreement = agreements(&seen, class_count);
        ProjectEvaluation {
            approved_images,
            job,
            class_ids,
            models,
            agreement,
        }
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(answer))
}

fn model_evaluation(
    model: &RegisteredModel,
    unreadable: u64,
    evaluated: usize,
    truth: &[GroundTruth],
    predictions: &[Prediction],
    class_ids: &[u32],
) -> ModelEvaluation {
    let figures = train::evaluate(truth, predictions, class_ids.len());
    ModelEvaluation {
        model_id: model.id,
        role: model.role,
        file_name: model.file_name.clone(),
        evaluated_images: evaluated as u64,
        unreadable_images: unreadable,
        map50: figures.map50,
        map50_95: figures.map50_95,
        precision: figures.precision,
        recall: figures.recall,
        best_f1_confidence: figures.best_f1_confidence,
        classes: figures
            .classes
            .iter()
            .map(|c| ClassEvaluation {
                class_id: class_ids[c.class_index],
                truths: c.truths as u64,
                predictions: c.predictions as u64,
                ap50: c.ap50,
                ap50_95: c.ap50_95,
                precision: c.precision,
                recall: c.recall,
                pr_curve: c.pr_curve.iter().map(|&p| p as f32).collect(),
            })
            .collect(),
        confusion: figures.confusion.counts,
    }
}

/// Each student against each teacher on the images both saw: the teacher's confident boxes
/// taken as the truth of the confusion matrix, whose diagonal counts the agreements.
fn agreements(seen: &[(RegisteredModel, u64, HashSet<usize>, Vec<Prediction>)], class_count: usize) -> Vec<Agreement> {
    let confident = |predictions: &[Prediction], images: &HashSet<usize>| -> Vec<Prediction> {
        predictions
            .iter()
            .filter(|p| p.score > CONFUSION_CONFIDENCE && images.contains(&p.image))
            .cloned()
            .collect()
    };
    let mut pairs = Vec::new();
    for (teacher, _, teacher_images, teacher_predictions) in seen.iter().filter(|s| s.0.role == ModelRole::Teacher) {
        for (student, _, student_images, student_predictions) in seen.iter().filter(|s| s.0.role == ModelRole::Student)
        {
            let both: HashSet<usize> = teacher_images.intersection(student_images).copied().collect();
            if both.is_empty() {
                continue;
            }
            let teacher_boxes = confident(teacher_predictions, &both);
            let student_boxes = confident(student_predictions, &both);
            let as_truth: Vec<GroundTruth> = teacher_boxes
                .iter()
                .map(|p| GroundTruth {
                    image: p.image,
                    class_index: p.class_index,
                    bbox: p.bbox,
                })
                .collect();
            let matrix = ConfusionMatrix::of(&as_truth, &student_boxes, class_count);
            let agreed: u64 = (0..class_count).map(|c| u64::from(matrix.counts[c][c])).sum();
            let total = (teacher_boxes.len() + student_boxes.len()) as u64;
            pairs.push(Agreement {
                teacher_id: teacher.id,
                student_id: student.id,
                images: both.len() as u64,
                teacher_boxes: teacher_boxes.len() as u64,
                student_boxes: student_boxes.len() as u64,
                agreed,
                f1: if total == 0 {
                    1.0
                } else {
                    2.0 * agreed as f64 / total as f64
                },
            });
        }
    }
    pairs
}
