//! The one error type of the token layer.
//!
//! Every PKCS#11 failure keeps the function and the return code, because the CA's support
//! staff read them. The codes that mean "the key is gone" collapse into [`TokenError::KeyRemoved`];
//! the PIN codes map one to one, so the UI can say exactly what happened.

use cryptoki::error::{Error as CkError, RvError};
use keyward_pki::{PinRule, PkiError};
use std::path::PathBuf;

use crate::info::PinStatus;

/// Which PIN an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinRole {
    /// The user (operator) PIN.
    User,
    /// The security officer PIN, kept by the CA.
    So,
}

/// Everything the token layer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A PKCS#11 module could not be loaded or initialised.
    #[error("cannot use PKCS#11 module {path}: {reason}")]
    ModuleLoad {
        /// The file tried.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// Discovery found no module that loads.
    #[error("no PKCS#11 module found ({tried})")]
    NoModule {
        /// What was tried, and why each failed.
        tried: String,
    },
    /// A driver profile could not be read.
    #[error("driver profile {path}: {reason}")]
    Profile {
        /// The profile file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key was pulled out (or its session died with it).
    #[error("the key was removed ({function}: {rv})")]
    KeyRemoved {
        /// The PKCS#11 function that noticed.
        function: String,
        /// Its return code.
        rv: String,
    },
    /// No key matches what was asked for.
    #[error("no key matches {0}")]
    NoSuchToken(String),
    /// Several keys match; the caller must name one.
    #[error("{0} keys match; name one by serial number or PKCS#11 URI")]
    AmbiguousToken(usize),
    /// The PIN was wrong; the status read right after says how many tries are left.
    #[error("wrong {role:?} PIN")]
    PinIncorrect {
        /// Which PIN.
        role: PinRole,
        /// The token's PIN status after the failure.
        status: PinStatus,
    },
    /// The PIN is locked; the unlock wizard (忘记密码) is the way back.
    #[error("the {role:?} PIN is locked")]
    PinLocked {
        /// Which PIN.
        role: PinRole,
    },
    /// One try is left and the caller did not confirm spending it.
    #[error("one {role:?} PIN try is left; confirm before trying, or use the unlock wizard")]
    FinalTryUnconfirmed {
        /// Which PIN.
        role: PinRole,
    },
    /// The PIN breaks the policy; nothing was sent to the key.
    #[error("{}", keyward_pki::pin::explain(.0, keyward_pki::Lang::En))]
    PinPolicy(Vec<PinRule>),
    /// The key refused the PIN's length (CKR_PIN_LEN_RANGE).
    #[error("the key refuses a PIN of this length")]
    PinLenRange,
    /// The key refused the PIN's characters (CKR_PIN_INVALID).
    #[error("the key refuses the PIN's characters")]
    PinInvalid,
    /// The PIN has expired and must be changed (CKR_PIN_EXPIRED).
    #[error("the PIN has expired and must be changed")]
    PinExpired,
    /// The operation needs a login first.
    #[error("log in first")]
    NotLoggedIn,
    /// An object the caller named is not on the key.
    #[error("not on the key: {0}")]
    ObjectNotFound(String),
    /// The key or module cannot do what was asked.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A malformed PKCS#11 URI.
    #[error("bad PKCS#11 URI: {0}")]
    Uri(String),
    /// Any other PKCS#11 failure, with function and return code.
    #[error("{function} failed: {rv}")]
    Pkcs11 {
        /// The function, e.g. `C_Sign`.
        function: String,
        /// The return code, e.g. `CKR_DEVICE_ERROR`.
        rv: String,
    },
    /// A certificate or key the key holds could not be read.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// `PinIncorrect` → `CKR_PIN_INCORRECT`.
pub(crate) fn rv_name(rv: &RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR_");
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `Function::Login` → `C_Login`.
pub(crate) fn function_name(f: &cryptoki::context::Function) -> String {
    format!("C_{f:?}")
}

/// Is this return code one of those that mean the key is no longer there?
pub fn is_removal(rv: &RvError) -> bool {
    matches!(
        rv,
        RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SlotIdInvalid
            | RvError::TokenNotRecognized
    )
}

impl TokenError {
    /// The generic mapping; PIN codes that need a role or status are mapped at the call.
    pub(crate) fn from_ck(e: CkError) -> Self {
        match e {
            CkError::Pkcs11(rv, f) => {
                let function = function_name(&f);
                if is_removal(&rv) {
                    return TokenError::KeyRemoved {
                        function,
                        rv: rv_name(&rv),
                    };
                }
                match rv {
                    RvError::PinLocked => TokenError::PinLocked {
                        role: PinRole::User,
                    },
                    RvError::PinLenRange => TokenError::PinLenRange,
                    RvError::PinInvalid => TokenError::PinInvalid,
                    RvError::PinExpired => TokenError::PinExpired,
                    RvError::UserNotLoggedIn => TokenError::NotLoggedIn,
                    other => TokenError::Pkcs11 {
                        function,
                        rv: rv_name(&other),
                    },
                }
            }
            CkError::LibraryLoading(e) => TokenError::ModuleLoad {
                path: PathBuf::new(),
                reason: e.to_string(),
            },
            other => TokenError::Pkcs11 {
                function: "cryptoki".into(),
                rv: other.to_string(),
            },
        }
    }

    /// Is this the key having gone away?
    pub fn is_key_removed(&self) -> bool {
        matches!(self, TokenError::KeyRemoved { .. })
    }

    /// The raw return code, when there is one.
    pub fn rv(&self) -> Option<&str> {
        match self {
            TokenError::KeyRemoved { rv, .. } | TokenError::Pkcs11 { rv, .. } => Some(rv),
            _ => None,
        }
    }
}

impl From<CkError> for TokenError {
    fn from(e: CkError) -> Self {
        TokenError::from_ck(e)
    }
}

/// The crate's result type.
pub type Result<T, E = TokenError> = std::result::Result<T, E>;

impl TokenError {
    /// A stable code for scripts and the UI to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::ModuleLoad { .. } => "module_load",
            TokenError::NoModule { .. } => "no_module",
            TokenError::Profile { .. } => "driver_profile",
            TokenError::KeyRemoved { .. } => "key_removed",
            TokenError::NoSuchToken(_) => "no_such_key",
            TokenError::AmbiguousToken(_) => "ambiguous_key",
            TokenError::PinIncorrect { .. } => "pin_incorrect",
            TokenError::PinLocked { .. } => "pin_locked",
            TokenError::FinalTryUnconfirmed { .. } => "pin_final_try",
            TokenError::PinPolicy(_) => "pin_policy",
            TokenError::PinLenRange => "pin_length",
            TokenError::PinInvalid => "pin_invalid",
            TokenError::PinExpired => "pin_expired",
            TokenError::NotLoggedIn => "not_logged_in",
            TokenError::ObjectNotFound(_) => "object_not_found",
            TokenError::Unsupported(_) => "unsupported",
            TokenError::Uri(_) => "bad_uri",
            TokenError::Pkcs11 { .. } => "pkcs11",
            TokenError::Pki(_) => "malformed_data",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn removal_codes_collapse_into_key_removed() {
        for rv in [
            RvError::DeviceRemoved,
            RvError::TokenNotPresent,
            RvError::SessionHandleInvalid,
            RvError::SessionClosed,
        ] {
            let e = TokenError::from(CkError::Pkcs11(rv, Function::Sign));
            assert!(e.is_key_removed(), "{e}");
        }
        let e = TokenError::from(CkError::Pkcs11(RvError::DeviceRemoved, Function::Sign));
        assert_eq!(
            e.to_string(),
            "the key was removed (C_Sign: CKR_DEVICE_REMOVED)"
        );
    }

    #[test]
    fn pin_codes_map_precisely_and_others_keep_function_and_code() {
        let f = Function::Login;
        assert!(matches!(
            TokenError::from(CkError::Pkcs11(RvError::PinLocked, f)),
            TokenError::PinLocked { .. }
        ));
        assert!(matches!(
            TokenError::from(CkError::Pkcs11(RvError::PinLenRange, f)),
            TokenError::PinLenRange
        ));
        let e = TokenError::from(CkError::Pkcs11(
            RvError::DeviceError,
            Function::GenerateKeyPair,
        ));
        assert_eq!(e.to_string(), "C_GenerateKeyPair failed: CKR_DEVICE_ERROR");
        assert_eq!(e.rv(), Some("CKR_DEVICE_ERROR"));
    }
}
