//! The token layer against keyward-sim's behaviour of a real key: exact tries and lockout,
//! a key pulled out mid-session, and injected PKCS#11 faults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use keyward_pki::{Pin, PinPolicy};
use keyward_sim::control::{self, Effect, Fault};
use keyward_token::{FinalTry, KeySpec, PinRole, PinState, TokenError};
use softhsm_fixtures::{FixtureSet, KEY_ID, KeyState, SO_PIN, USER_PIN};

fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

// cryptoki-sys return codes the faults inject.
const CKR_DEVICE_ERROR: u64 = 0x30;

#[test]
fn ten_wrong_pins_lock_the_key_with_exact_tries_and_the_so_unlocks_it() {
    let (set, module, manifest) =
        FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let token = module.find(None).unwrap();
    let s = module.session(&token).unwrap();
    assert_eq!(s.pin_status().unwrap().user_tries_left, Some(10));
    for n in 1..=9u32 {
        let e = s.login(&pin("Wrong#00000"), FinalTry::Refuse).unwrap_err();
        let TokenError::PinIncorrect {
            role: PinRole::User,
            status,
        } = e
        else {
            panic!("{e}")
        };
        assert_eq!(status.user_tries_left, Some(10 - n));
        let expected = if n == 9 {
            PinState::FinalTry
        } else {
            PinState::CountLow
        };
        assert_eq!(status.user, expected, "after {n} failures");
    }
    // The simulator's own counter agrees: the guard never retried.
    assert_eq!(
        control::tries(set.sim_state(), &manifest.tokens[0].serial)
            .unwrap()
            .user_left,
        1
    );
    let e = s.login(&pin(USER_PIN), FinalTry::Refuse).unwrap_err();
    assert!(matches!(e, TokenError::FinalTryUnconfirmed { .. }), "{e}");
    assert_eq!(
        s.pin_status().unwrap().user_tries_left,
        Some(1),
        "refusing spent nothing"
    );
    let e = s
        .login(&pin("Wrong#00000"), FinalTry::Confirmed)
        .unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::PinLocked {
                role: PinRole::User
            }
        ),
        "{e}"
    );
    let e = s.login(&pin(USER_PIN), FinalTry::Confirmed).unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::PinLocked {
                role: PinRole::User
            }
        ),
        "{e}"
    );
    assert_eq!(s.pin_status().unwrap().user, PinState::Locked);

    s.login_so(&pin(SO_PIN), FinalTry::Refuse).unwrap();
    s.init_pin(&pin("Unlocked#2026"), &PinPolicy::recommended())
        .unwrap();
    s.logout().unwrap();
    let status = s.pin_status().unwrap();
    assert_eq!(
        (status.user, status.user_tries_left),
        (PinState::Ok, Some(10))
    );
    s.login(&pin("Unlocked#2026"), FinalTry::Refuse).unwrap();
    assert!(!s.sign(KEY_ID, b"still signs").unwrap().is_empty());
}

#[test]
fn a_key_pulled_out_mid_session_is_key_removed_and_comes_back_usable() {
    let (set, module, manifest) = FixtureSet::build(
        &[KeyState::IssuedRsa, KeyState::IssuedEc],
        &common::sim_module(),
    )
    .unwrap();
    let (pulled, other) = (&manifest.tokens[0], &manifest.tokens[1]);
    let token = module.find(Some(&pulled.serial)).unwrap();
    let s = module.session(&token).unwrap();
    s.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    assert_eq!(s.certificates().unwrap().len(), 3);

    control::remove(set.sim_state(), &pulled.serial).unwrap();
    let e = s.certificates().unwrap_err();
    assert!(e.is_key_removed(), "{e}");
    assert!(s.sign(KEY_ID, b"x").unwrap_err().is_key_removed());
    assert!(module.session(&token).unwrap_err().is_key_removed());
    let serials: Vec<String> = module
        .tokens()
        .unwrap()
        .into_iter()
        .map(|t| t.serial)
        .collect();
    assert_eq!(
        serials,
        vec![other.serial.clone()],
        "only the other key is listed"
    );
    // The other key is untouched.
    let o = module
        .session(&module.find(Some(&other.serial)).unwrap())
        .unwrap();
    assert_eq!(o.certificates().unwrap().len(), 3);

    control::insert(set.sim_state(), &pulled.serial).unwrap();
    let back = module.find(Some(&pulled.serial)).unwrap();
    let s = module.session(&back).unwrap();
    assert_eq!(
        s.certificates().unwrap().len(),
        3,
        "nothing on the key was lost"
    );
    s.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    assert!(!s.sign(KEY_ID, b"signs again").unwrap().is_empty());
}

