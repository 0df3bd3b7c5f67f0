//! Driver profiles: what Keyward knows about one vendor's keys and their PKCS#11 module.
//!
//! One TOML file per driver in `drivers/profiles/`, every file of that folder embedded at
//! build time (`build.rs`), so a new profile is a new file and no code change. A profile
//! names the keys by USB ID, the module files per OS and architecture (globs, for versioned
//! names and vendor folders), the `CK_INFO` strings that recognise a module a CA shipped
//! under a name of its own, PIN limits, the exact-tries extension the module offers, the
//! quirks that change how Keyward drives it, the udev rule it needs and the SM2 mechanism
//! codes it uses. A file with an unknown field, an unknown quirk or a malformed USB ID is
//! refused with its name and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TokenError};

/// A behaviour of a module that Keyward works around, named in profiles in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quirk {
    /// C_WaitForSlotEvent is missing or unreliable: the watcher polls.
    NoWaitForSlotEvent,
    /// The module shows a slot with a token present that holds no key (its token info
    /// fails, or is blank): such slots are left out of the key list instead of failing it.
    PhantomSlot,
    /// The module may hang or crash its host in C_Initialize: it is test-loaded in a child
    /// process, with a timeout, before this process loads it.
    LoadInChild,
    /// The module opens the USB device itself and needs a udev rule to do so as a user.
    NeedsUdevRule,
    /// SM2 signing is only offered through the vendor's SKF interface, not PKCS#11.
    Sm2OnlyViaSkf,
    /// The PIN never locks.
    NoPinLockout,
    /// Tokens created after C_Initialize appear only after the module is initialised again.
    ReinitToSeeNewTokens,
    /// CKM_ECDSA_SHA256 is not offered: hash first, then CKM_ECDSA.
    NoEcdsaSha256,
    /// CKF_USER_PIN_COUNT_LOW is raised only in the last three tries.
    CountLowOnlyInLastThreeTries,
    /// The lock flag may still say locked after C_InitPIN until the next login.
    LockFlagLagsInitPin,
}

impl Quirk {
    /// The kebab-case name used in profiles.
    pub fn name(self) -> &'static str {
        match self {
            Quirk::NoWaitForSlotEvent => "no-wait-for-slot-event",
            Quirk::PhantomSlot => "phantom-slot",
            Quirk::LoadInChild => "load-in-child",
            Quirk::NeedsUdevRule => "needs-udev-rule",
            Quirk::Sm2OnlyViaSkf => "sm2-only-via-skf",
            Quirk::NoPinLockout => "no-pin-lockout",
            Quirk::ReinitToSeeNewTokens => "reinit-to-see-new-tokens",
            Quirk::NoEcdsaSha256 => "no-ecdsa-sha256",
            Quirk::CountLowOnlyInLastThreeTries => "count-low-only-in-last-three-tries",
            Quirk::LockFlagLagsInitPin => "lock-flag-lags-init-pin",
        }
    }
}

/// A USB vendor:product pair, written `"055c:e618"` in profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsbId {
    /// idVendor.
    pub vendor: u16,
    /// idProduct.
    pub product: u16,
}

impl UsbId {
    /// Parses `"vvvv:pppp"` (four hex digits each).
    pub fn parse(s: &str) -> Option<UsbId> {
        let (v, p) = s.trim().split_once(':')?;
        let hex4 = |x: &str| {
            (x.len() == 4 && x.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(x, 16).ok())
                .flatten()
        };
        Some(UsbId {
            vendor: hex4(v)?,
            product: hex4(p)?,
        })
    }
}

impl std::fmt::Display for UsbId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.product)
    }
}

impl Serialize for UsbId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UsbId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UsbId::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "USB ID {s:?} is not vendor:product in hex, like \"055c:e618\""
            ))
        })
    }
}

