//! The operator's workflows, shared by the `keyward` CLI and the desktop app.
//!
//! Each workflow is a sequence of steps over a key (keyward-token) and the CA service
//! (keyward-ca-client). Steps that change the key or the CA are written to the [`journal`]
//! first, so an interruption — a crash, a closed window, a pulled key, a dropped connection —
//! resumes at the step it stopped at, and nothing is ever redone automatically behind the
//! operator's back. No PIN is journaled: resuming asks for it again.
//!
//! - [`keys`]: the keys plugged in and what each one shows (the Home card, `keyward tokens`).
//! - [`connect`]: the CA client every front end makes from the same settings.
//! - [`contacts`]: the CA's support contacts, the last ones fetched kept for when the CA
//!   does not answer.
//! - [`doctor`]: 环境检测 — which key is plugged in and what is missing (USB, drivers,
//!   PC/SC, udev, modules test-loaded in a child, the CA), with stable finding codes.
//! - [`activate`]: 激活证书 — SMS code and a PIN of the operator's own.
//! - [`pin`]: 修改密码 — the login guard and the policy.
//! - [`unlock`]: 忘记密码 — identity, review, SMS code, SO reset, SO PIN rotation.
//! - [`renew`]: 证书续期 and 安装证书 — apply, pay, install with a new key pair.
//! - [`seal`]: 申请印章, 变更印章 and 安装印章 — the organisation's electronic seal.
//! - [`stamp`]: 盖章 — a PDF stamped with the key's seal and signed on the key (PAdES), and
//!   stamps checked.
//! - [`progress`]: 办理进度查询, the business list.
//! - [`standing`]: where a key stands at the CA — awaiting activation, or with a certificate
//!   or seal waiting to be installed.
//! - [`station`]: the CA's issuing station, provisioning a key for an organisation.
//! - [`usekey`]: using the key from a web page (through the browser bridge): certificates,
//!   Web eID authentication tokens, signatures over digests.
//! - [`support`]: the support bundle — the environment check, versions, modules, token
//!   infos, journal steps and scrubbed logs in one `.tar.gz`, without a secret.
//! - [`messages`]: every error as the `{code, message}` a person reads.
//!
//! The front ends (the CLI, the desktop shell, the browser bridge) use this crate and
//! nothing below it for the operator's work; the types of the layers below that they need
//! to name are re-exported here and in [`keys`] and [`connect`].

pub mod activate;
pub mod connect;
pub mod contacts;
pub mod doctor;
pub mod identity;
pub mod journal;
pub mod keys;
pub mod localtime;
pub mod messages;
pub mod pin;
pub mod progress;
pub mod renew;
pub mod seal;
pub mod stamp;
pub mod standing;
pub mod station;
pub mod support;
pub mod unlock;
pub mod usekey;

use std::sync::Arc;

use keyward_pki::{PinRule, PkiError};
use serde::Serialize;
use time::OffsetDateTime;

pub use connect::{CaClient, CaSettings, ClientError, RootProblem, RootSource};
pub use journal::{FlowKind, Journal};
pub use keyward_pki::{HashAlg, Pin};
pub use keyward_token::{
    FinalTry, KeySpec, Module, PinRole, PinState, PinStatus, TokenDescription, TokenError, TokenRef,
};
pub use messages::{UserError, user_error};

/// Everything a workflow can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The key said no, or went away.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The CA service said no, or could not be reached.
    #[error(transparent)]
    Ca(ClientError),
    /// A certificate or key could not be read.
    #[error(transparent)]
    Pki(PkiError),
    /// The new PIN breaks the policy; nothing was sent.
    #[error("the new PIN breaks the policy")]
    PinPolicy(Vec<PinRule>),
    /// The CA root file cannot be pinned; the CA was not contacted.
    #[error("the CA root {}: {problem}", path.display())]
    CaRoot {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: RootProblem,
    },
    /// The journal could not be read or written.
    #[error("journal: {0}")]
    Journal(String),
    /// The key holds no organisation certificate with its key pair.
    #[error("the key holds no organisation certificate")]
    NoCertificate,
    /// The key is already active at the CA.
    #[error("the certificate is already activated")]
    AlreadyActive,
    /// Renewal opens later.
    #[error("renewal opens in {opens_in_days} days")]
    RenewalNotOpen {
        /// Days until the 90-day window opens.
        opens_in_days: i64,
    },
    /// The certificate has expired: a new application is needed.
    #[error("the certificate has expired; apply for a new one")]
    CertificateExpired,
    /// The CA issued a certificate that does not belong to the new key pair.
    #[error("the issued certificate does not match the new key")]
    CertificateMismatch,
    /// The business is still with a reviewer.
    #[error("waiting for the CA's review")]
    AwaitingReview,
    /// The CA refused the business.
    #[error("the CA rejected the application: {note}")]
    Rejected {
        /// The reviewer's reason.
        note: String,
    },
    /// The business is not paid yet.
    #[error("the renewal is not paid yet")]
    NotPaid,
    /// There is no such business in progress for this key.
    #[error("nothing in progress: {0}")]
    NothingInProgress(&'static str),
    /// The stamped scan is not a PNG or JPEG image.
    #[error("the seal scan must be a PNG or JPEG image")]
    SealScanNotImage,
    /// The seal cannot be read, or its maker's signature or certificate does not hold.
    #[error("the electronic seal is invalid: {0}")]
    SealInvalid(String),
    /// The seal is bound to another certificate than this key's.
    #[error("the electronic seal belongs to another certificate")]
    SealOtherCertificate,
    /// The seal read back from the key differs from what was written.
    #[error("the seal read back from the key differs from what was written")]
    SealWriteMismatch,
    /// The key holds no electronic seal.
    #[error("the key holds no electronic seal")]
    NoSeal,
    /// Another requester's unlock of this key is open at the CA; it is never taken over.
    #[error("another unlock of this key is under way")]
    UnlockByOther(keyward_ca_api::OpenBusinessNotice),
    /// An activation code is redeemed with the ticket it was sent under: ask for one first.
    #[error("ask for the activation code first")]
    CodeNotRequested,
    /// The certificate the CA issued does not carry what the current one carries, or does
    /// not chain to the pinned root: it is not installed.
    #[error("the issued certificate is not trusted: {0}")]
    CertificateUntrusted(String),
    /// The document cannot be stamped or read as it is.
    #[error(transparent)]
    Pdf(#[from] keyward_pdf::PdfError),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        reason: String,
    },
    /// The stamped document would replace a file that exists.
    #[error("{0} exists already; stamped documents are saved as new files")]
    OutputExists(std::path::PathBuf),
    /// The stamped document would replace the document it stamps.
    #[error("the stamped document would replace the original")]
    OutputIsInput,
}

