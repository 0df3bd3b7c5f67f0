//! The keys plugged in, and what each one shows: the token as it describes itself, its
//! organisation certificate, its electronic seal, what the CA last said of it and the next
//! step — the Home card of the desktop, `keyward tokens` of the command line, and what the
//! browser bridge lists. Every front end shows the one [`KeyView`] made here.
//!
//! The module is found once per [`Keys`]: a path named by the caller or by
//! `KEYWARD_PKCS11_MODULE` ([`MODULE_ENV`]) skips discovery; otherwise the driver profiles
//! and p11-kit's module configurations are searched. Modules are opened once and kept (a
//! PKCS#11 module is process-wide). Keys are named by serial number or PKCS#11 URI.
//!
//! Hot-plug stays with the token layer, which watches slots; its [`Watcher`] and
//! [`TokenEvent`] are re-exported here so that a front end never names that layer.
//!
//! Everything here is blocking: a front end with a window calls it from a worker thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use keyward_pki::seal::{Seal, SealSummary};
use keyward_pki::{CertSummary, Pin, PinPolicy, RenewalStatus};
use keyward_token::discovery::{self, Candidate};
use serde::Serialize;

pub use keyward_token::discovery::{Candidate as ModuleCandidate, MODULE_ENV, ModuleSource};
pub use keyward_token::{DriverProfile, Quirk, UsbId};

use crate::doctor::{ProbeOutcome, ProbeRunner};
pub use keyward_token::{
    FinalTry, Module, PinRole, PinState, PinStatus, TokenDescription, TokenError, TokenEvent,
    TokenRef, WatchMode, WatchOptions, Watcher,
};

use crate::seal::{SEAL_APPLICATION, SEAL_LABEL};
use crate::standing::{Standing, WaitingKind};

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

/// A key as every front end shows it: the token, its organisation certificate, its seal,
/// the CA's word on it, and what is next.
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

impl KeyView {
    /// The view with what the CA said of the key (or nothing), and its next step decided
    /// from both.
    pub fn with_standing(mut self, standing: Option<Standing>) -> KeyView {
        self.standing = standing;
        self.next = next_step(
            &self.token.pin,
            self.certificate.as_ref(),
            self.standing.as_ref(),
        );
        self
    }
}

/// The role of a certificate on a key.
pub const ROLE_ORGANISATION: &str = "organisation";
/// A CA certificate of the chain.
pub const ROLE_CHAIN: &str = "chain";

/// One certificate on a key, with its role.
#[derive(Debug, Clone, Serialize)]
pub struct CertEntry {
    /// CKA_ID, upper-case hex.
    pub id: String,
    /// CKA_LABEL.
    pub label: String,
    /// [`ROLE_ORGANISATION`] or [`ROLE_CHAIN`].
    pub role: &'static str,
    /// What the certificate says.
    pub summary: CertSummary,
}

/// Every certificate on a key ("My certificate", `keyward cert show`).
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

/// The keys a front end reaches: the modules, found and opened once, and the keys in them.
#[derive(Debug, Default)]
pub struct Keys {
    explicit: Option<PathBuf>,
    modules: Mutex<Vec<Arc<Module>>>,
    probe: Option<ProbeRunner>,
}

impl Keys {
    /// Modules from `KEYWARD_PKCS11_MODULE` or discovery.
    pub fn new() -> Self {
        Keys::default()
    }

    /// One module, named (`--module`, tests); discovery and the environment are skipped.
    pub fn with_module(path: &Path) -> Self {
        Keys {
            explicit: Some(path.to_owned()),
            modules: Mutex::new(Vec::new()),
            probe: None,
        }
    }

    /// Modules whose profile has the `load-in-child` quirk are test-loaded with `probe`
    /// first (a child process, a timeout) and left out, with the reason, when the test
    /// load hangs or fails: this process never waits on them. Without a runner they are
    /// loaded as any other.
    pub fn with_probe(mut self, probe: Option<ProbeRunner>) -> Self {
        self.probe = probe;
        self
    }

