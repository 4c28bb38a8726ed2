//! The two migration sets (`backend/migrations/sqlite`, `backend/migrations/postgres`) leave the
//! same schema: the same tables, columns (type, nullability, default), primary keys, unique
//! constraints, foreign keys and indexes. The test lets the real server migrate a fresh SQLite
//! file and a fresh PostgreSQL database, then reads each engine's own catalog.

use std::collections::BTreeSet;

use anyhow::Context;
use e2e::Studio;
use e2e::postgres::Postgres;
use sqlx::{Connection, Row};

/// One fact about the schema, in words both catalogs can be brought to.
type Facts = BTreeSet<String>;

/// The one deliberate difference: SQLite's implicit rowid of `boxes` (what boxes are listed in
/// creation order by) is an explicit identity column in PostgreSQL.
const POSTGRES_ONLY: &[&str] = &["column boxes.rowid integer not null generated"];

#[tokio::test]
async fn postgres_schema_matches_sqlite() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", temp.path().join("schema.db").display());
    let studio = Studio::start_with_env(&[], &[("DISTILLERY_DATABASE_URL", sqlite_url.clone())]).await?;
    studio.stop().await?;
    let postgres = Postgres::started().await?;
    let postgres_url = postgres.database("schema_check").await?;
    let studio = Studio::start_with_env(&[], &[("DISTILLERY_DATABASE_URL", postgres_url.clone())]).await?;
    studio.stop().await?;

    let sqlite = sqlite_facts(&sqlite_url).await.context("reading SQLite's catalog")?;
    let mut postgres = postgres_facts(&postgres_url)
        .await
        .context("reading PostgreSQL's catalog")?;
    for fact in POSTGRES_ONLY {
        anyhow::ensure!(postgres.remove(*fact), "expected PostgreSQL-only fact missing: {fact}");
    }
    assert!(sqlite.len() > 100, "the SQLite schema was read: {sqlite:#?}");
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migrations differ.\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
    Ok(())
}

async fn sqlite_facts(url: &str) -> anyhow::Result<Facts> {
    let mut db = sqlx::SqliteConnection::connect(url).await?;
    let mut facts = Facts::new();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'
          AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut db)
    .await?;
    for (table, sql) in tables {
        facts.insert(format!("table {table}"));
        let columns = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info(\"{table}\")")))
            .fetch_all(&mut db)
            .await?;
        let primary: Vec<(i64, String)> = columns
            .iter()
            .filter(|c| c.get::<i64, _>("pk") > 0)
            .map(|c| (c.get("pk"), c.get("name")))
            .collect();
        for column in &columns {
            let name: String = column.get("name");
            let declared: String = column.get("type");
            let kind = match declared.as_str() {
                "INTEGER" => "integer",
                "TEXT" => "text",
                "REAL" => "real",
                "BLOB" => "blob",
                other => anyhow::bail!("{table}.{name}: unexpected SQLite type {other}"),
            };
            // An INTEGER PRIMARY KEY is the rowid: the engine numbers new rows.
            let generated = primary.len() == 1 && primary[0].1 == name && kind == "integer";
            // SQLite reports a primary key column as nullable unless declared NOT NULL; PostgreSQL
            // never allows NULL in one.
            let not_null = column.get::<i64, _>("notnull") == 1 || column.get::<i64, _>("pk") > 0;
            facts.insert(column_fact(&table, &name, kind, not_null, generated));
            if let Some(default) = column.get::<Option<String>, _>("dflt_value") {
                facts.insert(format!("default {table}.{name} {}", normalise_default(&default)));
            }
        }
        let mut primary = primary;
        primary.sort();
        let primary: Vec<String> = primary.into_iter().map(|(_, name)| name).collect();
        facts.insert(format!("primary key {table} ({})", primary.join(", ")));
        for key in sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA foreign_key_list(\"{table}\")")))
            .fetch_all(&mut db)
            .await?
        {
            let (from, parent, to, on_delete): (String, String, String, String) =
                (key.get("from"), key.get("table"), key.get("to"), key.get("on_delete"));
            facts.insert(format!(
                "foreign key {table}.{from} -> {parent}.{to} on delete {}",
                on_delete.to_lowercase()
            ));
        }
        for index in sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_list(\"{table}\")")))
            .fetch_all(&mut db)
            .await?
        {
            let (name, unique, origin): (String, i64, String) =
                (index.get("name"), index.get("unique"), index.get("origin"));
            let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA index_xinfo(\"{name}\")")))
                .fetch_all(&mut db)
                .await?
                .iter()
                .filter(|c| c.get::<i64, _>("key") == 1)
                .map(|c| {
                    let column: String = c.get("name");
                    if c.get::<i64, _>("desc") == 1 {
                        format!("{column} desc")
                    } else {
                        column
                    }
                })
                .collect();
            match origin.as_str() {
                "pk" => {}
                "u" => {
                    facts.insert(format!("unique {table} ({})", columns.join(", ")));
                }
                _ => {
                    let unique = if unique == 1 { "unique " } else { "" };
                    facts.insert(format!("{unique}index {name} on {table} ({})", columns.join(", ")));
                }
            }
        }
        for (column, collation) in case_insensitive_columns(&sql) {
            facts.insert(format!("collation {table}.{column} {collation}"));
        }
        facts.insert(format!("checks {table} {}", sql.matches("CHECK (").count()));
    }
    db.close().await?;
    Ok(facts)
}

