//! 环境检测 — the environment check: which key is plugged in and what is missing, in one
//! sentence with the fix, and every finding with a stable code for scripts and support.
//!
//! It looks at, in order: the USB devices plugged in (sysfs, or [`SYSFS_USB_ENV`]), matched
//! against the driver profiles; whether each recognised key's driver is installed, for this
//! computer's architecture; PC/SC (pcscd) for CCID keys; the udev rule and device access a
//! profile needs; every PKCS#11 module discovery finds (its architecture, a test load in a
//! child process with a timeout, its keys, its profile) and the p11-kit modules disabled for
//! Keyward; and, when a CA is configured, the CA (reachable, its pinned root valid, the
//! clock against the CA's `Date` header).
//!
//! [`check`] gives a [`DoctorReport`]: `healthy` is false as soon as one finding is a
//! [`Severity::Problem`]; `verdict` is the sentence a front end shows (the first problem
//! and its fix, or that all is well). Finding codes are stable (`driver_missing`, …) and
//! every message exists in zh-CN, zh-TW and English.

pub mod probe;
mod text;
pub mod usb;

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyward_pki::{CertSummary, Lang};
use keyward_token::discovery::{self, Candidate, ModuleSource, P11KitState};
use keyward_token::pcsc::{self, PcscSurvey};
use keyward_token::{DriverProfile, Quirk};
use serde::Serialize;
use time::OffsetDateTime;

pub use probe::{
    DEFAULT_PROBE_TIMEOUT, PROBE_ENV, ProbeAnswer, ProbeOutcome, ProbeRunner, serve_probe_if_asked,
};
pub use usb::{SYSFS_USB_ENV, UsbDevice, plant_device, sysfs_usb_root, usb_devices};

use crate::connect::{CaSettings, connect};
use crate::keys::Keys;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Keyward cannot work with a key until it is fixed.
    Problem,
    /// Worth knowing; may explain a problem elsewhere.
    Warning,
    /// Something found that is as it should be.
    Ok,
    /// Background.
    Info,
}

/// One thing the check found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable code (`driver_missing`, `module_hangs`, …).
    pub code: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence, in the report's language.
    pub message: String,
    /// What to do about it, when there is something to do.
    pub fix: Option<String>,
    /// The facts behind it (vendor, model, USB ID, module file, …), for scripts and support.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// A module discovery found, and how its test load went.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleCheck {
    /// The file.
    pub path: PathBuf,
    /// How it was found.
    pub source: ModuleSource,
    /// The architecture it was built for (ELF), when known.
    pub arch: Option<String>,
    /// The profile it matched (after loading, by what it says about itself).
    pub profile: Option<String>,
    /// The test load (none when it was not tried: another architecture).
    pub probe: Option<ProbeOutcome>,
}

/// PC/SC: pcscd, its readers and the ATR in each (read without connecting to any card).
#[derive(Debug, Clone, Serialize)]
pub struct PcscState {
    /// Is pcscd running (it answered, or without the PC/SC library: its socket is there, or
    /// a process of that name)?
    pub running: bool,
    /// The socket looked at.
    pub socket: PathBuf,
    /// What pcscd answered.
    pub survey: PcscSurvey,
}

/// A USB device the profiles recognise.
#[derive(Debug, Clone, Serialize)]
pub struct KnownDevice {
    /// The device.
    pub device: UsbDevice,
    /// Its profile's name.
    pub profile: String,
}

/// Everything the check found.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// False as soon as one finding is a problem.
    pub healthy: bool,
    /// The one sentence to show: the first problem with its fix, or that all is well.
    pub verdict: String,
    /// Every finding, problems first.
    pub findings: Vec<Finding>,
    /// This computer's architecture.
    pub arch: String,
    /// Keyward's version.
    pub version: String,
    /// USB devices the profiles recognise.
    pub usb_keys: Vec<KnownDevice>,
    /// Every USB device seen.
    pub usb_devices: Vec<UsbDevice>,
    /// PC/SC.
    pub pcsc: PcscState,
    /// Every module discovery found.
    pub modules: Vec<ModuleCheck>,
}

