//! PC/SC as the environment check sees it: the readers pcscd offers and the ATR of the card
//! (or CCID key) in each.
//!
//! The PC/SC library is opened at run time (`libpcsclite.so.1`), not linked: the check must
//! still run, and say what is missing, on a computer without it. Only reading calls are
//! made — establish a context, list the readers, ask their state without waiting — so no
//! card is connected to, reset or locked.
//!
//! `PCSCLITE_CSOCK_NAME` points the library at another pcscd socket, as pcsc-lite itself
//! reads it.

#![allow(unsafe_code)] // calling the PC/SC C library

use std::ffi::{CStr, c_char, c_long, c_ulong, c_void};

use libloading::{Library, Symbol};
use serde::Serialize;

/// The PC/SC library file names tried, in order.
const LIBRARIES: [&str; 2] = ["libpcsclite.so.1", "libpcsclite.so"];

// pcsc-lite's types on Linux: DWORD is `unsigned long`, LONG and SCARDCONTEXT are `long`.
type Dword = c_ulong;
type Long = c_long;
type Context = c_long;

const SCARD_SCOPE_SYSTEM: Dword = 2;
const SCARD_S_SUCCESS: Long = 0;
const SCARD_E_NO_SERVICE: u32 = 0x8010_001D;
const SCARD_E_NO_READERS_AVAILABLE: u32 = 0x8010_002E;
const SCARD_STATE_UNAWARE: Dword = 0;
const SCARD_STATE_EMPTY: Dword = 0x0010;
const SCARD_STATE_PRESENT: Dword = 0x0020;
const SCARD_STATE_INUSE: Dword = 0x0100;
const SCARD_STATE_MUTE: Dword = 0x0200;
const MAX_ATR_SIZE: usize = 33;

#[repr(C)]
struct ReaderState {
    reader: *const c_char,
    user_data: *mut c_void,
    current_state: Dword,
    event_state: Dword,
    atr_len: Dword,
    atr: [u8; MAX_ATR_SIZE],
}

type EstablishFn = unsafe extern "C" fn(Dword, *const c_void, *const c_void, *mut Context) -> Long;
type ListReadersFn = unsafe extern "C" fn(Context, *const c_char, *mut c_char, *mut Dword) -> Long;
type StatusChangeFn = unsafe extern "C" fn(Context, Dword, *mut ReaderState, Dword) -> Long;
type ReleaseFn = unsafe extern "C" fn(Context) -> Long;

/// One reader and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcscReader {
    /// The reader's name as pcscd gives it (`Feitian ePass2003 00 00`).
    pub name: String,
    /// A card (or the key's chip) is present.
    pub card_present: bool,
    /// The card's answer to reset, upper-case hex without spaces; none without a card or
    /// when the card does not answer.
    pub atr: Option<String>,
    /// Another program holds the card.
    pub in_use: bool,
}

/// What PC/SC showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PcscSurvey {
    /// No PC/SC library on this computer.
    LibraryMissing,
    /// The library is there, but no pcscd answers.
    NoService,
    /// pcscd answered with these readers (possibly none).
    Readers {
        /// Every reader.
        readers: Vec<PcscReader>,
    },
    /// pcscd answered with an error.
    Failed {
        /// The PC/SC function.
        function: String,
        /// Its return code.
        code: u32,
    },
}

/// Asks pcscd for its readers and their cards, without connecting to any.
pub fn survey() -> PcscSurvey {
    // SAFETY: libpcsclite's initialisers only set up its own state; it is the system's
    // PC/SC client library, loaded the way every PC/SC program loads it.
    let Some(lib) = LIBRARIES
        .iter()
        .find_map(|name| unsafe { Library::new(name) }.ok())
    else {
        return PcscSurvey::LibraryMissing;
    };
    match survey_with(&lib) {
        Ok(readers) => PcscSurvey::Readers { readers },
        Err((_, code)) if code == SCARD_E_NO_SERVICE => PcscSurvey::NoService,
        Err((function, code)) => PcscSurvey::Failed {
            function: function.to_owned(),
            code,
        },
    }
}

/// pcsc-lite's return codes are `long`; the documented values are 32-bit.
fn rv(code: Long) -> u32 {
    // Truncation is the intent: SCARD_E_* are 32-bit values held in a 64-bit long.
    code as u32
}

