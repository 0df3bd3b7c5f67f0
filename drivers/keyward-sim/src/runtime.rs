//! The loaded simulator: the module underneath, the sessions handed out, the
//! slot → token map, and the logic that makes SoftHSM behave like a USB key.
//!
//! Locking: `RUNTIME` is only written by `C_Initialize`/`C_Finalize`. Every
//! call that reaches the module underneath holds `gate` for reading; the
//! module underneath is finalised and re-initialised only under `gate` for
//! writing. `inner` is never held while calling the module underneath.

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use cryptoki_sys::*;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::control::Effect;
use crate::error::Error;
use crate::state::{Pin, State, Store, TokenRecord};
use crate::{lock_ignoring_poison, read_ignoring_poison, write_ignoring_poison};

/// Result of internal steps: `Err` carries the return code to answer.
pub(crate) type Ck<T> = Result<T, CK_RV>;

/// How often a blocking `C_WaitForSlotEvent` looks at the presence state.
const EVENT_POLL: Duration = Duration::from_millis(20);

static RUNTIME: RwLock<Option<Arc<Runtime>>> = RwLock::new(None);
/// Session handles handed to the application; never reused within a process.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);
/// Modules loaded underneath. They stay loaded for the life of the process:
/// unloading and reloading a module with global state (SoftHSM, OpenSSL) is
/// a source of crashes, and `C_Finalize` + `C_Initialize` is all a cycle needs.
static LIBRARIES: Mutex<Vec<(PathBuf, &'static libloading::Library)>> = Mutex::new(Vec::new());

/// The identity of an initialised token as the simulator presents it.
#[derive(Debug)]
pub(crate) struct TokenId {
    /// Serial number the client sees (after override): the key of its counters.
    pub key: String,
    pub label: String,
    pub underlying_serial: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_override: bool,
    pub user_max: u32,
    pub so_max: u32,
}

impl TokenId {
    fn names(&self) -> [&str; 3] {
        [&self.key, &self.label, &self.underlying_serial]
    }
}

#[derive(Debug)]
struct Session {
    real: CK_SESSION_HANDLE,
    slot: CK_SLOT_ID,
    token: Option<Arc<TokenId>>,
    /// `State::seq` when the session was opened.
    opened_seq: u64,
    /// The token was pulled out: the session is gone underneath.
    removed: bool,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<CK_SESSION_HANDLE, Session>,
    /// `None`: the slot holds an uninitialised token (no counters, always present).
    slots: HashMap<CK_SLOT_ID, Option<Arc<TokenId>>>,
    /// Per slot, the (present, last removal) last reported by `C_WaitForSlotEvent`.
    reported: HashMap<CK_SLOT_ID, (bool, u64)>,
    /// `State::last_insert` the module underneath has been initialised for.
    insert_seen: u64,
}

/// A session looked up for a call.
pub(crate) struct SessionRef {
    pub real: CK_SESSION_HANDLE,
    pub token: Option<Arc<TokenId>>,
}

/// What a call addresses, for faults.
pub(crate) enum Target<'a> {
    Nothing,
    Slot(CK_SLOT_ID, Option<&'a Arc<TokenId>>),
    Session(CK_SLOT_ID, Option<&'a Arc<TokenId>>),
}

#[derive(Debug)]
pub(crate) struct Runtime {
    pub funcs: CK_FUNCTION_LIST,
    pub config: Config,
    store: Store,
    gate: RwLock<()>,
    inner: Mutex<Inner>,
    finalized: AtomicBool,
    /// Whether our `C_Initialize` of the module underneath succeeded (rather
    /// than finding it already initialised by someone else in the process).
    owns_init: bool,
    wake_lock: Mutex<()>,
    wake: Condvar,
}

/// The runtime, if `C_Initialize` has been called.
pub(crate) fn current() -> Ck<Arc<Runtime>> {
    read_ignoring_poison(&RUNTIME)
        .clone()
        .ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)
}

fn report(config: Option<&Config>, e: &Error) {
    error!("{e}");
    if config.is_some_and(|c| c.log_file.is_some()) {
        eprintln!("keyward-sim: {e}");
    }
}

fn check_init_args(args: *mut c_void) -> Ck<()> {
    if args.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null argument to C_Initialize points to CK_C_INITIALIZE_ARGS.
    let a = unsafe { &*(args as *const CK_C_INITIALIZE_ARGS) };
    if !a.pReserved.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let given = [
        a.CreateMutex.is_some(),
        a.DestroyMutex.is_some(),
        a.LockMutex.is_some(),
        a.UnlockMutex.is_some(),
    ];
    if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // With or without the application's mutex callbacks, the simulator uses
    // the operating system's locks, and asks the same of the module below.
    Ok(())
}

fn load_function_list(path: &Path) -> Result<CK_FUNCTION_LIST, Error> {
    let load_err = |message: String| Error::ModuleLoad {
        path: path.to_path_buf(),
        message,
    };
    let lib: &'static libloading::Library = {
        let mut libs = lock_ignoring_poison(&LIBRARIES);
        match libs.iter().find(|(p, _)| p == path) {
            Some((_, lib)) => lib,
            None => {
                // SAFETY: loading runs the module's initialisers; the
                // configuration names the PKCS#11 module to trust.
                let lib = unsafe { libloading::Library::new(path) }
                    .map_err(|e| load_err(e.to_string()))?;
                let lib: &'static libloading::Library = Box::leak(Box::new(lib));
                libs.push((path.to_path_buf(), lib));
                lib
            }
        }
    };
    type GetFunctionList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
    // SAFETY: every PKCS#11 module exports C_GetFunctionList with this signature.
    let get = unsafe { lib.get::<GetFunctionList>(b"C_GetFunctionList\0") }
        .map_err(|e| load_err(e.to_string()))?;
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    // SAFETY: `list` is a valid out-pointer for the call.
    let rv = unsafe { get(&mut list) };
    if rv != CKR_OK || list.is_null() {
        return Err(load_err(format!("C_GetFunctionList answered {rv:#x}")));
    }
    if ptr::eq(list, &crate::ffi::FUNCTION_LIST) {
        return Err(load_err(
            "this is the simulator itself; `module` must name the module underneath".into(),
        ));
    }
    // SAFETY: the module returned a valid function list, which stays valid
    // while the module is loaded (for the rest of the process).
    Ok(unsafe { *list })
}

