//! The operator's settings, kept as a small JSON file in the app's config folder. Nothing
//! secret is ever written here. A CA root pinned through the window is a copy in the same
//! folder ([`crate::root`]).

use std::path::{Path, PathBuf};

use keyward_pki::Lang;
use serde::{Deserialize, Serialize};

/// What the operator can set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The interface language: zh-CN (default), zh-TW or en.
    pub language: Lang,
    /// The CA online service's address, e.g. `https://127.0.0.1:8443` (default from
    /// `KEYWARD_CA_URL`).
    pub ca_url: Option<String>,
    /// The CA's root certificate (a PEM file), the only one trusted for TLS (default from
    /// `KEYWARD_CA_ROOT`). Pinned through the window, it is Keyward's own copy in the config
    /// folder.
    pub ca_root: Option<PathBuf>,
    /// The file the pinned copy was made from, for Settings to say so (never read again;
    /// set by Keyward, whatever the window sends).
    pub ca_root_origin: Option<PathBuf>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            language: std::env::var("KEYWARD_LANG")
                .ok()
                .as_deref()
                .and_then(Lang::from_tag)
                .unwrap_or_default(),
            ca_url: env_var("KEYWARD_CA_URL"),
            ca_root: env_var("KEYWARD_CA_ROOT").map(PathBuf::from),
            ca_root_origin: None,
        }
    }
}

/// Where the settings live, and their current value.
#[derive(Debug)]
pub struct SettingsStore {
    path: PathBuf,
    current: Settings,
}

impl SettingsStore {
    /// Reads `settings.json` in `dir`; a missing or unreadable file gives the defaults (an
    /// unreadable one is logged and replaced on the next save).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join("settings.json");
        let current = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "settings unreadable; defaults used");
                Settings::default()
            }),
            Err(_) => Settings::default(),
        };
        SettingsStore { path, current }
    }

    /// The folder the settings (and a pinned root's copy) live in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The settings now.
    pub fn get(&self) -> &Settings {
        &self.current
    }

    /// Saves new settings (write to a temporary file, then rename).
    pub fn set(&mut self, settings: Settings) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(&settings).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &self.path)?;
        self.current = settings;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settings_round_trip_and_survive_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SettingsStore::load(dir.path());
        store
            .set(Settings {
                language: Lang::ZhTw,
                ca_url: Some("https://ca.example:8443".into()),
                ca_root: None,
                ca_root_origin: None,
            })
            .unwrap();
        assert_eq!(SettingsStore::load(dir.path()).get().language, Lang::ZhTw);
        let text = std::fs::read_to_string(dir.path().join("settings.json")).unwrap();
        assert!(text.contains("\"zh-TW\""), "{text}");

        std::fs::write(dir.path().join("settings.json"), b"{not json").unwrap();
        let store = SettingsStore::load(dir.path());
        assert_eq!(store.get(), &Settings::default());
    }
}