/// What the check looks at and how.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The report's language.
    pub lang: Lang,
    /// How modules are test-loaded (none: in this process, without a timeout).
    pub probe: Option<ProbeRunner>,
    /// The sysfs USB device folder.
    pub sysfs_usb: PathBuf,
    /// Folders holding udev rules.
    pub udev_dirs: Vec<PathBuf>,
    /// The library folders drivers are looked for in.
    pub lib_dirs: Vec<PathBuf>,
    /// The CA, when one is configured.
    pub ca: Option<CaSettings>,
    /// Clock difference to the CA above which the clock is a problem.
    pub max_skew: Duration,
}

impl DoctorOptions {
    /// The system's folders, [`SYSFS_USB_ENV`], no CA, modules loaded in this process.
    pub fn new(lang: Lang) -> Self {
        DoctorOptions {
            lang,
            probe: None,
            sysfs_usb: sysfs_usb_root(),
            udev_dirs: [
                "/etc/udev/rules.d",
                "/usr/lib/udev/rules.d",
                "/lib/udev/rules.d",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
            lib_dirs: discovery::library_dirs(),
            ca: None,
            max_skew: Duration::from_secs(300),
        }
    }
}

/// The facts a finding carries, and its message.
#[derive(Debug, Clone)]
pub(crate) enum Fact {
    DriverMissing {
        vendor: String,
        model: String,
        usb: String,
        module: Option<String>,
    },
    DriverWrongArch {
        path: String,
        module_arch: String,
        host_arch: String,
    },
    KeyReady {
        vendor: String,
        model: String,
        usb: String,
    },
    KeyNotSeen {
        vendor: String,
        model: String,
        usb: String,
    },
    UnknownCcid {
        usb: String,
        product: String,
    },
    PcscdMissing {
        needed: bool,
    },
    PcscdRunning,
    PcscLibraryMissing {
        needed: bool,
    },
    PcscNoReaders {
        needed: bool,
    },
    PcscReader {
        name: String,
        atr: Option<String>,
        in_use: bool,
    },
    UdevRuleMissing {
        vendor: String,
        model: String,
        usb: String,
        file: String,
        rule: String,
    },
    DeviceNoAccess {
        vendor: String,
        model: String,
        node: String,
    },
    ModuleOk {
        path: String,
        manufacturer: String,
        keys: usize,
    },
    ModuleHangs {
        path: String,
        seconds: f64,
    },
    ModuleLoadFailed {
        path: String,
        reason: String,
        serious: bool,
    },
    P11KitDisabled {
        config: String,
        why: String,
    },
    NoKey,
    KeysFound {
        count: usize,
    },
    CaOk {
        url: String,
    },
    CaUnreachable {
        url: String,
        reason: String,
    },
    CaRootInvalid {
        reason: String,
    },
    ClockSkew {
        seconds: i64,
    },
}

impl Fact {
    fn code(&self) -> &'static str {
        match self {
            Fact::DriverMissing { .. } => "driver_missing",
            Fact::DriverWrongArch { .. } => "driver_wrong_arch",
            Fact::KeyReady { .. } => "key_ready",
            Fact::KeyNotSeen { .. } => "key_not_seen",
            Fact::UnknownCcid { .. } => "unknown_ccid_device",
            Fact::PcscdMissing { .. } => "pcscd_not_running",
            Fact::PcscdRunning => "pcscd_running",
            Fact::PcscLibraryMissing { .. } => "pcsc_library_missing",
            Fact::PcscNoReaders { .. } => "pcsc_no_readers",
            Fact::PcscReader { .. } => "pcsc_reader",
            Fact::UdevRuleMissing { .. } => "udev_rule_missing",
            Fact::DeviceNoAccess { .. } => "device_no_access",
            Fact::ModuleOk { .. } => "module_ok",
            Fact::ModuleHangs { .. } => "module_hangs",
            Fact::ModuleLoadFailed { .. } => "module_load_failed",
            Fact::P11KitDisabled { .. } => "p11kit_module_disabled",
            Fact::NoKey => "no_key",
            Fact::KeysFound { .. } => "keys_found",
            Fact::CaOk { .. } => "ca_ok",
            Fact::CaUnreachable { .. } => "ca_unreachable",
            Fact::CaRootInvalid { .. } => "ca_root_invalid",
            Fact::ClockSkew { .. } => "clock_skew",
        }
    }

