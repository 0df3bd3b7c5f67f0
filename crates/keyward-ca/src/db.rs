//! Storage: one `sqlx` Any pool over SQLite or PostgreSQL, with the migrations kept here.
//!
//! The SQL is written once for both engines: `$n` placeholders, `BIGINT` numbers (unix
//! seconds for instants), `TEXT` for everything else (PEM, hex, JSON).

use crate::error::{CaError, CaResult};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyConnection, AnyPool, Row};
use std::path::Path;

/// Ordered migrations: (version, name, statements).
#[rustfmt::skip]
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "registry, activation, renewal", include_str!("../migrations/0001_init.sql")),
    (2, "unlock, attachments, reviews", include_str!("../migrations/0002_unlock_review.sql")),
    (3, "orders and invoices", include_str!("../migrations/0003_orders.sql")),
    (4, "one open business per key and kind", include_str!("../migrations/0004_one_open_business.sql")),
    (5, "one pending payment per business", include_str!("../migrations/0005_one_pending_payment.sql")),
    (6, "electronic seals", include_str!("../migrations/0006_seals.sql")),
    (7, "staff accounts, business secrets, code tickets, per-address caps", include_str!("../migrations/0007_trust.sql")),
    (8, "settings, instances, attachment contents", include_str!("../migrations/0008_instances.sql")),
    (9, "indexes for the sweeps of expired nonces and old address events", include_str!("../migrations/0009_expiry_indexes.sql")),
];

pub type Db = AnyPool;

/// Opens (creating if needed) the database and applies pending migrations.
pub async fn connect(url: Option<&str>, data_dir: &Path) -> CaResult<Db> {
    install_default_drivers();
    let default_url;
    let url = match url {
        Some(u) => u,
        None => {
            default_url = format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("keyward-ca.sqlite").display()
            );
            &default_url
        }
    };
    let sqlite = url.starts_with("sqlite:");
    let options = AnyPoolOptions::new();
    // SQLite takes one writer at a time; one connection keeps transactions from meeting
    // `SQLITE_BUSY` on lock upgrade. PostgreSQL gets a real pool.
    let options = if sqlite {
        // Per-connection settings, for every connection the pool ever opens.
        options.max_connections(1).after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::query("PRAGMA foreign_keys=ON")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA busy_timeout=5000")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
    } else {
        options.max_connections(postgres_pool_size())
    };
    let pool = options.connect(url).await?;
    if sqlite {
        // Persistent in the file: readers never block the writer.
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await?;
    }
    migrate(&pool).await?;
    Ok(pool)
}

/// Connections to PostgreSQL an instance keeps: two per core of this machine (4 to 32). A
/// request spends most of its database time waiting on round trips, so one connection per
/// core busy and one waiting covers it; more only adds backends taking turns on the same
/// cores (on two cores, 8 connections renewed about a tenth slower than 4 in the bench).
fn postgres_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(32).clamp(4, 32)
}

/// Whether a connection is to PostgreSQL (several instances may share it).
pub fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name() == "PostgreSQL"
}

/// Serialises the transaction `conn` is in with every other transaction that takes the
/// same `scope`, on any instance, until it ends: for a check-then-write (a cool-down, a
/// daily cap) that must not be passed twice by requests racing on two instances. SQLite
/// has one writer at a time already (one connection per instance, one instance per file).
pub async fn lock(conn: &mut AnyConnection, scope: &str) -> CaResult<()> {
    if is_postgres(conn) {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock_key(scope))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// A 64-bit advisory-lock key for a scope.
fn lock_key(scope: &str) -> i64 {
    let mut msg = b"keyward-ca lock\0".to_vec();
    msg.extend_from_slice(scope.as_bytes());
    let digest = keyward_ca_api::body_sha256(&msg);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

async fn migrate(pool: &Db) -> CaResult<()> {
    let mut conn = pool.acquire().await?;
    // Instances starting together on one PostgreSQL database migrate one at a time.
    let postgres = is_postgres(&conn);
    if postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(lock_key("migrations"))
            .execute(&mut *conn)
            .await?;
    }
    let result = apply_migrations(&mut conn).await;
    if postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(lock_key("migrations"))
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_migrations(conn: &mut AnyConnection) -> CaResult<()> {
    use sqlx::Connection;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = conn.begin().await?;
        let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
            .bind(*version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_some() {
            continue;
        }
        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(*version)
        .bind(*name)
        .bind(time::OffsetDateTime::now_utc().unix_timestamp())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

/// A new identifier: a prefix, 16 hex digits of nanoseconds (so ids sort by creation),
/// 8 random hex digits.
pub fn new_id(prefix: &str) -> CaResult<String> {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let nanos = u64::try_from(nanos).unwrap_or(0);
    let mut rnd = [0u8; 4];
    crate::crypto::random(&mut rnd)?;
    Ok(format!("{prefix}{nanos:016x}{}", hex::encode(rnd)))
}

/// Reads a text column.
pub fn text(row: &sqlx::any::AnyRow, col: &str) -> CaResult<String> {
    Ok(row.try_get::<String, _>(col)?)
}

/// Reads a nullable text column.
pub fn opt_text(row: &sqlx::any::AnyRow, col: &str) -> CaResult<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

/// Reads an integer column.
pub fn int(row: &sqlx::any::AnyRow, col: &str) -> CaResult<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

/// Reads a nullable integer column.
pub fn opt_int(row: &sqlx::any::AnyRow, col: &str) -> CaResult<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

/// Unix seconds to an instant.
pub fn instant(unix: i64) -> CaResult<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| CaError::Corrupt(format!("timestamp {unix} out of range")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), super::MIGRATIONS.len());
        for (i, (version, _, _)) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
            assert!(files[i].starts_with(&format!("{:04}_", version)));
        }
    }
}
