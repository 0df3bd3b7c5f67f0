//! HTTP handlers, one module per area.

pub mod activation;
pub mod admin;
pub mod meta;
pub mod payment;
pub mod renewal;