/// Columns declared `COLLATE NOCASE` in a table's SQL (SQLite's catalog does not list them).
fn case_insensitive_columns(sql: &str) -> Vec<(String, &'static str)> {
    sql.lines()
        .filter(|line| line.contains("COLLATE NOCASE"))
        .filter_map(|line| Some((line.split_whitespace().next()?.to_owned(), "nocase")))
        .collect()
}

async fn postgres_facts(url: &str) -> anyhow::Result<Facts> {
    let mut db = sqlx::PgConnection::connect(url).await?;
    let mut facts = Facts::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name != '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await?;
    for table in &tables {
        facts.insert(format!("table {table}"));
    }
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS ty, is_nullable::text AS nullable,
                is_identity::text AS identity, column_default::text AS dflt, collation_name::text AS collation
           FROM information_schema.columns WHERE table_schema = 'public' AND table_name != '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await?;
    for column in columns {
        let (table, name, declared): (String, String, String) = (column.get("t"), column.get("c"), column.get("ty"));
        let kind = match declared.as_str() {
            "bigint" => "integer",
            "text" => "text",
            "double precision" => "real",
            "bytea" => "blob",
            other => anyhow::bail!("{table}.{name}: unexpected PostgreSQL type {other}"),
        };
        let not_null = column.get::<String, _>("nullable") == "NO";
        let generated = column.get::<String, _>("identity") == "YES";
        facts.insert(column_fact(&table, &name, kind, not_null, generated));
        if let Some(default) = column.get::<Option<String>, _>("dflt") {
            facts.insert(format!("default {table}.{name} {}", normalise_default(&default)));
        }
        if let Some(collation) = column.get::<Option<String>, _>("collation") {
            facts.insert(format!("collation {table}.{name} {collation}"));
        }
    }
    // Keys and indexes from pg_catalog: columns in key order, with the constraint kind.
    let constraints = sqlx::query(
        "SELECT c.conrelid::regclass::text AS t, c.contype::text AS kind, c.confrelid::regclass::text AS parent,
                c.confdeltype::text AS on_delete,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols,
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS parent_cols
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE n.nspname = 'public' AND c.conrelid::regclass::text != '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await?;
    let mut checks: std::collections::BTreeMap<String, usize> = tables.iter().map(|t| (t.clone(), 0)).collect();
    for constraint in constraints {
        let table: String = constraint.get("t");
        let columns: Vec<String> = constraint.get("cols");
        match constraint.get::<String, _>("kind").as_str() {
            "p" => {
                facts.insert(format!("primary key {table} ({})", columns.join(", ")));
            }
            "u" => {
                facts.insert(format!("unique {table} ({})", columns.join(", ")));
            }
            "f" => {
                let parent: String = constraint.get("parent");
                let parent_columns: Vec<String> = constraint.get("parent_cols");
                let on_delete = match constraint.get::<String, _>("on_delete").as_str() {
                    "c" => "cascade",
                    "n" => "set null",
                    "a" => "no action",
                    other => anyhow::bail!("{table}: unexpected on-delete action {other}"),
                };
                facts.insert(format!(
                    "foreign key {table}.{} -> {parent}.{} on delete {on_delete}",
                    columns.join(", "),
                    parent_columns.join(", ")
                ));
            }
            "c" => *checks.entry(table).or_default() += 1,
            // NOT NULL, listed here from PostgreSQL 18 on; compared with the columns above.
            "n" => {}
            other => anyhow::bail!("{table}: unexpected constraint kind {other}"),
        }
    }
    for (table, count) in checks {
        facts.insert(format!("checks {table} {count}"));
    }
    // Indexes that back no constraint (CREATE INDEX).
    let indexes = sqlx::query(
        "SELECT i.indrelid::regclass::text AS t, i.indexrelid::regclass::text AS name, i.indisunique AS is_unique,
                ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k) AS cols,
                ARRAY(SELECT (i.indoption[k - 1] & 1) = 1 FROM generate_series(1, i.indnkeyatts) k) AS descending
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public'
            AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
    )
    .fetch_all(&mut db)
    .await?;
    for index in indexes {
        let (table, name, unique): (String, String, bool) = (index.get("t"), index.get("name"), index.get("is_unique"));
        let columns: Vec<String> = index.get("cols");
        let descending: Vec<bool> = index.get("descending");
        let columns: Vec<String> = columns
            .into_iter()
            .zip(descending)
            .map(|(column, desc)| if desc { format!("{column} desc") } else { column })
            .collect();
        let unique = if unique { "unique " } else { "" };
        facts.insert(format!("{unique}index {name} on {table} ({})", columns.join(", ")));
    }
    db.close().await?;
    Ok(facts)
}

fn column_fact(table: &str, name: &str, kind: &str, not_null: bool, generated: bool) -> String {
    let null = if not_null { "not null" } else { "null" };
    let generated = if generated { " generated" } else { "" };
    format!("column {table}.{name} {kind} {null}{generated}")
}

/// A column default as both engines can be compared: SQLite's and PostgreSQL's clocks as `now`,
/// PostgreSQL's casts and both engines' parentheses dropped.
fn normalise_default(default: &str) -> String {
    let default = default.trim();
    if default.contains("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')") || default.contains("utc_now()") {
        return "now".to_owned();
    }
    default
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim_end_matches("::text")
        .to_owned()
}