    fn candidates(&self) -> Result<Vec<Candidate>, TokenError> {
        let profiles = discovery::embedded_profiles()?;
        self.candidates_with(&profiles, &discovery::library_dirs())
    }

    /// The modules discovery would try, with these profiles and library folders.
    pub fn candidates_with(
        &self,
        profiles: &[DriverProfile],
        lib_dirs: &[PathBuf],
    ) -> Result<Vec<Candidate>, TokenError> {
        Ok(discovery::candidates(
            self.explicit.as_deref(),
            profiles,
            lib_dirs,
            &self.p11kit_dirs(),
        ))
    }

    /// The p11-kit configuration folders searched, lowest precedence first.
    pub fn p11kit_dirs(&self) -> Vec<PathBuf> {
        discovery::p11kit_config_dirs()
    }

    /// Opens one candidate, test-loading it in a child first when its profile asks for it.
    fn open_candidate(&self, path: &Path) -> Result<Arc<Module>, TokenError> {
        if let Some(runner) = &self.probe {
            let profiles = discovery::embedded_profiles()?;
            let in_child = discovery::profile_for_module(&profiles, path, None)
                .is_some_and(|p| p.has_quirk(Quirk::LoadInChild));
            if in_child {
                let reason = match runner.probe(path) {
                    ProbeOutcome::Loaded { .. } => None,
                    ProbeOutcome::Failed { reason } => Some(reason),
                    ProbeOutcome::TimedOut { seconds } => Some(format!(
                        "it did not answer C_Initialize within {seconds} s (tested in a child process)"
                    )),
                };
                if let Some(reason) = reason {
                    return Err(TokenError::ModuleLoad {
                        path: path.to_owned(),
                        reason,
                    });
                }
            }
        }
        Module::open(path)
    }

