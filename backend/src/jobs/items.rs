//! A job's images as items that several processes share (a teacher job on two workers): the
//! job's holder lists them once, and every process working on the job claims a few at a time
//! under a lease its heartbeat renews. An item is marked done in the same transaction that
//! stores its result, and only by the process that holds it — so no image is done twice, and
//! the images a dead process held go to the others once its lease expires.

use std::time::Duration;

use sqlx::AnyPool;

use crate::db::Engine;

/// Rows per INSERT statement when listing items.
const LIST_BATCH: usize = 200;

/// How far a job's items are.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub total: u64,
    pub done: u64,
    /// Not done yet, held by a process or not.
    pub open: u64,
}

/// Lists the job's images as its items, each done already or not, unless the job has items (it
/// is being resumed: its images are those it was started with).
pub async fn list_once(db: &AnyPool, job_id: i64, images: &[(i64, bool)]) -> Result<(), String> {
    let failed = |e: sqlx::Error| format!("cannot list the job's images: {e}");
    let mut tx = crate::db::write_transaction(db).await.map_err(failed)?;
    let listed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_items WHERE job_id = $1")
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed)?;
    if listed > 0 {
        return Ok(());
    }
    for batch in images.chunks(LIST_BATCH) {
        let rows: Vec<String> = (0..batch.len())
            .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO job_items (job_id, image_id, done) VALUES {}",
            rows.join(", ")
        );
        let mut insert = sqlx::query(crate::db::constant_sql(sql)).bind(job_id);
        for (image_id, done) in batch {
            insert = insert.bind(*image_id).bind(i64::from(*done));
        }
        insert.execute(&mut *tx).await.map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// Claims up to `n` of the job's open items nobody holds (or whose holder's lease expired, or
/// that `worker` itself holds from an earlier run of the job) for `worker`, oldest image first.
pub async fn claim(db: &AnyPool, job_id: i64, worker: &str, lease: Duration, n: usize) -> Result<Vec<i64>, String> {
    let skip_locked = match Engine::of(db) {
        Engine::Postgres => "FOR UPDATE SKIP LOCKED",
        Engine::Sqlite => "",
    };
    // Picked once, in a materialized CTE: as `image_id IN (SELECT … LIMIT n)` PostgreSQL may
    // run the subquery again for every row, each run skipping the rows the last one locked —
    // and claim every item at once.
    let sql = format!(
        "WITH picked AS MATERIALIZED (SELECT image_id FROM job_items WHERE job_id = $1 AND done = 0 \
         AND (lease_until IS NULL OR lease_until < $2 OR worker = $7) ORDER BY image_id LIMIT $3 {skip_locked}) \
         UPDATE job_items SET worker = $4, lease_until = $5 \
         WHERE job_id = $6 AND image_id IN (SELECT image_id FROM picked) RETURNING image_id"
    );
    let mut claimed: Vec<i64> = sqlx::query_scalar(crate::db::constant_sql(sql))
        .bind(job_id)
        .bind(crate::db::now())
        .bind(n as i64)
        .bind(worker)
        .bind(crate::db::after(lease))
        .bind(job_id)
        .bind(worker)
        .fetch_all(db)
        .await
        .map_err(|e| format!("cannot claim the job's images: {e}"))?;
    claimed.sort_unstable();
    Ok(claimed)
}

/// Marks an item this worker holds done, inside the transaction that stores its result.
/// `false` when the worker no longer holds it (its lease went to another process, which does it
/// instead): the caller rolls back.
pub async fn finish(
    tx: &mut sqlx::AnyConnection,
    job_id: i64,
    image_id: i64,
    worker: &str,
    error: Option<&str>,
) -> Result<bool, String> {
    let marked = sqlx::query(
        "UPDATE job_items SET done = 1, error = $1, lease_until = NULL \
         WHERE job_id = $2 AND image_id = $3 AND worker = $4 AND done = 0",
    )
    .bind(error)
    .bind(job_id)
    .bind(image_id)
    .bind(worker)
    .execute(&mut *tx)
    .await
    .map_err(|e| format!("cannot record a finished image: {e}"))?;
    Ok(marked.rows_affected() == 1)
}

/// Lets go of the job's images `worker` holds and has not done (its run of the job ended:
/// cancelled, failed, or another process took the job over).
pub async fn let_go(db: &AnyPool, job_id: i64, worker: &str) -> Result<(), String> {
    sqlx::query(
        "UPDATE job_items SET worker = NULL, lease_until = NULL WHERE job_id = $1 AND worker = $2 AND done = 0",
    )
    .bind(job_id)
    .bind(worker)
    .execute(db)
    .await
    .map_err(|e| format!("cannot let go of the job's images: {e}"))?;
    Ok(())
}

/// How far the job's items are.
pub async fn counts(db: &AnyPool, job_id: i64) -> Result<Counts, String> {
    let (total, done): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE done = 1) FROM job_items WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(db)
            .await
            .map_err(|e| format!("cannot count the job's images: {e}"))?;
    Ok(Counts {
        total: total as u64,
        done: done as u64,
        open: (total - done) as u64,
    })
}

/// What the job's items ended as.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Items done without an error, by this job or (already done when listed) before it.
    pub done: u64,
    /// Items that could not be done.
    pub failed: u64,
    /// How many processes did the job's items.
    pub workers: u64,
}

