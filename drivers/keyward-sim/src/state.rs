//! Everything the simulator persists, kept in one JSON file under the state
//! directory (`state.json`) and shared by every process that uses it.
//!
//! Writers take an exclusive `flock` on `state.lock`, read the current file,
//! change it, write a temporary file and rename it over `state.json`, so a
//! reader (which never locks) always sees a whole file, and two processes
//! never lose each other's counter updates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::control::Effect;
use crate::error::Error;
use crate::lock_ignoring_poison;

/// A fault armed on this name counts the calls of every PKCS#11 function.
pub const ANY_FUNCTION: &str = "*";

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "state.lock";
/// A cached read is trusted for at most this long even when the file looks unchanged.
const CACHE_MAX_AGE: Duration = Duration::from_millis(40);

/// PIN counters and identity of one token, keyed in [`State::tokens`] by the
/// serial the client sees (after any override).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub label: String,
    pub underlying_serial: String,
    pub user_max: u32,
    pub user_left: u32,
    pub so_max: u32,
    pub so_left: u32,
}

/// A fault armed through the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FaultRecord {
    pub id: u64,
    pub function: String,
    pub at_call: u64,
    pub effect: Effect,
    /// Calls of `function` counted since arming, across all processes.
    pub calls: u64,
    pub fired: bool,
}

/// The persisted state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenRecord>,
    /// Identifiers (serials or labels) of tokens that are pulled out.
    #[serde(default)]
    pub absent: BTreeSet<String>,
    /// For each identifier, the `seq` at which it was last pulled out.
    #[serde(default)]
    pub removed_at: BTreeMap<String, u64>,
    /// Bumped by every insert and remove.
    #[serde(default)]
    pub seq: u64,
    /// `seq` of the latest insert (tells loaded modules to look for new tokens).
    #[serde(default)]
    pub last_insert: u64,
    #[serde(default)]
    pub faults: Vec<FaultRecord>,
    #[serde(default)]
    pub next_fault_id: u64,
}

/// Which PIN a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pin {
    User,
    So,
}

impl State {
    /// The record key of the token named by `ident` (its serial, label or underlying serial).
    pub fn resolve(&self, ident: &str) -> Option<&str> {
        if self.tokens.contains_key(ident) {
            return self.tokens.get_key_value(ident).map(|(k, _)| k.as_str());
        }
        self.tokens
            .iter()
            .find(|(_, r)| r.label == ident || r.underlying_serial == ident)
            .map(|(k, _)| k.as_str())
    }

    /// Every name under which the token called `ident` may have been removed.
    pub fn aliases(&self, ident: &str) -> Vec<String> {
        let mut out = vec![ident.to_string()];
        if let Some(key) = self.resolve(ident)
            && let Some(r) = self.tokens.get(key)
        {
            for a in [key, r.label.as_str(), r.underlying_serial.as_str()] {
                if !a.is_empty() && !out.iter().any(|o| o == a) {
                    out.push(a.to_string());
                }
            }
        }
        out
    }

    /// Marks a token absent.
    pub fn remove_token(&mut self, ident: &str) {
        let name = self.resolve(ident).unwrap_or(ident).to_string();
        self.seq += 1;
        self.removed_at.insert(name.clone(), self.seq);
        self.absent.insert(name);
    }

    /// Marks a token present again (whatever name it was removed under).
    pub fn insert_token(&mut self, ident: &str) {
        for a in self.aliases(ident) {
            self.absent.remove(&a);
        }
        self.seq += 1;
        self.last_insert = self.seq;
    }