/// `C_Initialize`.
pub(crate) fn initialize(args: *mut c_void) -> Ck<CK_RV> {
    crate::log::init_default();
    check_init_args(args)?;
    let mut global = write_ignoring_poison(&RUNTIME);
    if global.is_some() {
        return Err(CKR_CRYPTOKI_ALREADY_INITIALIZED);
    }
    let config = Config::from_env().map_err(|e| {
        report(None, &e);
        CKR_GENERAL_ERROR
    })?;
    if let Err(e) = crate::log::configure(&config) {
        report(None, &e);
        return Err(CKR_GENERAL_ERROR);
    }
    let fail = |e: Error| {
        report(Some(&config), &e);
        CKR_GENERAL_ERROR
    };
    let store = Store::open(&config.state_dir).map_err(fail)?;
    let state = store.read_fresh().map_err(fail)?;
    if state
        .faults
        .iter()
        .any(|f| !f.fired && f.function == "C_Initialize")
    {
        match store
            .update(|st| st.count_call("C_Initialize"))
            .map_err(fail)?
        {
            Some(Effect::Return(rv)) => {
                warn!(function = "C_Initialize", rv, "injected fault fires");
                return Err(rv);
            }
            Some(Effect::Hang(secs)) => {
                warn!(
                    function = "C_Initialize",
                    secs, "injected fault fires: hanging"
                );
                std::thread::sleep(std::time::Duration::from_secs(secs));
            }
            Some(Effect::RemoveToken) | None => {}
        }
    }
    let funcs = load_function_list(&config.module).map_err(fail)?;
    let mut rt = Runtime {
        funcs,
        config,
        store,
        gate: RwLock::new(()),
        inner: Mutex::new(Inner {
            insert_seen: state.last_insert,
            ..Inner::default()
        }),
        finalized: AtomicBool::new(false),
        owns_init: true,
        wake_lock: Mutex::new(()),
        wake: Condvar::new(),
    };
    match rt.init_underlying() {
        CKR_OK => {}
        CKR_CRYPTOKI_ALREADY_INITIALIZED => {
            warn!("the module underneath was already initialised in this process; sharing it");
            rt.owns_init = false;
        }
        rv => {
            error!(
                module = %rt.config.module.display(),
                rv, "the module underneath refused C_Initialize"
            );
            return Err(rv);
        }
    }
    if let Err(rv) = rt.poll_event(true) {
        warn!(rv, "could not take the initial slot snapshot");
    }
    info!(
        module = %rt.config.module.display(),
        state_dir = %rt.config.state_dir.display(),
        "simulator initialised"
    );
    *global = Some(Arc::new(rt));
    Ok(CKR_OK)
}

/// `C_Finalize`.
pub(crate) fn finalize(reserved: *mut c_void) -> Ck<CK_RV> {
    if !reserved.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let rt = write_ignoring_poison(&RUNTIME)
        .take()
        .ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)?;
    rt.finalized.store(true, Ordering::SeqCst);
    {
        let _l = lock_ignoring_poison(&rt.wake_lock);
        rt.wake.notify_all();
    }
    let _w = write_ignoring_poison(&rt.gate);
    let rv = match (rt.owns_init, rt.funcs.C_Finalize) {
        // SAFETY: no call into the module underneath is in flight (gate held for writing).
        (true, Some(f)) => unsafe { f(ptr::null_mut()) },
        _ => CKR_OK,
    };
    info!(rv, "simulator finalised");
    Ok(rv)
}

