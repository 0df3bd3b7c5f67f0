//! Finding the PKCS#11 module that reaches a key.
//!
//! In order: a module named explicitly (a flag, or `KEYWARD_PKCS11_MODULE`) is used alone and
//! must load. Otherwise every known driver profile (`drivers/profiles/*.toml`, embedded at
//! build time; see [`crate::profile`]) is looked for — bare names in the library folders of
//! every architecture Debian, UOS and Kylin use (this machine's first), absolute globs in
//! the vendors' own folders — and on Linux every module p11-kit is configured for this
//! program is added, the package, system and user configurations merged in p11-kit's
//! order, a blank `module:` meaning disabled, `enable-in` / `disable-in` honoured. Each
//! candidate either loads or is reported with the file tried and the reason it failed; a
//! file built for another architecture is refused before it is loaded ([`check_arch`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::elf::{ElfInfo, check_arch, elf_info, host_arch};
pub use crate::profile::{
    DriverProfile, InfoMatch, ModuleFiles, OsFiles, PinLimits, Quirk, TriesExtension, UdevRule,
    UsbId, embedded_profiles, expand, glob_match, load_profiles, profile_for_module,
    profile_for_usb,
};

/// The environment variable that names a module explicitly.
pub const MODULE_ENV: &str = "KEYWARD_PKCS11_MODULE";

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

/// The Debian multiarch triples of the architectures Debian, UOS and Kylin ship, this
/// machine's first.
pub fn multiarch_triples() -> Vec<&'static str> {
    let all = [
        ("x86_64", "x86_64-linux-gnu"),
        ("aarch64", "aarch64-linux-gnu"),
        ("mips64el", "mips64el-linux-gnuabi64"),
        ("mips64el", "mips64el-linux-gnu"),
        ("loongarch64", "loongarch64-linux-gnu"),
    ];
    let host = host_arch();
    let mut out: Vec<&str> = all
        .iter()
        .filter(|(a, _)| *a == host)
        .map(|(_, t)| *t)
        .collect();
    out.extend(all.iter().filter(|(a, _)| *a != host).map(|(_, t)| *t));
    out
}

/// The folders modules are looked for in: this machine's architecture first, then the
/// others (a driver installed for another architecture is found, and reported as such).
pub fn library_dirs() -> Vec<PathBuf> {
    if cfg!(target_os = "macos") {
        return ["/usr/local/lib", "/opt/homebrew/lib", "/Library/Frameworks"]
            .iter()
            .map(PathBuf::from)
            .collect();
    }
    if cfg!(target_os = "windows") {
        return vec![PathBuf::from("C:\\Windows\\System32")];
    }
    let mut out = Vec::new();
    for (i, t) in multiarch_triples().into_iter().enumerate() {
        out.push(PathBuf::from(format!("/usr/lib/{t}")));
        out.push(PathBuf::from(format!("/usr/lib/{t}/pkcs11")));
        if i == 0 {
            for d in [
                "/usr/lib64",
                "/usr/lib64/pkcs11",
                "/usr/lib",
                "/usr/lib/pkcs11",
            ] {
                out.push(PathBuf::from(d));
            }
            for d in ["/usr/local/lib", "/usr/local/lib/pkcs11"] {
                out.push(PathBuf::from(d));
            }
        }
    }
    out
}

/// p11-kit's module configuration folders, lowest precedence first: the package folder,
/// the system's, the user's (`$XDG_CONFIG_HOME/pkcs11/modules`, else
/// `~/.config/pkcs11/modules`).
pub fn p11kit_config_dirs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["/usr/share/p11-kit/modules", "/etc/pkcs11/modules"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(c) = config {
        out.push(c.join("pkcs11/modules"));
    }
    out
}

/// Where p11-kit takes a relative `module:` path from on this machine.
pub fn p11kit_default_module_dir() -> PathBuf {
    let triple = multiarch_triples()
        .first()
        .copied()
        .unwrap_or("x86_64-linux-gnu");
    PathBuf::from(format!("/usr/lib/{triple}/pkcs11"))
}