    fn severity(&self) -> Severity {
        match self {
            Fact::DriverMissing { .. }
            | Fact::DriverWrongArch { .. }
            | Fact::KeyNotSeen { .. }
            | Fact::DeviceNoAccess { .. }
            | Fact::ModuleHangs { .. }
            | Fact::NoKey
            | Fact::CaUnreachable { .. }
            | Fact::CaRootInvalid { .. }
            | Fact::ClockSkew { .. } => Severity::Problem,
            Fact::ModuleLoadFailed { serious, .. } => {
                if *serious {
                    Severity::Problem
                } else {
                    Severity::Warning
                }
            }
            Fact::PcscdMissing { needed } | Fact::PcscLibraryMissing { needed } => {
                if *needed {
                    Severity::Problem
                } else {
                    Severity::Info
                }
            }
            Fact::PcscNoReaders { needed } => {
                if *needed {
                    Severity::Warning
                } else {
                    Severity::Info
                }
            }
            Fact::PcscReader { .. } => Severity::Ok,
            Fact::UdevRuleMissing { .. } | Fact::UnknownCcid { .. } => Severity::Warning,
            Fact::KeyReady { .. }
            | Fact::PcscdRunning
            | Fact::ModuleOk { .. }
            | Fact::KeysFound { .. }
            | Fact::CaOk { .. } => Severity::Ok,
            Fact::P11KitDisabled { .. } => Severity::Info,
        }
    }

    fn detail(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let s = |v: &str| Value::String(v.to_owned());
        let pairs: Vec<(&str, Value)> = match self {
            Fact::DriverMissing {
                vendor,
                model,
                usb,
                module,
            } => vec![
                ("vendor", s(vendor)),
                ("model", s(model)),
                ("usb_id", s(usb)),
                ("module", module.as_deref().map_or(Value::Null, s)),
            ],
            Fact::DriverWrongArch {
                path,
                module_arch,
                host_arch,
            } => vec![
                ("module", s(path)),
                ("module_arch", s(module_arch)),
                ("host_arch", s(host_arch)),
            ],
            Fact::KeyReady { vendor, model, usb } | Fact::KeyNotSeen { vendor, model, usb } => {
                vec![
                    ("vendor", s(vendor)),
                    ("model", s(model)),
                    ("usb_id", s(usb)),
                ]
            }
            Fact::UnknownCcid { usb, product } => {
                vec![("usb_id", s(usb)), ("product", s(product))]
            }
            Fact::PcscdMissing { needed }
            | Fact::PcscLibraryMissing { needed }
            | Fact::PcscNoReaders { needed } => vec![("needed", Value::Bool(*needed))],
            Fact::PcscReader { name, atr, in_use } => vec![
                ("reader", s(name)),
                ("atr", atr.as_deref().map_or(Value::Null, s)),
                ("in_use", Value::Bool(*in_use)),
            ],
            Fact::PcscdRunning | Fact::NoKey => vec![],
            Fact::UdevRuleMissing {
                vendor,
                model,
                usb,
                file,
                rule,
            } => vec![
                ("vendor", s(vendor)),
                ("model", s(model)),
                ("usb_id", s(usb)),
                ("file", s(file)),
                ("rule", s(rule)),
            ],
            Fact::DeviceNoAccess {
                vendor,
                model,
                node,
            } => vec![
                ("vendor", s(vendor)),
                ("model", s(model)),
                ("node", s(node)),
            ],
            Fact::ModuleOk {
                path,
                manufacturer,
                keys,
            } => vec![
                ("module", s(path)),
                ("manufacturer", s(manufacturer)),
                ("keys", Value::from(*keys)),
            ],
            Fact::ModuleHangs { path, seconds } => {
                vec![
                    ("module", s(path)),
                    ("timeout_seconds", Value::from(*seconds)),
                ]
            }
            Fact::ModuleLoadFailed { path, reason, .. } => {
                vec![("module", s(path)), ("reason", s(reason))]
            }
            Fact::P11KitDisabled { config, why } => {
                vec![("config", s(config)), ("why", s(why))]
            }
            Fact::KeysFound { count } => vec![("count", Value::from(*count))],
            Fact::CaOk { url } => vec![("url", s(url))],
            Fact::CaUnreachable { url, reason } => vec![("url", s(url)), ("reason", s(reason))],
            Fact::CaRootInvalid { reason } => vec![("reason", s(reason))],
            Fact::ClockSkew { seconds } => vec![("skew_seconds", Value::from(*seconds))],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn finding(&self, lang: Lang) -> Finding {
        let (message, fix) = text::say(self, lang);
        Finding {
            code: self.code(),
            severity: self.severity(),
            message,
            fix,
            detail: self.detail(),
        }
    }
}

fn lang_tag(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "zh-CN",
        Lang::ZhTw => "zh-TW",
        Lang::En => "en",
    }
}

/// The profile whose module reaches a key of `profile` (itself, or the one it names).
fn module_owner<'a>(
    profiles: &'a [DriverProfile],
    profile: &'a DriverProfile,
) -> &'a DriverProfile {
    profile
        .module_profile
        .as_deref()
        .and_then(|n| profiles.iter().find(|p| p.name == n))
        .unwrap_or(profile)
}