fn survey_with(lib: &Library) -> Result<Vec<PcscReader>, (&'static str, u32)> {
    // SAFETY: the signatures are pcsc-lite's (winscard.h), with its Linux type sizes.
    let (establish, list, status, release): (
        Symbol<EstablishFn>,
        Symbol<ListReadersFn>,
        Symbol<StatusChangeFn>,
        Symbol<ReleaseFn>,
    ) = unsafe {
        (
            lib.get(b"SCardEstablishContext\0")
                .map_err(|_| ("SCardEstablishContext", 0))?,
            lib.get(b"SCardListReaders\0")
                .map_err(|_| ("SCardListReaders", 0))?,
            lib.get(b"SCardGetStatusChange\0")
                .map_err(|_| ("SCardGetStatusChange", 0))?,
            lib.get(b"SCardReleaseContext\0")
                .map_err(|_| ("SCardReleaseContext", 0))?,
        )
    };
    let mut context: Context = 0;
    // SAFETY: reserved pointers are null as documented; `context` is written on success.
    let code = unsafe {
        establish(
            SCARD_SCOPE_SYSTEM,
            std::ptr::null(),
            std::ptr::null(),
            &mut context,
        )
    };
    if code != SCARD_S_SUCCESS {
        return Err(("SCardEstablishContext", rv(code)));
    }
    let result = readers_of(context, &list, &status);
    // SAFETY: the context was established above and is released once.
    unsafe { release(context) };
    result
}

fn readers_of(
    context: Context,
    list: &ListReadersFn,
    status: &StatusChangeFn,
) -> Result<Vec<PcscReader>, (&'static str, u32)> {
    // The reader list's size, then the list: a multi-string ending in an empty string.
    let mut len: Dword = 0;
    // SAFETY: a null buffer asks for the length only.
    let code = unsafe { list(context, std::ptr::null(), std::ptr::null_mut(), &mut len) };
    if rv(code) == SCARD_E_NO_READERS_AVAILABLE {
        return Ok(Vec::new());
    }
    if code != SCARD_S_SUCCESS {
        return Err(("SCardListReaders", rv(code)));
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0).max(1)];
    // SAFETY: `buf` holds `len` bytes, as the library asked.
    let code = unsafe {
        list(
            context,
            std::ptr::null(),
            buf.as_mut_ptr().cast::<c_char>(),
            &mut len,
        )
    };
    if rv(code) == SCARD_E_NO_READERS_AVAILABLE {
        return Ok(Vec::new());
    }
    if code != SCARD_S_SUCCESS {
        return Err(("SCardListReaders", rv(code)));
    }
    let names: Vec<&CStr> = buf
        .split_inclusive(|b| *b == 0)
        .filter_map(|s| CStr::from_bytes_with_nul(s).ok())
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut states: Vec<ReaderState> = names
        .iter()
        .map(|n| ReaderState {
            reader: n.as_ptr(),
            user_data: std::ptr::null_mut(),
            current_state: SCARD_STATE_UNAWARE,
            event_state: 0,
            atr_len: 0,
            atr: [0; MAX_ATR_SIZE],
        })
        .collect();
    let count = Dword::try_from(states.len()).unwrap_or(0);
    // SAFETY: `states` holds `count` entries whose reader names live in `buf` for the
    // call; a timeout of 0 returns the current state at once.
    let code = unsafe { status(context, 0, states.as_mut_ptr(), count) };
    if code != SCARD_S_SUCCESS {
        return Err(("SCardGetStatusChange", rv(code)));
    }
    Ok(names
        .iter()
        .zip(&states)
        .map(|(name, s)| {
            let present =
                s.event_state & SCARD_STATE_PRESENT != 0 && s.event_state & SCARD_STATE_EMPTY == 0;
            let atr_len = usize::try_from(s.atr_len).unwrap_or(0).min(MAX_ATR_SIZE);
            let mute = s.event_state & SCARD_STATE_MUTE != 0;
            PcscReader {
                name: name.to_string_lossy().into_owned(),
                card_present: present,
                atr: (present && !mute && atr_len > 0)
                    .then(|| hex::encode_upper(&s.atr[..atr_len])),
                in_use: s.event_state & SCARD_STATE_INUSE != 0,
            }
        })
        .collect())
}
