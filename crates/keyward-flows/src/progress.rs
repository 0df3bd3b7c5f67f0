//! 办理进度查询: every business of a key with its status and timeline.

use keyward_ca_api::Business;

use crate::journal::FlowKind;
use crate::{Env, FlowError};

/// A key's businesses at the CA, newest first, and the workflows waiting on this computer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyProgress {
    /// Every business the CA has for the key.
    pub businesses: Vec<Business>,
    /// Workflows journaled here that can be resumed.
    pub resumable: Vec<FlowKind>,
}

/// The progress of the key with serial `serial`.
pub fn progress(env: &Env, serial: &str) -> Result<KeyProgress, FlowError> {
    let mut businesses = env.ca.businesses(serial)?.businesses;
    businesses.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    Ok(KeyProgress {
        businesses,
        resumable: env.journal.pending(serial),
    })
}
