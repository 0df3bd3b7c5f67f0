//! Control of a running simulator from tests and tools: pull a token out,
//! plug it back in, arm faults, read the PIN counters.
//!
//! Every function works on the state directory alone (the `state_dir` of the
//! module's configuration), so it acts on every process that has the module
//! loaded, without restarting any of them. A token is named by the serial a
//! client sees (after any `[[token]]` override), by its label, or by the
//! serial of the token underneath.

use std::path::Path;

use cryptoki_sys::CK_RV;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::state::{State, Store};

/// What an armed fault does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The call returns this code without reaching the underlying module.
    Return(CK_RV),
    /// The token the call addresses is pulled out (as by [`remove`]) before
    /// the call reaches the underlying module; the call answers
    /// `CKR_DEVICE_REMOVED` (session functions) or `CKR_TOKEN_NOT_PRESENT`
    /// (slot functions). For calls that name no slot (`C_GetSlotList`,
    /// `C_GetInfo`, `C_WaitForSlotEvent`) every token the process knows is
    /// pulled out and the call then proceeds.
    RemoveToken,
    /// The call blocks this many seconds before it goes on as usual: a driver waiting on a
    /// device or a vendor helper that never answers. On `C_Initialize` it is what makes a
    /// client that loads modules in its own process hang.
    Hang(u64),
}

/// A fault to arm: `effect` happens at the `at_call`-th call of `function`
/// (for example `"C_Sign"`), counted from the moment it is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault<'a> {
    /// The PKCS#11 function name, e.g. `"C_Sign"` or `"C_SetAttributeValue"`, or `"*"` for
    /// the calls of every function (the fault matrix pulls the key at each call in turn).
    pub function: &'a str,
    /// 1 fires at the first call after arming.
    pub at_call: u64,
    /// What happens then.
    pub effect: Effect,
}

/// A fault as persisted, with its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmedFault {
    /// Identifier, unique within the state directory.
    pub id: u64,
    /// The PKCS#11 function it counts.
    pub function: String,
    /// The call at which it fires.
    pub at_call: u64,
    /// What it does.
    pub effect: Effect,
    /// Calls counted so far (across all processes).
    pub calls: u64,
    /// Whether it has fired (a fault fires once).
    pub fired: bool,
}

/// Remaining and maximum tries of a token's PINs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tries {
    /// User PIN tries left (0 = locked).
    pub user_left: u32,
    /// User PIN tries after a success.
    pub user_max: u32,
    /// SO PIN tries left (0 = locked).
    pub so_left: u32,
    /// SO PIN tries after a success.
    pub so_max: u32,
}

/// One token the simulator has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    /// Serial number as clients see it.
    pub serial: String,
    /// Token label.
    pub label: String,
    /// Serial number of the token underneath.
    pub underlying_serial: String,
    /// Whether it is plugged in.
    pub present: bool,
    /// Its PIN counters.
    pub tries: Tries,
}

/// Everything in a state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Tokens seen by a module using this state directory.
    pub tokens: Vec<TokenStatus>,
    /// Names under which tokens are currently pulled out (including names of
    /// tokens no module has seen yet).
    pub absent: Vec<String>,
    /// Armed and fired faults.
    pub faults: Vec<ArmedFault>,
}

/// Pulls a token out. Open sessions on it answer `CKR_DEVICE_REMOVED` from
/// their next call on, in every process. A token never seen before may be
/// named too: it is absent from the moment a module first sees it.
pub fn remove(state_dir: impl AsRef<Path>, token: &str) -> Result<(), Error> {
    let token = token.trim();
    Store::open(state_dir.as_ref())?.update(|st| st.remove_token(token))
}

/// Plugs a token back in (whatever name it was removed under). Modules that
/// have no open session re-initialise the module underneath at their next
/// `C_GetSlotList` or `C_WaitForSlotEvent`, so token directories created
/// since they loaded appear too.
pub fn insert(state_dir: impl AsRef<Path>, token: &str) -> Result<(), Error> {
    let token = token.trim();
    Store::open(state_dir.as_ref())?.update(|st| st.insert_token(token))
}

/// Arms a fault; returns its identifier.
pub fn arm_fault(state_dir: impl AsRef<Path>, fault: Fault<'_>) -> Result<u64, Error> {
    if fault.at_call == 0 {
        return Err(Error::InvalidFault("at_call counts from 1".into()));
    }
    if fault.function != crate::state::ANY_FUNCTION
        && !crate::ffi::FUNCTION_NAMES.contains(&fault.function)
    {
        return Err(Error::InvalidFault(format!(
            "{:?} is not a PKCS#11 function this module exports",
            fault.function
        )));
    }
    Store::open(state_dir.as_ref())?.update(|st| {
        st.next_fault_id += 1;
        let id = st.next_fault_id;
        st.faults.push(crate::state::FaultRecord {
            id,
            function: fault.function.to_string(),
            at_call: fault.at_call,
            effect: fault.effect,
            calls: 0,
            fired: false,
        });
        id
    })
}

/// Disarms and forgets every fault, fired or not.
pub fn clear_faults(state_dir: impl AsRef<Path>) -> Result<(), Error> {
    Store::open(state_dir.as_ref())?.update(|st| st.faults.clear())
}