/// Module files for one architecture (or any), per OS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsFiles {
    /// Linux file names or globs: a bare name is looked for in every library folder, an
    /// absolute path (globs allowed in any component) is taken as it is.
    #[serde(default)]
    pub linux: Vec<String>,
    /// macOS file names.
    #[serde(default)]
    pub macos: Vec<String>,
    /// Windows file names.
    #[serde(default)]
    pub windows: Vec<String>,
}

impl OsFiles {
    fn for_this_os(&self) -> &[String] {
        if cfg!(target_os = "windows") {
            &self.windows
        } else if cfg!(target_os = "macos") {
            &self.macos
        } else {
            &self.linux
        }
    }
}

/// Module file names per OS, and per architecture where the vendor ships one build each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleFiles {
    /// Linux files for any architecture: a bare name is looked for in every library
    /// folder, an absolute path (globs allowed in any component) is taken as it is.
    #[serde(default)]
    pub linux: Vec<String>,
    /// macOS files.
    #[serde(default)]
    pub macos: Vec<String>,
    /// Windows files.
    #[serde(default)]
    pub windows: Vec<String>,
    /// Files for one architecture (`x86_64`, `aarch64`, `mips64el`, `loongarch64`, …),
    /// as Rust names it.
    #[serde(default)]
    pub arch: BTreeMap<String, OsFiles>,
}

/// PIN limits a driver is known for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinLimits {
    /// Minimum PIN length (0: unknown).
    #[serde(default)]
    pub min_len: usize,
    /// Maximum PIN length (0: none or unknown).
    #[serde(default)]
    pub max_len: usize,
    /// User tries before lockout (0: never locks or unknown).
    #[serde(default)]
    pub user_tries: u32,
    /// SO tries before lockout.
    #[serde(default)]
    pub so_tries: u32,
}

/// How a module is recognised from what it says about itself (`CK_INFO`), for a module a CA
/// renamed. Patterns are globs (`*`, `?`), compared without regard to case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfoMatch {
    /// Patterns for manufacturerID.
    #[serde(default)]
    pub manufacturer: Vec<String>,
    /// Patterns for libraryDescription.
    #[serde(default)]
    pub description: Vec<String>,
}

impl InfoMatch {
    /// Is there anything to match on?
    pub fn is_empty(&self) -> bool {
        self.manufacturer.is_empty() && self.description.is_empty()
    }

    /// Does a module saying this about itself belong here? Every list given must match.
    pub fn matches(&self, manufacturer: &str, description: &str) -> bool {
        let any = |pats: &[String], s: &str| pats.iter().any(|p| glob_match(p, s, true));
        !self.is_empty()
            && (self.manufacturer.is_empty() || any(&self.manufacturer, manufacturer))
            && (self.description.is_empty() || any(&self.description, description))
    }
}

/// The extension a module offers beside PKCS#11 to tell the exact PIN tries left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriesExtension {
    /// keyward-sim's `keyward_sim_pin_tries(slot, &user, &so)`, read by Keyward.
    KeywardSim,
    /// Feitian's `E_GetAuxFunctionList` table with `EP_GetPinInfo`. Recorded; Keyward does
    /// not call it yet, so these keys show what their flags say.
    FeitianAux,
}

/// The udev rule a module that opens the USB device itself needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdevRule {
    /// The file it is installed as, under `/etc/udev/rules.d/`.
    pub file: String,
    /// The rule line itself.
    pub rule: String,
}

