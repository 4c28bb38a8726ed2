//! Presence and image leases across the `serve` replicas sharing one PostgreSQL database: each
//! replica writes its own connections of a project to the `presence` table (and says so with a
//! `NOTIFY`), and reads the others', which its live channel then shows beside its own and counts
//! when it hands out image leases. A replica renews its rows every [`REFRESH`]; rows not renewed
//! within [`LASTS`] (a replica that died) are ignored.
//!
//! Which waiting editor gets a free lease is decided the same way everywhere — the lowest
//! connection number among everyone waiting on the image, whichever replica they are on — and
//! each replica grants it only to its own connections, so a lease is never granted twice by two
//! replicas for the same vacancy. Two people opening the same free image on two replicas within
//! one notification's delay may both hold it for a moment; their edits still merge in one order.

use std::collections::HashMap;
use std::time::Duration;

use api::Presence;
use sqlx::AnyPool;

use super::Here;
use crate::db::Flag;

/// How often a replica rewrites its rows, and re-reads the others' (a lost notification, a
/// replica that died).
pub(super) const REFRESH: Duration = Duration::from_secs(10);
/// How long a replica's rows count without being renewed.
const LASTS: Duration = Duration::from_secs(30);

/// Replaces `process`'s rows of the project with `people`.
pub(super) async fn write_own(
    db: &AnyPool,
    process: &str,
    project_id: i64,
    people: &[Here],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM presence WHERE process = $1 AND project_id = $2")
        .bind(process)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    let alive_until = crate::db::after(LASTS);
    for here in people {
        let p = &here.presence;
        sqlx::query(
            "INSERT INTO presence (process, connection, project_id, user_id, username, image_id, editing, may_edit, \
             alive_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(process)
        .bind(p.connection as i64)
        .bind(project_id)
        .bind(p.user_id)
        .bind(&p.username)
        .bind(p.image_id)
        .bind(i64::from(p.editing))
        .bind(i64::from(here.may_edit))
        .bind(&alive_until)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The other replicas' live connections to the project.
pub(super) async fn read_others(db: &AnyPool, process: &str, project_id: i64) -> Result<Vec<Here>, sqlx::Error> {
    type Row = (i64, i64, String, Option<i64>, Flag, Flag);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT connection, user_id, username, image_id, editing, may_edit FROM presence \
         WHERE project_id = $1 AND process <> $2 AND alive_until > $3",
    )
    .bind(project_id)
    .bind(process)
    .bind(crate::db::now())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(connection, user_id, username, image_id, Flag(editing), Flag(may_edit))| Here {
                presence: Presence {
                    connection: connection as u64,
                    user_id,
                    username,
                    image_id,
                    editing,
                },
                may_edit,
            },
        )
        .collect())
}

/// Gives every image's free lease to the longest-waiting editor on it (the lowest connection
/// number, among this replica's and the others') when that editor is one of `local`. Returns
/// whether it granted any.
pub(super) fn grant_free_leases(local: &mut HashMap<u64, Here>, others: &[Here]) -> bool {
    let everyone = || local.values().chain(others);
    let mut free: HashMap<i64, u64> = HashMap::new();
    for here in everyone().filter(|h| h.may_edit && !h.presence.editing) {
        let Some(image) = here.presence.image_id else { continue };
        let held = everyone().any(|h| h.presence.editing && h.presence.image_id == Some(image));
        if !held {
            let first = free.entry(image).or_insert(here.presence.connection);
            *first = (*first).min(here.presence.connection);
        }
    }
    let mut granted = false;
    for connection in free.into_values() {
        if let Some(next) = local.get_mut(&connection) {
            next.presence.editing = true;
            granted = true;
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(connection: u64, image_id: Option<i64>, editing: bool, may_edit: bool) -> Here {
        Here {
            presence: Presence {
                connection,
                user_id: connection as i64,
                username: format!("u{connection}"),
                image_id,
                editing,
            },
            may_edit,
        }
    }

    #[test]
    fn a_free_lease_goes_to_the_lowest_waiting_connection_on_whichever_replica() {
        // Image 1: free, local 5 and remote 3 wait: the remote replica grants it, not this one.
        // Image 2: free, local 7 and remote 9 wait: 7 gets it here.
        // Image 3: held remotely: local 4 waits.
        // Image 4: free, only a local viewer: nobody gets it.
        let mut local: HashMap<u64, Here> = [
            here(5, Some(1), false, true),
            here(7, Some(2), false, true),
            here(4, Some(3), false, true),
            here(6, Some(4), false, false),
        ]
        .into_iter()
        .map(|h| (h.presence.connection, h))
        .collect();
        let others = [
            here(3, Some(1), false, true),
            here(9, Some(2), false, true),
            here(8, Some(3), true, true),
        ];
        assert!(grant_free_leases(&mut local, &others));
        let editing: Vec<u64> = {
            let mut e: Vec<u64> = local
                .values()
                .filter(|h| h.presence.editing)
                .map(|h| h.presence.connection)
                .collect();
            e.sort_unstable();
            e
        };
        assert_eq!(editing, vec![7]);
        // Nothing left to grant.
        assert!(!grant_free_leases(&mut local, &others));
    }
}
