//! A loaded PKCS#11 module and the keys it reaches.
//!
//! A module is a process-wide singleton (C_Initialize/C_Finalize are per process), so
//! [`Module::open`] hands out one shared instance per file. Keys are addressed by their
//! serial number, not by slot: before any session is opened the slot is asked again what it
//! holds, so a key swapped into the same slot is never mistaken for the one that was there.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::{Slot, TokenInfo};
use serde::Serialize;

use crate::error::{Result, TokenError};
use crate::info::{PinStatus, TokenDescription, flag_names};
use crate::profile::{DriverProfile, Quirk};
use crate::session::TokenSession;
use crate::uri::Pkcs11Uri;
use crate::vendor::Extensions;

/// What the module says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleInfo {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// CK_INFO manufacturerID.
    pub manufacturer: String,
    /// CK_INFO libraryDescription.
    pub description: String,
    /// CK_INFO libraryVersion.
    pub version: String,
    /// PKCS#11 version it implements.
    pub cryptoki_version: String,
}

/// A key found in a slot: enough to open sessions on it and to notice it has gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    /// The slot it was in when found.
    pub slot: Slot,
    /// Its serial number.
    pub serial: String,
    /// Its label.
    pub label: String,
}

/// A loaded, initialised PKCS#11 module.
pub struct Module {
    pub(crate) ctx: Pkcs11,
    info: ModuleInfo,
    ext: Extensions,
    profile: Mutex<Option<Arc<DriverProfile>>>,
    login_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Keys whose user PIN this process set with C_InitPIN since their last user login.
    pin_reset: Mutex<HashSet<String>>,
    /// Per key, a count that moves before and after every PIN this process presents to it
    /// (and every C_InitPIN): token info read at one count describes the PIN flags for as long
    /// as the count has not moved, as far as this process is concerned.
    pin_epochs: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Module>>> {
    static REG: OnceLock<Mutex<HashMap<PathBuf, Weak<Module>>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

pub(crate) fn lock_mutex<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Module {
    /// Loads and initialises the module at `path`, or returns the instance already open.
    pub fn open(path: &Path) -> Result<Arc<Module>> {
        let load_err = |reason: String| TokenError::ModuleLoad {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            return Err(load_err("no such file".into()));
        }
        let key = std::fs::canonicalize(path).map_err(|e| load_err(e.to_string()))?;
        let mut reg = lock_mutex(registry());
        if let Some(m) = reg.get(&key).and_then(Weak::upgrade) {
            return Ok(m);
        }
        if let Err(arch) = crate::elf::check_arch(&key) {
            return Err(load_err(format!(
                "this driver is for {arch}; this computer is {}",
                crate::elf::host_arch()
            )));
        }
        let ctx = Pkcs11::new(&key).map_err(|e| {
            load_err(match e {
                CkError::LibraryLoading(l) => format!("cannot load it as a PKCS#11 module: {l}"),
                other => other.to_string(),
            })
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(CkError::Pkcs11(rv, f)) => {
                return Err(load_err(format!(
                    "{} answered {}",
                    crate::error::function_name(&f),
                    crate::error::rv_name(&rv)
                )));
            }
            Err(e) => return Err(load_err(e.to_string())),
        }
        let li = ctx
            .get_library_info()
            .map_err(|e| load_err(e.to_string()))?;
        let info = ModuleInfo {
            path: key.clone(),
            manufacturer: li.manufacturer_id().trim().to_owned(),
            description: li.library_description().trim().to_owned(),
            version: li.library_version().to_string(),
            cryptoki_version: li.cryptoki_version().to_string(),
        };
        let profile = crate::profile::embedded_profiles()
            .ok()
            .and_then(|all| {
                crate::profile::profile_for_module(
                    &all,
                    &key,
                    Some((&info.manufacturer, &info.description)),
                )
                .cloned()
            })
            .map(Arc::new);
        tracing::info!(
            module = %key.display(),
            manufacturer = %info.manufacturer,
            profile = profile.as_ref().map_or("-", |p| p.name.as_str()),
            "PKCS#11 module loaded"
        );
        let module = Arc::new(Module {
            ext: Extensions::probe(&key),
            profile: Mutex::new(profile),
            ctx,
            info,
            login_locks: Mutex::new(HashMap::new()),
            pin_reset: Mutex::new(HashSet::new()),
            pin_epochs: Mutex::new(HashMap::new()),
        });
        reg.insert(key, Arc::downgrade(&module));
        Ok(module)
    }

    /// What the module says about itself.
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// The driver profile this module was matched to when it was opened (by what it says
    /// about itself, else by its file name), if any.
    pub fn profile(&self) -> Option<Arc<DriverProfile>> {
        lock_mutex(&self.profile).clone()
    }

    /// Replaces the profile (a caller with profiles of its own, or a test): its quirks
    /// drive this module from the next call on.
    pub fn set_profile(&self, profile: Option<DriverProfile>) {
        *lock_mutex(&self.profile) = profile.map(Arc::new);
    }

    /// Does the module's profile declare this quirk?
    pub fn has_quirk(&self, quirk: Quirk) -> bool {
        lock_mutex(&self.profile)
            .as_ref()
            .is_some_and(|p| p.has_quirk(quirk))
    }

    /// Initialised keys present now. A slot holding an uninitialised token (a blank key,
    /// or SoftHSM's free slot) is left out: there is nothing on it for an operator. With the
    /// `phantom-slot` quirk, a slot that says a token is present but cannot describe it, or
    /// describes one without a serial number, is left out too instead of failing the list.
    pub fn tokens(&self) -> Result<Vec<TokenRef>> {
        let phantom = self.has_quirk(Quirk::PhantomSlot);
        // One C_GetTokenInfo a slot: the initialised flag is read from the same answer.
        let slots = self.ctx.get_slots_with_token()?;
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            match self.ctx.get_token_info(slot) {
                Ok(info) if !info.token_initialized() => {}
                Ok(info) if phantom && info.serial_number().trim().is_empty() => {
                    tracing::debug!(slot = slot.id(), "phantom slot without a serial left out");
                }
                Err(CkError::Pkcs11(rv, _)) if phantom => {
                    tracing::debug!(slot = slot.id(), rv = %rv, "phantom slot left out");
                }
                Ok(info) => out.push(TokenRef {
                    slot,
                    serial: info.serial_number().trim().to_owned(),
                    label: info.label().trim().to_owned(),
                }),
                // Pulled out between the two calls: it is simply not there.
                Err(CkError::Pkcs11(rv, _)) if crate::error::is_removal(&rv) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// The token info of a key, checking it is still the same key.
    pub(crate) fn token_info(&self, token: &TokenRef) -> Result<TokenInfo> {
        let info = self.ctx.get_token_info(token.slot)?;
        if info.serial_number().trim() != token.serial {
            return Err(TokenError::KeyRemoved {
                function: "C_GetTokenInfo".into(),
                rv: "another key is in the slot".into(),
            });
        }
        Ok(info)
    }

    /// The PIN status of a key, with exact tries where the module tells them.
    pub fn pin_status(&self, token: &TokenRef) -> Result<PinStatus> {
        let info = self.token_info(token)?;
        Ok(PinStatus::from_info(&info, self.ext.pin_tries(token.slot)))
    }

    pub(crate) fn pin_status_from(&self, token: &TokenRef, info: &TokenInfo) -> PinStatus {
        PinStatus::from_info(info, self.ext.pin_tries(token.slot))
    }

    /// Everything the client shows about a key.
    pub fn describe(&self, token: &TokenRef) -> Result<TokenDescription> {
        let info = self.token_info(token)?;
        let label = info.label().trim().to_owned();
        let manufacturer = info.manufacturer_id().trim().to_owned();
        let model = info.model().trim().to_owned();
        let uri = Pkcs11Uri::for_token(&label, &manufacturer, &model, &token.serial).to_string();
        Ok(TokenDescription {
            uri,
            module: self.info.path.display().to_string(),
            slot_id: token.slot.id(),
            pin: self.pin_status_from(token, &info),
            min_pin_len: info.min_pin_length(),
            max_pin_len: info.max_pin_length(),
            free_public_memory: info.free_public_memory(),
            free_private_memory: info.free_private_memory(),
            flags: flag_names(&info),
            label,
            manufacturer,
            model,
            serial: token.serial.clone(),
        })
    }

    /// Finds one key: by serial number, by PKCS#11 URI, or the only one present when
    /// `selector` is `None`.
    pub fn find(&self, selector: Option<&str>) -> Result<TokenRef> {
        let tokens = self.tokens()?;
        let matching: Vec<TokenRef> = match selector {
            None => tokens,
            Some(sel) if sel.starts_with("pkcs11:") => {
                let uri = Pkcs11Uri::parse(sel)?;
                let mut out = Vec::new();
                for t in tokens {
                    if uri.slot_id.is_some_and(|s| s != t.slot.id()) {
                        continue;
                    }
                    let info = self.ctx.get_token_info(t.slot)?;
                    if uri.matches_token(
                        info.label().trim(),
                        info.manufacturer_id().trim(),
                        info.model().trim(),
                        info.serial_number().trim(),
                    ) {
                        out.push(t);
                    }
                }
                out
            }
            Some(serial) => tokens.into_iter().filter(|t| t.serial == serial).collect(),
        };
        match matching.len() {
            1 => matching
                .into_iter()
                .next()
                .ok_or_else(|| TokenError::NoSuchToken(String::new())),
            0 => Err(TokenError::NoSuchToken(selector.map_or_else(
                || "(no key is plugged in)".to_owned(),
                str::to_owned,
            ))),
            n => Err(TokenError::AmbiguousToken(n)),
        }
    }

    /// Opens a read-write session on a key.
    ///
    /// The identity check's token info is handed to the session: the login guard of a login
    /// made moments later on it reads its flags from that answer instead of asking the key
    /// again (see [`TokenSession::login`]).
    pub fn session(self: &Arc<Self>, token: &TokenRef) -> Result<TokenSession> {
        // The count first, then the answer: a PIN presented in between moves the count, so
        // an answer older than a presentation is never taken for a newer one.
        let epoch = self.pin_epoch(&token.serial);
        let info = self.token_info(token)?;
        let session = self.ctx.open_rw_session(token.slot)?;
        Ok(TokenSession::new(
            Arc::clone(self),
            token.clone(),
            session,
            Some((std::time::Instant::now(), epoch, info)),
        ))
    }

    /// The count of PIN events of key `serial` in this process.
    pub(crate) fn pin_epoch(&self, serial: &str) -> u64 {
        lock_mutex(&self.pin_epochs)
            .get(serial)
            .copied()
            .unwrap_or(0)
    }

    /// Moves the count: a PIN is about to be, or has just been, presented to `serial`.
    pub(crate) fn bump_pin_epoch(&self, serial: &str) {
        let mut epochs = lock_mutex(&self.pin_epochs);
        let e = epochs.entry(serial.to_owned()).or_insert(0);
        *e = e.wrapping_add(1);
    }

    /// Waits for a slot event where the module can (blocking); `None` when it cannot.
    pub fn wait_for_slot_event(&self) -> Result<Option<Slot>> {
        match self.ctx.wait_for_slot_event() {
            Ok(slot) => Ok(Some(slot)),
            Err(CkError::Pkcs11(RvError::FunctionNotSupported, _)) | Err(CkError::NotSupported) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records that this process has just set the user PIN of key `serial` (C_InitPIN):
    /// a lock flag read before the next user login may lag it (kryoptic's does).
    pub(crate) fn mark_pin_reset(&self, serial: &str, reset: bool) {
        self.bump_pin_epoch(serial);
        let mut set = lock_mutex(&self.pin_reset);
        if reset {
            set.insert(serial.to_owned());
        } else {
            set.remove(serial);
        }
    }

    /// Has this process set the user PIN of `serial` since its last user login?
    pub(crate) fn pin_was_reset(&self, serial: &str) -> bool {
        lock_mutex(&self.pin_reset).contains(serial)
    }

    /// The per-key lock that serialises logins to one key.
    pub(crate) fn login_lock(&self, serial: &str) -> Arc<Mutex<()>> {
        Arc::clone(
            lock_mutex(&self.login_locks)
                .entry(serial.to_owned())
                .or_default(),
        )
    }
}