#[test]
fn injected_faults_surface_with_function_and_code_and_leave_the_key_usable() {
    let (set, module, _) = FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let token = module.find(None).unwrap();
    let s = module.session(&token).unwrap();
    s.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();

    // cryptoki calls C_Sign twice per signature (length, then value): the third call is the
    // first of the second signature.
    control::arm_fault(
        set.sim_state(),
        Fault {
            function: "C_Sign",
            at_call: 3,
            effect: Effect::Return(CKR_DEVICE_ERROR),
        },
    )
    .unwrap();
    assert!(s.sign(KEY_ID, b"first call passes").is_ok());
    let e = s.sign(KEY_ID, b"second call fails").unwrap_err();
    assert!(
        matches!(&e, TokenError::Pkcs11 { function, rv } if function == "C_Sign" && rv == "CKR_DEVICE_ERROR"),
        "{e}"
    );
    assert!(s.sign(KEY_ID, b"a fault fires once").is_ok());

    // The key pulled out in the middle of generating a key pair: no half pair is left.
    control::arm_fault(
        set.sim_state(),
        Fault {
            function: "C_GenerateKeyPair",
            at_call: 1,
            effect: Effect::RemoveToken,
        },
    )
    .unwrap();
    let e = s
        .generate_key_pair(KeySpec::EcP256, &[0x77], "interrupted")
        .unwrap_err();
    assert!(e.is_key_removed(), "{e}");
    control::insert(set.sim_state(), &token.serial).unwrap();
    let s = module.session(&module.find(None).unwrap()).unwrap();
    s.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    let keys = s.keys().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].id, KEY_ID);
    assert!(!s.sign(KEY_ID, b"usable").unwrap().is_empty());
}

/// The hole: PKCS#11 login state belongs to the application, so with another session of
/// this process logged in, C_Login answers CKR_USER_ALREADY_LOGGED_IN without looking at
/// the PIN, and the guard counted that as a checked PIN. A wrong PIN must be wrong.
#[test]
fn a_login_while_already_logged_in_still_checks_the_pin() {
    let (set, module, manifest) =
        FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let token = module.find(None).unwrap();
    let first = module.session(&token).unwrap();
    first.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    let second = module.session(&token).unwrap();
    let e = second
        .login(&pin("Wrong#00000"), FinalTry::Refuse)
        .unwrap_err();
    assert!(
        matches!(
            e,
            TokenError::PinIncorrect {
                role: PinRole::User,
                ..
            }
        ),
        "a wrong PIN was taken because another session was logged in: {e}"
    );
    // The key counted it: the guard presented the PIN, it did not wave it through.
    assert_eq!(
        control::tries(set.sim_state(), &manifest.tokens[0].serial)
            .unwrap()
            .user_left,
        9
    );
    // The right PIN, with another session logged in, works and signs.
    first.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    second.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
    assert!(!second.sign(KEY_ID, b"mine").unwrap().is_empty());
}

/// The hole: changing the SO PIN called C_SetPIN outside the guard (a locked or final-try
/// SO PIN was presented anyway) and outside the per-key lock.
#[test]
fn the_so_pin_change_goes_through_the_guard() {
    let (set, module, manifest) =
        FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let serial = &manifest.tokens[0].serial;
    let token = module.find(None).unwrap();
    let s = module.session(&token).unwrap();
    s.login_so(&pin(SO_PIN), FinalTry::Refuse).unwrap();
    // Bring the SO counter to its final try with wrong SO PINs, from the SO session itself
    // (C_SetPIN with a wrong old PIN counts as a wrong SO PIN).
    let mut left = control::tries(set.sim_state(), serial).unwrap().so_left;
    while left > 1 {
        let e = s
            .change_so_pin(&pin("Wrong#SO0000"), &pin("Next#SO2026"), FinalTry::Refuse)
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
        left = control::tries(set.sim_state(), serial).unwrap().so_left;
    }
    assert_eq!(left, 1);
    // At the final try the guard refuses without a call: nothing is spent.
    let e = s
        .change_so_pin(&pin("Wrong#SO0000"), &pin("Next#SO2026"), FinalTry::Refuse)
        .unwrap_err();
    assert!(
        matches!(e, TokenError::FinalTryUnconfirmed { role: PinRole::So }),
        "{e}"
    );
    assert_eq!(control::tries(set.sim_state(), serial).unwrap().so_left, 1);
    // Confirmed, with the right SO PIN, the change goes through and the counter resets.
    s.change_so_pin(&pin(SO_PIN), &pin("Next#SO2026"), FinalTry::Confirmed)
        .unwrap();
    s.logout().unwrap();
    s.login_so(&pin("Next#SO2026"), FinalTry::Refuse).unwrap();
    assert_eq!(control::tries(set.sim_state(), serial).unwrap().so_left, 10);
}

