//! Login attempts limited per account and per client address, so passwords cannot be guessed at
//! the speed of the network (OWASP's authentication cheat sheet). Failures are rows of
//! `login_failures`: every replica sharing the database counts the same attempts, and a restart
//! forgets none.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use sqlx::AnyPool;

use crate::error::ApiError;

/// How long a failed attempt counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed attempts one account may have within [`WINDOW`].
pub const PER_ACCOUNT: i64 = 5;
/// Failed attempts one address may have within [`WINDOW`] (several people behind one NAT).
pub const PER_ADDRESS: i64 = 30;

/// `Some(wait)` when this account or address has used up its attempts; the login must be
/// refused without even checking the password.
pub async fn blocked(db: &AnyPool, username: &str, address: Option<IpAddr>) -> Result<Option<Duration>, ApiError> {
    let mut wait: Option<Duration> = None;
    for (key, limit) in keys(username, address) {
        let (failures, oldest): (i64, Option<String>) =
            sqlx::query_as("SELECT COUNT(*), MIN(at) FROM login_failures WHERE key = $1 AND at > $2")
                .bind(&key)
                .bind(crate::db::ago(WINDOW))
                .fetch_one(db)
                .await?;
        if failures >= limit {
            let since = oldest
                .and_then(|at| humantime::parse_rfc3339(&at).ok())
                .and_then(|at| SystemTime::now().duration_since(at).ok())
                .unwrap_or_default();
            let left = WINDOW.saturating_sub(since);
            wait = Some(wait.map_or(left, |w| w.max(left)));
        }
    }
    Ok(wait)
}

/// Records a failed attempt (and forgets those too old to count).
pub async fn failed(db: &AnyPool, username: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM login_failures WHERE at <= $1")
        .bind(crate::db::ago(WINDOW))
        .execute(db)
        .await?;
    let now = crate::db::now();
    for (key, _) in keys(username, address) {
        sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
            .bind(key)
            .bind(&now)
            .execute(db)
            .await?;
    }
    Ok(())
}

/// A successful login clears the account's count (not the address's: one right password must
/// not reset guessing at other accounts from there).
pub async fn succeeded(db: &AnyPool, username: &str) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(account_key(username))
        .execute(db)
        .await?;
    Ok(())
}

fn account_key(username: &str) -> String {
    format!("account:{}", username.trim().to_lowercase())
}

fn keys(username: &str, address: Option<IpAddr>) -> impl Iterator<Item = (String, i64)> {
    std::iter::once((account_key(username), PER_ACCOUNT)).chain(address.map(|a| (format!("address:{a}"), PER_ADDRESS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_an_account_after_its_failures_and_a_success_clears_it() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let here: Option<IpAddr> = Some([127, 0, 0, 1].into());
        for _ in 0..PER_ACCOUNT {
            assert_eq!(blocked(&db, "Ana", here).await?, None);
            failed(&db, "Ana", here).await?;
        }
        let wait = blocked(&db, "ana", here).await?.unwrap_or_default();
        assert!(
            wait <= WINDOW && wait > WINDOW - Duration::from_secs(5),
            "blocked, case-insensitively: {wait:?}"
        );
        assert_eq!(blocked(&db, "bob", here).await?, None, "other accounts still may");
        succeeded(&db, "ANA").await?;
        assert_eq!(blocked(&db, "ana", here).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn blocks_an_address_guessing_across_accounts() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let there: Option<IpAddr> = Some([10, 0, 0, 9].into());
        for n in 0..PER_ADDRESS {
            failed(&db, &format!("user{n}"), there).await?;
        }
        assert!(blocked(&db, "fresh", there).await?.is_some());
        assert_eq!(blocked(&db, "fresh", Some([10, 0, 0, 8].into())).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn old_failures_stop_counting() -> anyhow::Result<()> {
        let (_dir, db) = crate::db::temporary_with_project().await?;
        let long_ago = crate::db::ago(WINDOW + Duration::from_secs(1));
        for _ in 0..PER_ACCOUNT {
            sqlx::query("INSERT INTO login_failures (key, at) VALUES ('account:ana', $1)")
                .bind(&long_ago)
                .execute(&db)
                .await?;
        }
        assert_eq!(blocked(&db, "ana", None).await?, None);
        failed(&db, "someone", None).await?;
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_failures")
            .fetch_one(&db)
            .await?;
        assert_eq!(kept, 1, "a failure sweeps out those too old to count");
        Ok(())
    }
}
