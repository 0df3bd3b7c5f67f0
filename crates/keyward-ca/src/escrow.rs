//! The escrow keyring and its rotation.
//!
//! An instance's keyring is every `escrow*.key` file in its secrets directory (32 bytes,
//! hex, mode 0600), re-read at every heartbeat and whenever a record names a key the
//! instance does not hold yet. Which key seals new records is the database's word
//! (`settings.escrow_current_key`), so every instance seals under the same key and a
//! rotation switches them all at once.
//!
//! Rotation (`keyward-ca rotate-escrow`), online, with no moment at which a live instance
//! meets a record it cannot open:
//! 1. a new key file is made (or the one a stopped rotation made is taken up again, or,
//!    when one stopped after its switch, the move to the current key is finished);
//! 2. it waits until every live instance reports holding that key (a new key file reaches
//!    another machine's secrets directory by whatever copies secrets there);
//! 3. the new key becomes current: from then on records are sealed under it;
//! 4. after a grace period (for a request that read the old current key just before), every
//!    record not under the new key is re-encrypted under it, each with a compare-and-set
//!    so a record an instance rewrote meanwhile is left alone and taken in the next pass,
//!    until a pass finds none;
//! 5. the old keys are then named as unused; only then may their files be removed.
//!
//! Records are only ever moved to a key every live instance holds, and an old key is
//! removed only when nothing names it, so every record stays readable throughout.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::AnyConnection;
use zeroize::Zeroizing;

use crate::crypto::{self, Escrow};
use crate::db::{self, Db};
use crate::error::{CaError, CaResult};

/// The setting naming the key new records are sealed under.
pub const CURRENT_KEY: &str = "escrow_current_key";
/// The setting naming the key a rotation under way moves to.
pub const NEXT_KEY: &str = "escrow_next_key";
/// The file name of the first escrow key (a data directory's since before rotation).
pub const FIRST_KEY_FILE: &str = "escrow.key";

/// Every `escrow*.key` file in `dir`: `escrow.key` first (records from before key ids are
/// read with it), then the others by name.
pub fn key_files(dir: &Path) -> CaResult<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(CaError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| CaError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("escrow") && name.ends_with(".key") && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (name != FIRST_KEY_FILE, name)
    });
    Ok(files)
}

fn read_escrow(dir: &Path) -> CaResult<Escrow> {
    let keys = key_files(dir)?
        .iter()
        .map(|f| crypto::read_secret(f))
        .collect::<CaResult<Vec<Zeroizing<[u8; 32]>>>>()?;
    if keys.is_empty() {
        return Err(CaError::Config(format!(
            "no escrow key (escrow*.key) in {}: make one with `keyward-ca secrets init`",
            dir.display()
        )));
    }
    let refs: Vec<&[u8; 32]> = keys.iter().map(|k| &**k).collect();
    Escrow::with_keys(&refs)
}

/// An instance's escrow keys, re-read from its secrets directory when asked.
pub struct Keyring {
    dir: PathBuf,
    escrow: RwLock<Arc<Escrow>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("dir", &self.dir)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

impl Keyring {
    /// Reads the keyring in `dir` (at least one key).
    pub fn load(dir: &Path) -> CaResult<Self> {
        Ok(Keyring {
            dir: dir.to_owned(),
            escrow: RwLock::new(Arc::new(read_escrow(dir)?)),
        })
    }

