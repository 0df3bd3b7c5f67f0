//! Every workflow end to end, for real: keys issued by the station through keyward-sim, the
//! CA service over TLS on a loopback port, the operator's steps through keyward-flows, and
//! the results checked from outside with pkcs11-tool and openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{PIN, World, handler, pin};
use keyward_ca_api::{BusinessKind, BusinessState, InvoiceDetails, KeyState as CaKeyState};
use keyward_flows::activate::{ActivateInput, activate};
use keyward_flows::standing::{WaitingKind, standing};
use keyward_flows::{FinalTry, FlowError, KeySpec, PinState, Progress, TokenError, renew, unlock};
use keyward_pki::RenewalStatus;

fn activate_key(w: &World, i: usize) {
    w.activate(&w.tokens[i]);
    let status = w.key_status(&w.tokens[i], PIN);
    assert_eq!(status.state, CaKeyState::Active);
    assert!(status.activated_at.is_some());
}

#[test]
fn activation_sets_the_operators_pin_and_the_ca_records_it() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    assert!(w.awaiting_activation(t));
    // The key cannot say it waits for activation (the station's C_InitPIN leaves no flag on
    // the simulator); the CA can, in its one public read.
    let before = standing(&w.env.ca, &w.env.journal, &t.serial).unwrap();
    assert_eq!(before.state, CaKeyState::AwaitingActivation);
    assert!(before.waiting.is_empty(), "{before:?}");
    // An unknown serial reads as a key with nothing waiting: the CA tells nobody which
    // serials it has.
    let unknown = standing(&w.env.ca, &w.env.journal, "NO-SUCH-KEY").unwrap();
    assert_eq!(unknown.state, CaKeyState::Active);
    assert!(unknown.waiting.is_empty());

    // The station's SMS says the key is on its way and carries no code; a code is asked
    // for from this computer, whose journal keeps the ticket that redeems it.
    let issued = w.ca.admin.sms_outbox().unwrap();
    assert!(
        issued
            .messages
            .iter()
            .filter(|m| m.key_serial.as_deref() == Some(t.serial.as_str()))
            .all(|m| !m.text.contains("验证码 ")),
        "the station's SMS carries no code"
    );
    let no_ticket = activate(
        &w.env,
        t,
        &ActivateInput {
            code: Some("123456".into()),
            new_pin: pin(PIN),
        },
        None,
    );
    assert!(
        matches!(no_ticket, Err(FlowError::CodeNotRequested)),
        "{no_ticket:?}"
    );

    // A weak PIN is refused before anything happens; a wrong code spends no PIN try.
    let weak = activate(
        &w.env,
        t,
        &ActivateInput {
            code: Some(w.activation_code(t)),
            new_pin: pin("weak"),
        },
        None,
    );
    assert!(matches!(weak, Err(FlowError::PinPolicy(_))));
    let wrong = activate(
        &w.env,
        t,
        &ActivateInput {
            code: Some("000000".into()),
            new_pin: pin(PIN),
        },
        None,
    );
    let err = wrong.unwrap_err();
    assert_eq!(
        keyward_flows::user_error(&err, keyward_pki::Lang::ZhCn).code,
        "ca_code_invalid",
        "{err}"
    );

    let mut steps = Vec::new();
    let code = w.sms_code(&t.serial);
    let mut on = |p: Progress| steps.push(p.step);
    let done = activate(
        &w.env,
        t,
        &ActivateInput {
            code: Some(code),
            new_pin: pin(PIN),
        },
        Some(&mut on),
    )
    .unwrap();
    assert_eq!(done.state, CaKeyState::Active);
    assert_eq!(steps.len(), 4, "{steps:?}");
    // The operator's PIN opens the key; activating again is refused.
    let s = w.module.session(t).unwrap();
    s.login(&pin(PIN), FinalTry::Refuse).unwrap();
    let again = activate(
        &w.env,
        t,
        &ActivateInput {
            code: Some("123456".into()),
            new_pin: pin(PIN),
        },
        None,
    );
    assert!(matches!(again, Err(FlowError::AlreadyActive)));
    let progress =
        keyward_flows::progress::progress(&w.env, t, &pin(PIN), FinalTry::Refuse).unwrap();
    assert!(
        progress
            .businesses
            .iter()
            .any(|b| b.kind == BusinessKind::Issue && b.state == BusinessState::Completed)
    );
    assert!(progress.resumable.is_empty());
}

