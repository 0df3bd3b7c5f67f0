//! Test-loading a PKCS#11 module in a child process, with a timeout.
//!
//! A vendor module can hang in C_Initialize (waiting on a device, a helper daemon, a lock)
//! or crash its host. Loaded in a child first, it costs the client nothing but the timeout:
//! the child is killed and the module is reported instead of waited on forever.
//!
//! The child is a front end's own executable started again with [`PROBE_ENV`] naming the
//! module: every front end calls [`serve_probe_if_asked`] first thing in `main`, which then
//! loads the module, prints one JSON line ([`ProbeAnswer`]) and exits.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyward_token::Module;
use serde::{Deserialize, Serialize};

/// The environment variable that turns a front end's executable into a module probe.
pub const PROBE_ENV: &str = "KEYWARD_MODULE_PROBE";

/// How long a module may take to load and list its keys before it is reported as hanging.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the module says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// CK_INFO manufacturerID.
    pub manufacturer: String,
    /// CK_INFO libraryDescription.
    pub description: String,
    /// CK_INFO libraryVersion.
    pub version: String,
    /// The PKCS#11 version.
    pub cryptoki_version: String,
}

/// One key the module reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeToken {
    /// The slot.
    pub slot_id: u64,
    /// Serial number.
    pub serial: String,
    /// Label.
    pub label: String,
    /// Token manufacturer.
    pub manufacturer: String,
    /// Token model.
    pub model: String,
    /// Token flags, by name.
    pub flags: Vec<String>,
}

/// The child's one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeAnswer {
    /// Set when it loaded.
    pub info: Option<ProbeInfo>,
    /// The profile the module matched, by name.
    pub profile: Option<String>,
    /// Keys it reaches.
    pub tokens: Vec<ProbeToken>,
    /// Why it did not load or list its keys.
    pub error: Option<String>,
}

/// How a test load ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// It loaded and answered.
    Loaded {
        /// What it said.
        answer: ProbeAnswer,
    },
    /// It did not load, or failed listing its keys.
    Failed {
        /// Why.
        reason: String,
    },
    /// It did not answer within the timeout; the child was killed.
    TimedOut {
        /// The timeout, in seconds.
        seconds: f64,
    },
}

/// Loads `module` in this process and says what it holds (the child's side, and the
/// in-process fallback).
pub fn probe_here(module: &Path) -> ProbeAnswer {
    let m = match Module::open(module) {
        Ok(m) => m,
        Err(e) => {
            return ProbeAnswer {
                info: None,
                profile: None,
                tokens: Vec::new(),
                error: Some(e.to_string()),
            };
        }
    };
    let info = m.info();
    let mut answer = ProbeAnswer {
        info: Some(ProbeInfo {
            manufacturer: info.manufacturer.clone(),
            description: info.description.clone(),
            version: info.version.clone(),
            cryptoki_version: info.cryptoki_version.clone(),
        }),
        profile: m.profile().map(|p| p.name.clone()),
        tokens: Vec::new(),
        error: None,
    };
    match m.tokens() {
        Ok(tokens) => {
            for t in tokens {
                match m.describe(&t) {
                    Ok(d) => answer.tokens.push(ProbeToken {
                        slot_id: d.slot_id,
                        serial: d.serial,
                        label: d.label,
                        manufacturer: d.manufacturer,
                        model: d.model,
                        flags: d.flags.iter().map(|f| (*f).to_owned()).collect(),
                    }),
                    Err(e) if e.is_key_removed() => {}
                    Err(e) => answer.error = Some(e.to_string()),
                }
            }
        }
        Err(e) => answer.error = Some(e.to_string()),
    }
    answer
}

/// When this process was started as a probe ([`PROBE_ENV`] set), loads the module, prints
/// its answer and exits; otherwise returns at once. Front ends call it first in `main`.
pub fn serve_probe_if_asked() {
    let Some(module) = std::env::var_os(PROBE_ENV).filter(|v| !v.is_empty()) else {
        return;
    };
    let answer = probe_here(Path::new(&module));
    let code = i32::from(answer.info.is_none());
    match serde_json::to_string(&answer) {
        Ok(line) => println!("{line}"),
        Err(_) => std::process::exit(3),
    }
    std::process::exit(code);
}

/// Loads `module` in a child (`program` with [`PROBE_ENV`]) and waits at most `timeout`.
pub fn probe_in_child(program: &Path, module: &Path, timeout: Duration) -> ProbeOutcome {
    let spawned = Command::new(program)
        .env(PROBE_ENV, module)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return ProbeOutcome::Failed {
                reason: format!("cannot start {} to test the module: {e}", program.display()),
            };
        }
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(module = %module.display(), ?timeout, "module did not answer; test load killed");
                return ProbeOutcome::TimedOut {
                    seconds: timeout.as_secs_f64(),
                };
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return ProbeOutcome::Failed {
                    reason: e.to_string(),
                };
            }
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    let answer = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<ProbeAnswer>(l).ok());
    match answer {
        Some(a) if a.info.is_some() => ProbeOutcome::Loaded { answer: a },
        Some(a) => ProbeOutcome::Failed {
            reason: a.error.unwrap_or_else(|| "the module did not load".into()),
        },
        None => ProbeOutcome::Failed {
            reason: match status.code() {
                Some(c) => format!("the test load ended with exit code {c} and no answer"),
                None => "the test load crashed (killed by a signal)".into(),
            },
        },
    }
}

/// How a front end has modules test-loaded: the program to start as the child, and the
/// timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRunner {
    /// An executable that calls [`serve_probe_if_asked`] first.
    pub program: PathBuf,
    /// How long to wait.
    pub timeout: Duration,
}

impl ProbeRunner {
    /// This very executable as the child, with the default timeout. Only for front ends
    /// whose `main` calls [`serve_probe_if_asked`].
    pub fn this_executable() -> Option<ProbeRunner> {
        std::env::current_exe().ok().map(|program| ProbeRunner {
            program,
            timeout: DEFAULT_PROBE_TIMEOUT,
        })
    }

    /// Test-loads `module`.
    pub fn probe(&self, module: &Path) -> ProbeOutcome {
        probe_in_child(&self.program, module, self.timeout)
    }
}
