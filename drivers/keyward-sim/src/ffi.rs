//! The PKCS#11 entry points. Only `C_GetFunctionList` and
//! `keyward_sim_pin_tries` are exported by name; every other function is
//! reached through the function list, so the simulator's symbols never
//! shadow those of the module it loads.
//!
//! Every entry point runs inside [`guard`]: a panic becomes
//! `CKR_GENERAL_ERROR` and never unwinds into the caller.

#![allow(non_snake_case)]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cryptoki_sys::*;

use crate::runtime::{self, Ck, current, with_session};

fn guard(f: impl FnOnce() -> Ck<CK_RV>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(rv)) | Ok(Err(rv)) => rv,
        Err(_) => {
            let _ = catch_unwind(|| {
                tracing::error!("internal panic in the simulator; answering CKR_GENERAL_ERROR");
            });
            CKR_GENERAL_ERROR
        }
    }
}

/// The function list handed to applications (PKCS#11 2.40).
pub(crate) static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};

/// Names of the functions faults can be armed on.
pub(crate) const FUNCTION_NAMES: &[&str] = &[
    "C_Initialize",
    "C_GetInfo",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
];

/// Returns the simulator's PKCS#11 2.40 function list.
///
/// # Safety
/// `list` must be null or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| {
        if list.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: checked non-null; the list is a static that is never
        // written through this pointer (PKCS#11 callers treat it as read-only).
        unsafe { *list = &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST };
        Ok(CKR_OK)
    })
}

/// Keyward extension: the exact remaining tries of the user PIN and the SO
/// PIN of the token in `slot`.
///
/// Answers `CKR_OK` and fills both counts; `CKR_ARGUMENTS_BAD` for a null
/// pointer; `CKR_CRYPTOKI_NOT_INITIALIZED` before `C_Initialize`;
/// `CKR_TOKEN_NOT_PRESENT` while the token is pulled out; the module
/// underneath's answer for an unknown slot. An uninitialised token reports
/// the configured maxima.
///
/// # Safety
/// `user_left` and `so_left` must be null or valid for writing a `CK_ULONG`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn keyward_sim_pin_tries(
    slot: CK_SLOT_ID,
    user_left: *mut CK_ULONG,
    so_left: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        if user_left.is_null() || so_left.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let rt = current()?;
        let _g = rt.enter()?;
        let (user, so) = rt.pin_tries(slot)?;
        // SAFETY: both pointers checked non-null; the caller owns them.
        unsafe {
            *user_left = CK_ULONG::from(user);
            *so_left = CK_ULONG::from(so);
        }
        Ok(CKR_OK)
    })
}

unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard(|| runtime::initialize(args))
}

unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| runtime::finalize(reserved))
}

unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.get_info(info)
    })
}

unsafe extern "C" fn C_GetSlotList(
    present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        if count.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let rt = current()?;
        if let Err(rv) = rt.maybe_reinit() {
            tracing::warn!(rv, "looking for new tokens failed");
        }
        let _g = rt.enter()?;
        let slots = rt.get_slot_list(present != CK_FALSE)?;
        let n = slots.len() as CK_ULONG;
        // SAFETY: `count` checked non-null; `list`, when not null, has room
        // for `*count` entries (PKCS#11 contract), checked before writing.
        unsafe {
            if list.is_null() {
                *count = n;
                return Ok(CKR_OK);
            }
            if *count < n {
                *count = n;
                return Ok(CKR_BUFFER_TOO_SMALL);
            }
            std::ptr::copy_nonoverlapping(slots.as_ptr(), list, slots.len());
            *count = n;
        }
        Ok(CKR_OK)
    })
}

unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.get_slot_info(slot, info)
    })
}

unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.get_token_info(slot, info)
    })
}

unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.slot_checked("C_GetMechanismList", slot)?;
        let f = rt
            .funcs
            .C_GetMechanismList
            .ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        // SAFETY: the caller's arguments go unchanged to the module underneath.
        Ok(unsafe { f(slot, list, count) })
    })
}

unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    mech: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.slot_checked("C_GetMechanismInfo", slot)?;
        let f = rt
            .funcs
            .C_GetMechanismInfo
            .ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
        // SAFETY: the caller's arguments go unchanged to the module underneath.
        Ok(unsafe { f(slot, mech, info) })
    })
}

unsafe extern "C" fn C_InitToken(
    slot: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.init_token(slot, pin, len, label)
    })
}

unsafe extern "C" fn C_InitPIN(
    h: CK_SESSION_HANDLE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.init_pin(h, pin, len)
    })
}

unsafe extern "C" fn C_SetPIN(
    h: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.set_pin(h, old, old_len, new, new_len)
    })
}

unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    app: *mut c_void,
    notify: CK_NOTIFY,
    out: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.open_session(slot, flags, app, notify, out)
    })
}

unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.close_session(h)
    })
}

unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.close_all_sessions(slot)
    })
}

unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let rt = current()?;
        let _g = rt.enter()?;
        rt.login(h, user, pin, len)
    })
}

unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut c_void,
) -> CK_RV {
    guard(|| {
        if slot.is_null() || !reserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let rt = current()?;
        let s = rt.wait_for_slot_event(flags)?;
        // SAFETY: checked non-null; the caller owns it.
        unsafe { *slot = s };
        Ok(CKR_OK)
    })
}

/// Session functions the simulator forwards unchanged once the session is
/// known to be alive (and no fault fires): only the handle is translated.
macro_rules! forward_session {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        unsafe extern "C" fn $name(session: CK_SESSION_HANDLE, $($arg: $ty),*) -> CK_RV {
            guard(|| with_session(stringify!($name), session, |rt, real| {
                let f = rt.funcs.$name.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
                // SAFETY: the caller's arguments go unchanged to the module
                // underneath, whose contract for them is the same as ours.
                Ok(unsafe { f(real, $($arg),*) })
            }))
        }
    )*};
}

forward_session! {
    C_GetSessionInfo(info: *mut CK_SESSION_INFO);
    C_GetOperationState(state: *mut CK_BYTE, len: *mut CK_ULONG);
    C_SetOperationState(state: *mut CK_BYTE, len: CK_ULONG, enc: CK_OBJECT_HANDLE, auth: CK_OBJECT_HANDLE);
    C_Logout();
    C_CreateObject(tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG, obj: *mut CK_OBJECT_HANDLE);
    C_CopyObject(obj: CK_OBJECT_HANDLE, tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG, new: *mut CK_OBJECT_HANDLE);
    C_DestroyObject(obj: CK_OBJECT_HANDLE);
    C_GetObjectSize(obj: CK_OBJECT_HANDLE, size: *mut CK_ULONG);
    C_GetAttributeValue(obj: CK_OBJECT_HANDLE, tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG);
    C_SetAttributeValue(obj: CK_OBJECT_HANDLE, tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG);
    C_FindObjectsInit(tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG);
    C_FindObjects(objs: *mut CK_OBJECT_HANDLE, max: CK_ULONG, count: *mut CK_ULONG);
    C_FindObjectsFinal();
    C_EncryptInit(mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_DecryptInit(mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_DigestInit(mech: *mut CK_MECHANISM);
    C_SignInit(mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_SignRecoverInit(mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_VerifyInit(mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_VerifyRecoverInit(mech: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE);
    C_DigestEncryptUpdate(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_DecryptDigestUpdate(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_SignEncryptUpdate(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_DecryptVerifyUpdate(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_GenerateKey(mech: *mut CK_MECHANISM, tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG, key: *mut CK_OBJECT_HANDLE);
    C_GenerateKeyPair(
        mech: *mut CK_MECHANISM,
        pub_tmpl: *mut CK_ATTRIBUTE,
        pub_n: CK_ULONG,
        priv_tmpl: *mut CK_ATTRIBUTE,
        priv_n: CK_ULONG,
        pub_key: *mut CK_OBJECT_HANDLE,
        priv_key: *mut CK_OBJECT_HANDLE
    );
    C_WrapKey(mech: *mut CK_MECHANISM, wrapping: CK_OBJECT_HANDLE, key: CK_OBJECT_HANDLE, out: *mut CK_BYTE, out_len: *mut CK_ULONG);
    C_UnwrapKey(
        mech: *mut CK_MECHANISM,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: *mut CK_BYTE,
        wrapped_len: CK_ULONG,
        tmpl: *mut CK_ATTRIBUTE,
        n: CK_ULONG,
        key: *mut CK_OBJECT_HANDLE
    );
    C_DeriveKey(mech: *mut CK_MECHANISM, base: CK_OBJECT_HANDLE, tmpl: *mut CK_ATTRIBUTE, n: CK_ULONG, key: *mut CK_OBJECT_HANDLE);
    C_SeedRandom(seed: *mut CK_BYTE, len: CK_ULONG);
    C_GenerateRandom(out: *mut CK_BYTE, len: CK_ULONG);
    C_GetFunctionStatus();
    C_CancelFunction();
}

/// After an injected error, ends the operation underneath the way a real
/// token ends an operation that fails, so the session is not left with an
/// operation active. `call` is the function with its output buffer and
/// length left open; it is asked for the length, then run into scratch space.
fn drain_output(call: impl Fn(*mut CK_BYTE, *mut CK_ULONG) -> CK_RV) {
    let mut len: CK_ULONG = 0;
    let rv = call(std::ptr::null_mut(), &mut len);
    if rv != CKR_OK {
        tracing::debug!(rv, "ending the failed operation: length query refused");
        return;
    }
    let mut scratch = vec![0u8; (len as usize).max(1)];
    let mut len = scratch.len() as CK_ULONG;
    let rv = call(scratch.as_mut_ptr(), &mut len);
    tracing::debug!(rv, "failed operation ended underneath");
}

/// Cryptographic operation functions. When a fault injects a return code,
/// the call still reaches the module underneath with the caller's input but
/// into scratch output, and the operation is ended there (`$drain`), because
/// a real token ends an operation that fails; the caller's output buffers
/// are left untouched and the injected code is returned.
macro_rules! forward_op {
    ($($name:ident($($arg:ident: $ty:ty),*) => |$f:ident, $real:ident| $drain:block)*) => {$(
        unsafe extern "C" fn $name(session: CK_SESSION_HANDLE, $($arg: $ty),*) -> CK_RV {
            guard(|| {
                let rt = current()?;
                let _g = rt.enter()?;
                let (s, injected) = rt.session_for_op(stringify!($name), session)?;
                let $real = s.real;
                let $f = &rt.funcs;
                if let Some(rv) = injected {
                    // SAFETY: the caller's input goes to the module underneath
                    // unchanged; outputs go to scratch buffers owned here.
                    unsafe { $drain };
                    return Ok(rv);
                }
                let call = rt.funcs.$name.ok_or(CKR_FUNCTION_NOT_SUPPORTED)?;
                // SAFETY: the caller's arguments go unchanged to the module
                // underneath, whose contract for them is the same as ours.
                Ok(unsafe { call($real, $($arg),*) })
            })
        }
    )*};
}

/// Runs `$call` if the module underneath has the function.
macro_rules! with_fn {
    ($f:ident . $name:ident, |$g:ident| $call:expr) => {
        if let Some($g) = $f.$name {
            $call;
        }
    };
}

forward_op! {
    C_Encrypt(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_Encrypt, |g| drain_output(|o, l| g(real, data, len, o, l)))
    }
    C_EncryptUpdate(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_EncryptUpdate, |g| drain_output(|o, l| g(real, data, len, o, l)));
        with_fn!(f.C_EncryptFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_EncryptFinal(out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_EncryptFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_Decrypt(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_Decrypt, |g| drain_output(|o, l| g(real, data, len, o, l)))
    }
    C_DecryptUpdate(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_DecryptUpdate, |g| drain_output(|o, l| g(real, data, len, o, l)));
        with_fn!(f.C_DecryptFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_DecryptFinal(out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_DecryptFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_Digest(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_Digest, |g| drain_output(|o, l| g(real, data, len, o, l)))
    }
    C_DigestUpdate(data: *mut CK_BYTE, len: CK_ULONG) => |f, real| {
        with_fn!(f.C_DigestUpdate, |g| g(real, data, len));
        with_fn!(f.C_DigestFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_DigestKey(key: CK_OBJECT_HANDLE) => |f, real| {
        with_fn!(f.C_DigestKey, |g| g(real, key));
        with_fn!(f.C_DigestFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_DigestFinal(out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_DigestFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_Sign(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_Sign, |g| drain_output(|o, l| g(real, data, len, o, l)))
    }
    C_SignUpdate(data: *mut CK_BYTE, len: CK_ULONG) => |f, real| {
        with_fn!(f.C_SignUpdate, |g| g(real, data, len));
        with_fn!(f.C_SignFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_SignFinal(out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_SignFinal, |g| drain_output(|o, l| g(real, o, l)))
    }
    C_SignRecover(data: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_SignRecover, |g| drain_output(|o, l| g(real, data, len, o, l)))
    }
    C_Verify(data: *mut CK_BYTE, len: CK_ULONG, sig: *mut CK_BYTE, sig_len: CK_ULONG) => |f, real| {
        with_fn!(f.C_Verify, |g| g(real, data, len, sig, sig_len))
    }
    C_VerifyUpdate(data: *mut CK_BYTE, len: CK_ULONG) => |f, real| {
        with_fn!(f.C_VerifyUpdate, |g| g(real, data, len));
        let mut dummy = [0u8; 1];
        with_fn!(f.C_VerifyFinal, |g| g(real, dummy.as_mut_ptr(), 1))
    }
    C_VerifyFinal(sig: *mut CK_BYTE, sig_len: CK_ULONG) => |f, real| {
        with_fn!(f.C_VerifyFinal, |g| g(real, sig, sig_len))
    }
    C_VerifyRecover(sig: *mut CK_BYTE, len: CK_ULONG, out: *mut CK_BYTE, out_len: *mut CK_ULONG) => |f, real| {
        with_fn!(f.C_VerifyRecover, |g| drain_output(|o, l| g(real, sig, len, o, l)))
    }
}
