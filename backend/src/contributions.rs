//! Per-person counts on the project page (`GET /api/projects/{pid}/contributions`): for each
//! member, and anyone who worked here before leaving, the images whose latest submission is
//! theirs and how review judged them, and the decisions they made as a reviewer — read from the
//! review log, so the figures follow every submit, approve, reject and reopen — and the unlabeled
//! images assigned to them.

use std::collections::BTreeMap;

use api::{Contribution, Role};
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::AppState;
use crate::access::ProjectAccess;
use crate::error::ApiError;
use crate::predictions::UNLABELED;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/projects/{pid}/contributions", get(contributions))
}

async fn contributions(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
) -> Result<Json<Vec<Contribution>>, ApiError> {
    let project_id = access.project_id;
    let mut conn = state.db.acquire().await?;
    let mut people: BTreeMap<String, Contribution> = BTreeMap::new();
    let members: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.username, m.role FROM project_members m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    for (username, role) in members {
        person(&mut people, username).role = Role::parse(&role);
    }
    // Each image counts for whoever submitted it last, as long as it is in review or judged.
    let submitted: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT r.author, COUNT(*), COUNT(*) FILTER (WHERE i.status = 'approved'),
                COUNT(*) FILTER (WHERE i.status = 'rejected')
           FROM images i
           JOIN review_events r ON r.project_id = i.project_id AND r.image_id = i.id
          WHERE i.project_id = $1 AND i.status IN ('submitted', 'approved', 'rejected')
            AND r.author IS NOT NULL
            AND r.seq = (SELECT MAX(seq) FROM review_events l
                          WHERE l.project_id = $1 AND l.image_id = i.id AND l.status = 'submitted')
          GROUP BY r.author",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    for (username, labeled, approved, rejected) in submitted {
        let entry = person(&mut people, username);
        entry.labeled = labeled as u64;
        entry.approved = approved as u64;
        entry.rejected = rejected as u64;
    }
    let reviewed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT author, COUNT(*) FROM review_events
          WHERE project_id = $1 AND status IN ('approved', 'rejected') AND author IS NOT NULL
          GROUP BY author",
    )
    .bind(project_id)
    .fetch_all(&mut *conn)
    .await?;
    for (username, count) in reviewed {
        person(&mut people, username).reviewed = count as u64;
    }
    let sql = format!(
        "SELECT u.username, COUNT(*) FROM images i JOIN users u ON u.id = i.assignee_id
          WHERE i.project_id = $1 AND i.status IN {UNLABELED} GROUP BY u.username"
    );
    let assigned: Vec<(String, i64)> = sqlx::query_as(crate::db::constant_sql(sql))
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
    for (username, count) in assigned {
        person(&mut people, username).to_do = count as u64;
    }
    Ok(Json(people.into_values().collect()))
}

/// `username`'s entry, made empty on first mention.
fn person(people: &mut BTreeMap<String, Contribution>, username: String) -> &mut Contribution {
    people.entry(username.clone()).or_insert(Contribution {
        username,
        role: None,
        labeled: 0,
        approved: 0,
        rejected: 0,
        reviewed: 0,
        to_do: 0,
    })
}
