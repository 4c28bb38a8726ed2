//! Projects and their ontology: `/api/projects`.

use std::collections::{BTreeMap, HashMap, HashSet};

use api::{BoundingBox, ClassRemoval, ClassSpec, NewProject, ObjectClass, OpKind, Project, ProjectPatch, SplitRatios};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use sqlx::{AnyConnection, FromRow};

use crate::AppState;
use crate::access::{Caller, ProjectAccess};
use crate::annotations::{BOX_COLUMNS, BoxRow, delete_box, record_box_event};
use crate::error::ApiError;
use crate::extract::JsonBody;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list).post(create))
        .route("/projects/{pid}", get(read).patch(update))
}

/// The projects the caller is a member of (an admin: all of them).
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Project>>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let mut projects = load_projects(&mut conn, None).await?;
    if caller.user.is_admin {
        projects.iter_mut().for_each(|p| p.role = Some(api::Role::Owner));
    } else {
        let mine: HashMap<i64, api::Role> = crate::members::projects_of(&state.db, caller.user.id)
            .await?
            .into_iter()
            .collect();
        projects.retain_mut(|project| {
            project.role = mine.get(&project.id).copied();
            project.role.is_some()
        });
    }
    Ok(Json(projects))
}

async fn read(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
) -> Result<Json<Project>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let mut project = load_project(&mut conn, access.project_id).await?;
    project.role = Some(access.role);
    Ok(Json(project))
}

/// Creates a project owned by the caller.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<NewProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let body = body.validate()?;
    let mut tx = crate::db::write_transaction(&state.db).await?;
    ensure_name_free(&mut tx, &body.name, None).await?;
    let project_id: i64 = sqlx::query_scalar("INSERT INTO projects (name) VALUES ($1) RETURNING id")
        .bind(&body.name)
        .fetch_one(&mut *tx)
        .await?;
    replace_classes(&mut tx, project_id, &body.classes).await?;
    crate::members::set_role(&mut tx, project_id, caller.user.id, api::Role::Owner).await?;
    let mut project = load_project(&mut tx, project_id).await?;
    project.role = Some(api::Role::Owner);
    tx.commit().await?;
    tracing::info!(project_id, name = %project.name, owner = caller.user.id, "project created");
    Ok((StatusCode::CREATED, Json(project)))
}