/// A digest made elsewhere is signed as it is, under the hash function named, by an RSA and
/// an EC key; OpenSSL verifies each signature over the digest with the key's public key.
#[test]
fn a_prehashed_digest_is_signed_as_openssl_expects_for_each_hash() {
    use keyward_pki::HashAlg;
    let (set, module, _) = FixtureSet::build(
        &[KeyState::IssuedRsa, KeyState::IssuedEc],
        &common::sim_module(),
    )
    .unwrap();
    let dir = set.dir().join("prehashed");
    std::fs::create_dir_all(&dir).unwrap();
    for token in module.tokens().unwrap() {
        let session = module.session(&token).unwrap();
        session.login(&pin(USER_PIN), FinalTry::Refuse).unwrap();
        let spki = dir.join(format!("{}.spki.der", token.serial));
        std::fs::write(&spki, session.public_key_spki(KEY_ID).unwrap()).unwrap();
        for alg in HashAlg::ALL {
            let digest = alg.hash(format!("表单 {} {}", token.serial, alg.name()).as_bytes());
            let (scheme, sig) = session.sign_prehashed(KEY_ID, alg, &digest).unwrap();
            let sig = match scheme {
                keyward_pki::SignatureScheme::EcdsaP256Sha256 => {
                    assert_eq!(sig.len(), 64, "raw r‖s");
                    keyward_pki::csr::ecdsa_raw_to_der(&sig).unwrap()
                }
                keyward_pki::SignatureScheme::RsaPkcs1Sha256 => sig,
            };
            let (d, s) = (dir.join("digest"), dir.join("sig"));
            std::fs::write(&d, &digest).unwrap();
            std::fs::write(&s, &sig).unwrap();
            let md = alg.name().replace('-', "").to_ascii_lowercase();
            let verify = |digest_file: &std::path::Path| {
                std::process::Command::new("openssl")
                    .args(["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey"])
                    .arg(&spki)
                    .arg("-in")
                    .arg(digest_file)
                    .arg("-sigfile")
                    .arg(&s)
                    .args(["-pkeyopt", &format!("digest:{md}")])
                    .output()
                    .unwrap()
            };
            let out = verify(&d);
            assert!(
                out.status.success(),
                "{} {}: {}",
                token.label,
                alg.name(),
                String::from_utf8_lossy(&out.stderr)
            );
            // And OpenSSL is not agreeing to anything: another digest fails.
            let mut other = digest.clone();
            other[0] ^= 1;
            std::fs::write(&d, &other).unwrap();
            assert!(
                !verify(&d).status.success(),
                "{} {}",
                token.label,
                alg.name()
            );
            // A digest of the wrong length never reaches the key.
            assert!(matches!(
                session.sign_prehashed(KEY_ID, alg, &digest[1..]),
                Err(TokenError::Pki(_))
            ));
        }
    }
}

/// The login guard of a session may take its flags from the answer read when the session
/// was opened. PINs presented by another session of this process in between must still be
/// seen: nine wrong PINs leave the final try, and the guard refuses to spend it unasked.
#[test]
fn a_guard_sees_pins_presented_since_its_session_was_opened() {
    let (set, module, manifest) =
        FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let token = module.find(None).unwrap();
    let opened_first = module.session(&token).unwrap();
    let other = module.session(&token).unwrap();
    for _ in 0..9 {
        other
            .login(&pin("Wrong#00000"), FinalTry::Refuse)
            .unwrap_err();
    }
    let e = opened_first
        .login(&pin(USER_PIN), FinalTry::Refuse)
        .unwrap_err();
    assert!(matches!(e, TokenError::FinalTryUnconfirmed { .. }), "{e}");
    assert_eq!(
        control::tries(set.sim_state(), &manifest.tokens[0].serial)
            .unwrap()
            .user_left,
        1,
        "the final try was not spent"
    );
}

/// Another program on the machine (pkcs11-tool, over the same simulated key) spends tries
/// after a session was opened and before its login: once the opening's answer is no longer
/// fresh, the guard asks the key again and refuses the final try.
#[test]
fn a_guard_asks_the_key_again_once_the_opening_answer_is_old() {
    let (set, module, manifest) =
        FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let token = module.find(None).unwrap();
    let s = module.session(&token).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..9 {
        let out = std::process::Command::new("pkcs11-tool")
            .envs(set.env())
            .arg("--module")
            .arg(common::sim_module())
            .args([
                "--token-label",
                &manifest.tokens[0].label,
                "--login",
                "--pin",
            ])
            .arg("Wrong#00000")
            .arg("--list-objects")
            .output()
            .expect("pkcs11-tool runs");
        assert!(!out.status.success(), "a wrong PIN was refused");
    }
    assert_eq!(
        control::tries(set.sim_state(), &manifest.tokens[0].serial)
            .unwrap()
            .user_left,
        1,
        "pkcs11-tool spent nine tries"
    );
    // The opening's answer serves for 200 ms at most.
    if let Some(left) = std::time::Duration::from_millis(250).checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    let e = s.login(&pin(USER_PIN), FinalTry::Refuse).unwrap_err();
    assert!(matches!(e, TokenError::FinalTryUnconfirmed { .. }), "{e}");
}
