//! kryoptic, a PKCS#11 software token written by others, exported as a module of its own so
//! that Keyward's token tests can run against an implementation that is not Keyward's and
//! that locks a user PIN after ten failures by itself.
//!
//! Only `C_GetFunctionList` is exported: it is what cryptoki and OpenSC look up.

#![allow(unsafe_code)] // the C ABI export below is the whole point of this crate

use kryoptic_lib::fns::general::fn_get_function_list;
use kryoptic_lib::pkcs11::{CK_FUNCTION_LIST_PTR_PTR, CK_RV};

/// The PKCS#11 entry point; forwards to kryoptic's function table.
#[unsafe(no_mangle)]
pub extern "C" fn C_GetFunctionList(list: CK_FUNCTION_LIST_PTR_PTR) -> CK_RV {
    fn_get_function_list(list)
}
