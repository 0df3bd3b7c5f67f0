//! HTTP handlers, one module per area.

pub mod activation;
pub mod admin;
pub mod attachments;
pub mod forms;
pub mod meta;
pub mod orders;
pub mod payment;
pub mod renewal;
pub mod review;
pub mod seal;
pub mod unlock;
