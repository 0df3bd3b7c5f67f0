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

/// Opens (creating if needed) the database and applies pending migrations. On SQLite each
/// commit is flushed to disk before it returns (`synchronous=FULL`): for the commands that
/// write and exit.
pub async fn connect(url: Option<&str>, data_dir: &Path) -> CaResult<Db> {
    open(url, data_dir, false).await
}

/// The database as a serving instance opens it, with the [`Durability`] barrier every
/// answer passes. On SQLite a commit is written to the write-ahead log without waiting for
/// the disk (`synchronous=NORMAL`: never corrupt, and nothing is lost when the process
/// dies), and the barrier flushes the log before an answer leaves, one flush for every
/// answer waiting at the time: the disk's flush is paid once per batch of requests, not
/// once per commit, and nothing a client was told is lost when the machine loses power.
/// PostgreSQL makes its own commits durable (its barrier does nothing).
pub async fn connect_serving(url: Option<&str>, data_dir: &Path) -> CaResult<(Db, Durability)> {
    let db = open(url, data_dir, true).await?;
    let durability = match url {
        None => Durability::sqlite(data_dir.join(SQLITE_FILE)),
        Some(u) => match sqlite_file(u) {
            Some(file) => Durability::sqlite(file),
            None => Durability::default(),
        },
    };
    Ok((db, durability))
}

const SQLITE_FILE: &str = "keyward-ca.sqlite";

/// The file of a `sqlite:` URL; `None` for another engine or an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Makes every commit so far durable before an answer is sent (see [`connect_serving`]):
/// [`Durability::barrier`] after the handler, for every route that may have written.
#[derive(Debug, Clone, Default)]
pub struct Durability(Option<std::sync::Arc<WalFlush>>);

#[derive(Debug)]
struct WalFlush {
    /// The write-ahead log file (`<database>-wal`).
    wal: std::path::PathBuf,
    /// Tickets handed to answers waiting, in order.
    tickets: std::sync::atomic::AtomicU64,
    /// The last ticket a completed flush covers; held while a flush runs.
    flushed: tokio::sync::Mutex<u64>,
    /// Flushes done, for the log and the tests.
    flushes: std::sync::atomic::AtomicU64,
}

impl Durability {
    fn sqlite(database: std::path::PathBuf) -> Self {
        let mut wal = database.into_os_string();
        wal.push("-wal");
        Durability(Some(std::sync::Arc::new(WalFlush {
            wal: wal.into(),
            tickets: std::sync::atomic::AtomicU64::new(0),
            flushed: tokio::sync::Mutex::new(0),
            flushes: std::sync::atomic::AtomicU64::new(0),
        })))
    }

