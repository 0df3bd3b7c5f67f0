//! 办理进度查询: every business of a key with its status and timeline. The CA shows a key's
//! businesses to the key alone, so the list is read with a signature by the key: the PIN
//! goes through the login guard first.

use keyward_ca_api::Business;
use keyward_pki::Pin;
use keyward_token::{FinalTry, TokenRef};

use crate::identity::{KeySigner, identity};
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

/// The progress of the key `token`, asked for with a signature by the key.
pub fn progress(
    env: &Env,
    token: &TokenRef,
    pin: &Pin,
    confirm: FinalTry,
) -> Result<KeyProgress, FlowError> {
    let session = env.module.session(token)?;
    let id = identity(&session, env.now())?;
    session.login(pin, confirm)?;
    let list = env.ca.businesses(&KeySigner::new(&session, &id.key_id));
    let _ = session.logout();
    let mut businesses = list?.businesses;
    businesses.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    Ok(KeyProgress {
        businesses,
        resumable: env.journal.pending(&token.serial),
    })
}