/// The `key: value` lines of a p11-kit module configuration.
pub fn p11kit_fields(config_text: &str) -> BTreeMap<String, String> {
    config_text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// Reads the `module:` line of a p11-kit module configuration; a relative path is taken
/// from p11-kit's module folder. A blank value (the module disabled) is `None`.
pub fn p11kit_module_path(config_text: &str) -> Option<PathBuf> {
    let value = p11kit_fields(config_text).remove("module")?;
    resolve_p11kit_path(&value, &p11kit_default_module_dir())
}

fn resolve_p11kit_path(value: &str, default_dir: &Path) -> Option<PathBuf> {
    if value.is_empty() {
        return None;
    }
    let p = PathBuf::from(value);
    Some(if p.is_absolute() {
        p
    } else {
        default_dir.join(p)
    })
}

/// What a p11-kit module configuration (merged over its folders) says of its module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum P11KitState {
    /// Loaded for this program.
    Enabled,
    /// `module:` is blank: disabled.
    Blank,
    /// `disable-in:` names this program.
    DisabledIn(String),
    /// `enable-in:` lists other programs only.
    NotEnabledIn(String),
}

/// One p11-kit module configuration, merged over the package, system and user folders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct P11KitModule {
    /// The configuration's name (its file name without `.module`).
    pub name: String,
    /// The file of highest precedence that configures it.
    pub config: PathBuf,
    /// The module file, unless blank.
    pub path: Option<PathBuf>,
    /// Whether this program loads it.
    pub state: P11KitState,
}

/// The program name p11-kit's `enable-in` and `disable-in` compare with: the file name of
/// the running executable.
pub fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "keyward".to_owned())
}

/// Every p11-kit module configuration in `dirs` (lowest precedence first), as p11-kit reads
/// them: a file of the same name in a later folder overrides the earlier one field by
/// field; a blank `module:` disables; `enable-in` / `disable-in` are compared with `program`.
pub fn p11kit_modules(dirs: &[PathBuf], program: &str, default_dir: &Path) -> Vec<P11KitModule> {
    let mut merged: BTreeMap<String, (PathBuf, BTreeMap<String, String>)> = BTreeMap::new();
    for dir in dirs {
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
            let Some(name) = conf.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let entry = merged
                .entry(name)
                .or_insert_with(|| (conf.clone(), BTreeMap::new()));
            entry.0 = conf.clone();
            entry.1.extend(p11kit_fields(&text));
        }
    }
    let listed = |v: &str| -> Vec<String> {
        v.split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    merged
        .into_iter()
        .filter_map(|(name, (config, fields))| {
            // A configuration without a module line at all is a remote or a partial one.
            let value = fields.get("module")?;
            let path = resolve_p11kit_path(value, default_dir);
            let state = if path.is_none() {
                P11KitState::Blank
            } else if fields
                .get("disable-in")
                .is_some_and(|v| listed(v).iter().any(|p| p == program))
            {
                P11KitState::DisabledIn(program.to_owned())
            } else if fields
                .get("enable-in")
                .is_some_and(|v| !listed(v).iter().any(|p| p == program))
            {
                P11KitState::NotEnabledIn(program.to_owned())
            } else {
                P11KitState::Enabled
            };
            Some(P11KitModule {
                name,
                config,
                path,
                state,
            })
        })
        .collect()
}

