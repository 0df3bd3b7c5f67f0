//! The token layer against real SoftHSM keys built by the fixture builder, reached through
//! keyward-sim as every Keyward test reaches them, and checked from outside by OpenSC's
//! pkcs11-tool, GnuTLS's p11tool and openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{run, write_pem};
use keyward_pki::{CertSummary, OrgSubject, Pin, PinPolicy, PinRule, RenewalStatus};
use keyward_token::{FinalTry, KeySpec, Module, PinRole, PinState, TokenError};
use softhsm_fixtures::{
    CHAIN_ID, DATA_APPLICATION, DATA_LABEL, FixtureSet, KEY_ID, KeyState, SO_PIN, TestCa, USER_PIN,
};
use time::OffsetDateTime;

fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

fn build(
    states: &[KeyState],
) -> (
    FixtureSet,
    std::sync::Arc<Module>,
    softhsm_fixtures::Manifest,
) {
    FixtureSet::build(states, &common::sim_module()).expect("fixtures")
}

/// The module path as a string, for the outside tools.
fn sim() -> String {
    common::sim_module().display().to_string()
}

#[test]
fn every_fixture_key_is_listed_with_its_state() {
    let (_set, module, manifest) = build(&KeyState::ALL);
    let tokens = module.tokens().unwrap();
    assert_eq!(tokens.len(), KeyState::ALL.len());
    for fx in &manifest.tokens {
        let t = module.find(Some(&fx.serial)).unwrap();
        let d = module.describe(&t).unwrap();
        assert_eq!(d.label, fx.label);
        assert_eq!(d.serial, fx.serial);
        assert_eq!(d.pin.user, PinState::Ok);
        assert!(d.pin.user_initialized);
        assert!(d.flags.contains(&"CKF_TOKEN_INITIALIZED"));
        assert!(d.uri.starts_with("pkcs11:"), "{}", d.uri);
        // The URI it prints finds the same key again.
        assert_eq!(module.find(Some(&d.uri)).unwrap().serial, fx.serial);
    }
    assert!(matches!(
        module.find(None),
        Err(TokenError::AmbiguousToken(n)) if n == KeyState::ALL.len()
    ));
    assert!(matches!(
        module.find(Some("no-such-serial")),
        Err(TokenError::NoSuchToken(_))
    ));
}

#[test]
fn certificates_read_back_summarise_and_verify_with_openssl() {
    let states = [
        KeyState::IssuedRsa,
        KeyState::IssuedEc,
        KeyState::NearExpiry,
        KeyState::Expired,
    ];
    let (set, module, manifest) = build(&states);
    let now = OffsetDateTime::now_utc();
    for fx in &manifest.tokens {
        let session = module
            .session(&module.find(Some(&fx.serial)).unwrap())
            .unwrap();
        let certs = session.certificates().unwrap();
        assert_eq!(
            certs.len(),
            3,
            "organisation certificate and a two-level chain"
        );
        let org = certs
            .iter()
            .find(|c| c.id == KEY_ID)
            .expect("organisation certificate");
        let s = CertSummary::from_der(&org.der, now).unwrap();
        assert_eq!(s.organization, fx.organization);
        assert_eq!(s.credit_code, fx.credit_code);
        match fx.state {
            KeyState::NearExpiry => assert!(matches!(
                s.renewal,
                RenewalStatus::Open { days_left: 29 | 30 }
            )),
            KeyState::Expired => assert_eq!(s.renewal, RenewalStatus::Expired),
            _ => assert!(matches!(s.renewal, RenewalStatus::NotYet { .. })),
        }
        let pem = set.dir().join(format!("{}.pem", fx.label));
        write_pem(&pem, "CERTIFICATE", &org.der);
        let mut verify = Command::new("openssl");
        verify
            .arg("verify")
            .arg("-CAfile")
            .arg(set.dir().join("root.pem"));
        verify.arg("-untrusted").arg(set.dir().join("issuing.pem"));
        if fx.state == KeyState::Expired {
            verify.arg("-no_check_time");
        }
        assert!(run(verify.arg(&pem)).contains(": OK"));
        let text = run(Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&pem));
        assert!(text.contains(fx.credit_code.as_deref().unwrap()), "{text}");
        assert!(certs.iter().any(|c| c.id == CHAIN_ID));
    }
}

