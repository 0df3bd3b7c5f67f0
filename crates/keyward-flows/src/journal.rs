//! The journal: where a workflow writes down each step before it acts, so a crash, a closed
//! window or a pulled key resumes where it stopped.
//!
//! One JSON file per workflow and key (`<flow>-<serial>.json`, the serial percent-encoded
//! so two serials never share a file) in the journal folder, replaced atomically (write a
//! temporary file, flush it to disk, rename it over the old one, flush the folder). The
//! folder is the user's alone (0700) and so is every entry (0600): an entry may hold a
//! business's secret or a code's ticket. The types written here never hold a PIN:
//! `keyward_pki::Pin` has no `Serialize`, so a journal entry with a PIN in it does not
//! compile.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FlowError;

/// The workflows that journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// 激活证书.
    Activate,
    /// 忘记密码.
    Unlock,
    /// 证书续期 and 安装证书.
    Renew,
    /// 申请印章 / 变更印章 and 安装印章.
    Seal,
}

impl FlowKind {
    /// Every kind.
    pub const ALL: [FlowKind; 4] = [
        FlowKind::Activate,
        FlowKind::Unlock,
        FlowKind::Renew,
        FlowKind::Seal,
    ];

    fn name(self) -> &'static str {
        match self {
            FlowKind::Activate => "activate",
            FlowKind::Unlock => "unlock",
            FlowKind::Renew => "renew",
            FlowKind::Seal => "seal",
        }
    }
}

/// A journal folder.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> FlowError {
    FlowError::Journal(format!("{}: {e}", path.display()))
}

