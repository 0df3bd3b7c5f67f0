//! Finding the PKCS#11 module that reaches a key.
//!
//! In order: a module named explicitly (a flag, or `KEYWARD_PKCS11_MODULE`) is used alone and
//! must load. Otherwise every known driver profile (`drivers/profiles/*.toml`, embedded at
//! build time) is looked for in the platform's library folders, and on Linux every module
//! p11-kit is configured with is added. Each candidate either loads or is reported with the
//! file tried and the reason it failed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TokenError};

/// The environment variable that names a module explicitly.
pub const MODULE_ENV: &str = "KEYWARD_PKCS11_MODULE";

/// Module file names per OS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFiles {
    /// Linux file names (or paths relative to a library folder, or absolute paths).
    #[serde(default)]
    pub linux: Vec<String>,
    /// macOS file names.
    #[serde(default)]
    pub macos: Vec<String>,
    /// Windows file names.
    #[serde(default)]
    pub windows: Vec<String>,
}

/// PIN limits a driver is known for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinLimits {
    /// Minimum PIN length.
    #[serde(default)]
    pub min_len: usize,
    /// Maximum PIN length (0: none).
    #[serde(default)]
    pub max_len: usize,
    /// User tries before lockout (0: never locks or unknown).
    #[serde(default)]
    pub user_tries: u32,
    /// SO tries before lockout.
    #[serde(default)]
    pub so_tries: u32,
}

/// One known token driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverProfile {
    /// Short name.
    pub name: String,
    /// Who makes it.
    pub vendor: String,
    /// Module files per OS.
    pub modules: ModuleFiles,
    /// PIN limits.
    #[serde(default)]
    pub pin: PinLimits,
    /// Known quirks, e.g. `no-wait-for-slot-event`.
    #[serde(default)]
    pub quirks: Vec<String>,
}

impl DriverProfile {
    /// Reads one profile from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| TokenError::Profile {
            path: origin.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The module file names for the OS this was built for.
    pub fn files_for_this_os(&self) -> &[String] {
        if cfg!(target_os = "windows") {
            &self.modules.windows
        } else if cfg!(target_os = "macos") {
            &self.modules.macos
        } else {
            &self.modules.linux
        }
    }

    /// Does the profile list this quirk?
    pub fn has_quirk(&self, quirk: &str) -> bool {
        self.quirks.iter().any(|q| q == quirk)
    }
}

const EMBEDDED: [(&str, &str); 4] = [
    (
        "softhsm2.toml",
        include_str!("../../../drivers/profiles/softhsm2.toml"),
    ),
    (
        "kryoptic.toml",
        include_str!("../../../drivers/profiles/kryoptic.toml"),
    ),
    (
        "opensc.toml",
        include_str!("../../../drivers/profiles/opensc.toml"),
    ),
    (
        "keyward-sim.toml",
        include_str!("../../../drivers/profiles/keyward-sim.toml"),
    ),
];

/// The profiles built into this binary.
pub fn embedded_profiles() -> Result<Vec<DriverProfile>> {
    EMBEDDED
        .iter()
        .map(|(name, text)| DriverProfile::from_toml(text, Path::new(name)))
        .collect()
}

/// Reads every `*.toml` profile in a folder.
pub fn load_profiles(dir: &Path) -> Result<Vec<DriverProfile>> {
    let entries = std::fs::read_dir(dir).map_err(|e| TokenError::Profile {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| TokenError::Profile {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            DriverProfile::from_toml(&text, p)
        })
        .collect()
}

/// The profile a module path belongs to, by file name.
pub fn profile_for_module<'a>(
    profiles: &'a [DriverProfile],
    path: &Path,
) -> Option<&'a DriverProfile> {
    let file = path.file_name()?.to_str()?;
    profiles.iter().find(|p| {
        p.files_for_this_os()
            .iter()
            .any(|f| Path::new(f).file_name().and_then(|n| n.to_str()) == Some(file))
    })
}

/// How a candidate module was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ModuleSource {
    /// Named on the command line or by the caller.
    Explicit,
    /// Named by `KEYWARD_PKCS11_MODULE`.
    Environment,
    /// Found through a driver profile.
    Profile(String),
    /// Listed by a p11-kit module configuration file.
    P11Kit(PathBuf),
}

impl std::fmt::Display for ModuleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleSource::Explicit => f.write_str("named explicitly"),
            ModuleSource::Environment => write!(f, "named by {MODULE_ENV}"),
            ModuleSource::Profile(p) => write!(f, "driver profile {p}"),
            ModuleSource::P11Kit(c) => write!(f, "p11-kit {}", c.display()),
        }
    }
}

/// A module file discovery will try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The file.
    pub path: PathBuf,
    /// Where it came from.
    pub source: ModuleSource,
}

/// The folders modules are looked for in.
pub fn library_dirs() -> Vec<PathBuf> {
    let dirs: &[&str] = if cfg!(target_os = "macos") {
        &["/usr/local/lib", "/opt/homebrew/lib", "/Library/Frameworks"]
    } else if cfg!(target_os = "windows") {
        &["C:\\Windows\\System32"]
    } else {
        &[
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/lib",
            "/usr/lib/x86_64-linux-gnu/pkcs11",
            "/usr/lib/pkcs11",
        ]
    };
    dirs.iter().map(PathBuf::from).collect()
}