#[test]
fn ten_wrong_pins_lock_the_key_and_the_unlock_wizard_brings_it_back() {
    let w = World::new(1, KeySpec::EcP256);
    activate_key(&w, 0);
    let t = &w.tokens[0];
    for _ in 0..9 {
        let e = keyward_flows::pin::change_pin(
            &w.env,
            t,
            &pin("Wrong#00000"),
            &pin("Next#20260"),
            FinalTry::Refuse,
        )
        .unwrap_err();
        assert!(
            matches!(e, FlowError::Token(TokenError::PinIncorrect { .. })),
            "{e}"
        );
    }
    // The guard stops the tenth without confirmation.
    let e = keyward_flows::pin::change_pin(
        &w.env,
        t,
        &pin("Wrong#00000"),
        &pin("Next#20260"),
        FinalTry::Refuse,
    )
    .unwrap_err();
    assert!(
        matches!(e, FlowError::Token(TokenError::FinalTryUnconfirmed { .. })),
        "{e}"
    );
    let e = keyward_flows::pin::change_pin(
        &w.env,
        t,
        &pin("Wrong#00000"),
        &pin("Next#20260"),
        FinalTry::Confirmed,
    )
    .unwrap_err();
    assert!(
        matches!(e, FlowError::Token(TokenError::PinLocked { .. })),
        "{e}"
    );
    assert_eq!(w.module.pin_status(t).unwrap().user, PinState::Locked);

    // 忘记密码: the handler of record is approved at once, and the SMS code goes out with the
    // approval; asking again at once is refused by the cool-down.
    let b = unlock::apply(&w.env, &t.serial, &handler()).unwrap();
    assert_eq!(b.state, BusinessState::Approved);
    let resend = unlock::send_code(&w.env, &t.serial).unwrap_err();
    assert_eq!(
        keyward_flows::user_error(&resend, keyward_pki::Lang::En).code,
        "ca_code_cooldown"
    );
    let code = w.sms_code(&t.serial);
    let weak = unlock::finish(&w.env, t, Some(&code), &pin("weak"), None);
    assert!(matches!(weak, Err(FlowError::PinPolicy(_))));
    let done = unlock::finish(&w.env, t, Some(&code), &pin("Unlocked#2026"), None).unwrap();
    assert_eq!(done.state, BusinessState::Completed);
    // The timeline the operator reads says it in the CA's words, not the key's.
    let last = done.timeline.last().map(|e| e.note.as_str());
    assert_eq!(last, Some("解锁完成"), "{:?}", done.timeline);
    for e in &done.timeline {
        assert!(!e.note.contains("PIN"), "{:?}", e.note);
    }
    let status = w.module.pin_status(t).unwrap();
    assert_eq!(
        (status.user, status.user_tries_left),
        (PinState::Ok, Some(10))
    );
    // The SO PIN was rotated: the factory one no longer opens the key.
    let s = w.module.session(t).unwrap();
    assert!(
        s.login_so(&pin(softhsm_fixtures::SO_PIN), FinalTry::Refuse)
            .is_err()
    );
    s.login(&pin("Unlocked#2026"), FinalTry::Refuse).unwrap();
}

