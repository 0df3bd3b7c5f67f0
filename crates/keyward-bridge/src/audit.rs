//! The bridge's audit log: one JSON line per request — when, which origin, which method,
//! which key, and how it ended. Never a PIN, a nonce, a digest or the data signed: what was
//! decided, not what was handled. The file is readable by its owner only and is rolled over
//! to `<name>.1` past 1 MiB.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

use crate::origin::Origin;

/// The size past which the log is rolled over.
pub const ROLL_OVER_BYTES: u64 = 1024 * 1024;

/// One line of the log.
#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    /// When the request ended.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Who asked.
    pub origin: &'a Origin,
    /// What.
    pub method: &'a str,
    /// With which key, when one was named or used.
    pub key_serial: Option<&'a str>,
    /// `ok`, or the error code the page received.
    pub outcome: &'a str,
}

/// Where the log goes; `None` keeps no log (tests of other things).
#[derive(Debug)]
pub struct Audit {
    path: Option<PathBuf>,
    lock: Mutex<()>,
}

impl Audit {
    /// A log written to `path`.
    pub fn to_file(path: PathBuf) -> Self {
        Audit {
            path: Some(path),
            lock: Mutex::new(()),
        }
    }

    /// No log.
    pub fn none() -> Self {
        Audit {
            path: None,
            lock: Mutex::new(()),
        }
    }

    /// Where it is written.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Appends `entry`. A log that cannot be written is reported in Keyward's own log; the
    /// answer to the page is not held back for it.
    pub fn record(&self, entry: &Entry<'_>) {
        let Some(path) = &self.path else {
            return;
        };
        let _guard = self.lock.lock();
        if let Err(e) = append(path, entry) {
            tracing::error!(path = %path.display(), error = %e, "the bridge's audit log cannot be written");
        }
    }
}

fn append(path: &std::path::Path, entry: &Entry<'_>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROLL_OVER_BYTES) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    opts.open(path)?.write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_origin;

    #[test]
    fn lines_are_appended_and_rolled_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge-audit.jsonl");
        let audit = Audit::to_file(path.clone());
        let origin = parse_origin(Some("https://portal.test"), false).unwrap();
        let entry = Entry {
            time: OffsetDateTime::UNIX_EPOCH,
            origin: &origin,
            method: "keyward.sign",
            key_serial: Some("K1"),
            outcome: "USER_CANCELLED",
        };
        audit.record(&entry);
        audit.record(&Entry {
            outcome: "ok",
            ..entry.clone()
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["origin"], "https://portal.test");
        assert_eq!(lines[0]["outcome"], "USER_CANCELLED");
        assert_eq!(lines[1]["time"], "1970-01-01T00:00:00Z");
        std::fs::write(&path, vec![b'x'; ROLL_OVER_BYTES as usize + 1]).unwrap();
        audit.record(&entry);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert!(dir.path().join("bridge-audit.jsonl.1").exists());
    }
}