    /// Every module that loads, opened once. A module named explicitly (or by the
    /// environment) must load; discovered ones that fail are skipped ([`Keys::drivers`]
    /// says why).
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
            match self.open_candidate(&c.path) {
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

    /// The one key `selector` names — a serial number or a PKCS#11 URI — or the only key
    /// plugged in when it names none, in whichever module sees it. Two matches are
    /// [`TokenError::AmbiguousToken`].
    pub fn find(&self, selector: Option<&str>) -> Result<(Arc<Module>, TokenRef), TokenError> {
        let mut found = Vec::new();
        let mut last_err = None;
        for m in self.modules()? {
            match m.find(selector) {
                Ok(t) => found.push((m, t)),
                Err(e @ TokenError::AmbiguousToken(_)) => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        let n = found.len();
        match found.pop() {
            Some(one) if n == 1 => Ok(one),
            Some(_) => Err(TokenError::AmbiguousToken(n)),
            None => Err(last_err.unwrap_or_else(|| {
                TokenError::NoSuchToken(selector.unwrap_or_default().to_owned())
            })),
        }
    }

    /// Every key plugged in, as it shows itself (no CA asked: see [`KeyView::with_standing`]).
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

    /// A key as it shows itself, from the description a hot-plug event carried.
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

    /// The key `selector` names, as it shows itself.
    pub fn view(&self, selector: Option<&str>) -> Result<KeyView, TokenError> {
        let (m, t) = self.find(selector)?;
        let token = m.describe(&t)?;
        Ok(view(&m, &t, token))
    }

    /// Every certificate on a key.
    pub fn cert_show(&self, selector: Option<&str>) -> Result<CertDetails, TokenError> {
        let (m, t) = self.find(selector)?;
        let token = m.describe(&t)?;
        let certificates = read_certificates(&m, &t)?;
        Ok(CertDetails {
            token,
            certificates,
        })
    }

    /// The PIN status of a key, and the policy for a new PIN on it.
    pub fn pin_status(&self, selector: Option<&str>) -> Result<PinInfo, TokenError> {
        let (m, t) = self.find(selector)?;
        let session = m.session(&t)?;
        Ok(PinInfo {
            serial: t.serial.clone(),
            status: session.pin_status()?,
            policy: session.policy(&PinPolicy::recommended())?,
        })
    }

    /// 修改密码 through the login guard: the policy (narrowed by the key's limits) is
    /// checked before the key sees anything; a locked PIN is refused without a try; the
    /// final try is spent only with [`FinalTry::Confirmed`]. Returns the status after.
    pub fn pin_change(
        &self,
        selector: Option<&str>,
        old: &Pin,
        new: &Pin,
        confirm: FinalTry,
    ) -> Result<PinStatus, TokenError> {
        let (m, t) = self.find(selector)?;
        let session = m.session(&t)?;
        session.change_pin(old, new, &PinPolicy::recommended(), confirm)?;
        session.pin_status()
    }

    /// Every module discovery tries, loaded or not, and why not.
    pub fn drivers(&self) -> Result<Vec<DriverReport>, TokenError> {
        Ok(self
            .candidates()?
            .into_iter()
            .map(|c| {
                let r = self.open_candidate(&c.path);
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
                .find(|c| c.role == ROLE_ORGANISATION)
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
    let now = crate::localtime::now();
    let mut out = Vec::new();
    for c in session.certificates()? {
        let summary = CertSummary::from_der(&c.der, now)?;
        out.push(CertEntry {
            id: c.id.iter().map(|b| format!("{b:02X}")).collect(),
            label: c.label,
            role: if summary.is_ca {
                ROLE_CHAIN
            } else {
                ROLE_ORGANISATION
            },
            summary,
        });
    }
    // The organisation certificate first, then the chain from the issuer up to the root.
    out.sort_by_key(|c| {
        (
            c.role != ROLE_ORGANISATION,
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
    let waits = |k| standing.is_some_and(|s| s.has(k));
    let renewal = cert.map(|c| &c.renewal);
    // An expired certificate is a dead end whatever else the key says: unlocking or
    // activating it would cost the operator time for a certificate nobody accepts. Only a
    // renewed certificate already waiting to be installed is a way forward.
    if matches!(renewal, Some(RenewalStatus::Expired)) && !waits(WaitingKind::InstallCertificate) {
        return NextStep::ApplyNew;
    }
    if pin.user == PinState::Locked {
        return NextStep::Unlock;
    }
    let awaiting =
        standing.is_some_and(|s| s.state == keyward_ca_api::KeyState::AwaitingActivation);
    if pin.user_to_be_changed || awaiting {
        return NextStep::Activate;
    }
    if waits(WaitingKind::InstallCertificate) {
        return NextStep::InstallCertificate;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::standing::Waiting;
    use keyward_ca_api::KeyState as CaState;
    use keyward_pki::KeyAlgorithm;

    fn pin(user: PinState, to_be_changed: bool) -> PinStatus {
        PinStatus {
            user,
            user_tries_left: None,
            user_to_be_changed: to_be_changed,
            user_initialized: true,
            so: PinState::Ok,
            so_tries_left: None,
        }
    }

    fn cert(renewal: RenewalStatus) -> CertSummary {
        let now = time::OffsetDateTime::now_utc();
        CertSummary {
            subject: "CN=示例".into(),
            organization: Some("广州示例科技有限公司".into()),
            common_name: None,
            credit_code: None,
            issuer: "CN=CA".into(),
            issuer_name: None,
            serial: "01".into(),
            not_before: now,
            not_after: now,
            days_left: 0,
            key: KeyAlgorithm::Ec {
                curve: "P-256".into(),
            },
            is_ca: false,
            sha256: "AB".into(),
            renewal,
        }
    }

    fn ca(state: CaState, waiting: &[WaitingKind]) -> Standing {
        Standing {
            state,
            waiting: waiting
                .iter()
                .map(|&kind| Waiting {
                    kind,
                    business_id: None,
                })
                .collect(),
        }
    }

    #[test]
    fn the_next_step_is_the_most_urgent_of_what_the_key_and_the_ca_say() {
        use WaitingKind as W;
        let ok = pin(PinState::Ok, false);
        let valid = cert(RenewalStatus::NotYet {
            opens_at: time::OffsetDateTime::now_utc(),
            opens_in_days: 200,
        });
        let expired = cert(RenewalStatus::Expired);
        let open = cert(RenewalStatus::Open { days_left: 20 });
        let all = ca(CaState::AwaitingActivation, &[W::InstallCertificate]);
        // A lock first, whatever else waits.
        assert_eq!(
            next_step(&pin(PinState::Locked, false), Some(&valid), Some(&all)),
            NextStep::Unlock
        );
        // But an expired certificate is not worth unlocking or activating: apply anew.
        assert_eq!(
            next_step(&pin(PinState::Locked, false), Some(&expired), None),
            NextStep::ApplyNew
        );
        assert_eq!(
            next_step(&pin(PinState::Ok, true), Some(&expired), None),
            NextStep::ApplyNew
        );
        // Activation: the key's flag, or the CA's word alone.
        assert_eq!(
            next_step(&pin(PinState::Ok, true), Some(&valid), None),
            NextStep::Activate
        );
        assert_eq!(next_step(&ok, Some(&valid), Some(&all)), NextStep::Activate);
        let active = |w: &[W]| ca(CaState::Active, w);
        // A paid renewal is installed even over an expired certificate.
        assert_eq!(
            next_step(&ok, Some(&expired), Some(&active(&[W::InstallCertificate]))),
            NextStep::InstallCertificate
        );
        assert_eq!(
            next_step(&ok, Some(&expired), Some(&active(&[W::InstallSeal]))),
            NextStep::ApplyNew
        );
        assert_eq!(
            next_step(
                &ok,
                Some(&open),
                Some(&active(&[W::InstallSeal, W::PayRenewal]))
            ),
            NextStep::InstallSeal
        );
        assert_eq!(
            next_step(&ok, Some(&open), Some(&active(&[W::PayRenewal]))),
            NextStep::PayRenewal
        );
        assert_eq!(
            next_step(&ok, Some(&open), None),
            NextStep::Renew { days_left: 20 }
        );
        assert_eq!(next_step(&ok, None, None), NextStep::NoCertificate);
        assert_eq!(next_step(&ok, Some(&valid), None), NextStep::Nothing);
    }

    #[test]
    fn the_view_takes_the_cas_word_and_gives_it_back() {
        let view = KeyView {
            token: TokenDescription {
                uri: "pkcs11:serial=1".into(),
                module: "m".into(),
                slot_id: 1,
                label: "kw".into(),
                manufacturer: "Keyward".into(),
                model: "Sim".into(),
                serial: "1".into(),
                pin: pin(PinState::Ok, false),
                min_pin_len: 4,
                max_pin_len: 255,
                free_public_memory: None,
                free_private_memory: None,
                flags: Vec::new(),
            },
            certificate: Some(cert(RenewalStatus::NotYet {
                opens_at: time::OffsetDateTime::now_utc(),
                opens_in_days: 200,
            })),
            certificate_error: None,
            seal: SealState::None,
            standing: None,
            next: NextStep::Nothing,
        };
        let asked = view.with_standing(Some(ca(CaState::AwaitingActivation, &[])));
        assert_eq!(asked.next, NextStep::Activate);
        let json = serde_json::to_value(&asked).unwrap();
        assert_eq!(json["next"]["action"], "activate");
        assert_eq!(json["standing"]["state"], "awaiting_activation");
        assert_eq!(json["seal"]["state"], "none");
        assert_eq!(json["token"]["serial"], "1");
        let forgotten = asked.with_standing(None);
        assert_eq!(forgotten.next, NextStep::Nothing);
        assert!(forgotten.standing.is_none());
    }
}
