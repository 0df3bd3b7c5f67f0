//! The browser bridge: how a web page — a procurement portal — uses the key, with the
//! operator's consent and confirmation in Keyward's own window.
//!
//! - [`origin`]: the caller's origin from the browser's handshake, and the `Host` check.
//! - [`protocol`]: JSON-RPC 2.0 requests, their arguments checked, and the error codes.
//! - [`consent`]: which origins are granted, kept per user.
//! - [`agent`]: what the bridge asks the person at the computer, through its host.
//! - [`audit`]: a line per request: who, what, which key, how it ended.
//! - [`server`]: the loopback WebSocket and the operations over keyward-flows.

pub mod agent;
pub mod audit;
pub mod consent;
pub mod origin;
pub mod protocol;
pub mod server;

pub use agent::{Action, Agent, Answer, Confirmation, Consent, KeyShown, Outcome};
pub use origin::{Origin, parse_origin};
pub use server::{Config, DEFAULT_PORT, Running, probe, start, start_with_grants};

/// What starting or running the bridge can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The bridge listens on loopback only.
    #[error("the bridge listens on loopback only, not {0}")]
    NotLoopback(std::net::SocketAddr),
    /// The port is taken (another Keyward, or another program).
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// Where.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// The grants file cannot be read or written.
    #[error("origin grants: {0}")]
    Grants(String),
}