/// The persisted PIN counters of a token.
pub fn tries(state_dir: impl AsRef<Path>, token: &str) -> Result<Tries, Error> {
    let st = Store::open(state_dir.as_ref())?.read_fresh()?;
    let key = st
        .resolve(token.trim())
        .ok_or_else(|| Error::UnknownToken(token.to_string()))?;
    st.tokens
        .get(key)
        .map(tries_of)
        .ok_or_else(|| Error::UnknownToken(token.to_string()))
}

/// Everything in the state directory.
pub fn status(state_dir: impl AsRef<Path>) -> Result<Status, Error> {
    let st = Store::open(state_dir.as_ref())?.read_fresh()?;
    Ok(status_of(&st))
}

fn tries_of(r: &crate::state::TokenRecord) -> Tries {
    Tries {
        user_left: r.user_left,
        user_max: r.user_max,
        so_left: r.so_left,
        so_max: r.so_max,
    }
}

fn status_of(st: &State) -> Status {
    let tokens = st
        .tokens
        .iter()
        .map(|(serial, r)| TokenStatus {
            serial: serial.clone(),
            label: r.label.clone(),
            underlying_serial: r.underlying_serial.clone(),
            present: !st.is_absent(&[serial, &r.label, &r.underlying_serial]),
            tries: tries_of(r),
        })
        .collect();
    let faults = st
        .faults
        .iter()
        .map(|f| ArmedFault {
            id: f.id,
            function: f.function.clone(),
            at_call: f.at_call,
            effect: f.effect,
            calls: f.calls,
            fired: f.fired,
        })
        .collect();
    Status {
        tokens,
        absent: st.absent.iter().cloned().collect(),
        faults,
    }
}

/// Parses a return code given as a `CKR_*` name, hex (`0x30`) or decimal.
pub fn parse_rv(s: &str) -> Option<CK_RV> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return CK_RV::from_str_radix(hex, 16).ok();
    }
    if let Ok(n) = s.parse::<CK_RV>() {
        return Some(n);
    }
    RV_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, rv)| *rv)
}

/// The `CKR_*` name of a return code, when it is one of the common ones.
pub fn rv_name(rv: CK_RV) -> Option<&'static str> {
    RV_NAMES.iter().find(|(_, v)| *v == rv).map(|(n, _)| *n)
}

use cryptoki_sys::*;

const RV_NAMES: &[(&str, CK_RV)] = &[
    ("CKR_OK", CKR_OK),
    ("CKR_HOST_MEMORY", CKR_HOST_MEMORY),
    ("CKR_GENERAL_ERROR", CKR_GENERAL_ERROR),
    ("CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED),
    ("CKR_ARGUMENTS_BAD", CKR_ARGUMENTS_BAD),
    ("CKR_DEVICE_ERROR", CKR_DEVICE_ERROR),
    ("CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY),
    ("CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED),
    ("CKR_FUNCTION_CANCELED", CKR_FUNCTION_CANCELED),
    ("CKR_KEY_HANDLE_INVALID", CKR_KEY_HANDLE_INVALID),
    ("CKR_OBJECT_HANDLE_INVALID", CKR_OBJECT_HANDLE_INVALID),
    ("CKR_OPERATION_ACTIVE", CKR_OPERATION_ACTIVE),
    (
        "CKR_OPERATION_NOT_INITIALIZED",
        CKR_OPERATION_NOT_INITIALIZED,
    ),
    ("CKR_PIN_INCORRECT", CKR_PIN_INCORRECT),
    ("CKR_PIN_INVALID", CKR_PIN_INVALID),
    ("CKR_PIN_LEN_RANGE", CKR_PIN_LEN_RANGE),
    ("CKR_PIN_EXPIRED", CKR_PIN_EXPIRED),
    ("CKR_PIN_LOCKED", CKR_PIN_LOCKED),
    ("CKR_SESSION_CLOSED", CKR_SESSION_CLOSED),
    ("CKR_SESSION_COUNT", CKR_SESSION_COUNT),
    ("CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID),
    ("CKR_SESSION_READ_ONLY", CKR_SESSION_READ_ONLY),
    ("CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT),
    ("CKR_TOKEN_NOT_RECOGNIZED", CKR_TOKEN_NOT_RECOGNIZED),
    ("CKR_TOKEN_WRITE_PROTECTED", CKR_TOKEN_WRITE_PROTECTED),
    ("CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN),
    ("CKR_USER_ALREADY_LOGGED_IN", CKR_USER_ALREADY_LOGGED_IN),
    ("CKR_USER_PIN_NOT_INITIALIZED", CKR_USER_PIN_NOT_INITIALIZED),
    ("CKR_BUFFER_TOO_SMALL", CKR_BUFFER_TOO_SMALL),
    ("CKR_CRYPTOKI_NOT_INITIALIZED", CKR_CRYPTOKI_NOT_INITIALIZED),
    ("CKR_SLOT_ID_INVALID", CKR_SLOT_ID_INVALID),
    ("CKR_NO_EVENT", CKR_NO_EVENT),
];
