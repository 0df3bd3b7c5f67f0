//! The client's side of the trust model, against the real CA over TLS with simulator keys:
//! an unlock this computer did not start is never taken over, and the handler of record is
//! never kept out of their own key by somebody else's application.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{World, handler, pin};
use keyward_ca_api::{BusinessState, Handler, ReviewDecision, UnlockApplication};
use keyward_ca_client::BusinessAuth;
use keyward_flows::{FlowError, FlowKind, unlock};
use keyward_token::KeySpec;

fn stranger() -> Handler {
    Handler {
        name: "赵六".into(),
        id_number: "110105198001010016".into(),
        phone: "13600136000".into(),
    }
}

fn colleague() -> Handler {
    Handler {
        name: "钱七".into(),
        id_number: "11010519491231002X".into(),
        phone: "13500135000".into(),
    }
}

/// The hole: the client took up whatever unlock was open for its key, so an unlock a
/// stranger had opened received the operator's identity documents.
#[test]
fn an_unlock_this_computer_did_not_start_is_never_adopted() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    // A stranger, somewhere else, opens an unlock of the key.
    let theirs = w
        .env
        .ca
        .apply_unlock(
            &t.serial,
            &UnlockApplication {
                requester: stranger(),
            },
        )
        .unwrap();
    assert_eq!(theirs.business.state, BusinessState::AwaitingDocuments);

    // A colleague who is not the handler of record tries here: the open unlock is named,
    // masked, and not taken.
    let e = unlock::apply(&w.env, &t.serial, &colleague()).unwrap_err();
    let FlowError::UnlockByOther(notice) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(notice.requester_masked, "赵*");
    assert_eq!(notice.phone_masked, "136****6000");
    let words = keyward_flows::user_error(&e, keyward_pki::Lang::ZhCn);
    assert_eq!(words.code, "unlock_by_other");
    assert!(
        words.message.contains("赵*") && words.message.contains("不会接手"),
        "{}",
        words.message
    );
    assert!(
        w.env.journal.pending(&t.serial).is_empty(),
        "nothing of theirs is journaled here"
    );
    // So the colleague's documents cannot go anywhere: there is nothing to attach to.
    let attach = unlock::attach(
        &w.env,
        &t.serial,
        keyward_ca_api::AttachmentKind::IdCard,
        "image/jpeg",
        vec![0xFF, 0xD8, 0xFF, 0xE0, b'x'],
    );
    assert!(
        matches!(attach, Err(FlowError::NothingInProgress(_))),
        "{attach:?}"
    );
    let theirs_now = w
        .env
        .ca
        .business(&theirs.business.id, BusinessAuth::Secret(&theirs.secret))
        .unwrap();
    assert_eq!(theirs_now.state, BusinessState::AwaitingDocuments);
    let queue = w.admin.review_queue().unwrap();
    assert!(queue.items.iter().all(|i| i.attachments.is_empty()));

    // The handler of record applies: approved at once, the stranger's unlock ends and the
    // stranger is told.
    let mine = unlock::apply(&w.env, &t.serial, &handler()).unwrap();
    assert_eq!(mine.state, BusinessState::Approved);
    assert_eq!(
        unlock::pending(&w.env, &t.serial).unwrap(),
        Some(unlock::UnlockStep::Applied)
    );
    let theirs_now = w
        .env
        .ca
        .business(&theirs.business.id, BusinessAuth::Secret(&theirs.secret))
        .unwrap();
    assert_eq!(theirs_now.state, BusinessState::Cancelled);
    let told = w.admin.sms_outbox().unwrap();
    assert!(
        told.messages
            .iter()
            .any(|m| m.phone == "13600136000" && m.text.contains("已取消")),
        "the stranger is told their unlock ended"
    );
    // And the unlock goes through to a new PIN.
    let code = w.sms_code(&t.serial);
    let done = unlock::finish(&w.env, t, Some(&code), &pin("Unlocked#2026pin"), None).unwrap();
    assert_eq!(done.state, BusinessState::Completed);
    assert!(
        !w.env.journal.pending(&t.serial).contains(&FlowKind::Unlock),
        "finished"
    );
}

/// A stranger's approved-looking business is no help to them: without the key they hold
/// nothing, and a review the CA approved makes its requester the handler of record only
/// once it is done.
#[test]
fn a_reviewed_requester_becomes_the_handler_of_record_only_when_the_unlock_completes() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    let b = unlock::apply(&w.env, &t.serial, &colleague()).unwrap();
    assert_eq!(b.state, BusinessState::AwaitingDocuments);
    unlock::attach(
        &w.env,
        &t.serial,
        keyward_ca_api::AttachmentKind::IdCard,
        "image/jpeg",
        vec![0xFF, 0xD8, 0xFF, 0xE0, b'x'],
    )
    .unwrap();
    unlock::submit(&w.env, &t.serial).unwrap();
    w.admin
        .approve(
            &b.id,
            &ReviewDecision {
                note: "授权书齐全".into(),
            },
        )
        .unwrap();
    // The colleague's code went to the colleague's phone.
    let code = w.sms_code(&t.serial);
    let told = w.admin.sms_outbox().unwrap();
    assert!(
        told.messages
            .iter()
            .any(|m| m.phone == "13500135000" && m.text.contains(&code))
    );
    unlock::finish(&w.env, t, Some(&code), &pin("Unlocked#2026pin"), None).unwrap();
    // Now the colleague is the handler of record: their next unlock is automatic.
    w.advance_days(1);
    let again = unlock::apply(&w.env, &t.serial, &colleague()).unwrap();
    assert_eq!(again.state, BusinessState::Approved);
}

/// On a shared computer a colleague's open unlock is not handed to the handler of record:
/// their own application goes to the CA, which lets it through.
#[test]
fn the_handler_of_record_is_not_handed_a_colleagues_application_on_a_shared_computer() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    let colleagues = unlock::apply(&w.env, &t.serial, &colleague()).unwrap();
    assert_eq!(colleagues.state, BusinessState::AwaitingDocuments);
    // The colleague applying again gets their own back.
    let again = unlock::apply(&w.env, &t.serial, &colleague()).unwrap();
    assert_eq!(again.id, colleagues.id);
    // The handler of record, on the same computer, gets an application of their own.
    let mine = unlock::apply(&w.env, &t.serial, &handler()).unwrap();
    assert_ne!(mine.id, colleagues.id);
    assert_eq!(mine.state, BusinessState::Approved);
    let code = w.sms_code(&t.serial);
    unlock::finish(&w.env, t, Some(&code), &pin("Unlocked#2026pin"), None).unwrap();
}
