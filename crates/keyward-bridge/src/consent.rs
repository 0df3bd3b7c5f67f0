//! Which origins may use the bridge: the operator's grants, kept per user, and the origins a
//! managed deployment grants outright.
//!
//! - An origin the deployment names (`--allow-origin`) is granted and never asks.
//! - 始终允许 is written to the grants file (mode 0600) with when it was granted and last
//!   used, until revoked.
//! - 允许一次 lasts as long as the connection that asked; it is not written down.
//! - 拒绝 is remembered for a cooling-off time that doubles with each refusal (30 s, 1 min,
//!   2 min, … at most 1 h), during which the origin is refused without asking, so a page cannot
//!   keep a prompt in front of the operator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::BridgeError;
use crate::origin::Origin;

/// The first cooling-off time after a refusal.
pub const FIRST_COOL_OFF: Duration = Duration::from_secs(30);
/// The longest.
pub const MAX_COOL_OFF: Duration = Duration::from_secs(3600);

/// A kept grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The origin.
    pub origin: String,
    /// When it was granted.
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
    /// When it was last used.
    #[serde(with = "time::serde::rfc3339")]
    pub last_used: OffsetDateTime,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    grants: Vec<Grant>,
}

/// Where an origin stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Granted (by the deployment, or 始终允许).
    Granted,
    /// Refused lately: refused again, without asking, until the cooling-off time ends.
    CoolingOff(Duration),
    /// Never asked, or asked long enough ago: ask.
    Ask,
}

/// The grants of one user. `Grants::default()` keeps nothing and grants nothing.
#[derive(Debug, Default)]
pub struct Grants {
    file: Option<PathBuf>,
    managed: BTreeSet<Origin>,
    kept: BTreeMap<String, Grant>,
    refused: HashMap<Origin, (Instant, u32)>,
}

impl Grants {
    /// Grants kept in `file` (read now if it exists), plus the deployment's `managed`
    /// origins. With no file nothing is kept beyond the managed origins.
    pub fn load(file: Option<PathBuf>, managed: Vec<Origin>) -> Result<Self, BridgeError> {
        let kept = match &file {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| BridgeError::Grants(format!("{}: {e}", p.display())))?;
                let f: File = serde_json::from_str(&text)
                    .map_err(|e| BridgeError::Grants(format!("{}: {e}", p.display())))?;
                f.grants
                    .into_iter()
                    .map(|g| (g.origin.clone(), g))
                    .collect()
            }
            _ => BTreeMap::new(),
        };
        Ok(Grants {
            file,
            managed: managed.into_iter().collect(),
            kept,
            refused: HashMap::new(),
        })
    }

    /// Where `origin` stands now; a granted origin's last use is recorded.
    pub fn standing(&mut self, origin: &Origin, now: OffsetDateTime) -> Standing {
        if self.managed.contains(origin) {
            return Standing::Granted;
        }
        if let Some(g) = self.kept.get_mut(origin.as_str()) {
            g.last_used = now;
            if let Err(e) = self.save() {
                tracing::warn!(error = %e, "could not record a grant's last use");
            }
            return Standing::Granted;
        }
        if let Some((until, _)) = self.refused.get(origin) {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Standing::CoolingOff(left);
            }
        }
        Standing::Ask
    }

    /// 始终允许: kept from now on.
    pub fn grant(&mut self, origin: &Origin, now: OffsetDateTime) -> Result<(), BridgeError> {
        self.refused.remove(origin);
        self.kept.insert(
            origin.as_str().to_owned(),
            Grant {
                origin: origin.as_str().to_owned(),
                granted_at: now,
                last_used: now,
            },
        );
        self.save()
    }

    /// 拒绝: refused without asking for a cooling-off time that doubles each time.
    pub fn refuse(&mut self, origin: &Origin) {
        let count = self.refused.get(origin).map_or(0, |(_, n)| *n) + 1;
        let cool = FIRST_COOL_OFF
            .saturating_mul(1u32 << (count - 1).min(16))
            .min(MAX_COOL_OFF);
        self.refused
            .insert(origin.clone(), (Instant::now() + cool, count));
    }

    /// Revokes a kept grant; whether there was one.
    pub fn revoke(&mut self, origin: &str) -> Result<bool, BridgeError> {
        let had = self.kept.remove(origin).is_some();
        if had {
            self.save()?;
        }
        Ok(had)
    }

    /// The kept grants, by origin.
    pub fn list(&self) -> Vec<Grant> {
        self.kept.values().cloned().collect()
    }

    /// The deployment's origins.
    pub fn managed(&self) -> impl Iterator<Item = &Origin> {
        self.managed.iter()
    }

    fn save(&self) -> Result<(), BridgeError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let body = serde_json::to_vec_pretty(&File {
            grants: self.list(),
        })
        .map_err(|e| BridgeError::Grants(e.to_string()))?;
        write_private(path, &body)
            .map_err(|e| BridgeError::Grants(format!("{}: {e}", path.display())))
    }
}

/// Writes `body` to `path` whole or not at all (a temporary file renamed over it), readable
/// by its owner only.
pub(crate) fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_origin;

    fn o(s: &str) -> Origin {
        parse_origin(Some(s), false).unwrap()
    }

    #[test]
    fn managed_kept_and_refused_origins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grants.json");
        let now = OffsetDateTime::now_utc();
        let mut g = Grants::load(Some(file.clone()), vec![o("https://managed.test")]).unwrap();
        assert_eq!(
            g.standing(&o("https://managed.test"), now),
            Standing::Granted
        );
        assert_eq!(g.standing(&o("https://portal.test"), now), Standing::Ask);
        g.grant(&o("https://portal.test"), now).unwrap();
        assert_eq!(
            g.standing(&o("https://portal.test"), now),
            Standing::Granted
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Kept across a restart; the managed list is not written down.
        let mut again = Grants::load(Some(file.clone()), vec![]).unwrap();
        assert_eq!(
            again.standing(&o("https://portal.test"), now),
            Standing::Granted
        );
        assert_eq!(
            again.standing(&o("https://managed.test"), now),
            Standing::Ask
        );
        assert!(again.revoke("https://portal.test").unwrap());
        assert!(!again.revoke("https://portal.test").unwrap());
        let mut after = Grants::load(Some(file), vec![]).unwrap();
        assert_eq!(
            after.standing(&o("https://portal.test"), now),
            Standing::Ask
        );

        // Refusals cool off, longer each time.
        after.refuse(&o("https://evil.test"));
        let Standing::CoolingOff(first) = after.standing(&o("https://evil.test"), now) else {
            panic!("not cooling off");
        };
        after.refuse(&o("https://evil.test"));
        let Standing::CoolingOff(second) = after.standing(&o("https://evil.test"), now) else {
            panic!("not cooling off");
        };
        assert!(
            first <= FIRST_COOL_OFF && second > FIRST_COOL_OFF,
            "{first:?} {second:?}"
        );
        for _ in 0..40 {
            after.refuse(&o("https://evil.test"));
        }
        let Standing::CoolingOff(most) = after.standing(&o("https://evil.test"), now) else {
            panic!("not cooling off");
        };
        assert!(most <= MAX_COOL_OFF);
    }

    #[test]
    fn a_damaged_grants_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grants.json");
        std::fs::write(&file, "{not json").unwrap();
        let e = Grants::load(Some(file), vec![]).unwrap_err();
        assert!(e.to_string().contains("grants.json"), "{e}");
    }
}
