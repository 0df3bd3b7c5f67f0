//! The keys, as the desktop shows them: everything here is plain Rust over
//! `keyward-token`, blocking, and called by the commands from a worker thread.
//!
//! The module is found as the command line finds it: `KEYWARD_PKCS11_MODULE` names one and
//! skips discovery; otherwise the driver profiles and p11-kit are searched. Modules are
//! opened once and kept for the life of the app (a PKCS#11 module is process-wide).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use keyward_flows::seal::{SEAL_APPLICATION, SEAL_LABEL};
use keyward_flows::standing::{Standing, WaitingKind};
use keyward_pki::seal::{Seal, SealSummary};
use keyward_pki::{CertSummary, Pin, PinPolicy, RenewalStatus};
use keyward_token::discovery::{self, Candidate, ModuleSource};
use keyward_token::{
    FinalTry, Module, PinState, PinStatus, TokenDescription, TokenError, TokenRef,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{CommandError, codes};

/// What the operator should do next with a key, most urgent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum NextStep {
    /// The PIN is locked: the unlock wizard (忘记密码).
    Unlock,
    /// The key still has its transport PIN (the key says so, or the CA does): activate the
    /// certificate (激活证书).
    Activate,
    /// A renewal is paid or its certificate issued: 安装证书.
    InstallCertificate,
    /// The certificate has expired: a new application is needed.
    ApplyNew,
    /// Inside the 90 days before expiry: renew now (证书续期).
    Renew {
        /// Days until expiry.
        days_left: i64,
    },
    /// The CA made the seal: 安装印章.
    InstallSeal,
    /// A renewal waits for payment: continue 证书续期.
    PayRenewal,
    /// No organisation certificate on the key.
    NoCertificate,
    /// Nothing to do.
    Nothing,
}

/// The electronic seal (电子印章) on a key.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SealState {
    /// No seal object on the key.
    None,
    /// A seal is installed.
    Present {
        /// What the seal says about itself.
        summary: SealSummary,
    },
    /// A seal object is there but cannot be read (or the key could not be asked).
    Unreadable {
        /// Why.
        reason: String,
    },
}

/// A key on the home page: the token, its organisation certificate, and what is next.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// The token as it describes itself.
    pub token: TokenDescription,
    /// The organisation certificate, when the key holds one.
    pub certificate: Option<CertSummary>,
    /// Why the certificate could not be read, when it could not.
    pub certificate_error: Option<String>,
    /// The electronic seal on the key.
    pub seal: SealState,
    /// What the CA last said of the key (none: no CA set, not asked yet, or the CA does not
    /// know the key).
    pub standing: Option<Standing>,
    /// What the operator should do next.
    pub next: NextStep,
}

/// One certificate on a key, with its role.
#[derive(Debug, Clone, Serialize)]
pub struct CertEntry {
    /// CKA_ID, upper-case hex.
    pub id: String,
    /// CKA_LABEL.
    pub label: String,
    /// `organisation` or `chain`.
    pub role: &'static str,
    /// What the certificate says.
    pub summary: CertSummary,
}

/// Everything "My certificate" shows.
#[derive(Debug, Clone, Serialize)]
pub struct CertDetails {
    /// The token.
    pub token: TokenDescription,
    /// The organisation certificate first, then the chain from issuer up to root.
    pub certificates: Vec<CertEntry>,
}

/// The PIN of a key, with the policy a new one must meet on this key.
#[derive(Debug, Clone, Serialize)]
pub struct PinInfo {
    /// The key's serial.
    pub serial: String,
    /// What the key reports.
    pub status: PinStatus,
    /// The recommended policy narrowed by the key's own length limits.
    pub policy: PinPolicy,
}

/// One PKCS#11 module discovery tried.
#[derive(Debug, Clone, Serialize)]
pub struct DriverReport {
    /// The module file.
    pub path: PathBuf,
    /// How it was found.
    pub source: ModuleSource,
    /// Did it load?
    pub loaded: bool,
    /// Why not.
    pub error: Option<String>,
    /// Its manufacturer, when loaded.
    pub manufacturer: Option<String>,
    /// Its description, when loaded.
    pub description: Option<String>,
    /// Its version, when loaded.
    pub version: Option<String>,
}

/// The keys service the commands share.
#[derive(Debug, Default)]
pub struct Keys {
    explicit: Option<PathBuf>,
    modules: Mutex<Vec<Arc<Module>>>,
}

impl Keys {
    /// Modules from `KEYWARD_PKCS11_MODULE` or discovery.
    pub fn new() -> Self {
        Keys::default()
    }

