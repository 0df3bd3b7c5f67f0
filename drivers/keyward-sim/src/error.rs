//! The crate's one error type for everything on the Rust side (configuration,
//! persisted state, the control API, loading the underlying module).

use std::path::PathBuf;

/// What went wrong on the Rust side of the simulator.
///
/// The PKCS#11 entry points never return this type: they map it to a
/// `CK_RV` (usually `CKR_GENERAL_ERROR`) after logging it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `KEYWARD_SIM_CONF` is not set, so the module does not know what to load.
    #[error(
        "the environment variable KEYWARD_SIM_CONF is not set; it must name the simulator's TOML configuration"
    )]
    ConfigUnset,
    /// The configuration file could not be read.
    #[error("cannot read the simulator configuration {path}: {source}")]
    ConfigRead {
        /// The file that was read.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML of the expected shape.
    #[error("the simulator configuration {path} is invalid: {message}")]
    ConfigInvalid {
        /// The file that was parsed.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A file or directory under the state directory could not be used.
    #[error("state directory {path}: {source}")]
    StateIo {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The persisted state file exists but cannot be parsed.
    #[error("state file {path} is corrupt: {message}")]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// The underlying PKCS#11 module could not be loaded or has no function list.
    #[error("cannot load the underlying PKCS#11 module {path}: {message}")]
    ModuleLoad {
        /// The module path from the configuration.
        path: PathBuf,
        /// What the loader said.
        message: String,
    },
    /// The control API was asked about a token the simulator has never seen.
    #[error("no token with serial or label {0:?} is known in this state directory")]
    UnknownToken(String),
    /// A fault description is unusable (for example `at_call` is zero).
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    /// The log file named in the configuration could not be opened.
    #[error("cannot open the log file {path}: {source}")]
    LogFile {
        /// The log file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}
