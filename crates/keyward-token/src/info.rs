//! What a key says about itself: CK_TOKEN_INFO in the terms the operator needs.

use cryptoki::slot::TokenInfo;
use serde::Serialize;

/// Where one PIN stands, from the token's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinState {
    /// No failures reported.
    Ok,
    /// At least one wrong PIN since the last right one (CKF_*_PIN_COUNT_LOW).
    CountLow,
    /// The next wrong PIN locks the key (CKF_*_PIN_FINAL_TRY).
    FinalTry,
    /// Locked (CKF_*_PIN_LOCKED): no more tries.
    Locked,
}

impl PinState {
    fn from_flags(count_low: bool, final_try: bool, locked: bool) -> Self {
        if locked {
            PinState::Locked
        } else if final_try {
            PinState::FinalTry
        } else if count_low {
            PinState::CountLow
        } else {
            PinState::Ok
        }
    }
}

/// The PIN status of a key: what the flags say, and the exact tries left where the module
/// tells them (a vendor extension; most modules do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PinStatus {
    /// The user PIN.
    pub user: PinState,
    /// Exact user tries left, when known.
    pub user_tries_left: Option<u32>,
    /// The key asks for the user PIN to be changed (CKF_USER_PIN_TO_BE_CHANGED).
    pub user_to_be_changed: bool,
    /// The user PIN has been set at all (CKF_USER_PIN_INITIALIZED).
    pub user_initialized: bool,
    /// The SO PIN.
    pub so: PinState,
    /// Exact SO tries left, when known.
    pub so_tries_left: Option<u32>,
}

impl PinStatus {
    pub(crate) fn from_info(info: &TokenInfo, tries: Option<(u32, u32)>) -> Self {
        PinStatus {
            user: PinState::from_flags(
                info.user_pin_count_low(),
                info.user_pin_final_try(),
                info.user_pin_locked(),
            ),
            user_tries_left: tries.map(|t| t.0),
            user_to_be_changed: info.user_pin_to_be_changed(),
            user_initialized: info.user_pin_initialized(),
            so: PinState::from_flags(
                info.so_pin_count_low(),
                info.so_pin_final_try(),
                info.so_pin_locked(),
            ),
            so_tries_left: tries.map(|t| t.1),
        }
    }
}

/// A key as the client lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenDescription {
    /// The PKCS#11 URI that names this key (RFC 7512).
    pub uri: String,
    /// The module that reaches it.
    pub module: String,
    /// The slot it sits in, as the module numbers it (changes across re-plugs).
    pub slot_id: u64,
    /// Token label.
    pub label: String,
    /// Token manufacturer.
    pub manufacturer: String,
    /// Token model.
    pub model: String,
    /// Token serial number: the stable name of the key.
    pub serial: String,
    /// PIN status.
    pub pin: PinStatus,
    /// The token's minimum PIN length in bytes.
    pub min_pin_len: usize,
    /// The token's maximum PIN length in bytes (0 or huge when the module sets none).
    pub max_pin_len: usize,
    /// Free public memory in bytes, where reported.
    pub free_public_memory: Option<usize>,
    /// Free private memory in bytes, where reported.
    pub free_private_memory: Option<usize>,
    /// Raw flags worth showing to support staff.
    pub flags: Vec<&'static str>,
}

/// The flag names set in a token info, for support output.
pub(crate) fn flag_names(i: &TokenInfo) -> Vec<&'static str> {
    let all = [
        (i.rng(), "CKF_RNG"),
        (i.write_protected(), "CKF_WRITE_PROTECTED"),
        (i.login_required(), "CKF_LOGIN_REQUIRED"),
        (i.user_pin_initialized(), "CKF_USER_PIN_INITIALIZED"),
        (
            i.protected_authentication_path(),
            "CKF_PROTECTED_AUTHENTICATION_PATH",
        ),
        (i.token_initialized(), "CKF_TOKEN_INITIALIZED"),
        (i.user_pin_count_low(), "CKF_USER_PIN_COUNT_LOW"),
        (i.user_pin_final_try(), "CKF_USER_PIN_FINAL_TRY"),
        (i.user_pin_locked(), "CKF_USER_PIN_LOCKED"),
        (i.user_pin_to_be_changed(), "CKF_USER_PIN_TO_BE_CHANGED"),
        (i.so_pin_count_low(), "CKF_SO_PIN_COUNT_LOW"),
        (i.so_pin_final_try(), "CKF_SO_PIN_FINAL_TRY"),
        (i.so_pin_locked(), "CKF_SO_PIN_LOCKED"),
        (i.so_pin_to_be_changed(), "CKF_SO_PIN_TO_BE_CHANGED"),
        (i.error_state(), "CKF_ERROR_STATE"),
    ];
    all.into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n)
        .collect()
}
