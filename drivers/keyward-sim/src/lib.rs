//! # keyward-sim: a USB key in front of SoftHSM
//!
//! `libkeyward_sim.so` is a PKCS#11 2.40 module. It loads another PKCS#11
//! module (SoftHSM 2 in Keyward's tests and demo), forwards every call to it,
//! and adds what a real USB key does and SoftHSM does not:
//!
//! * **PIN retry counters** per token, persisted across processes. A wrong
//!   `C_Login` (user, context-specific or SO), a wrong old PIN in
//!   `C_SetPIN` or a wrong SO PIN in `C_InitToken` costs one try; a right
//!   one restores the maximum. `C_GetTokenInfo` carries
//!   `CKF_USER_PIN_COUNT_LOW` after any failure, `CKF_USER_PIN_FINAL_TRY`
//!   with one try left and `CKF_USER_PIN_LOCKED` at zero, and the `CKF_SO_PIN_*`
//!   flags likewise. A locked PIN answers `CKR_PIN_LOCKED` without the module
//!   underneath seeing the attempt. `C_InitPIN` by the SO resets and unlocks
//!   the user PIN. `C_SetPIN` in an SO session works on the SO PIN, otherwise
//!   on the user PIN.
//! * **Hot-plug**: [`control::remove`] / [`control::insert`] (or the
//!   `keyward-sim` command) pull a token out or plug it back in, in every
//!   process that has the module loaded. While pulled, `C_GetSlotList(TRUE)`
//!   leaves the slot out, `C_GetSlotInfo` clears `CKF_TOKEN_PRESENT` (slots
//!   always carry `CKF_REMOVABLE_DEVICE`), slot functions answer
//!   `CKR_TOKEN_NOT_PRESENT`, and each session opened before the removal
//!   answers `CKR_DEVICE_REMOVED` to every later call (`C_CloseSession`
//!   included, which also forgets the handle); it is closed underneath (so
//!   its login goes too) as soon as the process notices the pull — at its
//!   next call on the token or the next poll of a slot watcher. A pull and
//!   re-insert between two calls still ends the old sessions. Plugged in
//!   again, the token takes fresh sessions. `C_WaitForSlotEvent` is
//!   implemented by the simulator (blocking, or `CKF_DONT_BLOCK`), watching
//!   the presence state every 20 ms; `C_Finalize` wakes a blocked waiter
//!   with `CKR_CRYPTOKI_NOT_INITIALIZED`. After an insert, a process with no
//!   open session finalises and re-initialises the module underneath at its
//!   next `C_GetSlotList` or `C_WaitForSlotEvent`, so SoftHSM token
//!   directories created since it was loaded appear too.
//! * **Faults** ([`control::arm_fault`]): at the Nth call of a named function,
//!   answer a chosen return code, or pull the token out. Calls are counted
//!   from the moment the fault is armed, across every process sharing the
//!   state directory (the counter lives in the state file), and a fault fires
//!   once. An injected code never reaches the module underneath and spends
//!   no PIN try — except on the cryptographic operation functions
//!   (`C_Sign`, `C_SignUpdate`, `C_SignFinal`, `C_Encrypt…`, `C_Decrypt…`,
//!   `C_Digest…`, `C_Verify…`, `C_SignRecover`, `C_VerifyRecover`), where
//!   the call goes down into scratch output and the operation is ended
//!   there, because a real token ends an operation that fails: the session
//!   can start the next operation at once. A pulled token (`RemoveToken`)
//!   stops the call before it reaches the module underneath, so a write at
//!   that call never happens.
//!   A `Hang` fault blocks the call for a number of seconds and then lets it go
//!   on. `C_Initialize` can carry a `Return` fault (the module then stays
//!   uninitialised) or a `Hang` one (a driver that does not answer);
//!   `C_GetFunctionList` and `C_Finalize` cannot.
//! * **Identity**: per-token overrides of manufacturer, model and serial.
//!
//! A token is named, in the control API and the command, by the serial a
//! client sees, its label, or its serial underneath; a label shared by two
//! tokens names both.
//!
//! Session handles given to the application are the simulator's own (never
//! reused within a process); slot and object handles are those of the module
//! underneath. `C_OpenSession`'s notification callback is not passed down.
//! Only PKCS#11 2.40 is offered (`C_GetFunctionList`; no
//! `C_GetInterfaceList`), which is all SoftHSM 2.6 has.
//!
//! ## Configuration
//!
//! `C_Initialize` reads the TOML file named by `KEYWARD_SIM_CONF` (it does not
//! set `SOFTHSM2_CONF`; the caller's environment does). Relative paths are
//! relative to the file; a bare `module` file name is left to the loader.
//!
//! ```toml
//! module = "/usr/lib/softhsm/libsofthsm2.so"  # the module underneath
//! state_dir = "/tmp/kw/sim-state"              # counters, presence, faults
//! user_pin_tries = 10                          # default 10
//! so_pin_tries = 10                            # default 10
//! log_file = "/tmp/kw/sim.log"                 # optional; stderr otherwise
//! log_level = "info"                           # optional; KEYWARD_SIM_LOG wins
//!
//! [[token]]
//! match = "a4b1c2d3e4f50617"   # underlying serial or label
//! manufacturer = "NETCA"
//! model = "UKey 3000"
//! serial = "NC20240001"
//! user_pin_tries = 6
//! so_pin_tries = 6
//! ```
//!
//! A missing or broken configuration makes `C_Initialize` answer
//! `CKR_GENERAL_ERROR` with the reason in the log (standard error unless a
//! log file is configured, in which case the reason goes to both).
//!
//! ## Exact remaining tries
//!
//! The module exports, besides `C_GetFunctionList`:
//!
//! ```c
//! CK_RV keyward_sim_pin_tries(CK_SLOT_ID slot, CK_ULONG *user_left, CK_ULONG *so_left);
//! ```
//!
//! A client that has loaded and initialised the module looks this symbol up
//! in the same library (real modules do not have it) and gets the exact
//! counts. It answers `CKR_CRYPTOKI_NOT_INITIALIZED` before `C_Initialize`,
//! `CKR_TOKEN_NOT_PRESENT` while the token is pulled out and
//! `CKR_ARGUMENTS_BAD` for null pointers.
//!
//! ## Persisted state
//!
//! Everything lives in `state_dir/state.json`, changed under an exclusive
//! `flock` of `state_dir/state.lock` and replaced atomically (temporary file
//! + rename), so processes share one counter per token. Counters are keyed
//!   by the serial a client sees (after override).
//!
//! ## Logs
//!
//! `tracing`, to `log_file` or standard error. A PIN — or its length — is
//! never logged.

// The workspace lints deny unsafe code, which a PKCS#11 module cannot do
// without; the rest of them hold here too.
#![warn(missing_debug_implementations, missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::dbg_macro)]

mod config;
pub mod control;
mod error;
mod ffi;
mod log;
mod runtime;
mod state;

pub use config::{CONF_ENV, Config, DEFAULT_TRIES, TokenOverride};
pub use error::Error;
pub use ffi::{C_GetFunctionList, keyward_sim_pin_tries};
pub use log::LOG_ENV;

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A lock whose holder panicked is still usable: the simulator's data under
/// it stays consistent because every update is a single assignment.
pub(crate) fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read_ignoring_poison<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write_ignoring_poison<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}
