//! The metadata database: SQLite in the data folder (the default, embedded) or PostgreSQL (a
//! fleet's shared one, `--database-url postgres://…`), both through sqlx's `Any` driver so that
//! one set of queries serves both. The queries keep to SQL both engines speak: `$N`
//! placeholders (SQLite reads them as numbered parameters), `ON CONFLICT` upserts, integers
//! for flags, and timestamps computed here ([`now`]) rather than by either engine's clock
//! functions. Each engine has its own migrations (`migrations/sqlite`, `migrations/postgres`),
//! kept in lock-step by the e2e test `postgres_schema_matches_sqlite`.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::any::{AnyPoolOptions, AnyTypeInfo, AnyTypeInfoKind};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyPool, Connection, Executor};

/// Which engine a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine of `url` by its scheme, or `None` for one Distillery does not speak.
    pub fn of_url(url: &str) -> Option<Engine> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme)?;
        match scheme {
            "sqlite" => Some(Engine::Sqlite),
            "postgres" | "postgresql" => Some(Engine::Postgres),
            _ => None,
        }
    }

    /// The engine an open pool talks to ([`open`] made it from a URL [`Engine::of_url`] knows).
    pub fn of(pool: &AnyPool) -> Engine {
        Engine::of_url(pool.connect_options().database_url.as_str()).unwrap_or(Engine::Postgres)
    }
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Neither `sqlite:` nor `postgres:`.
    #[error("cannot open the database {url}: the URL must start with sqlite: or postgres:")]
    UnknownEngine { url: String },
    /// The URL does not parse, the file cannot be opened/created or the server refused.
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// A migration failed (e.g. the database was written by a newer Distillery).
    #[error("cannot migrate the database {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// Opens (creating an SQLite file if needed) the database at `url` and brings its schema up to
/// date. Several processes may do this at once on one PostgreSQL database: sqlx's migrator
/// holds an advisory lock while it migrates.
pub async fn open(url: &str) -> Result<AnyPool, OpenError> {
    let connect_error = |source| OpenError::Connect {
        url: url.to_owned(),
        source,
    };
    let engine = Engine::of_url(url).ok_or_else(|| OpenError::UnknownEngine { url: url.to_owned() })?;
    sqlx::any::install_default_drivers();
    let pool = match engine {
        Engine::Sqlite => {
            prepare_sqlite_file(url).await.map_err(connect_error)?;
            AnyPoolOptions::new()
                .max_connections(8)
                // NORMAL is durable in WAL mode except for the last transactions on power loss,
                // the usual trade-off; it is a per-connection setting. (sqlx turns foreign keys
                // on and sets a 5 s busy timeout on every SQLite connection by default.)
                .after_connect(|conn, _| {
                    Box::pin(async move { conn.execute("PRAGMA synchronous = NORMAL").await.map(drop) })
                })
                .connect(url)
                .await
        }
        Engine::Postgres => AnyPoolOptions::new().max_connections(16).connect(url).await,
    }
    .map_err(connect_error)?;
    let migrated = match engine {
        Engine::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await,
        Engine::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await,
    };
    migrated.map_err(|source| OpenError::Migrate {
        url: url.to_owned(),
        source,
    })?;
    Ok(pool)
}

/// Creates the SQLite file when missing and puts it in WAL mode (a setting the file keeps),
/// which lets the CLI read and write while the server runs. `Any` connections take only a URL,
/// so this is done once through the SQLite driver itself.
async fn prepare_sqlite_file(url: &str) -> Result<(), sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let connection = sqlx::SqliteConnection::connect_with(&options).await?;
    connection.close().await
}

/// The current time as both engines' timestamp columns hold it: RFC 3339 UTC with
/// milliseconds (`2026-12-06T03:04:05.678Z`), which sorts as text in time order.
/// A fresh SQLite studio database in a temporary folder (kept while the folder lives), with one
/// project, id 1: what the unit tests of the database code run against.
#[cfg(test)]
pub(crate) async fn temporary_with_project() -> anyhow::Result<(tempfile::TempDir, AnyPool)> {
    let dir = tempfile::tempdir()?;
    let db = open(&format!("sqlite://{}", dir.path().join("distillery.db").display())).await?;
    sqlx::query("INSERT INTO projects (name) VALUES ('p')")
        .execute(&db)
        .await?;
    Ok((dir, db))
}

pub fn now() -> String {
    timestamp(SystemTime::now())
}

/// The time `after` from now, in [`now`]'s format (expiry dates).
pub fn after(after: Duration) -> String {
    timestamp(SystemTime::now() + after)
}

/// The time `before` ago, in [`now`]'s format.
pub fn ago(before: Duration) -> String {
    timestamp(SystemTime::now() - before)
}

fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// A yes/no value as either engine gives it: a flag column (0 or 1 in both, so the same
/// literals and comparisons work in each) or a condition selected as a value (an integer in
/// SQLite, a `boolean` in PostgreSQL). Read into a `bool` field with
/// `#[sqlx(try_from = "crate::db::Flag")]`, or as `Flag(…)` in a tuple.
pub struct Flag(pub bool);

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.0
    }
}

impl sqlx::Type<sqlx::Any> for Flag {
    fn type_info() -> AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        ty.kind() == AnyTypeInfoKind::Bool || ty.kind().is_integer()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Flag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        if sqlx::ValueRef::type_info(&value).kind() == AnyTypeInfoKind::Bool {
            <bool as sqlx::Decode<sqlx::Any>>::decode(value).map(Flag)
        } else {
            <i64 as sqlx::Decode<sqlx::Any>>::decode(value).map(|n| Flag(n != 0))
        }
    }
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
///
/// On PostgreSQL the same order holds across every process sharing the database (replicas,
/// workers, the CLI): each write transaction first takes one transaction-scoped advisory lock,
/// so the per-project sequence numbers are handed out and committed in one order, as on
/// SQLite, and a read-check-write transaction sees no other writer between its read and write.
pub async fn write_transaction(pool: &AnyPool) -> Result<WriteTransaction, sqlx::Error> {
    static WRITERS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> = std::sync::OnceLock::new();
    let turn = WRITERS.get_or_init(Default::default).clone().lock_owned().await;
    let transaction = match Engine::of(pool) {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Engine::Postgres => {
            let mut transaction = pool.begin().await?;
            // Selected through a subquery: the lock function returns `void`, a type `Any`
            // cannot carry.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(WRITERS_LOCK)
                .execute(&mut *transaction)
                .await?;
            transaction
        }
    };
    Ok(WriteTransaction {
        transaction,
        _turn: turn,
    })
}

/// Starts a transaction whose reads all see the database as of one moment (SQLite's
/// transactions do; PostgreSQL's default isolation sees each statement's own moment, so there
/// it asks for a repeatable-read snapshot): boxes and the sequence number they are as of agree.
pub async fn read_transaction(pool: &AnyPool) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match Engine::of(pool) {
        Engine::Sqlite => pool.begin().await,
        Engine::Postgres => pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await,
    }
}

/// The advisory lock key of PostgreSQL writers ("DISTILLR" in ASCII).
const WRITERS_LOCK: i64 = 0x4449_5354_494c_4c52;

/// A write transaction holding this process's writer turn until it commits or is dropped
/// (which rolls it back). Used like the connection it wraps: `&mut *tx`.
pub struct WriteTransaction {
    transaction: sqlx::Transaction<'static, sqlx::Any>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTransaction {
    /// Commits, then hands the turn to the next writer.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.transaction.commit().await
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &Self::Target {
        &self.transaction
    }
}

impl std::ops::DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.transaction
    }
}
