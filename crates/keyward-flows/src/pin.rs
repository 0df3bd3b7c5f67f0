//! 修改密码: changing the user PIN through the login guard.

use keyward_pki::{Pin, PinPolicy};
use keyward_token::{FinalTry, PinStatus, TokenRef, TokenSession};

use crate::{Env, FlowError};

/// Changes the PIN of `token`. The new PIN is checked against the policy and the key's own
/// limits first; the guard refuses a locked key and, without `confirm`, the final try.
/// Returns the PIN status afterwards.
pub fn change_pin(
    env: &Env,
    token: &TokenRef,
    old: &Pin,
    new: &Pin,
    confirm: FinalTry,
) -> Result<PinStatus, FlowError> {
    let session = env.module.session(token)?;
    session
        .change_pin(old, new, &PinPolicy::recommended(), confirm)
        .map_err(|e| match e {
            keyward_token::TokenError::PinPolicy(rules) => FlowError::PinPolicy(rules),
            other => FlowError::Token(other),
        })?;
    Ok(session.pin_status()?)
}

/// The policy a new PIN for `token` must meet (the CA guides' advice and the key's limits),
/// for a checklist shown while typing.
pub fn policy(env: &Env, token: &TokenRef) -> Result<PinPolicy, FlowError> {
    Ok(env
        .module
        .session(token)?
        .policy(&PinPolicy::recommended())?)
}

/// Checks a new PIN against the policy of the key `session` is on, without touching the
/// key's PIN (the caller's session: no second one is opened).
pub fn check_new_pin(session: &TokenSession, new: &Pin) -> Result<PinPolicy, FlowError> {
    let policy = session.policy(&PinPolicy::recommended())?;
    policy.check(new).map_err(FlowError::PinPolicy)?;
    Ok(policy)
}
