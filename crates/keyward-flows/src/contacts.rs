//! The CA's support contacts (`GET /v1/ca/profile`): its name, hotline, online channel,
//! office hours, web address, and how to apply anew (新申请) or replace a key (补办). Front
//! ends show them wherever the operator cannot go on alone — an expired certificate, a key
//! not detected, the CA unreachable, an unlock refused.
//!
//! Those are exactly the moments the CA may not answer, so the last profile fetched is kept
//! in the data folder ([`CACHE_FILE`]) with when and from which address it came, and
//! [`support_contacts`] falls back to it: the operator still sees whom to call, with
//! "fetched on …". What the CA sends is text shown as is; each field is cut to
//! [`MAX_FIELD_CHARS`] and stripped of control characters first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_ca_api::CaProfile;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::FlowError;
use crate::connect::{CaClient, CaSettings, connect};

/// The kept copy's file name in the data folder.
pub const CACHE_FILE: &str = "ca-profile.json";

/// The longest a field of the profile is shown.
pub const MAX_FIELD_CHARS: usize = 400;

/// How long the contacts may take to arrive before the kept copy is shown instead: they
/// are asked for on screens that are already a dead end, so they must not hold them up.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The CA's contacts as a front end shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contacts {
    /// What the CA says.
    pub profile: CaProfile,
    /// When it was fetched from the CA.
    #[serde(with = "time::serde::rfc3339")]
    pub fetched_at: OffsetDateTime,
    /// The CA address it came from.
    pub ca_url: String,
    /// Fetched just now; false when this is the copy kept from an earlier fetch because
    /// the CA did not answer (or no CA is set).
    #[serde(default)]
    pub fresh: bool,
}

/// Where the kept copy lives in `data_dir`.
pub fn cache_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CACHE_FILE)
}

fn same_ca(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(MAX_FIELD_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The profile with every field cut and cleaned.
pub fn cleaned(p: &CaProfile) -> CaProfile {
    CaProfile {
        display_name: clean(&p.display_name),
        hotline: clean(&p.hotline),
        online: clean(&p.online),
        office_hours: clean(&p.office_hours),
        website: clean(&p.website),
        new_application: clean(&p.new_application),
        replacement: clean(&p.replacement),
    }
}

/// Asks the CA for its profile and keeps it in `data_dir` (a failure to keep it is logged,
/// not returned: the contacts are in hand).
pub fn fetch(client: &CaClient, data_dir: &Path) -> Result<Contacts, FlowError> {
    let profile = client.profile().map_err(FlowError::Ca)?;
    let contacts = Contacts {
        profile: cleaned(&profile),
        fetched_at: OffsetDateTime::now_utc(),
        ca_url: client.base_url().to_owned(),
        fresh: true,
    };
    if let Err(e) = keep(&contacts, data_dir) {
        tracing::warn!(error = %e, "cannot keep the CA's contacts");
    }
    Ok(contacts)
}

fn keep(contacts: &Contacts, data_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let body = serde_json::to_vec_pretty(contacts).map_err(std::io::Error::other)?;
    let path = cache_path(data_dir);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, &path)
}

/// The copy kept from the last fetch, if it came from `ca_url` (any address when `None`).
/// A copy that does not read is ignored.
pub fn cached(data_dir: &Path, ca_url: Option<&str>) -> Option<Contacts> {
    let bytes = std::fs::read(cache_path(data_dir)).ok()?;
    // A kept copy is small; anything larger is not one.
    if bytes.len() > 64 * 1024 {
        return None;
    }
    let mut c: Contacts = serde_json::from_slice(&bytes).ok()?;
    if ca_url.is_some_and(|u| !same_ca(u, &c.ca_url)) {
        return None;
    }
    c.profile = cleaned(&c.profile);
    c.fresh = false;
    Some(c)
}

/// The CA's contacts: fetched from the CA in `settings` (with [`FETCH_TIMEOUT`]) and kept,
/// or, when the CA does not answer or none is set, the copy kept from that CA's last fetch.
/// `None` when neither is there.
pub fn support_contacts(settings: Option<&CaSettings>, data_dir: &Path) -> Option<Contacts> {
    let Some(settings) = settings else {
        return cached(data_dir, None);
    };
    let mut quick = settings.clone();
    quick.timeout = quick.timeout.min(FETCH_TIMEOUT);
    match connect(&quick).and_then(|client| fetch(&client, data_dir)) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::info!(error = %e, "the CA's contacts cannot be fetched; the kept copy is shown");
            cached(data_dir, Some(&settings.url))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str) -> CaProfile {
        CaProfile {
            display_name: name.into(),
            hotline: "400\u{7}-000".into(),
            online: "QQ".into(),
            office_hours: "9–17".into(),
            website: "https://ca.example.invalid/".into(),
            new_application: "x".repeat(MAX_FIELD_CHARS + 50),
            replacement: "补办".into(),
        }
    }

    #[test]
    fn the_kept_copy_is_read_back_for_its_own_ca_only() {
        let d = tempfile::tempdir().unwrap();
        let c = Contacts {
            profile: profile("示例 CA"),
            fetched_at: OffsetDateTime::UNIX_EPOCH,
            ca_url: "https://ca.example.invalid:8750/".into(),
            fresh: true,
        };
        keep(&c, d.path()).unwrap();
        let back = cached(d.path(), Some("https://ca.example.invalid:8750")).unwrap();
        assert!(!back.fresh, "a kept copy is never fresh");
        assert_eq!(back.profile.display_name, "示例 CA");
        assert_eq!(back.profile.hotline, "400-000", "control characters go");
        assert_eq!(
            back.profile.new_application.chars().count(),
            MAX_FIELD_CHARS
        );
        assert_eq!(back.fetched_at, OffsetDateTime::UNIX_EPOCH);
        assert!(cached(d.path(), Some("https://other.example.invalid")).is_none());
        assert!(cached(d.path(), None).is_some());
        std::fs::write(cache_path(d.path()), b"{not json").unwrap();
        assert!(cached(d.path(), None).is_none());
        assert!(cached(&d.path().join("absent"), None).is_none());
    }

    #[test]
    fn no_ca_and_nothing_kept_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert!(support_contacts(None, d.path()).is_none());
    }
}