    /// One module, named (tests).
    pub fn with_module(path: &Path) -> Self {
        Keys {
            explicit: Some(path.to_owned()),
            modules: Mutex::new(Vec::new()),
        }
    }

    fn candidates(&self) -> Result<Vec<Candidate>, TokenError> {
        let profiles = discovery::embedded_profiles()?;
        Ok(discovery::candidates(
            self.explicit.as_deref(),
            &profiles,
            &discovery::library_dirs(),
            &discovery::p11kit_config_dirs(),
        ))
    }

    /// Every module that loads, opened once. A module named explicitly (or by the
    /// environment) must load; discovered ones that fail are skipped (the drivers page says
    /// why).
    pub fn modules(&self) -> Result<Vec<Arc<Module>>, TokenError> {
        let mut cache = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        if !cache.is_empty() {
            return Ok(cache.clone());
        }
        let candidates = self.candidates()?;
        let explicit = candidates.first().is_some_and(|c| {
            matches!(c.source, ModuleSource::Explicit | ModuleSource::Environment)
        });
        let mut tried = Vec::new();
        for c in &candidates {
            match Module::open(&c.path) {
                Ok(m) => cache.push(m),
                Err(e) if explicit => return Err(e),
                Err(e) => {
                    tracing::debug!(module = %c.path.display(), error = %e, "module skipped");
                    tried.push(format!("{}: {e}", c.path.display()));
                }
            }
        }
        if cache.is_empty() {
            let tried = if tried.is_empty() {
                "no known driver is installed".to_owned()
            } else {
                tried.join("; ")
            };
            return Err(TokenError::NoModule { tried });
        }
        Ok(cache.clone())
    }

