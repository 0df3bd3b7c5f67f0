//! 忘记密码: getting back into a key whose PIN is forgotten or locked.
//!
//! 1. [`apply`]: the requester says who they are. The CA approves at once when they are the
//!    key's handler of record; otherwise [`attach`] uploads documents and [`submit`] hands
//!    them to a reviewer, and [`status`] follows the review. The application's answer
//!    carries the unlock's secret, journaled here: the locked key cannot sign, so the
//!    secret is how this computer, and only it, follows the unlock. An unlock this computer
//!    did not start is never taken over: the CA names it (masked) and this one waits.
//! 2. [`send_code`]: once approved, an SMS code goes to the handler.
//! 3. [`finish`]: the code and a new PIN (policy first). The CA releases an authorisation
//!    bound to this key: the current SO PIN and a fresh one, both escrowed. Keyward logs in
//!    as SO, sets the new user PIN (which clears the lock), rotates the SO PIN to the fresh
//!    value, logs in with the new PIN to verify it, and tells the CA, signed by the key.
//!
//! Journal: the business id and secret from step 1; `Rotating` before the SO PIN changes,
//! `Rotated` after. The CA keeps the old SO PIN in escrow until the client confirms, so whichever
//! SO PIN the key holds after an interruption, the CA still has it: resuming at `Rotating`
//! tries the fresh SO PIN and then the old one.

use keyward_ca_api::{
    AttachmentKind, Business, BusinessState, CodeSent, Handler, Secret, UnlockApplication,
};
use keyward_ca_client::BusinessAuth;
use keyward_pki::Pin;
use keyward_token::{FinalTry, PinRole, TokenError, TokenRef};
use serde::{Deserialize, Serialize};

use crate::identity::{KeySigner, identity};
use crate::journal::FlowKind;
use crate::{Env, FlowError, OnProgress, Step, report};

/// Where an unlock stands on this side (journaled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockStep {
    /// Applied; following the review.
    Applied,
    /// About to change the SO PIN.
    Rotating,
    /// The SO PIN is rotated and the new user PIN set; the CA is not yet told.
    Rotated,
}

/// The journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockJournal {
    /// The CA's business id.
    pub business_id: String,
    /// The unlock's secret, as the application's answer carried it.
    pub secret: Secret,
    /// SHA-256 of who applied (name, ID number, phone), so another person applying from
    /// this computer is not handed this application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_sha256: Option<String>,
    /// The step.
    pub step: UnlockStep,
}

fn requester_digest(h: &Handler) -> String {
    use sha2::{Digest, Sha256};
    let mut d = Sha256::new();
    for part in [&h.name, &h.id_number, &h.phone] {
        d.update(part.trim().as_bytes());
        d.update([0]);
    }
    hex::encode(d.finalize())
}

fn journal(env: &Env, serial: &str) -> Result<Option<UnlockJournal>, FlowError> {
    env.journal.load(FlowKind::Unlock, serial)
}

fn is_open(b: &Business) -> bool {
    !matches!(
        b.state,
        BusinessState::Completed | BusinessState::Rejected | BusinessState::Cancelled
    )
}

/// Applies to unlock the key with serial `serial`, or picks up the unlock this computer
/// started. Another requester's open unlock is [`FlowError::UnlockByOther`].
pub fn apply(env: &Env, serial: &str, requester: &Handler) -> Result<Business, FlowError> {
    let digest = requester_digest(requester);
    if let Some(j) = journal(env, serial)? {
        match env
            .ca
            .business(&j.business_id, BusinessAuth::Secret(&j.secret))
        {
            // The same person's application, or one already changing the key (its SO PIN
            // rotation must finish before anything else): carried on.
            Ok(b)
                if is_open(&b)
                    && (j.step != UnlockStep::Applied
                        || j.requester_sha256.as_deref().is_none_or(|d| d == digest)) =>
            {
                return Ok(b);
            }
            // Someone else applying from this computer: the CA decides (the handler of
            // record's application replaces the open one; anyone else's waits for it).
            Ok(b) if is_open(&b) => {
                let created = env.ca.apply_unlock(
                    serial,
                    &UnlockApplication {
                        requester: requester.clone(),
                    },
                )?;
                return save(env, serial, created, digest);
            }
            // Finished (or cancelled) at the CA: a new application starts over.
            Ok(_) => {}
            // The CA no longer knows this secret: the journal is stale.
            Err(e) if e.api_code() == Some(keyward_ca_api::ErrorCode::Unauthorized) => {}
            Err(e) => return Err(e.into()),
        }
        env.journal.clear(FlowKind::Unlock, serial)?;
    }
    let created = env.ca.apply_unlock(
        serial,
        &UnlockApplication {
            requester: requester.clone(),
        },
    )?;
    save(env, serial, created, digest)
}

fn save(
    env: &Env,
    serial: &str,
    created: keyward_ca_api::CreatedBusiness,
    digest: String,
) -> Result<Business, FlowError> {
    env.journal.save(
        FlowKind::Unlock,
        serial,
        &UnlockJournal {
            business_id: created.business.id.clone(),
            secret: created.secret,
            requester_sha256: Some(digest),
            step: UnlockStep::Applied,
        },
    )?;
    Ok(created.business)
}

/// Where an unlock stands on this computer, if one is under way.
pub fn pending(env: &Env, serial: &str) -> Result<Option<UnlockStep>, FlowError> {
    Ok(journal(env, serial)?.map(|j| j.step))
}

