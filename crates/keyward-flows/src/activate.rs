//! 激活证书: the operator activates a newly issued key.
//!
//! The key arrives with a one-time transport PIN the CA keeps. The operator types the SMS
//! activation code and a PIN of their own (checked against the policy before anything else);
//! the CA releases the transport PIN for the right code and key; Keyward changes the PIN on
//! the key, logs in with the new one, signs the CA's nonce to prove possession, and the CA
//! records the activation time (refunds depend on it).
//!
//! Journal: `SettingPin` before C_SetPIN, `PinSet` after it. Resuming at `PinSet` needs only
//! the new PIN (no code: the transport PIN is spent). Resuming at `SettingPin` — the key may
//! or may not have the new PIN — tries the new PIN first, which is the operator's own
//! attempt, and falls back to a fresh code.

use keyward_ca_api::KeyState;
use keyward_pki::Pin;
use keyward_token::{FinalTry, TokenError, TokenRef};
use serde::{Deserialize, Serialize};

use crate::identity::{KeySigner, identity};
use crate::journal::FlowKind;
use crate::{Env, FlowError, OnProgress, Step, report};

/// Where an activation stands (journaled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivateStep {
    /// About to change the transport PIN to the operator's.
    SettingPin,
    /// The operator's PIN is on the key; possession not yet proven to the CA.
    PinSet,
}

/// The journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateJournal {
    /// The step.
    pub step: ActivateStep,
}

/// What the operator gives.
#[derive(Debug)]
pub struct ActivateInput {
    /// The SMS activation code (not needed when resuming after the PIN was set).
    pub code: Option<String>,
    /// The operator's new PIN.
    pub new_pin: Pin,
}

/// Where the activation stands for a key.
pub fn pending(env: &Env, serial: &str) -> Result<Option<ActivateStep>, FlowError> {
    Ok(env
        .journal
        .load::<ActivateJournal>(FlowKind::Activate, serial)?
        .map(|j| j.step))
}

/// Asks the CA to send (again) the activation code to the handler's phone.
pub fn send_code(env: &Env, serial: &str) -> Result<keyward_ca_api::CodeSent, FlowError> {
    Ok(env.ca.send_activation_code(serial)?)
}

const TOTAL: u8 = 4;

/// Runs (or resumes) the activation of `token`.
pub fn activate(
    env: &Env,
    token: &TokenRef,
    input: &ActivateInput,
    mut progress: Option<OnProgress<'_>>,
) -> Result<keyward_ca_api::KeyStatus, FlowError> {
    let serial = token.serial.as_str();
    report(&mut progress, Step::ReadingKey, 1, TOTAL);
    let session = env.module.session(token)?;
    let policy = crate::pin::check_new_pin(&session, &input.new_pin)?;
    let journaled = pending(env, serial)?;
    report(&mut progress, Step::ContactingCa, 2, TOTAL);
    let status = env.ca.key_status(serial)?;
    if status.state == KeyState::Active {
        env.journal.clear(FlowKind::Activate, serial)?;
        // Our own activation whose confirmation answer was lost: it is done.
        if journaled == Some(ActivateStep::PinSet) {
            return Ok(status);
        }
        return Err(FlowError::AlreadyActive);
    }

    // The new PIN onto the key, unless a previous run already put it there.
    let mut pin_on_key = journaled == Some(ActivateStep::PinSet);
    if journaled == Some(ActivateStep::SettingPin) {
        // Interrupted around C_SetPIN: the operator's PIN may already be on the key.
        match session.login(&input.new_pin, FinalTry::Refuse) {
            Ok(()) => pin_on_key = true,
            Err(TokenError::PinIncorrect { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !pin_on_key {
        let code = input.code.as_deref().ok_or(FlowError::NothingInProgress(
            "the activation code is needed",
        ))?;
        let released = env.ca.redeem_activation_code(serial, code)?;
        let transport = Pin::new(released.transport_pin.expose().to_owned());
        drop(released);
        report(&mut progress, Step::SettingPin, 3, TOTAL);
        env.journal.save(
            FlowKind::Activate,
            serial,
            &ActivateJournal {
                step: ActivateStep::SettingPin,
            },
        )?;
        session.change_pin(&transport, &input.new_pin, &policy, FinalTry::Refuse)?;
        env.journal.save(
            FlowKind::Activate,
            serial,
            &ActivateJournal {
                step: ActivateStep::PinSet,
            },
        )?;
    }

    report(&mut progress, Step::Confirming, 4, TOTAL);
    session.login(&input.new_pin, FinalTry::Refuse)?;
    let id = identity(&session, env.now())?;
    let done = env
        .ca
        .confirm_activation(&KeySigner::new(&session, &id.key_id))?;
    env.journal.clear(FlowKind::Activate, serial)?;
    let _ = session.logout();
    tracing::info!(serial, "activated");
    Ok(done)
}
