//! The login guard against kryoptic, a PKCS#11 token written by others that counts PIN
//! failures and locks at ten by itself: the client is proven against flags it did not set.
#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

mod common;

use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use keyward_pki::{Pin, PinPolicy};
use keyward_token::{FinalTry, KeySpec, Module, PinRole, PinState, TokenError, TokenSession};

const SO: &str = "KryopticSo#1";
const USER: &str = "Kryoptic#2026";

fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

/// A fresh kryoptic token with SO and user PIN set, opened through Keyward.
fn token() -> (tempfile::TempDir, Arc<Module>, TokenSession) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kryoptic.conf");
    std::fs::write(
        &conf,
        format!(
            "[[slots]]\nslot = 1\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
            dir.path().join("token.sql").display()
        ),
    )
    .unwrap();
    // SAFETY: first thing in this test's own process (nextest), before any thread reads it.
    unsafe { std::env::set_var("KRYOPTIC_CONF", &conf) };
    let path = common::built_module("libkryoptic_module.so", "kryoptic-module");
    {
        // Provision with bare cryptoki, as an issuing station would.
        let raw = Pkcs11::new(&path).unwrap();
        raw.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .unwrap();
        let slot = raw.get_all_slots().unwrap()[0];
        raw.init_token(slot, &AuthPin::new(SO.into()), "kryoptic-key")
            .unwrap();
        let s = raw.open_rw_session(slot).unwrap();
        s.login(UserType::So, Some(&AuthPin::new(SO.into())))
            .unwrap();
        s.init_pin(&AuthPin::new(USER.into())).unwrap();
        s.logout().unwrap();
        drop(s);
        raw.finalize().unwrap();
    }
    let module = Module::open(&path).unwrap();
    let session = module.session(&module.find(None).unwrap()).unwrap();
    (dir, module, session)
}

#[test]
fn the_guard_stops_at_the_final_try_and_locked_is_distinct() {
    let (_dir, _module, s) = token();
    assert_eq!(s.pin_status().unwrap().user, PinState::Ok);
    let mut states = Vec::new();
    // Nine wrong PINs: each is tried exactly once and reported as wrong.
    for _ in 0..9 {
        let e = s.login(&pin("Wrong#00000"), FinalTry::Refuse).unwrap_err();
        let TokenError::PinIncorrect {
            role: PinRole::User,
            status,
        } = e
        else {
            panic!("{e}")
        };
        states.push(status.user);
    }
    // kryoptic raises COUNT_LOW only for the last three tries (the standard says after any
    // failure, which is what keyward-sim does); the client reads whichever it is given.
    assert!(
        states[..6]
            .iter()
            .all(|s| matches!(s, PinState::Ok | PinState::CountLow)),
        "{states:?}"
    );
    assert_eq!(
        states[6..8],
        [PinState::CountLow, PinState::CountLow],
        "{states:?}"
    );
    assert_eq!(
        states[8],
        PinState::FinalTry,
        "the ninth failure leaves one try: {states:?}"
    );
    // At the final try the guard refuses without confirmation, and spends nothing:
    // even the right PIN is not sent.
    for attempt in [pin("Wrong#00000"), pin(USER)] {
        let e = s.login(&attempt, FinalTry::Refuse).unwrap_err();
        assert!(
            matches!(
                e,
                TokenError::FinalTryUnconfirmed {
                    role: PinRole::User
                }
            ),
            "{e}"
        );
        assert_eq!(s.pin_status().unwrap().user, PinState::FinalTry);
    }
    // Confirmed and wrong: the tenth failure locks the key.
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
    assert_eq!(s.pin_status().unwrap().user, PinState::Locked);
    // Locked is its own answer, whatever the PIN, confirmed or not.
    for confirm in [FinalTry::Refuse, FinalTry::Confirmed] {
        let e = s.login(&pin(USER), confirm).unwrap_err();
        assert!(
            matches!(
                e,
                TokenError::PinLocked {
                    role: PinRole::User
                }
            ),
            "{e}"
        );
    }
    // A PIN change is guarded the same way.
    let e = s
        .change_pin(
            &pin(USER),
            &pin("Another#2026"),
            &PinPolicy::recommended(),
            FinalTry::Confirmed,
        )
        .unwrap_err();
    assert!(matches!(e, TokenError::PinLocked { .. }), "{e}");
    // The security officer unlocks it with a new user PIN.
    s.login_so(&pin(SO), FinalTry::Refuse).unwrap();
    s.init_pin(&pin("Unlocked#2026"), &PinPolicy::recommended())
        .unwrap();
    s.logout().unwrap();
    // kryoptic keeps showing the lock flags until the next successful login; the guard
    // knows this process has just reset the PIN, so it lets the key itself decide.
    assert_eq!(s.pin_status().unwrap().user, PinState::Locked);
    s.login(&pin("Unlocked#2026"), FinalTry::Refuse).unwrap();
    s.logout().unwrap();
    assert_eq!(s.pin_status().unwrap().user, PinState::Ok);
}

#[test]
fn a_confirmed_final_try_with_the_right_pin_logs_in_and_clears_the_count() {
    let (_dir, _module, s) = token();
    for _ in 0..9 {
        assert!(s.login(&pin("Wrong#00000"), FinalTry::Refuse).is_err());
    }
    assert_eq!(s.pin_status().unwrap().user, PinState::FinalTry);
    s.login(&pin(USER), FinalTry::Confirmed).unwrap();
    s.logout().unwrap();
    assert_eq!(s.pin_status().unwrap().user, PinState::Ok);
}

#[test]
fn a_policy_rejection_spends_no_try() {
    let (_dir, _module, s) = token();
    for weak in ["short", "alllowercase1!", "NoDigits!!", "NoSpecial123"] {
        let e = s
            .change_pin(
                &pin(USER),
                &pin(weak),
                &PinPolicy::recommended(),
                FinalTry::Refuse,
            )
            .unwrap_err();
        assert!(matches!(e, TokenError::PinPolicy(_)), "{weak}: {e}");
    }
    assert_eq!(
        s.pin_status().unwrap().user,
        PinState::Ok,
        "no PIN reached the key"
    );
    s.change_pin(
        &pin(USER),
        &pin("Better#2026"),
        &PinPolicy::recommended(),
        FinalTry::Refuse,
    )
    .unwrap();
    s.login(&pin("Better#2026"), FinalTry::Refuse).unwrap();
    // The token layer works the same on this second implementation.
    let spki = s.generate_key_pair(KeySpec::EcP256, &[7], "k").unwrap();
    assert!(!spki.is_empty());
    assert!(!s.sign(&[7], b"hello").unwrap().is_empty());
}
