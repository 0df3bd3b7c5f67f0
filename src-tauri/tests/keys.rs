//! What the desktop commands do, against simulated keys (keyward-sim over SoftHSM): the
//! home page's list, the certificate page, and 修改密码 down to the lock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keyward_desktop::CommandError;
use keyward_desktop::keys::check_typed_twice;
use keyward_flows::FinalTry;
use keyward_flows::keys::{Keys, NextStep, PinState};
use keyward_pki::{Lang, Pin};
use softhsm_fixtures::{FixtureSet, KeyState, Manifest, USER_PIN};

fn sim_module() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join("libkeyward_sim.so");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p keyward-sim` (cargo xtask test does)",
        p.display()
    );
    p
}

fn keys(states: &[KeyState]) -> (FixtureSet, Keys, Manifest) {
    let module = sim_module();
    let (set, _module, manifest) = FixtureSet::build(states, &module).unwrap();
    (set, Keys::with_module(&module), manifest)
}

fn serial(m: &Manifest, state: KeyState) -> String {
    m.tokens
        .iter()
        .find(|t| t.state == state)
        .unwrap()
        .serial
        .clone()
}

fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

fn code(e: &keyward_flows::TokenError) -> &'static str {
    CommandError::token(e, Lang::ZhCn).code
}

#[test]
fn the_home_page_lists_every_key_with_what_comes_next() {
    let (_set, keys, m) = keys(&[
        KeyState::IssuedEc,
        KeyState::NearExpiry,
        KeyState::Expired,
        KeyState::Blank,
    ]);
    let list = keys.list().unwrap();
    assert_eq!(list.len(), 4);
    let next = |state| {
        let s = serial(&m, state);
        list.iter().find(|k| k.token.serial == s).unwrap().clone()
    };
    let ec = next(KeyState::IssuedEc);
    assert_eq!(ec.next, NextStep::Nothing);
    let cert = ec.certificate.unwrap();
    assert_eq!(
        cert.organization,
        m.tokens
            .iter()
            .find(|t| t.state == KeyState::IssuedEc)
            .unwrap()
            .organization
    );
    assert!(cert.days_left > 300);
    assert!(matches!(
        next(KeyState::NearExpiry).next,
        NextStep::Renew { days_left } if days_left <= 30
    ));
    assert_eq!(next(KeyState::Expired).next, NextStep::ApplyNew);
    assert_eq!(next(KeyState::Blank).next, NextStep::NoCertificate);

    let json = serde_json::to_value(&list).unwrap();
    assert!(json[0]["next"]["action"].is_string());
    assert_eq!(
        json[0]["seal"]["state"], "none",
        "no fixture key holds a seal"
    );
    assert!(json[0]["token"]["pin"]["user"].is_string());
}

#[test]
fn what_the_ca_says_decides_activation_and_the_install_waiting() {
    use keyward_ca_api::KeyState as CaState;
    use keyward_desktop::standing::Standings;
    use keyward_flows::standing::{Standing, Waiting, WaitingKind};
    let (_set, keys, m) = keys(&[KeyState::IssuedEc, KeyState::NearExpiry]);
    let standings = Standings::default();
    let view = |state| standings.enrich(keys.view(Some(&serial(&m, state))).unwrap());
    let say = |state, ca: CaState, waiting: &[WaitingKind]| {
        let s = Standing {
            state: ca,
            waiting: waiting
                .iter()
                .map(|&kind| Waiting {
                    kind,
                    business_id: Some(format!("{kind:?}")),
                })
                .collect(),
        };
        assert!(standings.store(&serial(&m, state), Some(s)));
    };

    // Nothing asked yet: what the key alone says.
    assert_eq!(view(KeyState::IssuedEc).next, NextStep::Nothing);
    // Fresh from the station: the key raises no flag, the CA says it waits for 激活证书.
    say(KeyState::IssuedEc, CaState::AwaitingActivation, &[]);
    assert_eq!(view(KeyState::IssuedEc).next, NextStep::Activate);
    // The answer is that key's alone: the other key still shows what it says itself.
    let other = view(KeyState::NearExpiry);
    assert!(other.standing.is_none());
    assert!(
        matches!(other.next, NextStep::Renew { .. }),
        "{:?}",
        other.next
    );
    // The same answer again changes nothing (no event is sent for it).
    let again = Standing {
        state: CaState::AwaitingActivation,
        waiting: Vec::new(),
    };
    assert!(!standings.store(&serial(&m, KeyState::IssuedEc), Some(again)));
    // A seal made by the CA waits for 安装印章; a paid renewal for 安装证书 comes first.
    say(
        KeyState::IssuedEc,
        CaState::Active,
        &[WaitingKind::InstallSeal],
    );
    assert_eq!(view(KeyState::IssuedEc).next, NextStep::InstallSeal);
    say(
        KeyState::NearExpiry,
        CaState::Active,
        &[WaitingKind::InstallCertificate, WaitingKind::InstallSeal],
    );
    let near = view(KeyState::NearExpiry);
    assert_eq!(near.next, NextStep::InstallCertificate);
    let json = serde_json::to_value(&near).unwrap();
    assert_eq!(json["next"]["action"], "install_certificate");
    // Unpaid: continue the renewal, ahead of the plain "renew within N days".
    say(
        KeyState::NearExpiry,
        CaState::Active,
        &[WaitingKind::PayRenewal],
    );
    assert_eq!(view(KeyState::NearExpiry).next, NextStep::PayRenewal);
    // A locked PIN comes before anything the CA holds.
    say(
        KeyState::IssuedEc,
        CaState::Active,
        &[WaitingKind::InstallCertificate],
    );
    let mut locked = view(KeyState::IssuedEc);
    locked.token.pin.user = PinState::Locked;
    assert_eq!(standings.enrich(locked).next, NextStep::Unlock);
    // The CA's answer forgotten: back to what the key says.
    assert!(standings.store(&serial(&m, KeyState::IssuedEc), None));
    let v = view(KeyState::IssuedEc);
    assert!(v.standing.is_none());
    assert_eq!(v.next, NextStep::Nothing);
}

#[test]
fn the_certificate_page_puts_the_organisation_first_then_the_chain() {
    let (_set, keys, m) = keys(&[KeyState::IssuedRsa]);
    let d = keys
        .cert_show(Some(&serial(&m, KeyState::IssuedRsa)))
        .unwrap();
    let roles: Vec<&str> = d.certificates.iter().map(|c| c.role).collect();
    assert_eq!(roles.first(), Some(&"organisation"));
    assert!(roles.len() >= 2, "{roles:?}");
    assert!(roles[1..].iter().all(|r| *r == "chain"));
    let last = &d.certificates.last().unwrap().summary;
    assert_eq!(last.subject, last.issuer, "the root comes last");
    assert_eq!(
        code(&keys.cert_show(Some("no-such-key")).unwrap_err()),
        "no_such_key"
    );
}

#[test]
fn a_weak_pin_costs_no_try_a_wrong_one_reports_tries_a_right_one_changes() {
    let (_set, keys, m) = keys(&[KeyState::IssuedEc]);
    let s = serial(&m, KeyState::IssuedEc);
    let info = keys.pin_status(Some(&s)).unwrap();
    assert_eq!(info.status.user, PinState::Ok);
    assert_eq!(info.status.user_tries_left, Some(10));
    assert!(info.policy.require_special);

    let weak = keys
        .pin_change(Some(&s), &pin(USER_PIN), &pin("weak"), FinalTry::Refuse)
        .unwrap_err();
    let shown = CommandError::token(&weak, Lang::ZhCn);
    assert_eq!(shown.code, "pin_policy");
    assert!(!shown.rules.is_empty());
    assert_eq!(
        keys.pin_status(Some(&s)).unwrap().status.user_tries_left,
        Some(10)
    );

    let wrong = keys
        .pin_change(
            Some(&s),
            &pin("Wrong#2026"),
            &pin("Better#2027pin"),
            FinalTry::Refuse,
        )
        .unwrap_err();
    let shown = CommandError::token(&wrong, Lang::ZhCn);
    assert_eq!(shown.code, "pin_incorrect");
    assert_eq!(shown.pin.unwrap().user_tries_left, Some(9));
    assert!(shown.message.contains("9"), "{}", shown.message);

    let after = keys
        .pin_change(
            Some(&s),
            &pin(USER_PIN),
            &pin("Better#2027pin"),
            FinalTry::Refuse,
        )
        .unwrap();
    assert_eq!(after.user, PinState::Ok);
}

#[test]
fn the_final_try_needs_confirmation_and_the_lock_sends_to_unlock() {
    let (_set, keys, m) = keys(&[KeyState::IssuedEc]);
    let s = serial(&m, KeyState::IssuedEc);
    let new = pin("Better#2027pin");
    for _ in 0..9 {
        let e = keys
            .pin_change(Some(&s), &pin("Wrong#2026"), &new, FinalTry::Refuse)
            .unwrap_err();
        assert_eq!(code(&e), "pin_incorrect");
    }
    assert_eq!(
        keys.pin_status(Some(&s)).unwrap().status.user,
        PinState::FinalTry
    );
    let e = keys
        .pin_change(Some(&s), &pin(USER_PIN), &new, FinalTry::Refuse)
        .unwrap_err();
    assert_eq!(code(&e), "pin_final_try");
    let e = keys
        .pin_change(Some(&s), &pin("Wrong#2026"), &new, FinalTry::Confirmed)
        .unwrap_err();
    assert_eq!(code(&e), "pin_locked");
    let e = keys
        .pin_change(Some(&s), &pin(USER_PIN), &new, FinalTry::Confirmed)
        .unwrap_err();
    assert_eq!(code(&e), "pin_locked");
    let list = keys.list().unwrap();
    assert_eq!(list[0].next, NextStep::Unlock);
}

#[test]
fn the_new_pin_typed_twice_must_match() {
    let e = check_typed_twice(&pin("A#1aaaaa"), &pin("A#1aaaab"), Lang::ZhCn).unwrap_err();
    assert_eq!(e.code, "pin_mismatch");
    assert!(check_typed_twice(&pin("A#1aaaaa"), &pin("A#1aaaaa"), Lang::En).is_ok());
}

#[test]
fn drivers_report_the_named_module() {
    let (_set, keys, _m) = keys(&[KeyState::Blank]);
    let d = keys.drivers().unwrap();
    assert_eq!(d.len(), 1);
    assert!(d[0].loaded, "{:?}", d[0].error);
    let missing = Keys::with_module(Path::new("/nonexistent/libnothing.so"));
    let d = missing.drivers().unwrap();
    assert!(!d[0].loaded && d[0].error.is_some());
    assert_eq!(code(&missing.list().unwrap_err()), "module_load");
}