/// The module file name a profile's key needs, as the operator would look for it.
fn expected_file(profile: &DriverProfile) -> Option<String> {
    profile.files_for_this_os().first().and_then(|f| {
        Path::new(f)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    })
}

fn pcsc_state() -> PcscState {
    let socket = std::env::var_os("PCSCLITE_CSOCK_NAME")
        .map_or_else(|| PathBuf::from("/run/pcscd/pcscd.comm"), PathBuf::from);
    let process = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "pcscd"));
    let survey = pcsc::survey();
    let running = match survey {
        PcscSurvey::Readers { .. } | PcscSurvey::Failed { .. } => true,
        PcscSurvey::NoService => false,
        PcscSurvey::LibraryMissing => socket.exists() || process,
    };
    PcscState {
        running,
        socket,
        survey,
    }
}

/// Does a udev rules file in `dirs` name this vendor ID?
fn udev_rule_installed(dirs: &[PathBuf], vendor: u16) -> bool {
    let needle = format!("{vendor:04x}");
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rules"))
        .any(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| {
                t.to_ascii_lowercase().lines().any(|l| {
                    !l.trim_start().starts_with('#')
                        && l.contains("idvendor")
                        && l.contains(&format!("\"{needle}\""))
                })
            })
        })
}

fn check_module(c: &Candidate, profiles: &[DriverProfile], options: &DoctorOptions) -> ModuleCheck {
    let arch = discovery::elf_info(&c.path).map(|e| e.arch);
    let wrong_arch = discovery::check_arch(&c.path).is_err();
    let probe = (!wrong_arch).then(|| match &options.probe {
        Some(runner) => runner.probe(&c.path),
        None => {
            let answer = probe::probe_here(&c.path);
            if answer.info.is_some() {
                ProbeOutcome::Loaded { answer }
            } else {
                ProbeOutcome::Failed {
                    reason: answer.error.unwrap_or_default(),
                }
            }
        }
    });
    let info = match &probe {
        Some(ProbeOutcome::Loaded { answer }) => answer
            .info
            .as_ref()
            .map(|i| (i.manufacturer.as_str(), i.description.as_str())),
        _ => None,
    };
    let profile = discovery::profile_for_module(profiles, &c.path, info).map(|p| p.name.clone());
    ModuleCheck {
        path: c.path.clone(),
        source: c.source.clone(),
        arch,
        profile,
        probe,
    }
}