/// The serial as a file-name part: letters, digits and `-` as they are, every other byte
/// as `%XX`. Reversible, so distinct serials give distinct names.
fn encode(serial: &str) -> String {
    serial
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The name entries had before the encoding was reversible (`_` for every other character).
fn legacy(serial: &str) -> String {
    serial
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let f = options.open(path)?;
    #[cfg(unix)]
    {
        // A file left by an older version keeps its mode through `create`: set it.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

impl Journal {
    /// A journal in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Journal { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, kind: FlowKind, serial: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{}.json", kind.name(), encode(serial)))
    }

    /// Where an older version kept the entry, when that differs from [`Journal::path`].
    fn legacy_path(&self, kind: FlowKind, serial: &str) -> Option<PathBuf> {
        (legacy(serial) != encode(serial)).then(|| {
            self.dir
                .join(format!("{}-{}.json", kind.name(), legacy(serial)))
        })
    }

    /// Reads a workflow's entry for a key.
    pub fn load<T: DeserializeOwned>(
        &self,
        kind: FlowKind,
        serial: &str,
    ) -> Result<Option<T>, FlowError> {
        let mut path = self.path(kind, serial);
        if !path.exists()
            && let Some(old) = self.legacy_path(kind, serial)
            && old.exists()
        {
            path = old;
        }
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| FlowError::Journal(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Writes a workflow's entry for a key, atomically and durably.
    pub fn save<T: Serialize>(
        &self,
        kind: FlowKind,
        serial: &str,
        entry: &T,
    ) -> Result<(), FlowError> {
        private_dir(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.path(kind, serial);
        let tmp = path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(entry).map_err(|e| FlowError::Journal(e.to_string()))?;
        {
            let mut f = create_private(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        if let Some(old) = self.legacy_path(kind, serial) {
            let _ = fs::remove_file(old);
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        tracing::debug!(flow = kind.name(), serial, "journal written");
        Ok(())
    }

    /// Removes a finished workflow's entry.
    pub fn clear(&self, kind: FlowKind, serial: &str) -> Result<(), FlowError> {
        let paths = std::iter::once(self.path(kind, serial)).chain(self.legacy_path(kind, serial));
        for path in paths {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
        Ok(())
    }

    /// The workflows waiting to be resumed for a key.
    pub fn pending(&self, serial: &str) -> Vec<FlowKind> {
        FlowKind::ALL
            .into_iter()
            .filter(|k| {
                self.path(*k, serial).exists()
                    || self.legacy_path(*k, serial).is_some_and(|p| p.exists())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Entry {
        step: u8,
        id: String,
    }

    #[test]
    fn entries_are_saved_replaced_listed_and_cleared() {
        let dir = tempfile::tempdir().expect("tmp");
        let j = Journal::new(dir.path().join("journal"));
        assert_eq!(
            j.load::<Entry>(FlowKind::Renew, "ab/12").expect("load"),
            None
        );
        j.save(
            FlowKind::Renew,
            "ab/12",
            &Entry {
                step: 1,
                id: "x".into(),
            },
        )
        .expect("save");
        j.save(
            FlowKind::Renew,
            "ab/12",
            &Entry {
                step: 2,
                id: "x".into(),
            },
        )
        .expect("replace");
        assert_eq!(
            j.load(FlowKind::Renew, "ab/12").expect("load"),
            Some(Entry {
                step: 2,
                id: "x".into()
            })
        );
        assert_eq!(j.pending("ab/12"), vec![FlowKind::Renew]);
        assert!(
            !dir.path().join("journal/renew-ab%2F12.json.tmp").exists(),
            "no temporary left"
        );
        assert!(dir.path().join("journal/renew-ab%2F12.json").exists());
        j.clear(FlowKind::Renew, "ab/12").expect("clear");
        assert!(j.pending("ab/12").is_empty());
        j.clear(FlowKind::Renew, "ab/12")
            .expect("clearing twice is fine");
    }

    #[test]
    fn serials_that_differ_never_share_an_entry() {
        let dir = tempfile::tempdir().expect("tmp");
        let j = Journal::new(dir.path());
        for (serial, step) in [("A.1", 1), ("A_1", 2), ("A/1", 3), ("A 1", 4)] {
            j.save(
                FlowKind::Seal,
                serial,
                &Entry {
                    step,
                    id: serial.into(),
                },
            )
            .expect("save");
        }
        for (serial, step) in [("A.1", 1), ("A_1", 2), ("A/1", 3), ("A 1", 4)] {
            let e: Entry = j
                .load(FlowKind::Seal, serial)
                .expect("load")
                .expect("entry");
            assert_eq!((e.step, e.id.as_str()), (step, serial));
        }
    }

    #[test]
    fn an_entry_written_by_an_older_version_is_read_and_moved() {
        let dir = tempfile::tempdir().expect("tmp");
        let j = Journal::new(dir.path());
        std::fs::write(
            dir.path().join("unlock-K_1.json"),
            br#"{"step": 7, "id": "old"}"#,
        )
        .expect("write");
        let e: Entry = j
            .load(FlowKind::Unlock, "K.1")
            .expect("load")
            .expect("entry");
        assert_eq!(e.step, 7);
        assert_eq!(j.pending("K.1"), vec![FlowKind::Unlock]);
        j.save(FlowKind::Unlock, "K.1", &e).expect("save");
        assert!(!dir.path().join("unlock-K_1.json").exists());
        assert!(dir.path().join("unlock-K%2E1.json").exists());
    }

    #[cfg(unix)]
    #[test]
    fn entries_are_the_users_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let folder = dir.path().join("journal");
        let j = Journal::new(&folder);
        // A file an older version left world-readable is tightened when rewritten.
        std::fs::create_dir_all(&folder).expect("dir");
        let path = folder.join("renew-K1.json");
        std::fs::write(&path, b"{}").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        j.save(
            FlowKind::Renew,
            "K1",
            &Entry {
                step: 1,
                id: "x".into(),
            },
        )
        .expect("save");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&folder), 0o700);
    }

    #[test]
    fn a_corrupt_entry_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let j = Journal::new(dir.path());
        std::fs::write(dir.path().join("activate-k1.json"), b"{ not json").expect("write");
        assert!(matches!(
            j.load::<Entry>(FlowKind::Activate, "k1"),
            Err(FlowError::Journal(_))
        ));
    }
}