/// Runs `op` on a live session of the current runtime (session functions
/// that the simulator forwards unchanged).
pub(crate) fn with_session(
    name: &'static str,
    h: CK_SESSION_HANDLE,
    op: impl FnOnce(&Runtime, CK_SESSION_HANDLE) -> Ck<CK_RV>,
) -> Ck<CK_RV> {
    let rt = current()?;
    let _g = rt.enter()?;
    let s = rt.session(name, h)?;
    op(&rt, s.real)
}

macro_rules! under {
    ($rt:expr, $name:ident) => {
        $rt.funcs.$name.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?
    };
}

fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b;
    }
    out
}

fn unpad(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

fn pin_flags(left: u32, max: u32, low: CK_FLAGS, last: CK_FLAGS, locked: CK_FLAGS) -> CK_FLAGS {
    let mut f = 0;
    if left < max {
        f |= low;
    }
    if left == 1 {
        f |= last;
    }
    if left == 0 {
        f |= locked;
    }
    f
}

const PIN_FLAGS: CK_FLAGS = CKF_USER_PIN_COUNT_LOW
    | CKF_USER_PIN_FINAL_TRY
    | CKF_USER_PIN_LOCKED
    | CKF_SO_PIN_COUNT_LOW
    | CKF_SO_PIN_FINAL_TRY
    | CKF_SO_PIN_LOCKED;

impl Runtime {
    fn init_underlying(&self) -> CK_RV {
        let mut args = CK_C_INITIALIZE_ARGS {
            CreateMutex: None,
            DestroyMutex: None,
            LockMutex: None,
            UnlockMutex: None,
            flags: CKF_OS_LOCKING_OK,
            pReserved: ptr::null_mut(),
        };
        match self.funcs.C_Initialize {
            // SAFETY: `args` is a valid CK_C_INITIALIZE_ARGS for the duration of the call.
            Some(f) => unsafe { f(&mut args as *mut CK_C_INITIALIZE_ARGS as *mut c_void) },
            None => CKR_GENERAL_ERROR,
        }
    }

    /// Takes the gate for one call into the module underneath.
    pub fn enter(&self) -> Ck<RwLockReadGuard<'_, ()>> {
        let g = read_ignoring_poison(&self.gate);
        if self.finalized.load(Ordering::SeqCst) {
            return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
        }
        Ok(g)
    }

    fn snap(&self) -> Ck<Arc<State>> {
        self.store.snapshot().map_err(|e| {
            error!("{e}");
            CKR_GENERAL_ERROR
        })
    }

    fn fresh(&self) -> Ck<State> {
        self.store.read_fresh().map_err(|e| {
            error!("{e}");
            CKR_GENERAL_ERROR
        })
    }

    fn update<R>(&self, change: impl FnOnce(&mut State) -> R) -> Ck<R> {
        self.store.update(change).map_err(|e| {
            error!("{e}");
            CKR_GENERAL_ERROR
        })
    }

    fn identify(&self, info: &CK_TOKEN_INFO) -> Option<TokenId> {
        if info.flags & CKF_TOKEN_INITIALIZED == 0 {
            return None;
        }
        let underlying_serial = unpad(&info.serialNumber);
        let label = unpad(&info.label);
        let over = self.config.override_for(&underlying_serial, &label);
        let serial = over.and_then(|o| o.serial.clone());
        Some(TokenId {
            key: serial.clone().unwrap_or_else(|| underlying_serial.clone()),
            serial_override: serial.is_some(),
            label,
            underlying_serial,
            manufacturer: over.and_then(|o| o.manufacturer.clone()),
            model: over.and_then(|o| o.model.clone()),
            user_max: over
                .and_then(|o| o.user_pin_tries)
                .unwrap_or(self.config.user_pin_tries),
            so_max: over
                .and_then(|o| o.so_pin_tries)
                .unwrap_or(self.config.so_pin_tries),
        })
    }

    /// Makes sure the token has a counter record matching the configuration.
    fn register(&self, t: &TokenId) -> Ck<()> {
        let snap = self.snap()?;
        let current = snap.tokens.get(&t.key).is_some_and(|r| {
            r.label == t.label
                && r.underlying_serial == t.underlying_serial
                && r.user_max == t.user_max
                && r.so_max == t.so_max
        });
        if current {
            return Ok(());
        }
        self.update(|st| {
            let r = st.tokens.entry(t.key.clone()).or_insert(TokenRecord {
                label: t.label.clone(),
                underlying_serial: t.underlying_serial.clone(),
                user_max: t.user_max,
                user_left: t.user_max,
                so_max: t.so_max,
                so_left: t.so_max,
            });
            r.label.clone_from(&t.label);
            r.underlying_serial.clone_from(&t.underlying_serial);
            for (max, left, new_max) in [
                (&mut r.user_max, &mut r.user_left, t.user_max),
                (&mut r.so_max, &mut r.so_left, t.so_max),
            ] {
                if *max != new_max {
                    *left = if *left >= *max {
                        new_max
                    } else {
                        (*left).min(new_max)
                    };
                    *max = new_max;
                }
            }
        })?;
        debug!(serial = %t.key, label = %t.label, "token registered");
        Ok(())
    }

    /// The token in a slot (cached; the gate must be held).
    pub fn token_for_slot(&self, slot: CK_SLOT_ID) -> Ck<Option<Arc<TokenId>>> {
        if let Some(t) = lock_ignoring_poison(&self.inner).slots.get(&slot) {
            return Ok(t.clone());
        }
        let mut info = CK_TOKEN_INFO::default();
        // SAFETY: `info` is a valid out-pointer.
        let rv = unsafe { under!(self, C_GetTokenInfo)(slot, &mut info) };
        let tok = match rv {
            CKR_OK => self.identify(&info).map(Arc::new),
            CKR_TOKEN_NOT_PRESENT => return Ok(None),
            other => return Err(other),
        };
        if let Some(t) = &tok {
            self.register(t)?;
        }
        lock_ignoring_poison(&self.inner)
            .slots
            .insert(slot, tok.clone());
        Ok(tok)
    }

    /// The token in a slot, or `CKR_TOKEN_NOT_PRESENT` if it is pulled out.
    pub fn check_slot(&self, slot: CK_SLOT_ID, snap: &State) -> Ck<Option<Arc<TokenId>>> {
        let tok = self.token_for_slot(slot)?;
        if let Some(t) = &tok
            && snap.is_absent(&t.names())
        {
            self.evict(t, slot, snap);
            return Err(CKR_TOKEN_NOT_PRESENT);
        }
        Ok(tok)
    }

    /// Closes, underneath, every session on a pulled token opened before it was pulled.
    fn evict(&self, t: &TokenId, slot: CK_SLOT_ID, snap: &State) {
        let absent = snap.is_absent(&t.names());
        let removed_at = snap.removal_seq(&t.names());
        let reals: Vec<CK_SESSION_HANDLE> = {
            let mut inner = lock_ignoring_poison(&self.inner);
            inner
                .sessions
                .values_mut()
                .filter(|s| {
                    !s.removed
                        && s.slot == slot
                        && s.token.as_ref().is_some_and(|x| x.key == t.key)
                        && (absent || s.opened_seq < removed_at)
                })
                .map(|s| {
                    s.removed = true;
                    s.real
                })
                .collect()
        };
        if reals.is_empty() {
            return;
        }
        if let Some(close) = self.funcs.C_CloseSession {
            for real in &reals {
                // SAFETY: `real` is a session handle of the module underneath.
                unsafe { close(*real) };
            }
        }
        info!(serial = %t.key, sessions = reals.len(), "token pulled out: its sessions are closed");
    }

    fn session_dead(s_opened: u64, t: &TokenId, snap: &State) -> bool {
        snap.is_absent(&t.names()) || snap.removal_seq(&t.names()) > s_opened
    }

    /// Looks up a session for a call: pulled tokens, then faults.
    pub fn session(&self, name: &'static str, h: CK_SESSION_HANDLE) -> Ck<SessionRef> {
        match self.session_for_op(name, h)? {
            (_, Some(rv)) => Err(rv),
            (s, None) => Ok(s),
        }
    }

    /// Like [`Runtime::session`], but an injected return code comes back
    /// beside the session instead of as an error.
    pub fn session_for_op(
        &self,
        name: &'static str,
        h: CK_SESSION_HANDLE,
    ) -> Ck<(SessionRef, Option<CK_RV>)> {
        let (real, slot, token, opened, removed) = {
            let inner = lock_ignoring_poison(&self.inner);
            let s = inner.sessions.get(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
            (s.real, s.slot, s.token.clone(), s.opened_seq, s.removed)
        };
        if removed {
            return Err(CKR_DEVICE_REMOVED);
        }
        // One read of the shared state serves both the presence check and
        // the fault check: this runs on every session call.
        let snap = self.snap()?;
        if let Some(t) = &token
            && Self::session_dead(opened, t, &snap)
        {
            self.evict(t, slot, &snap);
            return Err(CKR_DEVICE_REMOVED);
        }
        let injected = self.fault_with(&snap, name, Target::Session(slot, token.as_ref()))?;
        Ok((SessionRef { real, token }, injected))
    }

    fn session_removed(&self, h: CK_SESSION_HANDLE) -> bool {
        lock_ignoring_poison(&self.inner)
            .sessions
            .get(&h)
            .is_some_and(|s| s.removed)
    }

    fn forget_session(&self, h: CK_SESSION_HANDLE) {
        lock_ignoring_poison(&self.inner).sessions.remove(&h);
    }

    /// Counts the call for armed faults and applies one that fires; an
    /// injected return code comes back as `Err`.
    pub fn fault(&self, name: &str, target: Target<'_>) -> Ck<()> {
        match self.fault_injected(name, target)? {
            Some(rv) => Err(rv),
            None => Ok(()),
        }
    }

    /// Like [`Runtime::fault`], but an injected return code comes back as
    /// `Ok(Some(rv))`, so the caller can first end the operation underneath.
    pub fn fault_injected(&self, name: &str, target: Target<'_>) -> Ck<Option<CK_RV>> {
        let snap = self.snap()?;
        self.fault_with(&snap, name, target)
    }

    /// [`Runtime::fault_injected`] with a state the caller has already read.
    fn fault_with(&self, snap: &State, name: &str, target: Target<'_>) -> Ck<Option<CK_RV>> {
        if !snap
            .faults
            .iter()
            .any(|f| !f.fired && (f.function == name || f.function == crate::state::ANY_FUNCTION))
        {
            return Ok(None);
        }
        let Some(effect) = self.update(|st| st.count_call(name))? else {
            return Ok(None);
        };
        warn!(function = name, ?effect, "injected fault fires");
        match effect {
            Effect::Return(rv) => Ok(Some(rv)),
            Effect::Hang(secs) => {
                std::thread::sleep(std::time::Duration::from_secs(secs));
                Ok(None)
            }
            Effect::RemoveToken => match target {
                Target::Slot(slot, Some(t)) => {
                    self.pull(t, slot)?;
                    Err(CKR_TOKEN_NOT_PRESENT)
                }
                Target::Session(slot, Some(t)) => {
                    self.pull(t, slot)?;
                    Err(CKR_DEVICE_REMOVED)
                }
                Target::Slot(_, None) | Target::Session(_, None) => Ok(None),
                Target::Nothing => {
                    let known: Vec<(CK_SLOT_ID, Arc<TokenId>)> = lock_ignoring_poison(&self.inner)
                        .slots
                        .iter()
                        .filter_map(|(s, t)| t.clone().map(|t| (*s, t)))
                        .collect();
                    for (slot, t) in known {
                        self.pull(&t, slot)?;
                    }
                    Ok(None)
                }
            },
        }
    }

    fn pull(&self, t: &TokenId, slot: CK_SLOT_ID) -> Ck<()> {
        self.update(|st| st.remove_token(&t.key))?;
        let snap = self.fresh()?;
        self.evict(t, slot, &snap);
        Ok(())
    }

    /// The module underneath's slot list.
    pub fn slot_list(&self, present_only: bool) -> Ck<Vec<CK_SLOT_ID>> {
        let f = under!(self, C_GetSlotList);
        let flag: CK_BBOOL = if present_only { CK_TRUE } else { CK_FALSE };
        loop {
            let mut n: CK_ULONG = 0;
            // SAFETY: null list asks for the count only.
            let rv = unsafe { f(flag, ptr::null_mut(), &mut n) };
            if rv != CKR_OK {
                return Err(rv);
            }
            let mut v: Vec<CK_SLOT_ID> = vec![0; n as usize];
            // SAFETY: `v` has room for `n` slot ids.
            let rv = unsafe { f(flag, v.as_mut_ptr(), &mut n) };
            match rv {
                CKR_OK => {
                    v.truncate(n as usize);
                    return Ok(v);
                }
                CKR_BUFFER_TOO_SMALL => continue,
                other => return Err(other),
            }
        }
    }

    /// Re-initialises the module underneath after an insert, so that token
    /// directories created since it was initialised show up. Only done when
    /// no session is open (it would close them all).
    pub fn maybe_reinit(&self) -> Ck<()> {
        let snap = self.snap()?;
        let pending = |inner: &Inner| {
            snap.last_insert > inner.insert_seen && !inner.sessions.values().any(|s| !s.removed)
        };
        if !pending(&lock_ignoring_poison(&self.inner)) {
            return Ok(());
        }
        let _w = write_ignoring_poison(&self.gate);
        if self.finalized.load(Ordering::SeqCst) {
            return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
        }
        if !pending(&lock_ignoring_poison(&self.inner)) {
            return Ok(());
        }
        if self.owns_init {
            if let Some(f) = self.funcs.C_Finalize {
                // SAFETY: no call is in flight (gate held for writing).
                unsafe { f(ptr::null_mut()) };
            }
            let rv = self.init_underlying();
            if rv != CKR_OK {
                error!(rv, "re-initialising the module underneath failed");
                return Err(rv);
            }
            info!("module underneath re-initialised after an insert");
        }
        let mut inner = lock_ignoring_poison(&self.inner);
        inner.slots.clear();
        inner.insert_seen = snap.last_insert;
        Ok(())
    }

    /// Compares every slot with what was last reported; returns the first
    /// slot that changed (or records everything when `baseline`).
    pub fn poll_event(&self, baseline: bool) -> Ck<Option<CK_SLOT_ID>> {
        let _g = self.enter()?;
        let snap = self.snap()?;
        let mut now = Vec::new();
        for slot in self.slot_list(false)? {
            let st = match self.token_for_slot(slot)? {
                None => (true, 0),
                Some(t) => {
                    // A watcher notices a pull first: close the sessions
                    // underneath now rather than at their next call.
                    self.evict(&t, slot, &snap);
                    (!snap.is_absent(&t.names()), snap.removal_seq(&t.names()))
                }
            };
            now.push((slot, st));
        }
        let mut inner = lock_ignoring_poison(&self.inner);
        if baseline {
            inner.reported = now.into_iter().collect();
            return Ok(None);
        }
        for (slot, st) in now {
            if inner.reported.get(&slot) != Some(&st) {
                inner.reported.insert(slot, st);
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// Waits (or not, with `CKF_DONT_BLOCK`) for a slot event.
    pub fn wait_for_slot_event(&self, flags: CK_FLAGS) -> Ck<CK_SLOT_ID> {
        {
            let _g = self.enter()?;
            self.fault("C_WaitForSlotEvent", Target::Nothing)?;
        }
        loop {
            if self.finalized.load(Ordering::SeqCst) {
                return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
            }
            if let Err(rv) = self.maybe_reinit() {
                warn!(rv, "looking for new tokens failed");
            }
            if let Some(slot) = self.poll_event(false)? {
                debug!(slot, "slot event");
                return Ok(slot);
            }
            if flags & CKF_DONT_BLOCK != 0 {
                return Err(CKR_NO_EVENT);
            }
            let l = lock_ignoring_poison(&self.wake_lock);
            if self.finalized.load(Ordering::SeqCst) {
                return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
            }
            let _ = self.wake.wait_timeout(l, EVENT_POLL);
        }
    }

    /// Runs a PIN check of the module underneath through the simulator's
    /// counter for that PIN. The check, the attempt and the counter update
    /// happen under the state directory's lock, so attempts from all
    /// processes and threads are taken one at a time, as a real key takes
    /// them: exactly `max` wrong PINs lock it, however they race.
    fn pin_checked(
        &self,
        t: &TokenId,
        pin: Pin,
        what: &str,
        op: impl FnOnce() -> CK_RV,
    ) -> Ck<CK_RV> {
        if !self.fresh()?.tokens.contains_key(&t.key) {
            self.register(t)?;
        }
        let (rv, before, after) = self.update(|st| {
            let before = st.left(&t.key, pin);
            if before == Some(0) {
                return (CKR_PIN_LOCKED, before, before);
            }
            let rv = op();
            match rv {
                CKR_OK => st.reset(&t.key, pin),
                CKR_PIN_INCORRECT => {
                    st.fail(&t.key, pin);
                }
                _ => {}
            }
            (rv, before, st.left(&t.key, pin))
        })?;
        match rv {
            CKR_PIN_LOCKED if before == Some(0) => {
                info!(serial = %t.key, ?pin, what, "PIN locked: refused without reaching the token");
            }
            CKR_PIN_INCORRECT => info!(serial = %t.key, ?pin, what, left = ?after, "wrong PIN"),
            CKR_OK if before != after => {
                info!(serial = %t.key, ?pin, what, "right PIN: tries reset")
            }
            _ => {}
        }
        Ok(rv)
    }

    /// `C_Login`.
    pub fn login(
        &self,
        h: CK_SESSION_HANDLE,
        user: CK_USER_TYPE,
        pin: *mut CK_UTF8CHAR,
        len: CK_ULONG,
    ) -> Ck<CK_RV> {
        let s = self.session("C_Login", h)?;
        let f = under!(self, C_Login);
        // SAFETY: the caller's PIN buffer goes unchanged to the module underneath.
        let op = || unsafe { f(s.real, user, pin, len) };
        let which = match user {
            CKU_SO => Some(Pin::So),
            CKU_USER | CKU_CONTEXT_SPECIFIC => Some(Pin::User),
            _ => None,
        };
        match (&s.token, which) {
            (Some(t), Some(which)) => self.pin_checked(t, which, "C_Login", op),
            _ => Ok(op()),
        }
    }

    /// `C_SetPIN`: the SO PIN in an SO session, the user PIN otherwise.
    pub fn set_pin(
        &self,
        h: CK_SESSION_HANDLE,
        old: *mut CK_UTF8CHAR,
        old_len: CK_ULONG,
        new: *mut CK_UTF8CHAR,
        new_len: CK_ULONG,
    ) -> Ck<CK_RV> {
        let s = self.session("C_SetPIN", h)?;
        let f = under!(self, C_SetPIN);
        // SAFETY: the caller's PIN buffers go unchanged to the module underneath.
        let op = || unsafe { f(s.real, old, old_len, new, new_len) };
        let Some(t) = &s.token else {
            return Ok(op());
        };
        let mut info = CK_SESSION_INFO::default();
        // SAFETY: `info` is a valid out-pointer.
        let rv = unsafe { under!(self, C_GetSessionInfo)(s.real, &mut info) };
        if rv != CKR_OK {
            return Ok(rv);
        }
        let which = if info.state == CKS_RW_SO_FUNCTIONS {
            Pin::So
        } else {
            Pin::User
        };
        self.pin_checked(t, which, "C_SetPIN", op)
    }

    /// `C_InitPIN`: a success unlocks the user PIN.
    pub fn init_pin(
        &self,
        h: CK_SESSION_HANDLE,
        pin: *mut CK_UTF8CHAR,
        len: CK_ULONG,
    ) -> Ck<CK_RV> {
        let s = self.session("C_InitPIN", h)?;
        // SAFETY: the caller's PIN buffer goes unchanged to the module underneath.
        let rv = unsafe { under!(self, C_InitPIN)(s.real, pin, len) };
        if rv == CKR_OK
            && let Some(t) = &s.token
        {
            self.update(|st| st.reset(&t.key, Pin::User))?;
            info!(serial = %t.key, "user PIN set by the SO: tries reset, unlocked");
        }
        Ok(rv)
    }

    /// `C_InitToken`: checks the SO counter; a success starts both counters afresh.
    pub fn init_token(
        &self,
        slot: CK_SLOT_ID,
        pin: *mut CK_UTF8CHAR,
        len: CK_ULONG,
        label: *mut CK_UTF8CHAR,
    ) -> Ck<CK_RV> {
        let snap = self.snap()?;
        let tok = self.check_slot(slot, &snap)?;
        self.fault("C_InitToken", Target::Slot(slot, tok.as_ref()))?;
        let f = under!(self, C_InitToken);
        // SAFETY: the caller's arguments go unchanged to the module underneath.
        let op = || unsafe { f(slot, pin, len, label) };
        let rv = match &tok {
            Some(t) => self.pin_checked(t, Pin::So, "C_InitToken", op)?,
            None => op(),
        };
        if rv == CKR_OK {
            // SoftHSM gives a token initialised in its free slot a new slot
            // id and adds a new free slot: nothing cached about slots holds.
            lock_ignoring_poison(&self.inner).slots.clear();
            if let Ok(Some(t)) = self.token_for_slot(slot) {
                self.update(|st| {
                    st.reset(&t.key, Pin::User);
                    st.reset(&t.key, Pin::So);
                })?;
            }
            info!(slot, "token initialised: tries reset");
        }
        Ok(rv)
    }

    /// `C_OpenSession`.
    pub fn open_session(
        &self,
        slot: CK_SLOT_ID,
        flags: CK_FLAGS,
        app: *mut c_void,
        notify: CK_NOTIFY,
        out: *mut CK_SESSION_HANDLE,
    ) -> Ck<CK_RV> {
        if out.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let st = self.fresh()?;
        let tok = self.check_slot(slot, &st)?;
        self.fault("C_OpenSession", Target::Slot(slot, tok.as_ref()))?;
        let mut real: CK_SESSION_HANDLE = 0;
        // The application's notification callback is not passed down: the
        // module underneath would call it with its own session handle, which
        // the application has never seen. (SoftHSM never calls it anyway.)
        let _ = notify;
        // SAFETY: the caller's `app` pointer goes unchanged to the module
        // underneath, which only hands it back to callbacks; `real` is a
        // valid out-pointer.
        let rv = unsafe { under!(self, C_OpenSession)(slot, flags, app, None, &mut real) };
        if rv != CKR_OK {
            return Ok(rv);
        }
        let h = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed) as CK_SESSION_HANDLE;
        lock_ignoring_poison(&self.inner).sessions.insert(
            h,
            Session {
                real,
                slot,
                token: tok,
                opened_seq: st.seq,
                removed: false,
            },
        );
        // SAFETY: checked non-null above; the caller provides the out-pointer.
        unsafe { *out = h };
        Ok(CKR_OK)
    }

    /// `C_CloseSession`.
    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Ck<CK_RV> {
        let s = match self.session("C_CloseSession", h) {
            Ok(s) => s,
            Err(rv) => {
                if self.session_removed(h) {
                    self.forget_session(h);
                }
                return Err(rv);
            }
        };
        // SAFETY: `s.real` is a live session of the module underneath.
        let rv = unsafe { under!(self, C_CloseSession)(s.real) };
        if rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID {
            self.forget_session(h);
        }
        Ok(rv)
    }

    /// `C_CloseAllSessions`.
    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> Ck<CK_RV> {
        let tok = self.token_for_slot(slot)?;
        self.fault("C_CloseAllSessions", Target::Slot(slot, tok.as_ref()))?;
        lock_ignoring_poison(&self.inner)
            .sessions
            .retain(|_, s| s.slot != slot);
        // SAFETY: plain forwarding of a slot id.
        Ok(unsafe { under!(self, C_CloseAllSessions)(slot) })
    }

    /// For slot functions forwarded unchanged: the token must be present,
    /// then faults.
    pub fn slot_checked(&self, name: &str, slot: CK_SLOT_ID) -> Ck<Option<Arc<TokenId>>> {
        let snap = self.snap()?;
        let tok = self.check_slot(slot, &snap)?;
        self.fault(name, Target::Slot(slot, tok.as_ref()))?;
        Ok(tok)
    }

    /// `C_GetSlotList`, leaving out slots whose token is pulled when asked for present tokens only.
    pub fn get_slot_list(&self, present_only: bool) -> Ck<Vec<CK_SLOT_ID>> {
        self.fault("C_GetSlotList", Target::Nothing)?;
        let slots = self.slot_list(present_only)?;
        if !present_only {
            return Ok(slots);
        }
        let snap = self.snap()?;
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            match self.check_slot(slot, &snap) {
                Ok(_) => out.push(slot),
                Err(CKR_TOKEN_NOT_PRESENT) => {}
                Err(rv) => return Err(rv),
            }
        }
        Ok(out)
    }

    /// `C_GetSlotInfo`: a removable slot, empty while its token is pulled.
    pub fn get_slot_info(&self, slot: CK_SLOT_ID, out: *mut CK_SLOT_INFO) -> Ck<CK_RV> {
        if out.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let tok = self.token_for_slot(slot)?;
        self.fault("C_GetSlotInfo", Target::Slot(slot, tok.as_ref()))?;
        // SAFETY: `out` is the caller's non-null out-pointer.
        let rv = unsafe { under!(self, C_GetSlotInfo)(slot, out) };
        if rv != CKR_OK {
            return Ok(rv);
        }
        let snap = self.snap()?;
        // SAFETY: the module underneath filled `*out`.
        let info = unsafe { &mut *out };
        info.flags |= CKF_REMOVABLE_DEVICE;
        if let Some(t) = &tok
            && snap.is_absent(&t.names())
        {
            info.flags &= !CKF_TOKEN_PRESENT;
            self.evict(t, slot, &snap);
        }
        Ok(CKR_OK)
    }

    /// `C_GetTokenInfo`: identity overrides and the PIN counter flags.
    pub fn get_token_info(&self, slot: CK_SLOT_ID, out: *mut CK_TOKEN_INFO) -> Ck<CK_RV> {
        if out.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let snap = self.snap()?;
        let tok = self.check_slot(slot, &snap)?;
        self.fault("C_GetTokenInfo", Target::Slot(slot, tok.as_ref()))?;
        // SAFETY: `out` is the caller's non-null out-pointer.
        let rv = unsafe { under!(self, C_GetTokenInfo)(slot, out) };
        if rv != CKR_OK {
            return Ok(rv);
        }
        let Some(t) = tok else {
            return Ok(CKR_OK);
        };
        // SAFETY: the module underneath filled `*out`.
        let info = unsafe { &mut *out };
        if let Some(m) = &t.manufacturer {
            info.manufacturerID = pad(m);
        }
        if let Some(m) = &t.model {
            info.model = pad(m);
        }
        if t.serial_override {
            info.serialNumber = pad(&t.key);
        }
        info.flags &= !PIN_FLAGS;
        if let Some(r) = snap.tokens.get(&t.key) {
            info.flags |= pin_flags(
                r.user_left,
                r.user_max,
                CKF_USER_PIN_COUNT_LOW,
                CKF_USER_PIN_FINAL_TRY,
                CKF_USER_PIN_LOCKED,
            );
            info.flags |= pin_flags(
                r.so_left,
                r.so_max,
                CKF_SO_PIN_COUNT_LOW,
                CKF_SO_PIN_FINAL_TRY,
                CKF_SO_PIN_LOCKED,
            );
        }
        Ok(CKR_OK)
    }

    /// `C_GetInfo`: the library describes itself as the simulator.
    pub fn get_info(&self, out: *mut CK_INFO) -> Ck<CK_RV> {
        if out.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        self.fault("C_GetInfo", Target::Nothing)?;
        // SAFETY: `out` is the caller's non-null out-pointer.
        let rv = unsafe { under!(self, C_GetInfo)(out) };
        if rv != CKR_OK {
            return Ok(rv);
        }
        // SAFETY: the module underneath filled `*out`.
        let info = unsafe { &mut *out };
        info.cryptokiVersion = CK_VERSION {
            major: 2,
            minor: 40,
        };
        info.manufacturerID = pad("Keyward");
        info.libraryDescription = pad("Keyward USB key simulator");
        info.libraryVersion = CK_VERSION { major: 0, minor: 1 };
        Ok(CKR_OK)
    }

    /// `keyward_sim_pin_tries`.
    pub fn pin_tries(&self, slot: CK_SLOT_ID) -> Ck<(u32, u32)> {
        let snap = self.snap()?;
        let Some(t) = self.check_slot(slot, &snap)? else {
            return Ok((self.config.user_pin_tries, self.config.so_pin_tries));
        };
        let st = self.fresh()?;
        match (st.left(&t.key, Pin::User), st.left(&t.key, Pin::So)) {
            (Some(u), Some(s)) => Ok((u, s)),
            _ => Ok((t.user_max, t.so_max)),
        }
    }
}