#[test]
fn a_written_certificate_is_seen_by_pkcs11_tool_and_p11tool() {
    let (set, module, _) = build(&[KeyState::Blank]);
    let token = module.find(None).unwrap();
    let session = module.session(&token).unwrap();
    session.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    let id = [0x42];
    session
        .generate_key_pair(KeySpec::EcP256, &id, "new key")
        .unwrap();
    let org = OrgSubject {
        organization: "佛山市写入测试有限公司".into(),
        credit_code: "91350100M000100Y43".into(),
    };
    let csr = keyward_pki::csr::build_csr(&org, &session.signer(&id).unwrap()).unwrap();
    let ca = TestCa::new().unwrap();
    let now = OffsetDateTime::now_utc();
    let der = ca
        .certify(&csr, now, now + time::Duration::days(365), 7)
        .unwrap();
    session
        .write_certificate(&der, &id, "written-by-keyward")
        .unwrap();
    let list_certs = || {
        run(Command::new("pkcs11-tool").args([
            "--module",
            &sim(),
            "--token-label",
            "kw-blank",
            "--list-objects",
            "--type",
            "cert",
        ]))
    };

    let listed = list_certs();
    assert!(listed.contains("written-by-keyward"), "{listed}");
    assert!(listed.contains("ID:         42"), "{listed}");
    let p11 = run(Command::new("p11tool").args([
        "--provider",
        &sim(),
        "--list-all-certs",
        "pkcs11:token=kw-blank",
    ]));
    assert!(p11.contains("written-by-keyward"), "{p11}");
    // What pkcs11-tool reads back is the certificate openssl parses.
    let out = set.dir().join("read-back.der");
    run(Command::new("pkcs11-tool")
        .args([
            "--module",
            &sim(),
            "--token-label",
            "kw-blank",
            "--read-object",
            "--type",
            "cert",
            "--id",
            "42",
            "--output-file",
        ])
        .arg(&out));
    let subject = run(Command::new("openssl")
        .args([
            "x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "utf8", "-in",
        ])
        .arg(&out));
    assert!(subject.contains("佛山市写入测试有限公司"), "{subject}");

    assert_eq!(session.delete_certificate(&id).unwrap(), 1);
    let listed = list_certs();
    assert!(!listed.contains("written-by-keyward"), "{listed}");
    assert!(matches!(
        session.delete_certificate(&id),
        Err(TokenError::ObjectNotFound(_))
    ));
}

#[test]
fn keys_generated_on_the_key_sign_what_openssl_verifies() {
    let (set, module, _) = build(&[KeyState::Blank]);
    let session = module.session(&module.find(None).unwrap()).unwrap();
    session.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    for (spec, id) in [(KeySpec::Rsa2048, [0x10u8]), (KeySpec::EcP256, [0x11u8])] {
        let spki = session.generate_key_pair(spec, &id, "sign test").unwrap();
        assert_eq!(session.public_key_spki(&id).unwrap(), spki);
        assert_eq!(session.key_scheme(&id).unwrap(), spec.scheme());
        let msg = "签名测试 message".as_bytes();
        let sig = session.sign(&id, msg).unwrap();
        let dir = set.dir();
        write_pem(&dir.join("pub.pem"), "PUBLIC KEY", &spki);
        std::fs::write(dir.join("msg"), msg).unwrap();
        std::fs::write(dir.join("sig"), &sig).unwrap();
        let out = run(Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(dir.join("pub.pem"))
            .arg("-signature")
            .arg(dir.join("sig"))
            .arg(dir.join("msg")));
        assert!(out.contains("Verified OK"), "{spec:?}: {out}");
        // A CSR signed on the key passes openssl's own check.
        let org = OrgSubject {
            organization: "示例".into(),
            credit_code: "91350100M000100Y43".into(),
        };
        let csr = keyward_pki::csr::build_csr(&org, &session.signer(&id).unwrap()).unwrap();
        write_pem(&dir.join("req.pem"), "CERTIFICATE REQUEST", &csr);
        let out = Command::new("openssl")
            .args(["req", "-verify", "-noout", "-in"])
            .arg(dir.join("req.pem"))
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && all.contains("verify OK"), "{all}");
    }
    let keys = session.keys().unwrap();
    assert_eq!(keys.len(), 2);
    session.delete_key_pair(&[0x10]).unwrap();
    assert_eq!(session.keys().unwrap().len(), 1);
    assert!(matches!(
        session.sign(&[0x10], b"x"),
        Err(TokenError::ObjectNotFound(_))
    ));
    assert!(matches!(
        session.public_key_spki(&[0x99]),
        Err(TokenError::ObjectNotFound(_))
    ));
}

