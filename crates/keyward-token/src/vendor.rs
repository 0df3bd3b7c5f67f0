//! Vendor extensions some modules export beside the PKCS#11 function list.
//!
//! The only one Keyward reads is the exact count of PIN tries left:
//! `CK_RV keyward_sim_pin_tries(CK_SLOT_ID, CK_ULONG *user_left, CK_ULONG *so_left)`, which
//! keyward-sim exports. A module without it is normal: the client then shows what the
//! token's flags say (count low, final try, locked).

#![allow(unsafe_code)] // looking up and calling a C symbol

use std::os::raw::c_ulong;
use std::path::Path;

use cryptoki::slot::Slot;
use libloading::{Library, Symbol};

type PinTriesFn = unsafe extern "C" fn(c_ulong, *mut c_ulong, *mut c_ulong) -> c_ulong;

/// Symbol name of the tries-left extension.
pub const PIN_TRIES_SYMBOL: &[u8] = b"keyward_sim_pin_tries";

/// A module's optional extensions.
#[derive(Debug)]
pub(crate) struct Extensions {
    lib: Option<Library>,
}

impl Extensions {
    /// Opens the same file again (the loader hands back the already-loaded image, so the
    /// extension sees the same state as the function list) and keeps it only if it has an
    /// extension Keyward knows.
    pub(crate) fn probe(path: &Path) -> Self {
        // SAFETY: the module is already loaded and initialised by cryptoki from this very
        // path; loading it again only bumps the loader's reference count and runs no
        // initialiser a second time.
        let lib = unsafe { Library::new(path) }.ok().filter(|lib| {
            // SAFETY: only the presence of the symbol is checked here.
            unsafe { lib.get::<PinTriesFn>(PIN_TRIES_SYMBOL) }.is_ok()
        });
        Extensions { lib }
    }

    /// Exact (user, SO) tries left, if the module can tell.
    pub(crate) fn pin_tries(&self, slot: Slot) -> Option<(u32, u32)> {
        let lib = self.lib.as_ref()?;
        // SAFETY: the symbol was found at probe time and has the documented signature.
        let f: Symbol<PinTriesFn> = unsafe { lib.get(PIN_TRIES_SYMBOL) }.ok()?;
        let (mut user, mut so): (c_ulong, c_ulong) = (0, 0);
        // SAFETY: both out-pointers are valid for writes for the duration of the call.
        let rv = unsafe { f(slot.id() as c_ulong, &mut user, &mut so) };
        (rv == 0).then(|| {
            (
                u32::try_from(user).unwrap_or(u32::MAX),
                u32::try_from(so).unwrap_or(u32::MAX),
            )
        })
    }
}
