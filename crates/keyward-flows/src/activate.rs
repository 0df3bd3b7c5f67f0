//! 激活证书: the operator activates a newly issued key.
//!
//! The key arrives with a one-time transport PIN the CA keeps. The operator types the SMS
//! activation code and a PIN of their own (checked against the policy before anything else);
//! the CA releases the transport PIN for the right code and key; Keyward changes the PIN on
//! the key, logs in with the new one, signs the CA's nonce to prove possession, and the CA
//! records the activation time (refunds depend on it).
//!
//! The code is asked for from this computer ([`send_code`]); the CA answers with a ticket
//! that only this computer holds and that must come back with the code, so nobody else can
//! guess against the code the handler received, or void it.
//!
//! Journal: `CodeSent` with the ticket; `SettingPin` before C_SetPIN, `PinSet` after it.
//! Resuming at `PinSet` needs only the new PIN (no code: the transport PIN is spent).
//! Resuming at `SettingPin` — the key may or may not have the new PIN — tries the new PIN
//! first, which is the operator's own attempt, and falls back to a fresh code.

use keyward_ca_api::Secret;
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
    /// A code was asked for; its ticket is journaled.
    CodeSent,
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
    /// The ticket of the last code asked for (not a PIN: it only lets the code be tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Secret>,
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

fn journal(env: &Env, serial: &str) -> Result<Option<ActivateJournal>, FlowError> {
    env.journal.load(FlowKind::Activate, serial)
}

/// Asks the CA to send (again) an activation code to the handler's phone. The ticket is
/// journaled here; the answer handed back carries none.
pub fn send_code(env: &Env, serial: &str) -> Result<keyward_ca_api::CodeSent, FlowError> {
    let mut sent = env.ca.send_activation_code(serial)?;
    let ticket = sent.ticket.take();
    let entry = match journal(env, serial)? {
        // Mid-activation, a fresh code keeps the step it is at.
        Some(mut j) => {
            j.ticket = ticket;
            j
        }
        None => ActivateJournal {
            step: ActivateStep::CodeSent,
            ticket,
        },
    };
    env.journal.save(FlowKind::Activate, serial, &entry)?;
    Ok(sent)
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
    let entry = journal(env, serial)?;
    let journaled = entry.as_ref().map(|j| j.step);
    report(&mut progress, Step::ContactingCa, 2, TOTAL);
    if !env.ca.standing(serial)?.awaiting_activation {
        // Our own activation whose confirmation answer was lost: it is done.
        if journaled == Some(ActivateStep::PinSet) {
            session.login(&input.new_pin, FinalTry::Refuse)?;
            let id = identity(&session, env.now())?;
            let status = env.ca.key_status(&KeySigner::new(&session, &id.key_id))?;
            env.journal.clear(FlowKind::Activate, serial)?;
            let _ = session.logout();
            return Ok(status);
        }
        env.journal.clear(FlowKind::Activate, serial)?;
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
        let ticket = entry
            .as_ref()
            .and_then(|j| j.ticket.clone())
            .ok_or(FlowError::CodeNotRequested)?;
        let released = env.ca.redeem_activation_code(serial, code, &ticket)?;
        let transport = Pin::new(released.transport_pin.expose().to_owned());
        drop(released);
        report(&mut progress, Step::SettingPin, 3, TOTAL);
        // The ticket is spent with its code: it leaves the journal here.
        env.journal.save(
            FlowKind::Activate,
            serial,
            &ActivateJournal {
                step: ActivateStep::SettingPin,
                ticket: None,
            },
        )?;
        session.change_pin(&transport, &input.new_pin, &policy, FinalTry::Refuse)?;
        env.journal.save(
            FlowKind::Activate,
            serial,
            &ActivateJournal {
                step: ActivateStep::PinSet,
                ticket: None,
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