/// One known token driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverProfile {
    /// Short name (the file name without `.toml`).
    pub name: String,
    /// Who makes it, in English.
    pub vendor: String,
    /// The vendor's name in other languages, keyed `zh-CN`, `zh-TW`.
    #[serde(default)]
    pub vendor_names: BTreeMap<String, String>,
    /// The key's model as operators know it (`mToken GM3000`).
    #[serde(default)]
    pub model: String,
    /// USB vendor:product IDs of the keys this driver serves.
    #[serde(default)]
    pub usb: Vec<UsbId>,
    /// How the key is reached: `ccid` (a smart-card reader class device, through PC/SC) or
    /// `vendor` (the module opens the USB device itself); empty when not known.
    #[serde(default)]
    pub transport: String,
    /// The keys are reached through another profile's module (OpenSC's for ePass2003).
    #[serde(default)]
    pub module_profile: Option<String>,
    /// Module files.
    #[serde(default)]
    pub modules: ModuleFiles,
    /// How a renamed module is recognised.
    #[serde(default, rename = "match")]
    pub info_match: InfoMatch,
    /// PIN limits.
    #[serde(default)]
    pub pin: PinLimits,
    /// The exact-tries extension, if the module has one.
    #[serde(default)]
    pub tries_extension: Option<TriesExtension>,
    /// Quirks that change how Keyward drives the module.
    #[serde(default)]
    pub quirks: Vec<Quirk>,
    /// The udev rule it needs (with `needs-udev-rule`).
    #[serde(default)]
    pub udev: Option<UdevRule>,
    /// The vendor mechanism codes for SM2 / SM3, keyed `sm2-sign`, `sm2-sm3-sign`,
    /// `sm2-keygen`, `sm2-encrypt`, `sm3`. Recorded for the signing to come.
    #[serde(default)]
    pub sm2: BTreeMap<String, u64>,
}

/// The keys of the SM2 mechanism map.
pub const SM2_MECHANISMS: [&str; 5] = [
    "sm2-sign",
    "sm2-sm3-sign",
    "sm2-keygen",
    "sm2-encrypt",
    "sm3",
];

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.bytes().filter(|b| *b == b'\n').count() + 1)
}

impl DriverProfile {
    /// Reads one profile from TOML text; `origin` names it in errors, with the line.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let bad = |reason: String| TokenError::Profile {
            path: origin.to_owned(),
            reason,
        };
        let profile: DriverProfile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(text, s.start));
            bad(format!("line {line}: {}", e.message()))
        })?;
        let line_with = |needle: &str| {
            text.find(needle)
                .map_or(1, |o| line_of(text, o))
                .to_string()
        };
        if profile.name.trim().is_empty() {
            return Err(bad(format!(
                "line {}: the name is empty",
                line_with("name")
            )));
        }
        if let Some(k) = profile
            .sm2
            .keys()
            .find(|k| !SM2_MECHANISMS.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "line {}: unknown SM2 mechanism {k:?} (known: {})",
                line_with(k),
                SM2_MECHANISMS.join(", ")
            )));
        }
        if profile.has_quirk(Quirk::NeedsUdevRule) && profile.udev.is_none() {
            return Err(bad(format!(
                "line {}: needs-udev-rule without a [udev] rule",
                line_with("needs-udev-rule")
            )));
        }
        if !matches!(profile.transport.as_str(), "" | "ccid" | "vendor") {
            return Err(bad(format!(
                "line {}: transport is ccid or vendor",
                line_with("transport")
            )));
        }
        Ok(profile)
    }

    /// The module file patterns for the OS and architecture this was built for: the
    /// architecture's own first, then those for any.
    pub fn files_for_this_os(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .modules
            .arch
            .get(std::env::consts::ARCH)
            .map(|f| f.for_this_os().to_vec())
            .unwrap_or_default();
        let any = OsFiles {
            linux: self.modules.linux.clone(),
            macos: self.modules.macos.clone(),
            windows: self.modules.windows.clone(),
        };
        out.extend(any.for_this_os().iter().cloned());
        out
    }

    /// The module file patterns for every architecture and any (Linux), to find a driver
    /// installed for the wrong one.
    pub fn files_for_every_arch(&self) -> Vec<String> {
        let mut out: Vec<String> = self.files_for_this_os();
        for files in self.modules.arch.values() {
            for f in files.for_this_os() {
                if !out.contains(f) {
                    out.push(f.clone());
                }
            }
        }
        out
    }

    /// Does the profile list this quirk?
    pub fn has_quirk(&self, quirk: Quirk) -> bool {
        self.quirks.contains(&quirk)
    }

    /// The vendor's name in a language (`zh-CN`, `zh-TW`), English when not given.
    pub fn vendor_in(&self, lang_tag: &str) -> &str {
        self.vendor_names
            .get(lang_tag)
            .map_or(self.vendor.as_str(), String::as_str)
    }

    /// Does a module file name belong to this profile (by its own patterns)?
    pub fn lists_file(&self, file_name: &str) -> bool {
        self.files_for_every_arch().iter().any(|f| {
            Path::new(f)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|pat| glob_match(pat, file_name, false))
        })
    }
}

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/profiles.rs"));
}