    /// What the keyring holds now.
    pub fn snapshot(&self) -> Arc<Escrow> {
        match self.escrow.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the directory. A directory that cannot be read leaves the keys as they were.
    pub fn reload(&self) -> CaResult<()> {
        let fresh = Arc::new(read_escrow(&self.dir)?);
        let before = self.key_ids();
        if fresh.key_ids() != before {
            tracing::info!(keys = ?fresh.key_ids(), "escrow keyring re-read");
        }
        match self.escrow.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// The ids of the keys held.
    pub fn key_ids(&self) -> Vec<String> {
        self.snapshot().key_ids()
    }

    fn ensure(&self, id: &str) -> CaResult<Arc<Escrow>> {
        let escrow = self.snapshot();
        if escrow.holds(id) {
            return Ok(escrow);
        }
        self.reload()?;
        Ok(self.snapshot())
    }

    /// Opens a record, re-reading the keyring first when it names a key not held yet.
    pub fn open(&self, context: &str, sealed: &str) -> CaResult<Zeroizing<String>> {
        let escrow = match Escrow::key_id_of(sealed) {
            Some(id) => self.ensure(id)?,
            None => self.snapshot(),
        };
        escrow.open(context, sealed)
    }

    /// Seals under the key the database names current (read on `conn`, inside the
    /// transaction that stores the record).
    pub async fn seal(
        &self,
        conn: &mut AnyConnection,
        context: &str,
        secret: &str,
    ) -> CaResult<String> {
        let id = current_key(conn)
            .await?
            .ok_or_else(|| CaError::Config("no current escrow key is recorded".into()))?;
        self.ensure(&id)?.seal_under(&id, context, secret)
    }
}

/// A setting's value.
pub async fn setting(conn: &mut AnyConnection, name: &str) -> CaResult<Option<String>> {
    let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.map(|r| db::text(&r, "value")).transpose()
}

async fn set_setting(conn: &mut AnyConnection, name: &str, value: &str, now: i64) -> CaResult<()> {
    sqlx::query(
        "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET value = $2, updated_at = $3",
    )
    .bind(name)
    .bind(value)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

async fn clear_setting(conn: &mut AnyConnection, name: &str) -> CaResult<()> {
    sqlx::query("DELETE FROM settings WHERE name = $1")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// The id of the key new records are sealed under.
pub async fn current_key(conn: &mut AnyConnection) -> CaResult<Option<String>> {
    setting(conn, CURRENT_KEY).await
}

/// At an instance's start: records the sealing key when none is recorded yet (a keyring
/// of one key, or the data directory's first key), and refuses to serve with a keyring
/// that lacks the current key or any key a record names.
pub async fn check_at_start(conn: &mut AnyConnection, keyring: &Keyring, now: i64) -> CaResult<()> {
    let held = keyring.key_ids();
    if current_key(&mut *conn).await?.is_none() {
        let escrow = keyring.snapshot();
        let first_is_legacy = keyring.dir.join(FIRST_KEY_FILE).exists();
        if held.len() != 1 && !first_is_legacy {
            return Err(CaError::Config(format!(
                "{} escrow keys and none recorded as current: keep only the one in use",
                held.len()
            )));
        }
        // Two instances starting together on an empty database: the first one decides.
        sqlx::query(
            "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(CURRENT_KEY)
        .bind(escrow.current_key_id())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    let mut needed = key_ids_in_use(&mut *conn).await?;
    if let Some(current) = current_key(&mut *conn).await? {
        needed.insert(current);
    }
    // A record from before key ids ("") is opened with the first key, which is held.
    let missing: Vec<&String> = needed
        .iter()
        .filter(|id| !id.is_empty() && !held.contains(id))
        .collect();
    if !missing.is_empty() {
        return Err(CaError::Config(format!(
            "escrow key(s) {missing:?} are in use but not in {}: copy their escrow*.key files there",
            keyring.dir.display()
        )));
    }
    Ok(())
}

/// An escrowed column, with the context its records are bound to and its queries.
struct Column {
    name: &'static str,
    purpose: &'static str,
    heads: &'static str,
    update: &'static str,
}

/// Every escrowed column. Ids are 16 hex digits before a colon; a bare-hex record from
/// before key ids has none in its first 17 characters.
const COLUMNS: &[Column] = &[
    Column {
        name: "so_pin_enc",
        purpose: "so_pin",
        heads: "SELECT DISTINCT substr(so_pin_enc, 1, 17) AS head FROM keys WHERE so_pin_enc IS NOT NULL",
        update: "UPDATE keys SET so_pin_enc = $1 WHERE key_serial = $2 AND so_pin_enc = $3",
    },
    Column {
        name: "pending_so_pin_enc",
        purpose: "so_pin",
        heads: "SELECT DISTINCT substr(pending_so_pin_enc, 1, 17) AS head FROM keys WHERE pending_so_pin_enc IS NOT NULL",
        update: "UPDATE keys SET pending_so_pin_enc = $1 WHERE key_serial = $2 AND pending_so_pin_enc = $3",
    },
    Column {
        name: "transport_pin_enc",
        purpose: "transport_pin",
        heads: "SELECT DISTINCT substr(transport_pin_enc, 1, 17) AS head FROM keys WHERE transport_pin_enc IS NOT NULL",
        update: "UPDATE keys SET transport_pin_enc = $1 WHERE key_serial = $2 AND transport_pin_enc = $3",
    },
];

/// The ids of the keys escrow records name (a record from before key ids counts as the
/// first key's, which is what opens it).
pub async fn key_ids_in_use(conn: &mut AnyConnection) -> CaResult<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for column in COLUMNS {
        let rows = sqlx::query(column.heads).fetch_all(&mut *conn).await?;
        for row in &rows {
            let head = db::text(row, "head")?;
            match head.strip_suffix(':') {
                Some(id) => {
                    ids.insert(id.to_owned());
                }
                None => {
                    ids.insert(String::new());
                }
            }
        }
    }
    Ok(ids)
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key records are now sealed under.
    pub key_id: String,
    /// The file it is kept in.
    pub file: PathBuf,
    /// Records re-encrypted.
    pub reencrypted: u64,
    /// Keys no record names any more: their files may be removed from every secrets
    /// directory.
    pub unused: Vec<String>,
}

/// How a rotation waits.
#[derive(Debug, Clone, Copy)]
pub struct RotateOptions {
    /// How long to wait for every live instance to hold the new key.
    pub wait: Duration,
    /// Pause between the switch and the re-encryption, for requests under way.
    pub grace: Duration,
    /// Records re-encrypted per batch.
    pub batch: i64,
}

impl Default for RotateOptions {
    fn default() -> Self {
        RotateOptions {
            wait: Duration::from_secs(300),
            grace: Duration::from_secs(5),
            batch: 200,
        }
    }
}

fn wall_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Rotates the escrow key of the CA whose database is `db` and whose keyring is in `dir`.
/// `say` is told each step.
pub async fn rotate(
    db: &Db,
    dir: &Path,
    options: RotateOptions,
    mut say: impl FnMut(&str),
) -> CaResult<Rotation> {
    let keyring = Keyring::load(dir)?;
    let mut conn = db.acquire().await?;
    check_at_start(&mut conn, &keyring, wall_now()).await?;
    let current = current_key(&mut conn)
        .await?
        .ok_or_else(|| CaError::Config("no current escrow key is recorded".into()))?;
    // 1. The new key: the one a stopped rotation made; the current one when a rotation
    // stopped after the switch left records under older keys; or a new file.
    let unfinished = key_ids_in_use(&mut conn)
        .await?
        .iter()
        .any(|id| !id.is_empty() && *id != current);
    let next = match setting(&mut conn, NEXT_KEY).await? {
        Some(id) if keyring.key_ids().contains(&id) && id != current => {
            say(&format!("taking up the rotation to escrow key {id}"));
            id
        }
        _ if unfinished => {
            say(&format!(
                "finishing the move of every record to the current escrow key {current}"
            ));
            current.clone()
        }
        _ => {
            let mut key = Zeroizing::new([0u8; 32]);
            crypto::random(&mut key[..])?;
            let id = crypto::escrow_key_id(&key);
            let path = dir.join(format!("escrow-{id}.key"));
            crypto::write_private(&path, hex::encode(&key[..]).as_bytes())?;
            set_setting(&mut conn, NEXT_KEY, &id, wall_now()).await?;
            say(&format!(
                "made escrow key {id} in {}; an instance on another machine needs a copy of it",
                path.display()
            ));
            keyring.reload()?;
            id
        }
    };
    let file = key_files(dir)?
        .into_iter()
        .find(|f| crypto::read_secret(f).is_ok_and(|k| crypto::escrow_key_id(&k) == next))
        .ok_or_else(|| {
            CaError::Config(format!(
                "escrow key {next} has no file in {}",
                dir.display()
            ))
        })?;
    // 2. Every live instance holds it.
    let deadline = std::time::Instant::now() + options.wait;
    loop {
        let lacking: Vec<String> = crate::instances::live(&mut conn, wall_now())
            .await?
            .into_iter()
            .filter(|i| !i.escrow_keys.contains(&next))
            .map(|i| i.address)
            .collect();
        if lacking.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(CaError::Config(format!(
                "instance(s) {lacking:?} do not hold escrow key {next} yet: copy {} to their secrets directory and run rotate-escrow again",
                file.display()
            )));
        }
        say(&format!(
            "waiting for {lacking:?} to hold escrow key {next}"
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // 3. The switch.
    if current != next {
        set_setting(&mut conn, CURRENT_KEY, &next, wall_now()).await?;
        say(&format!(
            "escrow key {next} is current; new records are sealed under it"
        ));
        tokio::time::sleep(options.grace).await;
    }
    clear_setting(&mut conn, NEXT_KEY).await?;
    // 4. Every record moved.
    let escrow = keyring.snapshot();
    let mut reencrypted = 0u64;
    loop {
        let mut moved = 0u64;
        let mut after = String::new();
        loop {
            let rows = sqlx::query(
                "SELECT key_serial, so_pin_enc, pending_so_pin_enc, transport_pin_enc FROM keys WHERE key_serial > $1 ORDER BY key_serial LIMIT $2",
            )
            .bind(&after)
            .bind(options.batch)
            .fetch_all(&mut *conn)
            .await?;
            let Some(last) = rows.last() else { break };
            after = db::text(last, "key_serial")?;
            for row in &rows {
                let serial = db::text(row, "key_serial")?;
                for column in COLUMNS {
                    let Some(sealed) = db::opt_text(row, column.name)? else {
                        continue;
                    };
                    if Escrow::key_id_of(&sealed) == Some(next.as_str()) {
                        continue;
                    }
                    let context = format!("{}:{serial}", column.purpose);
                    let secret = escrow.open(&context, &sealed)?;
                    let fresh = escrow.seal_under(&next, &context, &secret)?;
                    let done = sqlx::query(column.update)
                        .bind(&fresh)
                        .bind(&serial)
                        .bind(&sealed)
                        .execute(&mut *conn)
                        .await?;
                    // Not moved: an instance rewrote it meanwhile; the next pass sees it.
                    moved += 1;
                    reencrypted += done.rows_affected();
                }
            }
        }
        if moved == 0 {
            break;
        }
        say(&format!("pass done: {moved} record(s) looked at"));
    }
    // 5. What is no longer needed.
    let in_use = key_ids_in_use(&mut conn).await?;
    let unused = keyring
        .key_ids()
        .into_iter()
        .filter(|id| *id != next && !in_use.contains(id))
        .collect();
    Ok(Rotation {
        key_id: next,
        file,
        reencrypted,
        unused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_file_comes_first_and_others_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["escrow-b.key", "escrow.key", "escrow-a.key", "payment.key"] {
            crypto::create_secret(&dir.path().join(name)).unwrap();
        }
        let names: Vec<String> = key_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["escrow.key", "escrow-a.key", "escrow-b.key"]);
    }

    #[test]
    fn a_record_under_a_key_added_later_is_opened_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        crypto::create_secret(&dir.path().join("escrow.key")).unwrap();
        let keyring = Keyring::load(dir.path()).unwrap();
        let new = crypto::create_secret(&dir.path().join("escrow-new.key")).unwrap();
        let sealed = Escrow::new(&new)
            .unwrap()
            .seal("so_pin:K1", "12345678")
            .unwrap();
        assert_eq!(
            keyring.open("so_pin:K1", &sealed).unwrap().as_str(),
            "12345678"
        );
        assert_eq!(keyring.key_ids().len(), 2);
    }
}