/// Runs the whole check.
pub fn check(keys: &Keys, options: &DoctorOptions) -> DoctorReport {
    let lang = options.lang;
    let tag = lang_tag(lang);
    let mut facts: Vec<Fact> = Vec::new();
    let profiles = match discovery::embedded_profiles() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "driver profiles unreadable");
            Vec::new()
        }
    };

    // Modules first: what loads tells whether a key's driver is there.
    let candidates = keys
        .candidates_with(&profiles, &options.lib_dirs)
        .unwrap_or_default();
    let explicit = candidates
        .first()
        .is_some_and(|c| matches!(c.source, ModuleSource::Explicit | ModuleSource::Environment));
    let modules: Vec<ModuleCheck> = candidates
        .iter()
        .map(|c| check_module(c, &profiles, options))
        .collect();

    // USB keys, matched to profiles.
    let devices = usb_devices(&options.sysfs_usb);
    let mut usb_keys = Vec::new();
    let pcsc = pcsc_state();
    let mut ccid_needed = false;
    let mut key_profiles: Vec<String> = Vec::new();
    for d in &devices {
        let Some(profile) = discovery::profile_for_usb(&profiles, d.id) else {
            if d.ccid {
                ccid_needed = true;
                facts.push(Fact::UnknownCcid {
                    usb: d.id.to_string(),
                    product: d.product.clone().unwrap_or_default(),
                });
            }
            continue;
        };
        usb_keys.push(KnownDevice {
            device: d.clone(),
            profile: profile.name.clone(),
        });
        ccid_needed |= d.ccid || profile.transport == "ccid";
        let owner = module_owner(&profiles, profile);
        key_profiles.push(owner.name.clone());
        let vendor = profile.vendor_in(tag).to_owned();
        let model = if profile.model.is_empty() {
            d.product.clone().unwrap_or_default()
        } else {
            profile.model.clone()
        };
        let usb = d.id.to_string();
        let mine: Vec<&ModuleCheck> = modules
            .iter()
            .filter(|m| m.profile.as_deref() == Some(owner.name.as_str()))
            .collect();
        let installed: Vec<PathBuf> = {
            let mut v = Vec::new();
            for pat in owner.files_for_every_arch() {
                if Path::new(&pat).is_absolute() {
                    v.extend(discovery::expand(&pat, None));
                } else {
                    for dir in &options.lib_dirs {
                        v.extend(discovery::expand(&pat, Some(dir)));
                    }
                }
            }
            v
        };
        if mine.is_empty() && installed.is_empty() {
            facts.push(Fact::DriverMissing {
                vendor,
                model,
                usb,
                module: expected_file(owner),
            });
        } else if mine.is_empty()
            || mine.iter().all(|m| {
                m.arch
                    .as_deref()
                    .is_some_and(|a| a != discovery::host_arch())
            })
        {
            // Installed, but not for this computer: the module findings name the files.
            let wrong = installed
                .iter()
                .chain(mine.iter().map(|m| &m.path))
                .find_map(|p| discovery::check_arch(p).err().map(|a| (p.clone(), a)));
            match wrong {
                Some((path, module_arch)) => {
                    if !modules.iter().any(|m| m.path == path) {
                        facts.push(Fact::DriverWrongArch {
                            path: path.display().to_string(),
                            module_arch,
                            host_arch: discovery::host_arch().to_owned(),
                        });
                    }
                }
                None => facts.push(Fact::DriverMissing {
                    vendor,
                    model,
                    usb,
                    module: expected_file(owner),
                }),
            }
        } else {
            let sees_key = mine.iter().any(|m| {
                matches!(&m.probe, Some(ProbeOutcome::Loaded { answer }) if !answer.tokens.is_empty())
            });
            let loads = mine
                .iter()
                .any(|m| matches!(m.probe, Some(ProbeOutcome::Loaded { .. })));
            if sees_key {
                facts.push(Fact::KeyReady { vendor, model, usb });
            } else if loads {
                facts.push(Fact::KeyNotSeen {
                    vendor: vendor.clone(),
                    model: model.clone(),
                    usb,
                });
            }
        }
        if profile.has_quirk(Quirk::NeedsUdevRule)
            && let Some(rule) = &profile.udev
        {
            let access = d.node.as_ref().filter(|n| n.exists()).map(|n| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(n)
                    .is_ok()
            });
            match access {
                Some(true) => {}
                Some(false) => facts.push(Fact::DeviceNoAccess {
                    vendor: profile.vendor_in(tag).to_owned(),
                    model: profile.model.clone(),
                    node: d
                        .node
                        .as_ref()
                        .map(|n| n.display().to_string())
                        .unwrap_or_default(),
                }),
                None => {}
            }
            if access != Some(true) && !udev_rule_installed(&options.udev_dirs, d.id.vendor) {
                facts.push(Fact::UdevRuleMissing {
                    vendor: profile.vendor_in(tag).to_owned(),
                    model: profile.model.clone(),
                    usb: d.id.to_string(),
                    file: rule.file.clone(),
                    rule: rule.rule.clone(),
                });
            }
        }
    }
    match &pcsc.survey {
        PcscSurvey::LibraryMissing => facts.push(Fact::PcscLibraryMissing {
            needed: ccid_needed,
        }),
        PcscSurvey::Readers { readers } => {
            facts.push(Fact::PcscdRunning);
            if readers.is_empty() {
                // Not "no key": a key with its own driver never shows as a reader.
                facts.push(Fact::PcscNoReaders {
                    needed: ccid_needed,
                });
            }
            for r in readers {
                facts.push(Fact::PcscReader {
                    name: r.name.clone(),
                    atr: r.atr.clone(),
                    in_use: r.in_use,
                });
            }
        }
        PcscSurvey::NoService | PcscSurvey::Failed { .. } => facts.push(if pcsc.running {
            Fact::PcscdRunning
        } else {
            Fact::PcscdMissing {
                needed: ccid_needed,
            }
        }),
    }

    // Each module.
    let mut key_count = 0usize;
    for m in &modules {
        let path = m.path.display().to_string();
        let serious = explicit || m.profile.as_ref().is_some_and(|p| key_profiles.contains(p));
        match &m.probe {
            None => facts.push(Fact::DriverWrongArch {
                path,
                module_arch: m.arch.clone().unwrap_or_default(),
                host_arch: discovery::host_arch().to_owned(),
            }),
            Some(ProbeOutcome::Loaded { answer }) => {
                key_count += answer.tokens.len();
                facts.push(Fact::ModuleOk {
                    path,
                    manufacturer: answer
                        .info
                        .as_ref()
                        .map(|i| i.manufacturer.clone())
                        .unwrap_or_default(),
                    keys: answer.tokens.len(),
                });
            }
            Some(ProbeOutcome::TimedOut { seconds }) => facts.push(Fact::ModuleHangs {
                path,
                seconds: *seconds,
            }),
            Some(ProbeOutcome::Failed { reason }) => facts.push(Fact::ModuleLoadFailed {
                path,
                reason: reason.clone(),
                serious,
            }),
        }
    }
    if !explicit {
        let program = discovery::program_name();
        for p in discovery::p11kit_modules(
            &keys.p11kit_dirs(),
            &program,
            &discovery::p11kit_default_module_dir(),
        ) {
            let why = match p.state {
                P11KitState::Enabled => continue,
                P11KitState::Blank => "module:".to_owned(),
                P11KitState::DisabledIn(prog) => format!("disable-in: {prog}"),
                P11KitState::NotEnabledIn(prog) => format!("enable-in without {prog}"),
            };
            facts.push(Fact::P11KitDisabled {
                config: p.config.display().to_string(),
                why,
            });
        }
    }
    if key_count > 0 {
        facts.push(Fact::KeysFound { count: key_count });
    } else if usb_keys.is_empty() {
        facts.push(Fact::NoKey);
    }

    if let Some(settings) = &options.ca {
        facts.extend(check_ca(settings, options.max_skew));
    }

    let mut findings: Vec<Finding> = facts.iter().map(|f| f.finding(lang)).collect();
    findings.sort_by_key(|f| f.severity);
    let healthy = !findings.iter().any(|f| f.severity == Severity::Problem);
    let verdict = match findings.iter().find(|f| f.severity == Severity::Problem) {
        Some(f) => match &f.fix {
            Some(fix) => text::join(lang, &f.message, fix),
            None => f.message.clone(),
        },
        None => text::all_well(lang, key_count),
    };
    DoctorReport {
        healthy,
        verdict,
        findings,
        arch: discovery::host_arch().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        usb_keys,
        usb_devices: devices,
        pcsc,
        modules,
    }
}