    /// Flushes done so far (none without a log to flush).
    pub fn flushes(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |w| w.flushes.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Returns once everything committed before the call is on disk. A flush that starts
    /// after this call took its ticket covers it; while one runs, the answers arriving meet
    /// at the lock and the next flush covers all of them.
    pub async fn barrier(&self) -> CaResult<()> {
        use std::sync::atomic::Ordering;
        let Some(w) = &self.0 else {
            return Ok(());
        };
        let ticket = w.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = w.flushed.lock().await;
        if *flushed >= ticket {
            return Ok(());
        }
        let covers = w.tickets.load(Ordering::SeqCst);
        let wal = w.wal.clone();
        tokio::task::spawn_blocking(move || flush(&wal))
            .await
            .map_err(|e| CaError::Config(format!("the log flush did not finish: {e}")))??;
        w.flushes.fetch_add(1, Ordering::Relaxed);
        *flushed = covers;
        Ok(())
    }
}

/// Flushes the write-ahead log to disk. No log file: everything is in the database file,
/// which SQLite flushed when it moved the log there (a checkpoint flushes both).
fn flush(wal: &Path) -> CaResult<()> {
    match std::fs::File::open(wal) {
        Ok(f) => f
            .sync_data()
            .map_err(|e| CaError::Config(format!("flushing {}: {e}", wal.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CaError::Config(format!("opening {}: {e}", wal.display()))),
    }
}

async fn open(url: Option<&str>, data_dir: &Path, serving: bool) -> CaResult<Db> {
    install_default_drivers();
    let default_url;
    let url = match url {
        Some(u) => u,
        None => {
            default_url = format!("sqlite://{}?mode=rwc", data_dir.join(SQLITE_FILE).display());
            &default_url
        }
    };
    let sqlite = url.starts_with("sqlite:");
    let options = AnyPoolOptions::new();
    // SQLite takes one writer at a time; one connection keeps transactions from meeting
    // `SQLITE_BUSY` on lock upgrade. PostgreSQL gets a real pool.
    let options = if sqlite {
        // Per-connection settings, for every connection the pool ever opens.
        options
            .max_connections(1)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    sqlx::query("PRAGMA foreign_keys=ON")
                        .execute(&mut *conn)
                        .await?;
                    // Serving, the durability barrier flushes the log before answers leave.
                    let sync = if serving {
                        "PRAGMA synchronous=NORMAL"
                    } else {
                        "PRAGMA synchronous=FULL"
                    };
                    sqlx::query(sync).execute(&mut *conn).await?;
                    sqlx::query("PRAGMA busy_timeout=5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
    } else {
        // sqlx tests every connection with a round trip before handing it out, and again
        // when it comes back. Under load that doubled the round trips of a request: a
        // connection idle for microseconds is tested only by the statements it runs. One
        // idle for a while (the database restarted meanwhile, say) is still tested first,
        // and a dead one is dropped for a new one before any request meets it.
        options
            .max_connections(postgres_pool_size())
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_TEST {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
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

/// How long a pooled PostgreSQL connection may sit idle and still be handed out untested.
const IDLE_BEFORE_TEST: std::time::Duration = std::time::Duration::from_secs(1);

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

/// Where a handler's writes go: on PostgreSQL straight to the connection, for a handler
/// whose writes there are one statement (a `WITH` that changes several tables is as atomic
/// as a transaction, without the round trips of its `BEGIN` and `COMMIT`); on SQLite, whose
/// statements cannot change several tables at once, a transaction around the several
/// statements the same change takes there.
pub enum Unit<'c> {
    /// PostgreSQL: each statement commits on its own.
    Statement(&'c mut AnyConnection),
    /// SQLite: one transaction, committed by [`Unit::commit`].
    Transaction(sqlx::Transaction<'c, sqlx::Any>),
}

impl<'c> Unit<'c> {
    /// A unit over `conn`: a transaction begun on SQLite, nothing yet on PostgreSQL.
    pub async fn begin(conn: &'c mut AnyConnection) -> CaResult<Unit<'c>> {
        use sqlx::Connection;
        if is_postgres(conn) {
            Ok(Unit::Statement(conn))
        } else {
            Ok(Unit::Transaction(conn.begin().await?))
        }
    }

    /// Commits the transaction, if there is one. A unit dropped without it rolls back.
    pub async fn commit(self) -> CaResult<()> {
        if let Unit::Transaction(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Unit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unit::Statement(_) => "Unit::Statement",
            Unit::Transaction(_) => "Unit::Transaction",
        })
    }
}

impl std::ops::Deref for Unit<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Unit::Statement(c) => c,
            Unit::Transaction(tx) => tx,
        }
    }
}

impl std::ops::DerefMut for Unit<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Unit::Statement(c) => c,
            Unit::Transaction(tx) => tx,
        }
    }
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
    fn sqlite_urls_name_their_file() {
        use std::path::PathBuf;
        assert_eq!(
            super::sqlite_file("sqlite:///srv/ca/db.sqlite?mode=rwc"),
            Some(PathBuf::from("/srv/ca/db.sqlite"))
        );
        assert_eq!(
            super::sqlite_file("sqlite:ca.sqlite"),
            Some(PathBuf::from("ca.sqlite"))
        );
        assert_eq!(super::sqlite_file("sqlite::memory:"), None);
        assert_eq!(super::sqlite_file("postgres://ca@db/ca"), None);
    }

    /// The barrier: answers waiting together share a flush, and none returns before a
    /// flush that began after it was called. Serving, SQLite is in `synchronous=NORMAL`
    /// (the barrier's flush is what makes a commit durable), and the commands in FULL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_waiting_together_share_one_flush_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (db, durability) = super::connect_serving(None, dir.path()).await.unwrap();
        let sync = sqlx::query("PRAGMA synchronous")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(super::int(&sync, "synchronous").unwrap(), 1, "NORMAL");
        sqlx::query("INSERT INTO nonces (nonce, key_serial, expires_at, used_at, created_at) VALUES ('n', 'K', 1, NULL, 1)")
            .execute(&db)
            .await
            .unwrap();
        durability.barrier().await.unwrap();
        assert_eq!(durability.flushes(), 1, "a barrier alone flushes once");
        let before = durability.flushes();
        let waiting: Vec<_> = (0..64)
            .map(|_| {
                let d = durability.clone();
                tokio::spawn(async move { d.barrier().await })
            })
            .collect();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        let shared = durability.flushes() - before;
        assert!(
            (1..64).contains(&shared),
            "64 answers at once took {shared} flushes"
        );
        // One more afterwards is not covered by the flushes before it.
        let n = durability.flushes();
        durability.barrier().await.unwrap();
        assert_eq!(durability.flushes(), n + 1);
        db.close().await;
        let db = super::connect(None, dir.path()).await.unwrap();
        let sync = sqlx::query("PRAGMA synchronous")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(super::int(&sync, "synchronous").unwrap(), 2, "FULL");
        // PostgreSQL's commits are durable on their own: no barrier to pay.
        assert_eq!(super::Durability::default().flushes(), 0);
    }

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
