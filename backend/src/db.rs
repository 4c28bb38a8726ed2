//! Opening the metadata database: SQLite in WAL mode with foreign keys on, migrations embedded.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL does not parse or the file cannot be opened/created.
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// A migration failed (e.g. the file was written by a newer Distillery).
    #[error("cannot migrate the database {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// Opens (creating if needed) the database at `url` and brings its schema up to date.
pub async fn open(url: &str) -> Result<SqlitePool, OpenError> {
    let connect_error = |source| OpenError::Connect {
        url: url.to_owned(),
        source,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(connect_error)?
        .create_if_missing(true)
        // WAL lets the CLI read and write while the server runs; NORMAL is durable in WAL mode
        // except for the last transactions on power loss, which is the usual trade-off.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .map_err(connect_error)?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| OpenError::Migrate {
            url: url.to_owned(),
            source,
        })?;
    Ok(pool)
}

/// SQL assembled with `format!` from this crate's own constants (column lists, fixed
/// fragments) — never from request data, which always goes through bind parameters.
pub fn constant_sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// Starts a transaction that will write, after the writers before it (first come, first served).
///
/// The server's writers queue on one async lock before they take a connection: SQLite admits
/// one writer at a time anyway, and its own busy handler makes the others sleep and retry with
/// growing pauses (up to 100 ms each), which is what a burst of editors waited on — the lock
/// hands the turn on the moment the last writer commits. `BEGIN IMMEDIATE` then takes SQLite's
/// write lock up front, so a write from another process (the CLI) waits on the busy timeout
/// instead of failing with "database is locked" when it commits first.
pub async fn write_transaction(pool: &SqlitePool) -> Result<WriteTransaction, sqlx::Error> {
    static WRITERS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let turn = WRITERS.get_or_init(Default::default).clone().lock_owned().await;
    Ok(WriteTransaction {
        transaction: pool.begin_with("BEGIN IMMEDIATE").await?,
        _turn: turn,
    })
}

/// A write transaction holding this process's writer turn until it commits or is dropped
/// (which rolls it back). Used like the connection it wraps: `&mut *tx`.
pub struct WriteTransaction {
    transaction: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTransaction {
    /// Commits, then hands the turn to the next writer.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.transaction.commit().await
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &Self::Target {
        &self.transaction
    }
}

impl std::ops::DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.transaction
    }
}
