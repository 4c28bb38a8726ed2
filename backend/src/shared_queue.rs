//! The shared queue: `GET /api/projects/{pid}/next` hands each person the next image to work on
//! that nobody else holds (DESIGN: "the queue hands each annotator the top-ranked image that
//! nobody else holds"). Labeling starts with the person's own images a reviewer sent back and
//! those an owner assigned them (`assignments`; nobody else is offered those), then follows the
//! picked uncertainty ranking of the active student, or a random order of the person's own when
//! there is none (so two people starting together do not walk the same order); reviewing takes
//! submitted images oldest first. The image handed out stays that person's for a short while,
//! until their editor takes its lease.

use api::{NextImage, Role, Strategy, uncertainty};
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use sqlx::AnyConnection;

use crate::AppState;
use crate::access::{Caller, ProjectAccess};
use crate::error::ApiError;
use crate::extract::{PathParams, QueryParams};
use crate::predictions::{Ranking, UNLABELED, rank};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/{pid}/next", get(next))
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    /// `label` (the default) or `review`.
    mode: Option<String>,
    /// The labeling ranking (least confidence when absent); used when the project has an
    /// active student.
    strategy: Option<String>,
    /// The image the person is on, which is never "next".
    after: Option<i64>,
}

async fn next(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(access): Extension<ProjectAccess>,
    PathParams(project_id): PathParams<i64>,
    QueryParams(query): QueryParams<NextQuery>,
) -> Result<Json<NextImage>, ApiError> {
    let reviewing = match query.mode.as_deref() {
        None | Some("label") => false,
        Some("review") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "unknown_mode",
                format!("Unknown mode {other:?}; use label or review."),
            ));
        }
    };
    if reviewing && !access.role.allows(Role::Reviewer) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "Your role in this project ({}) cannot review; it needs reviewer.",
                access.role
            ),
        ));
    }
    let strategy = match query.strategy.as_deref() {
        None => Strategy::LeastConfidence,
        Some(name) => Strategy::parse(name)
            .ok_or_else(|| ApiError::bad_request("unknown_strategy", format!("Unknown strategy {name:?}.")))?,
    };
    let user_id = caller.user.id;
    let live = &state.events.live;
    let mut conn = state.db.acquire().await?;
    let (candidates, ranked_by) = if reviewing {
        (submitted(&mut conn, project_id).await?, None)
    } else {
        labeling_order(
            &state,
            &mut conn,
            project_id,
            strategy,
            &caller.user,
            live.held_count(&state.db, project_id).await?,
        )
        .await?
    };
    let (image_id, held_by_others) = live
        .hand_out_first(&state.db, project_id, user_id, &candidates, query.after)
        .await?;
    // The ranking that placed it, when one did.
    let strategy = match (ranked_by, image_id) {
        (Some((strategy, ranked)), Some(id)) if ranked.contains(&id) => Some(strategy),
        _ => None,
    };
    Ok(Json(NextImage {
        image_id,
        strategy,
        held_by_others,
    }))
}

/// What a person labels next, in order: their own images a reviewer sent back, the images an
/// owner assigned them, then unlabeled images nobody else is assigned — by the ranking when the
/// project has an active student that has scored them, then the rest in the person's own random
/// order. Also the ranking and the images it placed.
async fn labeling_order(
    state: &AppState,
    conn: &mut AnyConnection,
    project_id: i64,
    strategy: Strategy,
    user: &api::User,
    taken: usize,
) -> Result<(Vec<i64>, Option<(Strategy, Vec<i64>)>), ApiError> {
    let user_id = user.id;
    let to_fix: Vec<i64> = sqlx::query_scalar(
        "SELECT i.id FROM images i WHERE i.project_id = $1 AND i.status = 'rejected'
            AND (SELECT author FROM review_events r WHERE r.project_id = $1 AND r.image_id = i.id
                  AND r.status = 'submitted' ORDER BY seq DESC LIMIT 1) = $2
          ORDER BY i.id",
    )
    .bind(project_id)
    .bind(&user.username)
    .fetch_all(&mut *conn)
    .await?;
    // Images an owner assigned: this person's come next, everyone else's are not offered.
    let sql = format!(
        "SELECT id, assignee_id FROM images WHERE project_id = $1 AND status IN {UNLABELED} AND assignee_id IS NOT NULL ORDER BY id"
    );
    let assigned: Vec<(i64, i64)> = sqlx::query_as(crate::db::constant_sql(sql))
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let mine = assigned.iter().filter(|(_, to)| *to == user_id).map(|(id, _)| *id);
    let others: std::collections::HashSet<i64> = assigned
        .iter()
        .filter(|(_, to)| *to != user_id)
        .map(|(id, _)| *id)
        .collect();
    let ranking = Ranking {
        strategy,
        aggregation: api::Aggregation::Max,
        model_id: None,
        seed: None,
    };
    // Enough of the ranking to get past everything others hold, and the person's own image.
    let ranked = if strategy == Strategy::Random {
        Vec::new()
    } else {
        match rank(state, conn, project_id, ranking, taken + others.len() + 2).await {
            Ok(queue) => queue
                .entries
                .into_iter()
                .map(|e| e.image_id)
                .filter(|id| !others.contains(id))
                .collect(),
            // No student yet (or nothing it can rank): the random order below.
            Err(error) if error.status.is_client_error() => Vec::new(),
            Err(error) => return Err(error),
        }
    };
    let sql = format!("SELECT id FROM images WHERE project_id = $1 AND status IN {UNLABELED}");
    let mut rest: Vec<i64> = sqlx::query_scalar(crate::db::constant_sql(sql))
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    let project = crate::projects::load_project(conn, project_id).await?;
    let seed = u64::from(project.split_seed) ^ (user_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    rest.sort_by(|a, b| {
        uncertainty::random_score(*b, seed)
            .total_cmp(&uncertainty::random_score(*a, seed))
            .then(a.cmp(b))
    });
    rest.retain(|id| !others.contains(id));
    let mut order = to_fix;
    order.extend(mine);
    order.extend(&ranked);
    order.extend(rest);
    Ok((order, (!ranked.is_empty()).then_some((strategy, ranked))))
}

/// Submitted images, oldest submission first.
async fn submitted(conn: &mut AnyConnection, project_id: i64) -> Result<Vec<i64>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT i.id FROM images i WHERE i.project_id = $1 AND i.status = 'submitted'
         ORDER BY (SELECT MAX(seq) FROM review_events r WHERE r.project_id = $1 AND r.image_id = i.id), i.id",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?)
}