    /// The key with this serial, in whichever module sees it.
    pub(crate) fn find(&self, serial: &str) -> Result<(Arc<Module>, TokenRef), TokenError> {
        for m in self.modules()? {
            match m.find(Some(serial)) {
                Ok(t) => return Ok((m, t)),
                Err(TokenError::NoSuchToken(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(TokenError::NoSuchToken(serial.to_owned()))
    }

    /// Every key plugged in, with its organisation certificate.
    pub fn list(&self) -> Result<Vec<KeyView>, TokenError> {
        let mut out = Vec::new();
        for m in self.modules()? {
            for t in m.tokens()? {
                match m.describe(&t) {
                    Ok(d) => out.push(view(&m, &t, d)),
                    Err(e) if e.is_key_removed() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// A key as the home page shows it, after an insert or change event.
    pub fn view_of(module: &Arc<Module>, token: TokenDescription) -> KeyView {
        match module.find(Some(&token.serial)) {
            Ok(t) => view(module, &t, token),
            // Pulled out again already: show what the event said; a removal follows.
            Err(_) => KeyView {
                next: next_step(&token.pin, None, None),
                token,
                certificate: None,
                certificate_error: None,
                seal: SealState::None,
                standing: None,
            },
        }
    }

    /// The key with this serial as the home page shows it.
    pub fn view_by_serial(&self, serial: &str) -> Result<KeyView, TokenError> {
        let (m, t) = self.find(serial)?;
        let token = m.describe(&t)?;
        Ok(view(&m, &t, token))
    }

    /// All certificates on a key.
    pub fn cert_show(&self, serial: &str) -> Result<CertDetails, TokenError> {
        let (m, t) = self.find(serial)?;
        let token = m.describe(&t)?;
        let certificates = read_certificates(&m, &t)?;
        Ok(CertDetails {
            token,
            certificates,
        })
    }

    /// The PIN status of a key, and the policy for a new PIN on it.
    pub fn pin_status(&self, serial: &str) -> Result<PinInfo, TokenError> {
        let (m, t) = self.find(serial)?;
        let session = m.session(&t)?;
        Ok(PinInfo {
            serial: t.serial.clone(),
            status: session.pin_status()?,
            policy: session.policy(&PinPolicy::recommended())?,
        })
    }

    /// 修改密码: the policy is checked before the key sees anything; at the final try the
    /// caller must have confirmed. Returns the status after the change.
    pub fn pin_change(
        &self,
        serial: &str,
        old: &Pin,
        new: &Pin,
        confirm_final_try: bool,
    ) -> Result<PinStatus, TokenError> {
        let (m, t) = self.find(serial)?;
        let session = m.session(&t)?;
        let confirm = if confirm_final_try {
            FinalTry::Confirmed
        } else {
            FinalTry::Refuse
        };
        session.change_pin(old, new, &PinPolicy::recommended(), confirm)?;
        session.pin_status()
    }

    /// Every module discovery tries, loaded or not, and why not.
    pub fn drivers(&self) -> Result<Vec<DriverReport>, TokenError> {
        Ok(self
            .candidates()?
            .into_iter()
            .map(|c| {
                let r = Module::open(&c.path);
                DriverReport {
                    loaded: r.is_ok(),
                    error: r.as_ref().err().map(ToString::to_string),
                    manufacturer: r.as_ref().ok().map(|m| m.info().manufacturer.clone()),
                    description: r.as_ref().ok().map(|m| m.info().description.clone()),
                    version: r.as_ref().ok().map(|m| m.info().version.clone()),
                    path: c.path,
                    source: c.source,
                }
            })
            .collect())
    }
}

fn view(m: &Arc<Module>, t: &TokenRef, token: TokenDescription) -> KeyView {
    let (certificate, certificate_error) = match read_certificates(m, t) {
        Ok(certs) => (
            certs
                .into_iter()
                .find(|c| c.role == "organisation")
                .map(|c| c.summary),
            None,
        ),
        Err(e) => {
            tracing::warn!(serial = %t.serial, error = %e, "reading the certificate failed");
            (None, Some(e.to_string()))
        }
    };
    KeyView {
        next: next_step(&token.pin, certificate.as_ref(), None),
        token,
        certificate,
        certificate_error,
        seal: read_seal(m, t),
        standing: None,
    }
}

/// The key's one seal object, read leniently; never a reason to fail the whole view.
fn read_seal(m: &Arc<Module>, t: &TokenRef) -> SealState {
    let bytes = m
        .session(t)
        .and_then(|s| s.read_data(SEAL_APPLICATION, SEAL_LABEL));
    match bytes {
        Ok(None) => SealState::None,
        Ok(Some(der)) => match Seal::from_der(&der) {
            Ok(seal) => SealState::Present {
                summary: seal.summary(),
            },
            Err(e) => SealState::Unreadable {
                reason: e.to_string(),
            },
        },
        Err(e) => SealState::Unreadable {
            reason: e.to_string(),
        },
    }
}

fn read_certificates(m: &Arc<Module>, t: &TokenRef) -> Result<Vec<CertEntry>, TokenError> {
    let session = m.session(t)?;
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for c in session.certificates()? {
        let summary = CertSummary::from_der(&c.der, now)?;
        out.push(CertEntry {
            id: c.id.iter().map(|b| format!("{b:02X}")).collect(),
            label: c.label,
            role: if summary.is_ca {
                "chain"
            } else {
                "organisation"
            },
            summary,
        });
    }
    // The organisation certificate first, then the chain from the issuer up to the root.
    out.sort_by_key(|c| {
        (
            c.role != "organisation",
            c.summary.subject == c.summary.issuer,
        )
    });
    Ok(out)
}

/// What comes next for a key, most urgent first: a lock, then activation (the key's flag or
/// the CA's word), then what the CA holds for the operator to install, then the certificate's
/// own dates.
pub fn next_step(
    pin: &PinStatus,
    cert: Option<&CertSummary>,
    standing: Option<&Standing>,
) -> NextStep {
    if pin.user == PinState::Locked {
        return NextStep::Unlock;
    }
    let awaiting =
        standing.is_some_and(|s| s.state == keyward_ca_api::KeyState::AwaitingActivation);
    if pin.user_to_be_changed || awaiting {
        return NextStep::Activate;
    }
    let waits = |k| standing.is_some_and(|s| s.has(k));
    if waits(WaitingKind::InstallCertificate) {
        return NextStep::InstallCertificate;
    }
    let renewal = cert.map(|c| &c.renewal);
    if matches!(renewal, Some(RenewalStatus::Expired)) {
        return NextStep::ApplyNew;
    }
    if waits(WaitingKind::InstallSeal) {
        return NextStep::InstallSeal;
    }
    if waits(WaitingKind::PayRenewal) {
        return NextStep::PayRenewal;
    }
    match renewal {
        None => NextStep::NoCertificate,
        Some(RenewalStatus::Expired) => NextStep::ApplyNew,
        Some(RenewalStatus::Open { days_left }) => NextStep::Renew {
            days_left: *days_left,
        },
        Some(RenewalStatus::NotYet { .. }) => NextStep::Nothing,
    }
}

/// The new PIN typed twice must match before anything else is looked at.
pub fn check_typed_twice(
    new: &Pin,
    again: &Pin,
    lang: keyward_pki::Lang,
) -> Result<(), CommandError> {
    if new.matches(again) {
        Ok(())
    } else {
        Err(CommandError::new(
            codes::PIN_MISMATCH,
            lang.pick(
                "两次输入的新密码不一致，请重新输入。",
                "兩次輸入的新密碼不一致，請重新輸入。",
                "The two new PINs differ; type them again.",
            ),
        ))
    }
}