/// An HTTP-date (`Tue, 01 Dec 2026 12:40:00 GMT`) as a time.
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, clock, zone] = parts.as_slice() else {
        return None;
    };
    if *zone != "GMT" && *zone != "UTC" {
        return None;
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == month)?;
    let month = time::Month::try_from(u8::try_from(m + 1).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let mut hms = clock.split(':').map(str::parse::<u8>);
    let (h, mi, se) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    let t = time::Time::from_hms(h, mi, se).ok()?;
    Some(date.with_time(t).assume_utc())
}

fn check_ca(settings: &CaSettings, max_skew: Duration) -> Vec<Fact> {
    let url = settings.url.clone();
    let client = match connect(settings) {
        Ok(c) => c,
        Err(e) => {
            return vec![Fact::CaRootInvalid {
                reason: e.to_string(),
            }];
        }
    };
    let mut out = Vec::new();
    let now = OffsetDateTime::now_utc();
    if let Some(root) = client.pinned_root() {
        match CertSummary::from_der(&root.der, now) {
            Ok(c) if c.days_left < 0 || c.not_before > now => out.push(Fact::CaRootInvalid {
                reason: format!("valid {} — {}", c.not_before.date(), c.not_after.date()),
            }),
            Ok(_) => {}
            Err(e) => out.push(Fact::CaRootInvalid {
                reason: e.to_string(),
            }),
        }
    }
    match client.health_and_date() {
        Ok((_, date)) => {
            if let Some(server) = date.as_deref().and_then(parse_http_date) {
                let skew = (now - server).whole_seconds();
                if skew.unsigned_abs() > max_skew.as_secs() {
                    out.push(Fact::ClockSkew { seconds: skew });
                }
            }
            out.push(Fact::CaOk { url });
        }
        Err(e) => out.push(Fact::CaUnreachable {
            url,
            reason: e.to_string(),
        }),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Tue, 01 Dec 2026 12:40:05 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_128_805);
        assert!(parse_http_date("Tue, 01 Dec 2026 12:40:05 +0800").is_none());
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn udev_rules_are_found_by_vendor_id() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("90-x.rules"),
            "# SUBSYSTEM==\"usb\", ATTR{idVendor}==\"055c\"\nSUBSYSTEM==\"usb\", ATTR{idVendor}==\"096e\", MODE=\"0666\"\n",
        )
        .unwrap();
        let dirs = [d.path().to_owned()];
        assert!(udev_rule_installed(&dirs, 0x096e));
        assert!(!udev_rule_installed(&dirs, 0x055c), "a comment is no rule");
    }

    #[test]
    fn every_finding_speaks_three_languages() {
        let facts = text::samples();
        for f in &facts {
            let mut seen = Vec::new();
            for lang in [Lang::ZhCn, Lang::ZhTw, Lang::En] {
                let (m, _) = text::say(f, lang);
                assert!(!m.is_empty(), "{}", f.code());
                seen.push(m);
            }
            assert_ne!(seen[0], seen[2], "{}", f.code());
            assert_ne!(seen[1], seen[2], "{}", f.code());
        }
    }
}
