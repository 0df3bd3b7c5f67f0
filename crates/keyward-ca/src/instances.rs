//! The instances serving one database, as each reports itself: every heartbeat an instance
//! re-reads its escrow keyring and writes which keys it holds, so an escrow rotation can
//! wait until every live instance holds the new key before any record moves to it.
//!
//! Times here are the machines' own (UTC seconds), not the business clock tests move.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyConnection;

use crate::db::{self, Db};
use crate::error::CaResult;
use crate::escrow::Keyring;

/// Seconds between heartbeats by default.
pub const DEFAULT_HEARTBEAT_SECONDS: u64 = 5;
/// An instance silent for this many of its heartbeats is taken for gone.
pub const MISSED_BEATS: i64 = 3;

fn wall_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An instance as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// Where it listens (for people reading `rotate-escrow`'s messages).
    pub address: String,
    pub started_at: i64,
    pub seen_at: i64,
    /// The escrow key ids it holds.
    pub escrow_keys: Vec<String>,
}

/// Writes this instance's heartbeat.
pub async fn beat(
    conn: &mut AnyConnection,
    id: &str,
    address: &str,
    started_at: i64,
    heartbeat_seconds: u64,
    escrow_keys: &[String],
) -> CaResult<()> {
    let now = wall_now();
    let keys = escrow_keys.join(",");
    let every = i64::try_from(heartbeat_seconds).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "UPDATE instances SET seen_at = $1, escrow_keys = $2, heartbeat_seconds = $3 WHERE id = $4",
    )
    .bind(now)
    .bind(&keys)
    .bind(every)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO instances (id, address, started_at, seen_at, heartbeat_seconds, escrow_keys) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(address)
        .bind(started_at)
        .bind(now)
        .bind(every)
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    }
    // Forget instances silent for a day.
    sqlx::query("DELETE FROM instances WHERE seen_at < $1")
        .bind(now - 86_400)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes this instance (a clean stop).
pub async fn remove(db: &Db, id: &str) -> CaResult<()> {
    sqlx::query("DELETE FROM instances WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// The instances that have beaten within their last few heartbeats at `now`.
pub async fn live(conn: &mut AnyConnection, now: i64) -> CaResult<Vec<Instance>> {
    let rows = sqlx::query(
        "SELECT id, address, started_at, seen_at, escrow_keys FROM instances WHERE seen_at + heartbeat_seconds * $1 >= $2 ORDER BY started_at, id",
    )
    .bind(MISSED_BEATS)
    .bind(now)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Instance {
                id: db::text(r, "id")?,
                address: db::text(r, "address")?,
                started_at: db::int(r, "started_at")?,
                seen_at: db::int(r, "seen_at")?,
                escrow_keys: db::text(r, "escrow_keys")?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Beats now and then every `heartbeat_seconds` until the task is dropped: re-reads the
/// keyring first, so a key file copied in is reported (and usable) within one beat. Each
/// beat also sweeps what has expired by the business clock (`limits::sweep`).
pub fn spawn(
    db: Db,
    keyring: Arc<Keyring>,
    clock: crate::config::Clock,
    id: String,
    address: String,
    heartbeat_seconds: u64,
) -> tokio::task::JoinHandle<()> {
    let started_at = wall_now();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(heartbeat_seconds.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = keyring.reload() {
                tracing::warn!(error = %e, "escrow keyring not re-read; keeping the keys held");
            }
            let keys = keyring.key_ids();
            let result = async {
                let mut conn = db.acquire().await?;
                beat(
                    &mut conn,
                    &id,
                    &address,
                    started_at,
                    heartbeat_seconds,
                    &keys,
                )
                .await?;
                crate::limits::sweep(&mut conn, clock.unix()).await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "heartbeat not written");
            }
        }
    })
}