#[test]
fn pin_change_and_so_reset_work_and_wrong_pins_are_reported() {
    let (_set, module, _) = build(&[KeyState::Blank]);
    let token = module.find(None).unwrap();
    let session = module.session(&token).unwrap();
    let policy = PinPolicy::recommended();

    let e = session
        .login(&pin("Wrong#0000"), FinalTry::Refuse)
        .unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::PinIncorrect {
                role: PinRole::User,
                ..
            }
        ),
        "{e}"
    );

    // The policy stops a weak PIN before the key sees it.
    let e = session
        .change_pin(&pin(USER_PIN), &pin("weak"), &policy, FinalTry::Refuse)
        .unwrap_err();
    let TokenError::PinPolicy(rules) = e else {
        panic!("{e}")
    };
    assert!(rules.contains(&PinRule::TooShort { min: 8 }));
    // The key's own maximum (SoftHSM: 255) narrows even a permissive policy.
    let loose = PinPolicy {
        min_len: 1,
        max_len: None,
        require_upper: false,
        require_lower: false,
        require_digit: false,
        require_special: false,
    };
    let e = session
        .change_pin(
            &pin(USER_PIN),
            &pin(&"a".repeat(300)),
            &loose,
            FinalTry::Refuse,
        )
        .unwrap_err();
    assert!(
        matches!(e, TokenError::PinPolicy(ref r) if r == &[PinRule::TooLong { max: 255 }]),
        "{e}"
    );

    session
        .change_pin(
            &pin(USER_PIN),
            &pin("Changed#2026"),
            &policy,
            FinalTry::Refuse,
        )
        .unwrap();
    assert!(matches!(
        session.login(&pin(USER_PIN), FinalTry::Refuse),
        Err(TokenError::PinIncorrect { .. })
    ));
    session
        .login(&pin("Changed#2026"), FinalTry::Refuse)
        .unwrap();
    session.logout().unwrap();

    // The security officer sets a new user PIN.
    let e = session
        .login_so(&pin("WrongSo#000"), FinalTry::Refuse)
        .unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::PinIncorrect {
                role: PinRole::So,
                ..
            }
        ),
        "{e}"
    );
    session.login_so(&pin(SO_PIN), FinalTry::Refuse).unwrap();
    assert!(matches!(
        session.init_pin(&pin("short"), &policy),
        Err(TokenError::PinPolicy(_))
    ));
    session.init_pin(&pin("Reset#2026ok"), &policy).unwrap();
    session.logout().unwrap();
    session
        .login(&pin("Reset#2026ok"), FinalTry::Refuse)
        .unwrap();
}

#[test]
fn data_objects_are_read_replaced_and_deleted() {
    let (_set, module, _) = build(&[KeyState::WithData]);
    let session = module.session(&module.find(None).unwrap()).unwrap();
    assert_eq!(
        session
            .read_data(DATA_APPLICATION, DATA_LABEL)
            .unwrap()
            .as_deref(),
        Some("示例数据".as_bytes())
    );
    session.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    session
        .write_data(DATA_APPLICATION, DATA_LABEL, b"second", false)
        .unwrap();
    assert_eq!(
        session
            .read_data(DATA_APPLICATION, DATA_LABEL)
            .unwrap()
            .as_deref(),
        Some(&b"second"[..])
    );
    session
        .write_data("keyward", "private", b"secret", true)
        .unwrap();
    assert_eq!(
        session.read_data("keyward", "private").unwrap().as_deref(),
        Some(&b"secret"[..])
    );
    assert!(session.delete_data(DATA_APPLICATION, DATA_LABEL).unwrap());
    assert!(!session.delete_data(DATA_APPLICATION, DATA_LABEL).unwrap());
    assert_eq!(
        session.read_data(DATA_APPLICATION, DATA_LABEL).unwrap(),
        None
    );
}

#[test]
fn a_missing_or_broken_module_names_the_file_and_the_reason() {
    let e = Module::open(Path::new("/nonexistent/libnothing.so")).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/libnothing.so")
            && e.to_string().contains("no such file"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake-pkcs11.so");
    std::fs::write(&fake, b"this is not a shared object").unwrap();
    let e = Module::open(&fake).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, TokenError::ModuleLoad { .. }) && msg.contains("libfake-pkcs11.so"),
        "{msg}"
    );
    assert!(msg.contains("cannot load it as a PKCS#11 module"), "{msg}");
}