#[test]
fn renewal_applies_pays_and_installs_a_new_key_pair_checked_by_outside_tools() {
    let w = World::new(1, KeySpec::EcP256);
    activate_key(&w, 0);
    let t = &w.tokens[0];
    let invoice = || InvoiceDetails {
        title: "广州市流程测试第1有限公司".into(),
        tax_id: common::organisation(1).uscc,
        email: "finance@example.com".into(),
    };
    // Too early: the CA's window is closed and the client says when it opens.
    let early = renew::apply(&w.env, t, &pin(PIN), FinalTry::Refuse, 1, invoice()).unwrap_err();
    assert!(matches!(early, FlowError::RenewalNotOpen { .. }), "{early}");

    w.advance_days(300);
    let before = renew::eligibility(&w.env, t).unwrap();
    assert!(matches!(before.renewal, RenewalStatus::Open { .. }));
    let b = renew::apply(&w.env, t, &pin(PIN), FinalTry::Refuse, 2, invoice()).unwrap();
    assert_eq!(b.fee_fen, renew::fee_fen(2));
    assert!(matches!(
        renew::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None),
        Err(FlowError::NotPaid)
    ));
    let waiting = |w: &World| {
        let s = standing(&w.env.ca, &w.env.journal, &t.serial).unwrap();
        assert_eq!(s.state, CaKeyState::Active);
        s.waiting
            .iter()
            .map(|x| (x.kind, x.business_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        waiting(&w),
        vec![(WaitingKind::PayRenewal, Some(b.id.clone()))]
    );
    renew::pay_sandbox(&w.env, &t.serial).unwrap();
    assert_eq!(
        waiting(&w),
        vec![(WaitingKind::InstallCertificate, Some(b.id.clone()))],
        "a paid renewal waits for 安装证书"
    );
    // The one public read says so too, to anyone, and says nothing else.
    assert_eq!(
        w.env.ca.standing(&t.serial).unwrap().waiting,
        vec![keyward_ca_api::WaitingInstall::Certificate]
    );

    let mut steps = Vec::new();
    let mut on = |p: Progress| steps.push(p.step);
    let after = renew::install(&w.env, t, &pin(PIN), FinalTry::Refuse, Some(&mut on)).unwrap();
    assert_eq!(
        (
            after.not_after.year() - before.not_after.year(),
            after
                .not_after
                .ordinal()
                .abs_diff(before.not_after.ordinal())
                <= 1
        ),
        (2, true),
        "the new validity continues two years from the old expiry"
    );
    assert_ne!(after.serial, before.serial);
    assert!(steps.len() >= 8, "{steps:?}");
    let progress =
        keyward_flows::progress::progress(&w.env, t, &pin(PIN), FinalTry::Refuse).unwrap();
    let renewal = progress
        .businesses
        .iter()
        .find(|b| b.kind == BusinessKind::Renewal)
        .unwrap();
    assert_eq!(renewal.state, BusinessState::Completed);
    assert!(waiting(&w).is_empty(), "nothing waits once installed");

    // From outside: exactly one private key, its certificate, and openssl verifies the chain.
    let sim = common::sim_module();
    let list = |kind: &str| {
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&sim)
            .args([
                "--token-label",
                &t.label,
                "--login",
                "--pin",
                PIN,
                "--list-objects",
                "--type",
                kind,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(list("privkey").matches("Private Key Object").count(), 1);
    let s = w.module.session(t).unwrap();
    let org: Vec<_> = keyward_flows::identity::identities(&s, w.env.now()).unwrap();
    assert_eq!(org.len(), 1, "the old certificate is gone");
    let id_hex = hex::encode(&org[0].key_id);
    let certs = list("cert");
    assert!(certs.to_lowercase().contains(&id_hex), "{certs}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), w.ca.root_pem()).unwrap();
    let cert = dir.path().join("cert.der");
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&sim)
        .args([
            "--token-label",
            &t.label,
            "--read-object",
            "--type",
            "cert",
            "--id",
            &id_hex,
            "--output-file",
        ])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pem = dir.path().join("cert.pem");
    std::fs::write(
        &pem,
        keyward_pki::pem::encode("CERTIFICATE", &std::fs::read(&cert).unwrap()),
    )
    .unwrap();
    let issuing: Vec<String> = s
        .certificates()
        .unwrap()
        .into_iter()
        .filter(|c| keyward_pki::CertSummary::from_der(&c.der, w.env.now()).is_ok_and(|x| x.is_ca))
        .map(|c| keyward_pki::pem::encode("CERTIFICATE", &c.der))
        .collect();
    std::fs::write(dir.path().join("chain.pem"), issuing.concat()).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-no_check_time", "-CAfile"])
        .arg(dir.path().join("root.pem"))
        .arg("-untrusted")
        .arg(dir.path().join("chain.pem"))
        .arg(&pem)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains(": OK"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn the_seal_form_is_downloaded_from_the_ca_and_never_replaces_a_file() {
    let w = World::new(1, KeySpec::EcP256);
    let dir = tempfile::tempdir().unwrap();
    // The blank form built into the service, over HTTPS, saved under its name.
    let first = keyward_flows::seal::save_form(&w.env, dir.path()).unwrap();
    assert_eq!(first, dir.path().join("电子印章申请表.html"));
    let html = std::fs::read_to_string(&first).unwrap();
    for want in [
        "<title>电子印章申请表</title>",
        "印章名称",
        "公章",
        "合同专用章",
        "办理【变更】",
    ] {
        assert!(html.contains(want), "{want} missing from the form");
    }
    // Again: a second file beside it, the first untouched.
    std::fs::write(&first, "filled in by hand").unwrap();
    let second = keyward_flows::seal::save_form(&w.env, dir.path()).unwrap();
    assert_eq!(second, dir.path().join("电子印章申请表 (2).html"));
    assert_eq!(
        std::fs::read_to_string(&first).unwrap(),
        "filled in by hand"
    );

    // A CA that holds its own PDF form serves that one, and it is saved as a PDF.
    let forms = w.ca.data_dir().join("forms");
    std::fs::create_dir_all(&forms).unwrap();
    let pdf = b"%PDF-1.7\n% the CA's own seal form\n".to_vec();
    std::fs::write(forms.join("seal.pdf"), &pdf).unwrap();
    let own = keyward_flows::seal::save_form(&w.env, dir.path()).unwrap();
    assert_eq!(own, dir.path().join("电子印章申请表.pdf"));
    assert_eq!(std::fs::read(&own).unwrap(), pdf);

    // A file that says it is a PDF and is not one is refused, and nothing is saved.
    std::fs::write(forms.join("seal.pdf"), b"<html>not a pdf</html>").unwrap();
    let e = keyward_flows::seal::save_form(&w.env, dir.path()).unwrap_err();
    assert!(matches!(e, FlowError::Ca(_)), "{e}");
    assert!(!dir.path().join("电子印章申请表 (2).pdf").exists());
}
