//! Keyward's PKCS#11 layer: everything Keyward does to a USB key goes through here.
//!
//! - [`discovery`]: which module reaches the key — driver profiles, p11-kit, or a path;
//!   the architecture a module file was built for.
//! - [`profile`]: driver profiles — USB IDs, module files, `CK_INFO` match, PIN limits,
//!   quirks, udev rule, SM2 mechanism codes.
//! - [`module`]: a loaded module, the keys it sees, their info and PIN status.
//! - [`session`]: the login guard, PIN changes, certificates, data objects, on-key key
//!   generation and signing.
//! - [`pcsc`]: the readers pcscd offers and the ATR in each, for the environment check.
//! - [`uri`]: PKCS#11 URIs (RFC 7512).
//! - [`watch`]: keys inserted, removed and changed, by slot events or polling.
//! - [`error`]: the one error type, keeping the PKCS#11 function and return code.
//!
//! This crate knows nothing of HTTP, JSON documents, the CA or the desktop shell.

pub mod discovery;
mod elf;
pub mod error;
pub mod info;
pub mod module;
pub mod pcsc;
pub mod profile;
pub mod session;
pub mod uri;
mod vendor;
pub mod watch;

pub use error::{PinRole, Result, TokenError};
pub use info::{PinState, PinStatus, TokenDescription};
pub use module::{Module, ModuleInfo, TokenRef};
pub use profile::{DriverProfile, Quirk, UsbId};
pub use session::{CertObject, FinalTry, KeyObject, KeySpec, TokenSession, TokenSigner};
pub use uri::Pkcs11Uri;
pub use vendor::PIN_TRIES_SYMBOL;
pub use watch::{TokenEvent, WatchMode, WatchOptions, Watcher};
