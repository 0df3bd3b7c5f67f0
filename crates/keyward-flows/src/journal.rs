//! The journal: where a workflow writes down each step before it acts, so a crash, a closed
//! window or a pulled key resumes where it stopped.
//!
//! One JSON file per workflow and key (`<flow>-<serial>.json`) in the journal folder,
//! replaced atomically (write a temporary file, flush it to disk, rename it over the old one,
//! flush the folder). The types written here never hold a PIN: `keyward_pki::Pin` has no
//! `Serialize`, so a journal entry with a PIN in it does not compile.

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

fn safe(serial: &str) -> String {
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
            .join(format!("{}-{}.json", kind.name(), safe(serial)))
    }

    /// Reads a workflow's entry for a key.
    pub fn load<T: DeserializeOwned>(
        &self,
        kind: FlowKind,
        serial: &str,
    ) -> Result<Option<T>, FlowError> {
        let path = self.path(kind, serial);
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
        fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.path(kind, serial);
        let tmp = path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(entry).map_err(|e| FlowError::Journal(e.to_string()))?;
        {
            let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        tracing::debug!(flow = kind.name(), serial, "journal written");
        Ok(())
    }

    /// Removes a finished workflow's entry.
    pub fn clear(&self, kind: FlowKind, serial: &str) -> Result<(), FlowError> {
        let path = self.path(kind, serial);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// The workflows waiting to be resumed for a key.
    pub fn pending(&self, serial: &str) -> Vec<FlowKind> {
        FlowKind::ALL
            .into_iter()
            .filter(|k| self.path(*k, serial).exists())
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
            !dir.path().join("journal/renew-ab_12.json.tmp").exists(),
            "no temporary left"
        );
        j.clear(FlowKind::Renew, "ab/12").expect("clear");
        assert!(j.pending("ab/12").is_empty());
        j.clear(FlowKind::Renew, "ab/12")
            .expect("clearing twice is fine");
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