/// The files one profile names on this machine, for this architecture and any.
pub fn profile_files(profile: &DriverProfile, lib_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in profile.files_for_this_os() {
        if Path::new(&file).is_absolute() {
            out.extend(expand(&file, None));
        } else {
            for d in lib_dirs {
                out.extend(expand(&file, Some(d)));
            }
        }
    }
    out
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
    for profile in profiles.iter().filter(|p| p.module_profile.is_none()) {
        for path in profile_files(profile, lib_dirs) {
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(key) {
                out.push(Candidate {
                    path,
                    source: ModuleSource::Profile(profile.name.clone()),
                });
            }
        }
    }
    let program = program_name();
    for m in p11kit_modules(p11kit_dirs, &program, &p11kit_default_module_dir()) {
        let (Some(path), P11KitState::Enabled) = (m.path, &m.state) else {
            tracing::debug!(config = %m.config.display(), state = ?m.state, "p11-kit module not loaded here");
            continue;
        };
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.insert(key) {
            out.push(Candidate {
                path,
                source: ModuleSource::P11Kit(m.config),
            });
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
        assert!(profiles.len() >= 12, "{}", profiles.len());
        for p in &profiles {
            assert!(
                !p.files_for_this_os().is_empty()
                    || p.module_profile.is_some()
                    || !p.info_match.is_empty(),
                "{} names no module and no way to recognise one",
                p.name
            );
        }
        let softhsm = profiles
            .iter()
            .find(|p| p.name == "softhsm2")
            .expect("softhsm2");
        assert!(softhsm.has_quirk(Quirk::NoPinLockout));
        assert_eq!(
            profile_for_module(
                &profiles,
                Path::new("/usr/lib/softhsm/libsofthsm2.so"),
                None
            )
            .map(|p| p.name.as_str()),
            Some("softhsm2")
        );
        // Real vendors, each with the USB IDs of its keys.
        let with_usb = profiles.iter().filter(|p| !p.usb.is_empty()).count();
        assert!(with_usb >= 5, "{with_usb}");
        let gm3000 = profile_for_usb(&profiles, UsbId::parse("055c:e618").expect("id"))
            .expect("GM3000 by its USB ID");
        assert_eq!(gm3000.name, "longmai-gm3000");
        assert_eq!(gm3000.vendor_in("zh-CN"), "龙脉");
        // A CA-renamed module is recognised by what it says about itself.
        assert_eq!(
            profile_for_module(
                &profiles,
                Path::new("/opt/ca/libCAXYZ_P11.so"),
                Some(("Longmai Technology", "mToken GM3000 PKCS#11"))
            )
            .map(|p| p.name.as_str()),
            Some("longmai-gm3000")
        );
        // ePass2003 is reached through OpenSC's module, which stays OpenSC's.
        assert_eq!(
            profile_for_module(&profiles, Path::new("/usr/lib/opensc-pkcs11.so"), None)
                .map(|p| p.name.as_str()),
            Some("opensc")
        );
    }

    #[test]
    fn every_profile_file_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/profiles");
        let on_disk = load_profiles(&dir).expect("profiles load");
        let embedded = embedded_profiles().expect("embedded");
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn eight_vendor_keys_are_known_by_their_usb_ids_and_say_where_from() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/profiles");
        let mut with_ids = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("profiles folder") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("profile text");
            let p = DriverProfile::from_toml(&text, &path).expect("profile");
            if p.usb.is_empty() {
                continue;
            }
            // A USB ID is a claim about hardware: the file says where it comes from.
            assert!(
                text.contains("# Sources:"),
                "{} has USB IDs but no sources",
                p.name
            );
            with_ids.push(p.name);
        }
        with_ids.sort();
        assert!(
            with_ids.len() >= 8,
            "vendor profiles with USB IDs: {with_ids:?}"
        );
    }

    #[test]
    fn a_broken_profile_names_its_file() {
        let e = DriverProfile::from_toml("name = 3", Path::new("bad.toml")).expect_err("bad");
        assert!(e.to_string().contains("bad.toml"), "{e}");
        let d = tempfile::tempdir().expect("tmp");
        std::fs::write(d.path().join("a.toml"), "name = \"a\"\nvendor = \"A\"\n").expect("w");
        std::fs::write(
            d.path().join("b.toml"),
            "name = \"b\"\nvendor = \"B\"\nquirks = [\"sometimes-works\"]\n",
        )
        .expect("w");
        let e = load_profiles(d.path())
            .expect_err("b is malformed")
            .to_string();
        assert!(e.contains("b.toml") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn p11kit_config_lines() {
        let dir = p11kit_default_module_dir();
        assert_eq!(
            p11kit_module_path("# comment\nmodule: opensc-pkcs11.so\ncritical: no\n"),
            Some(dir.join("opensc-pkcs11.so"))
        );
        assert_eq!(
            p11kit_module_path("module:/opt/x/lib.so"),
            Some(PathBuf::from("/opt/x/lib.so"))
        );
        assert_eq!(p11kit_module_path("remote: |ssh"), None);
        assert_eq!(p11kit_module_path("module:\n"), None);
    }

    #[test]
    fn p11kit_precedence_blank_and_program_lists() {
        let package = tempfile::tempdir().expect("tmp");
        let system = tempfile::tempdir().expect("tmp");
        let user = tempfile::tempdir().expect("tmp");
        let w = |d: &tempfile::TempDir, name: &str, text: &str| {
            std::fs::write(d.path().join(name), text).expect("write")
        };
        // Overridden by the system's file of the same name.
        w(&package, "vendor.module", "module: /opt/pkg/libv.so\n");
        w(&system, "vendor.module", "module: /opt/sys/libv.so\n");
        // Disabled by the user with a blank module line.
        w(&package, "opensc.module", "module: opensc-pkcs11.so\n");
        w(&user, "opensc.module", "module:\n");
        // Kept from the package, with a field added by the system file.
        w(
            &package,
            "gm.module",
            "module: /opt/lm/libgm3000_pkcs11.so\n",
        );
        w(&system, "gm.module", "disable-in: keyward, firefox\n");
        w(
            &package,
            "only.module",
            "module: libonly.so\nenable-in: firefox\n",
        );
        w(
            &package,
            "mine.module",
            "module: libmine.so\nenable-in: ssh keyward\n",
        );
        w(&package, "remote.module", "remote: |ssh host\n");
        let dirs = [
            package.path().to_owned(),
            system.path().to_owned(),
            user.path().to_owned(),
        ];
        let base = Path::new("/usr/lib/test/pkcs11");
        let found = p11kit_modules(&dirs, "keyward", base);
        let by = |n: &str| found.iter().find(|m| m.name == n).expect(n).clone();
        assert_eq!(found.len(), 5, "{found:?}");
        let v = by("vendor");
        assert_eq!(v.path, Some(PathBuf::from("/opt/sys/libv.so")));
        assert_eq!(v.config, system.path().join("vendor.module"));
        assert_eq!(v.state, P11KitState::Enabled);
        let o = by("opensc");
        assert_eq!((o.path, o.state), (None, P11KitState::Blank));
        assert_eq!(o.config, user.path().join("opensc.module"));
        assert_eq!(by("gm").state, P11KitState::DisabledIn("keyward".into()));
        assert_eq!(
            by("only").state,
            P11KitState::NotEnabledIn("keyward".into())
        );
        let m = by("mine");
        assert_eq!(m.state, P11KitState::Enabled);
        assert_eq!(m.path, Some(base.join("libmine.so")));
        // Another program sees the opposite for the program lists.
        let firefox = p11kit_modules(&dirs, "firefox", base);
        let f = |n: &str| firefox.iter().find(|m| m.name == n).expect(n).state.clone();
        assert_eq!(f("only"), P11KitState::Enabled);
        assert_eq!(f("mine"), P11KitState::NotEnabledIn("firefox".into()));
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
        // A versioned vendor file name, found by its profile's glob.
        std::fs::write(libs.path().join("libshuttle_p11v220.so.1.0.0"), b"").expect("write");
        let other = libs.path().join("vendor.so");
        std::fs::write(&other, b"").expect("write");
        let disabled = libs.path().join("disabled.so");
        std::fs::write(&disabled, b"").expect("write");
        std::fs::write(
            confs.path().join("vendor.module"),
            format!("module: {}\n", other.display()),
        )
        .expect("write");
        std::fs::write(
            confs.path().join("off.module"),
            format!(
                "module: {}\ndisable-in: {}\n",
                disabled.display(),
                program_name()
            ),
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
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found
                .iter()
                .any(|c| c.source == ModuleSource::Profile("softhsm2".into()))
        );
        assert!(found.iter().any(|c| c.source
            == ModuleSource::Profile("feitian-epass3000gm".into())
            && c.path.ends_with("libshuttle_p11v220.so.1.0.0")));
        assert!(matches!(found[2].source, ModuleSource::P11Kit(_)));
        assert!(!found.iter().any(|c| c.path == disabled));
        let explicit = candidates(Some(Path::new("/x.so")), &profiles, &[], &[]);
        assert_eq!(explicit[0].source, ModuleSource::Explicit);
    }

    #[test]
    fn library_folders_cover_every_architecture() {
        let dirs = library_dirs();
        if cfg!(target_os = "linux") {
            for t in ["x86_64", "aarch64", "mips64el", "loongarch64"] {
                assert!(
                    dirs.iter()
                        .any(|d| d.starts_with(format!("/usr/lib/{t}-linux-gnu"))),
                    "{t}"
                );
                assert!(
                    dirs.iter()
                        .any(|d| d.ends_with("pkcs11") && d.to_string_lossy().contains(t))
                );
            }
            assert!(dirs.contains(&PathBuf::from("/usr/lib64/pkcs11")));
            assert!(dirs[0].to_string_lossy().contains(host_arch()));
        }
    }
}