impl From<ClientError> for FlowError {
    /// A signed request that failed because the key failed is the key's error; another
    /// requester's open unlock is named as such.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api {
                open_business: Some(notice),
                ..
            } => FlowError::UnlockByOther(notice),
            ClientError::Signer(inner) => match inner.downcast::<TokenError>() {
                Ok(token) => FlowError::Token(*token),
                Err(other) => FlowError::Ca(ClientError::Signer(other)),
            },
            other => FlowError::Ca(other),
        }
    }
}

impl From<PkiError> for FlowError {
    /// A CSR whose signature failed because the key failed is the key's error.
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::Signer(inner) => match inner.downcast::<TokenError>() {
                Ok(token) => FlowError::Token(*token),
                Err(other) => FlowError::Pki(PkiError::Signer(other)),
            },
            other => FlowError::Pki(other),
        }
    }
}

/// A step of a slow workflow, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Reading the key.
    ReadingKey,
    /// Talking to the CA service.
    ContactingCa,
    /// Setting the PIN on the key.
    SettingPin,
    /// Generating a key pair on the key.
    GeneratingKey,
    /// Signing a certificate request on the key.
    SigningRequest,
    /// Signing a document on the key.
    Signing,
    /// The CA issues the certificate.
    Issuing,
    /// Writing to the key.
    Writing,
    /// Checking what was written.
    Verifying,
    /// Removing the old key pair.
    RetiringOld,
    /// Telling the CA it is done.
    Confirming,
}

/// Progress of a workflow: step `index` of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// What is happening.
    pub step: Step,
    /// 1-based.
    pub index: u8,
    /// Steps in all.
    pub total: u8,
}

/// A progress callback.
pub type OnProgress<'a> = &'a mut dyn FnMut(Progress);

/// What every workflow needs.
#[derive(Clone)]
pub struct Env {
    /// The module that reaches the key.
    pub module: Arc<Module>,
    /// The CA service.
    pub ca: CaClient,
    /// Where steps are written down.
    pub journal: Journal,
    /// "Now", for the renewal window (tests align it with the CA's clock).
    pub clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("module", &self.module)
            .field("ca", &self.ca.base_url())
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// An environment on the system clock.
    pub fn new(module: Arc<Module>, ca: CaClient, journal: Journal) -> Self {
        Env {
            module,
            ca,
            journal,
            clock: Arc::new(OffsetDateTime::now_utc),
        }
    }

    /// What the key reports of its PIN now (no session, no try spent).
    pub fn pin_status(&self, token: &TokenRef) -> Result<PinStatus, FlowError> {
        Ok(self.module.pin_status(token)?)
    }

    /// Now.
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// The CA root the client pins (DER): what issued certificates and seals are checked
    /// against. A CA reached without one cannot vouch for anything it issues.
    pub fn pinned_root(&self) -> Result<&[u8], FlowError> {
        self.ca
            .pinned_root()
            .map(|r| r.der.as_slice())
            .ok_or_else(|| {
                FlowError::CertificateUntrusted("no CA root is pinned to check it against".into())
            })
    }
}

pub(crate) fn report(on: &mut Option<OnProgress<'_>>, step: Step, index: u8, total: u8) {
    tracing::info!(?step, index, total, "workflow step");
    if let Some(f) = on.as_mut() {
        f(Progress { step, index, total });
    }
}
