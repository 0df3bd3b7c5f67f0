//! What the bridge asks of the person at the computer, through the host that runs it: the
//! desktop app answers in Keyward's own window, `keyward bridge serve` on its PIN descriptor
//! or terminal. The page never sees these questions, and the PIN never reaches it.

use std::time::Instant;

use keyward_flows::{FinalTry, HashAlg, Pin, PinStatus};
use serde::Serialize;

use crate::origin::Origin;
use crate::protocol::Screen;

/// The operator's answer to a first contact from an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// 允许一次: for as long as this connection stays open.
    Once,
    /// 始终允许: kept, until revoked in 设置.
    Always,
    /// 拒绝.
    Deny,
}

/// The key an operation would use, as the operator is shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyShown {
    /// The key's serial, as printed on it.
    pub serial: String,
    /// The organisation its certificate names.
    pub organisation: String,
    /// Its unified social credit code.
    pub credit_code: Option<String>,
}

/// What a private-key operation would do, as the operator is shown it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// 登录: an authentication token for this origin.
    Login,
    /// 绑定: an authentication token to bind the key to an account at this origin.
    Bind,
    /// 签名 over a digest the page computed: the content cannot be shown, only the digest.
    SignDigest {
        /// What made the digest.
        hash: HashAlg,
        /// The digest, hex.
        digest_hex: String,
    },
    /// 签名 of data, shown as text when it is text.
    SignMessage {
        /// The data, when it is UTF-8 text without control characters (line breaks and tabs
        /// allowed).
        text: Option<String>,
        /// Its length in bytes.
        bytes: usize,
        /// Its SHA-256, hex, so binary data can at least be compared.
        sha256_hex: String,
    },
}

/// A private-key operation waiting for the operator.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    /// Who asks.
    pub origin: Origin,
    /// With which key.
    pub key: KeyShown,
    /// To do what.
    pub action: Action,
    /// The key's PIN state: tries left, final try.
    pub pin: PinStatus,
    /// When the bridge stops waiting.
    #[serde(skip)]
    pub deadline: Instant,
}

/// The operator's answer to a [`Confirmation`].
#[derive(Debug)]
pub enum Answer {
    /// Confirmed, with the PIN typed in Keyward's window (and, at the final try, whether the
    /// operator chose to spend it).
    Pin {
        /// The PIN.
        pin: Pin,
        /// Whether the final try may be spent.
        final_try: FinalTry,
    },
    /// Cancelled, or the window was closed.
    Cancel,
    /// The deadline passed.
    TimedOut,
    /// The key was pulled out while the operator was being asked: the operation ends, and
    /// nothing is replayed when it comes back.
    KeyRemoved,
}

/// How a private-key operation the operator confirmed ended, for the host to tell the
/// operator in its own window (the page gets the same as an error code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Done: the page has its token or signature.
    Done,
    /// Wrong PIN; the key's PIN state read right after (tries left, final try, locked).
    PinIncorrect {
        /// The PIN state now.
        pin: PinStatus,
    },
    /// The PIN is locked: the operator unlocks it in Keyward (忘记密码).
    PinLocked,
    /// One try was left and the operator did not confirm spending it.
    FinalTryUnconfirmed,
    /// The key was pulled out during the operation.
    KeyRemoved,
    /// Something else failed; the error code the page receives.
    Failed {
        /// The stable code (`TOKEN_ERROR`, `KEY_NOT_FOUND`, …).
        code: String,
    },
}

/// The host's side of the bridge. Each method blocks until the operator answers or
/// `deadline` passes; the bridge calls them off its network threads.
pub trait Agent: Send + Sync {
    /// An origin with no grant asks for the first time.
    fn consent(&self, origin: &Origin, deadline: Instant) -> Consent;

    /// A private-key operation: show it, take the PIN.
    fn confirm(&self, confirmation: &Confirmation) -> Answer;

    /// The page asks to bring a screen of Keyward forward. `Err` with a sentence when this
    /// host cannot (it has no window) or the operator declined.
    fn open(&self, origin: &Origin, screen: Screen, key: Option<&KeyShown>) -> Result<(), String>;

    /// The operation `origin` had confirmed with [`Agent::confirm`] has ended on the key. Called
    /// once per confirmed operation, whether or not the page is still connected. The origin
    /// names it: an origin has one operation at a time.
    fn finished(&self, origin: &Origin, outcome: &Outcome) {
        let _ = (origin, outcome);
    }

    /// The question put to the operator for `origin` (consent, confirmation or opening a
    /// screen) is no longer awaited: the page closed its connection before the answer. The
    /// host takes the question down; its answer, if any, is dropped.
    fn withdrawn(&self, origin: &Origin) {
        let _ = origin;
    }

    /// A private-key operation of `origin` was refused before anyone was asked, because the
    /// key's PIN is locked. A host with a window tells the operator and offers 忘记密码.
    fn locked(&self, origin: &Origin, key: &KeyShown) {
        let _ = (origin, key);
    }
}