/// The p11-kit module configuration folders (Linux).
pub fn p11kit_config_dirs() -> Vec<PathBuf> {
    ["/usr/share/p11-kit/modules", "/etc/pkcs11/modules"]
        .iter()
        .map(PathBuf::from)
        .collect()
}

/// Reads the `module:` line of a p11-kit module configuration; a relative path is taken
/// from the p11-kit module folder.
pub fn p11kit_module_path(config_text: &str) -> Option<PathBuf> {
    let value = config_text.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix("module:")?;
        Some(rest.trim().to_owned())
    })?;
    let p = PathBuf::from(&value);
    if p.is_absolute() {
        Some(p)
    } else {
        Some(PathBuf::from("/usr/lib/x86_64-linux-gnu/pkcs11").join(p))
    }
}

/// Every candidate module, in the order discovery tries them. `explicit` wins over the
/// environment, and either alone replaces the search.
pub fn candidates(
    explicit: Option<&Path>,
    profiles: &[DriverProfile],
    lib_dirs: &[PathBuf],
    p11kit_dirs: &[PathBuf],
) -> Vec<Candidate> {
    if let Some(p) = explicit {
        return vec![Candidate {
            path: p.to_owned(),
            source: ModuleSource::Explicit,
        }];
    }
    if let Some(p) = std::env::var_os(MODULE_ENV).filter(|v| !v.is_empty()) {
        return vec![Candidate {
            path: PathBuf::from(p),
            source: ModuleSource::Environment,
        }];
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for profile in profiles {
        for file in profile.files_for_this_os() {
            let f = Path::new(file);
            let paths: Vec<PathBuf> = if f.is_absolute() {
                vec![f.to_owned()]
            } else {
                lib_dirs.iter().map(|d| d.join(f)).collect()
            };
            for path in paths.into_iter().filter(|p| p.exists()) {
                let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen.insert(key) {
                    out.push(Candidate {
                        path,
                        source: ModuleSource::Profile(profile.name.clone()),
                    });
                }
            }
        }
    }
    for dir in p11kit_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut confs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "module"))
            .collect();
        confs.sort();
        for conf in confs {
            let Ok(text) = std::fs::read_to_string(&conf) else {
                continue;
            };
            let Some(path) = p11kit_module_path(&text) else {
                continue;
            };
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(key) {
                out.push(Candidate {
                    path,
                    source: ModuleSource::P11Kit(conf),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_parse_and_name_linux_modules() {
        let profiles = embedded_profiles().expect("profiles parse");
        assert!(profiles.len() >= 4);
        for p in &profiles {
            assert!(
                !p.files_for_this_os().is_empty(),
                "{} lists no module",
                p.name
            );
        }
        let softhsm = profiles
            .iter()
            .find(|p| p.name == "softhsm2")
            .expect("softhsm2");
        assert!(softhsm.has_quirk("no-pin-lockout"));
        assert_eq!(
            profile_for_module(&profiles, Path::new("/usr/lib/softhsm/libsofthsm2.so"))
                .map(|p| p.name.as_str()),
            Some("softhsm2")
        );
    }

    #[test]
    fn a_broken_profile_names_its_file() {
        let e = DriverProfile::from_toml("name = 3", Path::new("bad.toml")).expect_err("bad");
        assert!(e.to_string().contains("bad.toml"), "{e}");
    }

    #[test]
    fn p11kit_config_lines() {
        assert_eq!(
            p11kit_module_path("# comment\nmodule: opensc-pkcs11.so\ncritical: no\n"),
            Some(PathBuf::from(
                "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so"
            ))
        );
        assert_eq!(
            p11kit_module_path("module:/opt/x/lib.so"),
            Some(PathBuf::from("/opt/x/lib.so"))
        );
        assert_eq!(p11kit_module_path("remote: |ssh"), None);
    }

    #[test]
    #[allow(unsafe_code)]
    fn search_finds_profile_files_and_p11kit_configs_once() {
        // The environment may name a module in a developer's shell (or the test runner's); it
        // would replace the search this test is about.
        // SAFETY: first thing in this test's own process (nextest), before it starts threads.
        unsafe { std::env::remove_var(MODULE_ENV) };
        let libs = tempfile::tempdir().expect("tmp");
        let confs = tempfile::tempdir().expect("tmp");
        std::fs::write(libs.path().join("libsofthsm2.so"), b"").expect("write");
        let other = libs.path().join("vendor.so");
        std::fs::write(&other, b"").expect("write");
        std::fs::write(
            confs.path().join("vendor.module"),
            format!("module: {}\n", other.display()),
        )
        .expect("write");
        std::fs::write(
            confs.path().join("dup.module"),
            format!("module: {}\n", libs.path().join("libsofthsm2.so").display()),
        )
        .expect("write");
        let profiles = embedded_profiles().expect("profiles");
        let found = candidates(
            None,
            &profiles,
            &[libs.path().to_owned()],
            &[confs.path().to_owned()],
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].source, ModuleSource::Profile("softhsm2".into()));
        assert!(matches!(found[1].source, ModuleSource::P11Kit(_)));
        let explicit = candidates(Some(Path::new("/x.so")), &profiles, &[], &[]);
        assert_eq!(explicit[0].source, ModuleSource::Explicit);
    }
}
