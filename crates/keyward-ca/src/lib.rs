//! The Keyward reference CA online service: registry of organisations, handlers, keys and
//! certificates; activation with SMS codes; key-signature authentication; renewal with a
//! sandbox payment provider; progress and audit.
//!
//! Start it in-process with [`Server::start`] (tests of other crates listen on
//! `127.0.0.1:0`), or build just the router with [`App::build`] for `oneshot` tests.
//! The wire types live in `keyward-ca-api`.

pub mod app;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod escrow;
pub mod http;
pub mod instances;
pub mod limits;
pub mod offline;
pub mod openapi;
pub mod pki;
pub mod routes;
pub mod server;
pub mod staff;
pub mod store;
pub mod tls;

pub use config::{Clock, Config, RateLimit};
pub use error::{CaError, CaResult};
pub use server::{App, Server, ServerHandle};
