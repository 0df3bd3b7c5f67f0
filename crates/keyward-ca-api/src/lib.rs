//! Wire types of the Keyward CA online service, shared by the server (`keyward-ca`) and
//! its clients.
//!
//! - [`error`]: the `{code, message}` error model and its stable codes;
//! - [`auth`]: the one definition of what a key signs to authorise a request;
//! - [`types`]: request and answer bodies;
//! - [`ids`]: validation of unified social credit codes, ID numbers and phones;
//! - [`endpoints`]: the endpoint table the OpenAPI document is built from.

pub mod auth;
pub mod endpoints;
pub mod error;
pub mod ids;
pub mod types;

pub use auth::{body_sha256, request_purpose, signing_input};
pub use error::{ApiError, ErrorCode};
pub use types::*;