    /// Whether any of the names is marked absent.
    pub fn is_absent(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|n| !n.is_empty() && self.absent.contains(*n))
    }

    /// The latest removal sequence number of any of the names (0 if never removed).
    pub fn removal_seq(&self, names: &[&str]) -> u64 {
        names
            .iter()
            .filter(|n| !n.is_empty())
            .filter_map(|n| self.removed_at.get(*n).copied())
            .max()
            .unwrap_or(0)
    }

    /// Counts one call of `function` for every armed fault on it (or on any function); returns the
    /// effect of the (earliest armed) fault that fires on this call, if any.
    pub fn count_call(&mut self, function: &str) -> Option<Effect> {
        let mut fired = None;
        for f in self
            .faults
            .iter_mut()
            .filter(|f| !f.fired && (f.function == function || f.function == ANY_FUNCTION))
        {
            f.calls += 1;
            if fired.is_none() && f.calls >= f.at_call {
                f.fired = true;
                fired = Some(f.effect);
            }
        }
        fired
    }

    /// Remaining tries of one PIN of a token, if the token is known.
    pub fn left(&self, key: &str, pin: Pin) -> Option<u32> {
        self.tokens.get(key).map(|r| match pin {
            Pin::User => r.user_left,
            Pin::So => r.so_left,
        })
    }

    /// A wrong PIN: one try fewer (never below zero).
    pub fn fail(&mut self, key: &str, pin: Pin) -> Option<u32> {
        let r = self.tokens.get_mut(key)?;
        let left = match pin {
            Pin::User => &mut r.user_left,
            Pin::So => &mut r.so_left,
        };
        *left = left.saturating_sub(1);
        Some(*left)
    }

    /// A right PIN (or an unlock): tries back to the maximum.
    pub fn reset(&mut self, key: &str, pin: Pin) {
        if let Some(r) = self.tokens.get_mut(key) {
            match pin {
                Pin::User => r.user_left = r.user_max,
                Pin::So => r.so_left = r.so_max,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }
}

#[derive(Debug)]
struct Cached {
    stamp: Option<Stamp>,
    read_at: Instant,
    state: Arc<State>,
}

/// Access to one state directory.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    cache: Mutex<Option<Cached>>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating if needed) a state directory.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::StateIo {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
            dir: dir.to_path_buf(),
            cache: Mutex::new(None),
        })
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::StateIo { path, source }
    }

    /// Reads the state file, bypassing the cache. A missing file is the empty state.
    pub fn read_fresh(&self) -> Result<State, Error> {
        Ok(self.read_with_stamp()?.1)
    }

    fn read_with_stamp(&self) -> Result<(Option<Stamp>, State), Error> {
        let path = self.state_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((None, State::default()));
            }
            Err(e) => return Err(self.io(&path)(e)),
        };
        let meta = file.metadata().map_err(self.io(&path))?;
        let state = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
            Error::StateCorrupt {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        Ok((Some(Stamp::of(&meta)), state))
    }

    /// The current state, from a cache revalidated with one `stat` per call.
    pub fn snapshot(&self) -> Result<Arc<State>, Error> {
        let path = self.state_path();
        let stamp = match std::fs::metadata(&path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io(&path)(e)),
        };
        {
            let cache = lock_ignoring_poison(&self.cache);
            if let Some(c) = cache.as_ref()
                && c.stamp == stamp
                && c.read_at.elapsed() < CACHE_MAX_AGE
            {
                return Ok(Arc::clone(&c.state));
            }
        }
        let (stamp, state) = self.read_with_stamp()?;
        let state = Arc::new(state);
        *lock_ignoring_poison(&self.cache) = Some(Cached {
            stamp,
            read_at: Instant::now(),
            state: Arc::clone(&state),
        });
        Ok(state)
    }

    /// Changes the state under the directory's lock and writes it back
    /// atomically if anything changed.
    pub fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> Result<R, Error> {
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(self.io(&lock_path))?;
        let _guard = FileLock::exclusive(&lock).map_err(self.io(&lock_path))?;
        let before = self.read_fresh()?;
        let mut after = before.clone();
        let out = change(&mut after);
        if after != before {
            self.write(&after)?;
        }
        Ok(out)
    }

    fn write(&self, state: &State) -> Result<(), Error> {
        let path = self.state_path();
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{STATE_FILE}.{}.{n}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::StateCorrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io(&path)(e));
        }
        // Our own write is the freshest state there is: drop the cache so the
        // next snapshot reads it back.
        *lock_ignoring_poison(&self.cache) = None;
        Ok(())
    }
}