fn started(env: &Env, serial: &str) -> Result<UnlockJournal, FlowError> {
    journal(env, serial)?.ok_or(FlowError::NothingInProgress(
        "no unlock application for this key",
    ))
}

/// Uploads a document for a manual review.
pub fn attach(
    env: &Env,
    serial: &str,
    kind: AttachmentKind,
    content_type: &str,
    bytes: Vec<u8>,
) -> Result<keyward_ca_api::Attachment, FlowError> {
    let j = started(env, serial)?;
    Ok(env.ca.upload_attachment(
        &j.business_id,
        BusinessAuth::Secret(&j.secret),
        kind,
        content_type,
        bytes,
    )?)
}

/// Hands the documents to the CA's reviewers.
pub fn submit(env: &Env, serial: &str) -> Result<Business, FlowError> {
    let j = started(env, serial)?;
    Ok(env
        .ca
        .submit_for_review(&j.business_id, BusinessAuth::Secret(&j.secret))?)
}

/// The unlock business as the CA sees it now.
pub fn status(env: &Env, serial: &str) -> Result<Business, FlowError> {
    let j = started(env, serial)?;
    Ok(env
        .ca
        .business(&j.business_id, BusinessAuth::Secret(&j.secret))?)
}

/// Sends the SMS code once the unlock is approved.
pub fn send_code(env: &Env, serial: &str) -> Result<CodeSent, FlowError> {
    let j = started(env, serial)?;
    let b = env
        .ca
        .business(&j.business_id, BusinessAuth::Secret(&j.secret))?;
    match b.state {
        BusinessState::Approved | BusinessState::Authorised => {
            Ok(env.ca.send_unlock_code(serial, &b.id, &j.secret)?)
        }
        BusinessState::Rejected => Err(FlowError::Rejected {
            note: last_note(&b),
        }),
        _ => Err(FlowError::AwaitingReview),
    }
}

fn last_note(b: &Business) -> String {
    b.timeline
        .last()
        .map(|e| e.note.clone())
        .unwrap_or_default()
}

const TOTAL: u8 = 5;

/// Finishes the unlock with the SMS code and the new PIN (or resumes it; after the SO PIN
/// was rotated, only the new PIN is needed).
pub fn finish(
    env: &Env,
    token: &TokenRef,
    code: Option<&str>,
    new_pin: &Pin,
    mut progress: Option<OnProgress<'_>>,
) -> Result<Business, FlowError> {
    let serial = token.serial.as_str();
    let mut j = journal(env, serial)?.ok_or(FlowError::NothingInProgress(
        "no unlock application for this key",
    ))?;
    report(&mut progress, Step::ReadingKey, 1, TOTAL);
    let session = env.module.session(token)?;
    let policy = crate::pin::check_new_pin(&session, new_pin)?;

    if j.step != UnlockStep::Rotated {
        let code = code.ok_or(FlowError::NothingInProgress("the SMS code is needed"))?;
        report(&mut progress, Step::ContactingCa, 2, TOTAL);
        let auth = env
            .ca
            .unlock_authorisation(serial, &j.business_id, &j.secret, code)?;
        let (old_so, new_so) = (
            Pin::new(auth.so_pin.expose().to_owned()),
            Pin::new(auth.new_so_pin.expose().to_owned()),
        );
        drop(auth);
        report(&mut progress, Step::SettingPin, 3, TOTAL);
        // Which SO PIN is on the key: the old one, unless a previous run got as far as
        // rotating it.
        let candidates: [&Pin; 2] = if j.step == UnlockStep::Rotating {
            [&new_so, &old_so]
        } else {
            [&old_so, &new_so]
        };
        // Whichever of the two is wrong costs one SO try; the guard keeps the last one.
        // Both are tried whatever the journal says: an earlier run on another computer, or
        // one whose journal was lost, may have rotated already.
        let mut current = None;
        for so in candidates {
            match session.login_so(so, FinalTry::Refuse) {
                Ok(()) => {
                    current = Some(so);
                    break;
                }
                Err(TokenError::PinIncorrect {
                    role: PinRole::So, ..
                }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let current = current.ok_or(FlowError::Token(TokenError::PinIncorrect {
            role: PinRole::So,
            status: session.pin_status()?,
        }))?;
        j.step = UnlockStep::Rotating;
        env.journal.save(FlowKind::Unlock, serial, &j)?;
        session.init_pin(new_pin, &policy)?;
        if !current.matches(&new_so) {
            session.change_so_pin(current, &new_so, FinalTry::Refuse)?;
        }
        session.logout()?;
        j.step = UnlockStep::Rotated;
        env.journal.save(FlowKind::Unlock, serial, &j)?;
    }

    report(&mut progress, Step::Verifying, 4, TOTAL);
    session.login(new_pin, FinalTry::Refuse)?;
    report(&mut progress, Step::Confirming, 5, TOTAL);
    let id = identity(&session, env.now())?;
    let done = match env
        .ca
        .confirm_unlock(&j.business_id, &KeySigner::new(&session, &id.key_id))
    {
        Ok(b) => b,
        // Confirmed by a run whose answer was lost: done already.
        Err(e) if e.api_code() == Some(keyward_ca_api::ErrorCode::WrongState) => {
            let b = env
                .ca
                .business(&j.business_id, BusinessAuth::Secret(&j.secret))?;
            if b.state != BusinessState::Completed {
                return Err(e.into());
            }
            b
        }
        Err(e) => return Err(e.into()),
    };
    env.journal.clear(FlowKind::Unlock, serial)?;
    let _ = session.logout();
    tracing::info!(serial, "unlocked");
    Ok(done)
}