async fn update(
    State(state): State<AppState>,
    Extension(access): Extension<ProjectAccess>,
    JsonBody(patch): JsonBody<ProjectPatch>,
) -> Result<Json<Project>, ApiError> {
    let project_id = access.project_id;
    let mut tx = crate::db::write_transaction(&state.db).await?;
    load_project(&mut tx, project_id).await?;
    if let Some(name) = &patch.name {
        let name = api::validate_project_name(name)?;
        ensure_name_free(&mut tx, &name, Some(project_id)).await?;
        sqlx::query("UPDATE projects SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(split) = patch.split {
        let split = split.validate()?;
        sqlx::query("UPDATE projects SET train_pct = $1, val_pct = $2, test_pct = $3 WHERE id = $4")
            .bind(i64::from(split.train_pct))
            .bind(i64::from(split.val_pct))
            .bind(i64::from(split.test_pct))
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(seed) = patch.split_seed {
        sqlx::query("UPDATE projects SET split_seed = $1 WHERE id = $2")
            .bind(i64::from(seed))
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(classes) = &patch.classes {
        let classes = api::validate_classes(classes)?;
        move_boxes_of_removed_classes(&mut tx, project_id, &classes, &patch.removed_class_boxes).await?;
        replace_classes(&mut tx, project_id, &classes).await?;
    }
    let mut project = load_project(&mut tx, project_id).await?;
    project.role = Some(access.role);
    tx.commit().await?;
    Ok(Json(project))
}

/// 404 unless the project exists.
pub async fn ensure_exists(db: &sqlx::AnyPool, project_id: i64) -> Result<(), ApiError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_optional(db)
        .await?;
    found
        .map(drop)
        .ok_or_else(|| ApiError::not_found(format_args!("project {project_id}")))
}

/// The project's class ids for `names` (matched case-insensitively), creating the classes it
/// lacks at the end of its list. Returns the ids in `names` order and the names created.
pub async fn ensure_classes(
    conn: &mut AnyConnection,
    project_id: i64,
    names: &[String],
) -> Result<(Vec<u32>, Vec<String>), ApiError> {
    let existing = class_names(conn, project_id).await?;
    let mut specs: Vec<ClassSpec> = existing
        .iter()
        .map(|(id, name)| ClassSpec {
            id: Some(*id),
            name: name.clone(),
            prompt: None,
            color: None,
        })
        .collect();
    let mut created = Vec::new();
    for name in names {
        if !specs.iter().any(|s| s.name.to_lowercase() == name.to_lowercase()) {
            specs.push(ClassSpec::named(name.clone()));
            created.push(name.clone());
        }
    }
    if !created.is_empty() {
        let start: i64 = sqlx::query_scalar("SELECT next_class_id FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(&mut *conn)
            .await?;
        let start = u32::try_from(start).map_err(ApiError::internal)?;
        let position = existing.len() as i64;
        for (offset, name) in created.iter().enumerate() {
            let name = api::validate_classes(&[ClassSpec::named(name.clone())])?.remove(0).name;
            let class_id = start + offset as u32;
            sqlx::query("INSERT INTO classes (project_id, id, position, name, color) VALUES ($1, $2, $3, $4, $5)")
                .bind(project_id)
                .bind(i64::from(class_id))
                .bind(position + offset as i64)
                .bind(&name)
                .bind(api::default_class_color(class_id))
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("UPDATE projects SET next_class_id = $1 WHERE id = $2")
            .bind(i64::from(start + created.len() as u32))
            .bind(project_id)
            .execute(&mut *conn)
            .await?;
    }
    let all = class_names(conn, project_id).await?;
    let ids = names
        .iter()
        .map(|name| {
            all.iter()
                .find(|(_, n)| n.to_lowercase() == name.to_lowercase())
                .map_or(0, |(id, _)| *id)
        })
        .collect();
    Ok((ids, created))
}

/// The project's classes as (id, name), in the ontology's order.
async fn class_names(conn: &mut AnyConnection, project_id: i64) -> Result<Vec<(u32, String)>, ApiError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM classes WHERE project_id = $1 ORDER BY position")
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter()
        .map(|(id, name)| Ok((u32::try_from(id).map_err(ApiError::internal)?, name)))
        .collect()
}

/// The id of the project with this name (case-insensitive).
pub async fn find_by_name(db: &sqlx::AnyPool, name: &str) -> Result<Option<i64>, ApiError> {
    Ok(sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
        .bind(name.trim())
        .fetch_optional(db)
        .await?)
}

/// Creates a project with no classes; for the CLI and imports.
pub async fn create_empty(db: &sqlx::AnyPool, name: &str) -> Result<i64, ApiError> {
    let name = api::validate_project_name(name)?;
    let mut conn = db.acquire().await?;
    ensure_name_free(&mut conn, &name, None).await?;
    Ok(
        sqlx::query_scalar("INSERT INTO projects (name) VALUES ($1) RETURNING id")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// 409 when another project already has this name (case-insensitively).
async fn ensure_name_free(conn: &mut AnyConnection, name: &str, except_project: Option<i64>) -> Result<(), ApiError> {
    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE name = $1 AND id IS DISTINCT FROM $2")
        .bind(name)
        .bind(except_project)
        .fetch_optional(&mut *conn)
        .await?;
    match taken {
        Some(_) => Err(ApiError::conflict(
            "project_exists",
            format!("A project named \"{name}\" already exists."),
        )),
        None => Ok(()),
    }
}

/// Before classes disappear, their boxes are moved or deleted as the client said; a removed class
/// with boxes and no instruction is refused, so no box is ever left pointing at nothing.
async fn move_boxes_of_removed_classes(
    conn: &mut AnyConnection,
    project_id: i64,
    kept: &[ClassSpec],
    removals: &[ClassRemoval],
) -> Result<(), ApiError> {
    let current = class_names(conn, project_id).await?;
    let kept_ids: HashSet<u32> = kept.iter().filter_map(|c| c.id).collect();
    for (class_id, name) in current.into_iter().filter(|(id, _)| !kept_ids.contains(id)) {
        let box_count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM boxes WHERE class_id = $1 AND image_id IN (SELECT id FROM images WHERE project_id = $2)",
        )
        .bind(i64::from(class_id))
        .bind(project_id)
        .fetch_one(&mut *conn)
        .await?;
        if box_count == 0 {
            continue;
        }
        let Some(removal) = removals.iter().find(|r| r.class_id == class_id) else {
            return Err(ApiError::conflict(
                "class_in_use",
                format!(
                    "Class \"{name}\" has {box_count} boxes: say whether to move them to another class or delete them."
                ),
            ));
        };
        if let Some(target) = removal.move_to
            && !kept_ids.contains(&target)
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_class",
                format!("Boxes of \"{name}\" can only move to a class the project keeps."),
            ));
        }
        // Box by box, so each change is numbered and logged like an edit in the editor.
        let boxes: Vec<BoxRow> = sqlx::query_as(crate::db::constant_sql(format!(
            "SELECT {BOX_COLUMNS} FROM boxes WHERE class_id = $1 \
             AND image_id IN (SELECT id FROM images WHERE project_id = $2) ORDER BY rowid"
        )))
        .bind(i64::from(class_id))
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?;
        for row in boxes {
            let image_id = row.image_id;
            let before = row.into_box();
            match removal.move_to {
                Some(target) => {
                    let after = BoundingBox {
                        class_id: target,
                        revision: before.revision + 1,
                        ..before.clone()
                    };
                    sqlx::query("UPDATE boxes SET class_id = $1, revision = $2 WHERE id = $3")
                        .bind(i64::from(after.class_id))
                        .bind(i64::from(after.revision))
                        .bind(&after.id)
                        .execute(&mut *conn)
                        .await?;
                    record_box_event(
                        conn,
                        project_id,
                        image_id,
                        OpKind::Update,
                        Some(&before),
                        Some(&after),
                        None,
                    )
                    .await?;
                }
                None => {
                    delete_box(conn, project_id, image_id, &before, None).await?;
                }
            }
        }
        tracing::info!(project_id, class_id, box_count, move_to = ?removal.move_to, "class removed");
    }
    Ok(())
}

/// Makes the project's classes exactly `classes`, in that order. Entries with an id keep it (it
/// must exist); new entries get fresh ids from the project's counter, so ids are never reused.
async fn replace_classes(conn: &mut AnyConnection, project_id: i64, classes: &[ClassSpec]) -> Result<(), ApiError> {
    let existing: HashSet<i64> = sqlx::query_scalar("SELECT id FROM classes WHERE project_id = $1")
        .bind(project_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    if let Some(unknown) = classes
        .iter()
        .filter_map(|c| c.id)
        .find(|id| !existing.contains(&i64::from(*id)))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_class",
            format!("Class id {unknown} does not belong to this project."),
        ));
    }
    let mut next_class_id: i64 = sqlx::query_scalar("SELECT next_class_id FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_one(&mut *conn)
        .await?;
    // Delete and re-insert: renames that swap two names would otherwise trip the unique index
    // halfway through.
    sqlx::query("DELETE FROM classes WHERE project_id = $1")
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    for (position, class) in classes.iter().enumerate() {
        let class_id = match class.id {
            Some(id) => i64::from(id),
            None => {
                next_class_id += 1;
                next_class_id - 1
            }
        };
        let color = class
            .color
            .clone()
            .unwrap_or_else(|| api::default_class_color(u32::try_from(class_id).unwrap_or_default()).to_owned());
        sqlx::query(
            "INSERT INTO classes (project_id, id, position, name, color, prompt) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project_id)
        .bind(class_id)
        .bind(position as i64)
        .bind(&class.name)
        .bind(color)
        .bind(&class.prompt)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE projects SET next_class_id = $1 WHERE id = $2")
        .bind(next_class_id)
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(FromRow)]
struct ProjectRow {
    id: i64,
    name: String,
    #[sqlx(try_from = "i64")]
    train_pct: u8,
    #[sqlx(try_from = "i64")]
    val_pct: u8,
    #[sqlx(try_from = "i64")]
    test_pct: u8,
    #[sqlx(try_from = "i64")]
    split_seed: u32,
    created_at: String,
}

#[derive(FromRow)]
struct ClassRow {
    project_id: i64,
    #[sqlx(try_from = "i64")]
    id: u32,
    name: String,
    color: String,
    prompt: Option<String>,
}

pub async fn load_project(conn: &mut AnyConnection, project_id: i64) -> Result<Project, ApiError> {
    load_projects(conn, Some(project_id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(format_args!("project {project_id}")))
}

/// All projects (newest first), or just one, with their classes in order.
async fn load_projects(conn: &mut AnyConnection, only: Option<i64>) -> Result<Vec<Project>, ApiError> {
    let rows: Vec<ProjectRow> = sqlx::query_as(
        "SELECT id, name, train_pct, val_pct, test_pct, split_seed, created_at FROM projects
         WHERE $1 IS NULL OR id = $1 ORDER BY id DESC",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let class_rows: Vec<ClassRow> = sqlx::query_as(
        "SELECT project_id, id, name, color, prompt FROM classes
         WHERE $1 IS NULL OR project_id = $1 ORDER BY project_id, position",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut classes: BTreeMap<i64, Vec<ObjectClass>> = BTreeMap::new();
    for row in class_rows {
        classes.entry(row.project_id).or_default().push(ObjectClass {
            id: row.id,
            name: row.name,
            color: row.color,
            prompt: row.prompt,
        });
    }
    Ok(rows
        .into_iter()
        .map(|row| Project {
            id: row.id,
            classes: classes.remove(&row.id).unwrap_or_default(),
            name: row.name,
            split: SplitRatios {
                train_pct: row.train_pct,
                val_pct: row.val_pct,
                test_pct: row.test_pct,
            },
            split_seed: row.split_seed,
            created_at: row.created_at,
            role: None,
        })
        .collect())
}