/// The profiles built into this binary: every file of `drivers/profiles/`.
pub fn embedded_profiles() -> Result<Vec<DriverProfile>> {
    embedded::PROFILES
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

/// The profile a module belongs to: by what it says about itself (`CK_INFO`, when known),
/// else by its file name. A profile whose keys are reached through another's module
/// (`module_profile`) is never the module's own.
pub fn profile_for_module<'a>(
    profiles: &'a [DriverProfile],
    path: &Path,
    info: Option<(&str, &str)>,
) -> Option<&'a DriverProfile> {
    let own = || profiles.iter().filter(|p| p.module_profile.is_none());
    if let Some((manufacturer, description)) = info
        && let Some(p) = own().find(|p| p.info_match.matches(manufacturer, description))
    {
        return Some(p);
    }
    let file = path.file_name()?.to_str()?;
    own().find(|p| p.lists_file(file))
}

/// The profile of a key plugged in, by its USB ID.
pub fn profile_for_usb(profiles: &[DriverProfile], id: UsbId) -> Option<&DriverProfile> {
    profiles.iter().find(|p| p.usb.contains(&id))
}

/// Shell-style glob: `*` any run, `?` one character; `fold` ignores case.
pub fn glob_match(pattern: &str, text: &str, fold: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if fold {
            s.chars().flat_map(char::to_lowercase).collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (norm(pattern), norm(text));
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The files a pattern names: a glob in any component of an absolute path, or in the file
/// name of a path relative to `base`.
pub fn expand(pattern: &str, base: Option<&Path>) -> Vec<PathBuf> {
    let path = match base {
        Some(b) if !Path::new(pattern).is_absolute() => b.join(pattern),
        _ => PathBuf::from(pattern),
    };
    let mut found = vec![PathBuf::new()];
    for comp in path.components() {
        let part = comp.as_os_str().to_string_lossy().into_owned();
        if !part.contains(['*', '?']) {
            for f in &mut found {
                f.push(comp.as_os_str());
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| glob_match(&part, n, false))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.into_iter().filter(|p| p.is_file()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "libshuttle_p11v*.so*",
            "libshuttle_p11v220.so.1.0.0",
            false
        ));
        assert!(glob_match("*longmai*", "Longmai Technology", true));
        assert!(!glob_match("*longmai*", "Longmai Technology", false));
        assert!(glob_match("a?c", "abc", false));
        assert!(!glob_match("a?c", "ac", false));
        assert!(glob_match("*", "", false));
        assert!(!glob_match("lib*.so", "lib.so.1", false));
    }

    #[test]
    fn usb_ids_parse_and_print() {
        let id = UsbId::parse("055C:e618").expect("id");
        assert_eq!((id.vendor, id.product), (0x055c, 0xe618));
        assert_eq!(id.to_string(), "055c:e618");
        for bad in ["055c", "55c:e618", "055c:e6181", "zzzz:0000", "055c-e618"] {
            assert!(UsbId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_full_schema_reads() {
        let text = r#"
name = "x"
vendor = "X"
vendor_names = { zh-CN = "某厂" }
model = "K1"
usb = ["1234:abcd"]
transport = "vendor"
quirks = ["phantom-slot", "needs-udev-rule", "load-in-child"]
tries_extension = "feitian-aux"
sm2 = { sm2-sign = 0x80008101, sm3 = 0x80008200 }

[modules]
linux = ["libx.so"]
[modules.arch.aarch64]
linux = ["/opt/x/lib/aarch64/libx*.so"]

[match]
manufacturer = ["*X*"]

[pin]
min_len = 6
max_len = 16
user_tries = 6

[udev]
file = "90-x.rules"
rule = 'SUBSYSTEM=="usb", ATTR{idVendor}=="1234", MODE="0660", TAG+="uaccess"'
"#;
        let p = DriverProfile::from_toml(text, Path::new("x.toml")).expect("reads");
        assert_eq!(p.usb, vec![UsbId::parse("1234:abcd").expect("id")]);
        assert!(p.has_quirk(Quirk::PhantomSlot));
        assert_eq!(p.sm2.get("sm2-sign"), Some(&0x8000_8101));
        assert_eq!(p.vendor_in("zh-CN"), "某厂");
        assert_eq!(p.vendor_in("zh-TW"), "X");
        assert_eq!(p.tries_extension, Some(TriesExtension::FeitianAux));
        assert!(p.lists_file("libx.so"));
        assert!(p.lists_file("libx_v2.so"), "the aarch64 glob names it");
        assert!(p.info_match.matches("the X company", "anything"));
        assert!(!p.info_match.matches("Y", "X"));
    }

    fn refused(text: &str) -> String {
        DriverProfile::from_toml(text, Path::new("drivers/profiles/bad.toml"))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_malformed_profile_is_refused_with_its_file_and_line() {
        let e = refused("name = \"x\"\nvendor = \"X\"\nusb = [\"055c:e61\"]\n");
        assert!(e.contains("bad.toml") && e.contains("line 3"), "{e}");
        assert!(e.contains("055c:e61"), "{e}");
        let e = refused("name = \"x\"\nvendor = \"X\"\n\nquirks = [\"no-wait-for-slot-events\"]\n");
        assert!(
            e.contains("line 4") && e.contains("no-wait-for-slot-events"),
            "{e}"
        );
        let e = refused("name = \"x\"\nvendor = \"X\"\nvendr = \"typo\"\n");
        assert!(e.contains("line 3") && e.contains("vendr"), "{e}");
        let e = refused("name = \"x\"\nvendor = \"X\"\n[pin\nmin_len = 4\n");
        assert!(e.contains("line 3"), "{e}");
        let e = refused("name = \"x\"\nvendor = \"X\"\nquirks = [\"needs-udev-rule\"]\n");
        assert!(e.contains("line 3") && e.contains("udev"), "{e}");
        let e = refused("name = \"x\"\nvendor = \"X\"\n\n[sm2]\nsm2-sing = 1\n");
        assert!(e.contains("line 5") && e.contains("sm2-sing"), "{e}");
        let e = refused("name = 3");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn expand_follows_globs_in_folders() {
        let d = tempfile::tempdir().expect("tmp");
        for dir in ["lm-gm3000-1.0/lib", "lm-gm3000-2.1/lib", "other/lib"] {
            std::fs::create_dir_all(d.path().join(dir)).expect("mkdir");
            std::fs::write(d.path().join(dir).join("libgm3000_pkcs11.so"), b"").expect("w");
        }
        let pat = format!("{}/lm-gm3000*/lib/libgm3000*.so", d.path().display());
        let found = expand(&pat, None);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].to_string_lossy().contains("lm-gm3000-1.0"));
        let rel = expand("lm-gm3000-2.1/lib/libgm3000_pkcs11.so", Some(d.path()));
        assert_eq!(rel.len(), 1);
        assert!(expand("nothing*.so", Some(d.path())).is_empty());
    }
}