/// An exclusive `flock` held until dropped.
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a File) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: the descriptor belongs to `file`, which outlives the lock.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock(file));
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is still open (borrowed for the guard's lifetime).
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token() -> State {
        let mut st = State::default();
        st.tokens.insert(
            "NC0001".into(),
            TokenRecord {
                label: "T".into(),
                underlying_serial: "abcdef0123456789".into(),
                user_max: 10,
                user_left: 10,
                so_max: 10,
                so_left: 10,
            },
        );
        st
    }

    #[test]
    fn a_token_removed_under_one_name_is_inserted_under_another() {
        let mut st = with_token();
        let names = ["NC0001", "T", "abcdef0123456789"];
        st.remove_token("T");
        assert!(st.is_absent(&names));
        assert_eq!(st.removal_seq(&names), 1);
        st.insert_token("abcdef0123456789");
        assert!(!st.is_absent(&names));
        assert_eq!((st.seq, st.last_insert), (2, 2));
        // Unknown names are kept as given.
        st.remove_token("LATER");
        assert!(st.is_absent(&["LATER"]));
    }

    #[test]
    fn counters_stop_at_zero_and_reset_to_the_maximum() {
        let mut st = with_token();
        for left in (0..10).rev() {
            assert_eq!(st.fail("NC0001", Pin::User), Some(left));
        }
        assert_eq!(st.fail("NC0001", Pin::User), Some(0));
        assert_eq!(st.left("NC0001", Pin::So), Some(10));
        st.reset("NC0001", Pin::User);
        assert_eq!(st.left("NC0001", Pin::User), Some(10));
        assert_eq!(st.fail("unknown", Pin::User), None);
    }

    #[test]
    fn a_fault_fires_once_at_its_call() {
        let mut st = State::default();
        for id in [1, 2] {
            st.faults.push(FaultRecord {
                id,
                function: "C_Sign".into(),
                at_call: 2,
                effect: Effect::RemoveToken,
                calls: 0,
                fired: false,
            });
        }
        assert_eq!(st.count_call("C_Verify"), None);
        assert_eq!(st.count_call("C_Sign"), None);
        // Both reach their call together: the earlier armed fires now, the other next.
        assert_eq!(st.count_call("C_Sign"), Some(Effect::RemoveToken));
        assert!(st.faults[0].fired && !st.faults[1].fired);
        assert_eq!(st.count_call("C_Sign"), Some(Effect::RemoveToken));
        assert_eq!(st.count_call("C_Sign"), None);
    }

    #[test]
    fn a_fault_on_any_function_counts_every_call() {
        let mut st = State::default();
        st.faults.push(FaultRecord {
            id: 1,
            function: ANY_FUNCTION.into(),
            at_call: 3,
            effect: Effect::RemoveToken,
            calls: 0,
            fired: false,
        });
        assert_eq!(st.count_call("C_OpenSession"), None);
        assert_eq!(st.count_call("C_Login"), None);
        assert_eq!(st.count_call("C_Sign"), Some(Effect::RemoveToken));
        assert_eq!(st.count_call("C_Sign"), None);
    }

    #[test]
    fn updates_from_many_threads_are_not_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let store = Store::open(dir.path()).expect("store");
                    for _ in 0..25 {
                        store.update(|st| st.seq += 1).expect("update");
                    }
                });
            }
        });
        let store = Store::open(dir.path()).expect("store");
        assert_eq!(store.read_fresh().expect("read").seq, 100);
        assert_eq!(store.snapshot().expect("snapshot").seq, 100);
    }
}