pub async fn outcome(db: &AnyPool, job_id: i64) -> Result<Outcome, String> {
    let (done, failed, workers): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE done = 1 AND error IS NULL), COUNT(*) FILTER (WHERE error IS NOT NULL), \
         COUNT(DISTINCT worker) FROM job_items WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
    .map_err(|e| format!("cannot sum up the job's images: {e}"))?;
    Ok(Outcome {
        done: done as u64,
        failed: failed as u64,
        workers: workers as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job of `images` images in a fresh SQLite studio.
    async fn job_with_images(images: i64) -> anyhow::Result<(tempfile::TempDir, AnyPool, Vec<i64>)> {
        let (dir, db) = crate::db::temporary_with_project().await?;
        sqlx::query("INSERT INTO jobs (project_id, kind) VALUES (1, 'teacher')")
            .execute(&db)
            .await?;
        let mut ids = Vec::new();
        for n in 0..images {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO images (project_id, sha256, file_name, extension, byte_size, width, height) \
                 VALUES (1, $1, $1, 'jpg', 1, 1, 1) RETURNING id",
            )
            .bind(format!("{n}"))
            .fetch_one(&db)
            .await?;
            ids.push(id);
        }
        Ok((dir, db, ids))
    }

    #[tokio::test]
    async fn workers_claim_disjoint_images_and_only_the_holder_finishes_one() -> anyhow::Result<()> {
        let (_dir, db, ids) = job_with_images(5).await?;
        // The first image was labeled before the job: listed as done.
        let listed: Vec<(i64, bool)> = ids.iter().map(|id| (*id, *id == ids[0])).collect();
        list_once(&db, 1, &listed).await.map_err(anyhow::Error::msg)?;
        // Listing again (a resumed job) changes nothing.
        list_once(&db, 1, &listed[..1]).await.map_err(anyhow::Error::msg)?;
        let lease = Duration::from_secs(60);
        let a = claim(&db, 1, "a", lease, 2).await.map_err(anyhow::Error::msg)?;
        let b = claim(&db, 1, "b", lease, 2).await.map_err(anyhow::Error::msg)?;
        assert_eq!(a, ids[1..3]);
        assert_eq!(b, ids[3..5]);
        assert!(
            claim(&db, 1, "c", lease, 2)
                .await
                .map_err(anyhow::Error::msg)?
                .is_empty()
        );

        let mut conn = db.acquire().await?;
        assert!(
            !finish(&mut conn, 1, a[0], "b", None)
                .await
                .map_err(anyhow::Error::msg)?,
            "not b's"
        );
        assert!(
            finish(&mut conn, 1, a[0], "a", None)
                .await
                .map_err(anyhow::Error::msg)?
        );
        assert!(
            !finish(&mut conn, 1, a[0], "a", None)
                .await
                .map_err(anyhow::Error::msg)?,
            "done once"
        );
        assert!(
            finish(&mut conn, 1, b[0], "b", Some("unreadable"))
                .await
                .map_err(anyhow::Error::msg)?
        );
        drop(conn);
        let counts = counts(&db, 1).await.map_err(anyhow::Error::msg)?;
        assert_eq!((counts.total, counts.done, counts.open), (5, 3, 2));
        let outcome = outcome(&db, 1).await.map_err(anyhow::Error::msg)?;
        assert_eq!((outcome.done, outcome.failed), (2, 1));
        Ok(())
    }

    #[tokio::test]
    async fn images_let_go_or_held_by_an_earlier_run_are_claimed_again() -> anyhow::Result<()> {
        let (_dir, db, ids) = job_with_images(4).await?;
        let listed: Vec<(i64, bool)> = ids.iter().map(|id| (*id, false)).collect();
        list_once(&db, 1, &listed).await.map_err(anyhow::Error::msg)?;
        let lease = Duration::from_secs(60);
        // A run that ended (cancelled) still holding two images: the same process resuming the
        // job takes them again at once.
        assert_eq!(
            claim(&db, 1, "a", lease, 2).await.map_err(anyhow::Error::msg)?,
            ids[..2]
        );
        assert_eq!(
            claim(&db, 1, "a", lease, 2).await.map_err(anyhow::Error::msg)?,
            ids[..2]
        );
        // Let go, they are anyone's.
        let_go(&db, 1, "a").await.map_err(anyhow::Error::msg)?;
        assert_eq!(claim(&db, 1, "b", lease, 4).await.map_err(anyhow::Error::msg)?, ids);
        Ok(())
    }

    #[tokio::test]
    async fn a_dead_holders_images_go_to_another_once_its_lease_expires() -> anyhow::Result<()> {
        let (_dir, db, ids) = job_with_images(3).await?;
        let listed: Vec<(i64, bool)> = ids.iter().map(|id| (*id, false)).collect();
        list_once(&db, 1, &listed).await.map_err(anyhow::Error::msg)?;
        let dead = claim(&db, 1, "dead", Duration::from_millis(1), 3)
            .await
            .map_err(anyhow::Error::msg)?;
        assert_eq!(dead, ids);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let taken = claim(&db, 1, "alive", Duration::from_secs(60), 3)
            .await
            .map_err(anyhow::Error::msg)?;
        assert_eq!(taken, ids);
        let mut conn = db.acquire().await?;
        assert!(
            !finish(&mut conn, 1, ids[0], "dead", None)
                .await
                .map_err(anyhow::Error::msg)?,
            "the dead one's result is refused"
        );
        assert!(
            finish(&mut conn, 1, ids[0], "alive", None)
                .await
                .map_err(anyhow::Error::msg)?
        );
        Ok(())
    }
}
