//! The fault matrix: for each workflow, the key is pulled out at its first PKCS#11 call,
//! then at its second, and so on to its last. After each interruption the key is plugged
//! back in and the workflow resumed; it must complete, and the key must still log in, sign,
//! and hold a certificate that matches its key. Every call but the last few (closing the
//! session after the work is done) must have interrupted the workflow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::checks::{holds_a_usable_pair, key_works};
use common::{PIN, World, handler, pin};
use keyward_ca_api::{BusinessState, ErrorCode, KeyState as CaKeyState};
use keyward_flows::activate::{ActivateInput, activate};
use keyward_flows::{FlowError, renew, unlock};
use keyward_sim::control::{self, Effect, Fault};
use keyward_token::{FinalTry, KeySpec, TokenRef};

/// How many PKCS#11 calls `run` makes.
fn count_calls(w: &World, run: impl FnOnce()) -> u64 {
    let state = w.fixtures.sim_state();
    control::clear_faults(&state).unwrap();
    let id = control::arm_fault(
        &state,
        Fault {
            function: "*",
            at_call: u64::MAX,
            effect: Effect::RemoveToken,
        },
    )
    .unwrap();
    run();
    let calls = control::status(&state)
        .unwrap()
        .faults
        .iter()
        .find(|f| f.id == id)
        .unwrap()
        .calls;
    control::clear_faults(&state).unwrap();
    calls
}

/// Pulls the key at call `n` of whatever runs next.
fn pull_at(w: &World, n: u64) {
    control::arm_fault(
        w.fixtures.sim_state(),
        Fault {
            function: "*",
            at_call: n,
            effect: Effect::RemoveToken,
        },
    )
    .unwrap();
}

fn plug_back(w: &World, t: &TokenRef) {
    control::clear_faults(w.fixtures.sim_state()).unwrap();
    control::insert(w.fixtures.sim_state(), &t.serial).unwrap();
}

fn interrupted(e: &FlowError) -> bool {
    matches!(e, FlowError::Token(t) if t.is_key_removed())
}

/// A fresh code for `serial`, waiting out the CA's resend cool-down on its clock.
fn fresh_activation_code(w: &World, serial: &str) -> String {
    w.server.clock().advance(time::Duration::minutes(2));
    keyward_flows::activate::send_code(&w.env, serial).unwrap();
    w.sms_code(serial)
}

#[test]
fn activation_survives_the_key_pulled_at_every_call() {
    // One key to measure, then one per call (a process loads the module once, so every key
    // is made up front).
    const KEYS: usize = 48;
    let w = World::new(KEYS, KeySpec::EcP256);
    let probe = &w.tokens[0];
    let calls = count_calls(&w, || {
        let code = w.activation_code(probe);
        activate(
            &w.env,
            probe,
            &ActivateInput {
                code: Some(code),
                new_pin: pin(PIN),
            },
            None,
        )
        .unwrap();
    });
    assert!(calls > 5 && (calls as usize) < KEYS, "{calls}");
    let mut pulled = 0;
    for (n, t) in (1..=calls).zip(w.tokens.iter().skip(1)) {
        let code = w.activation_code(t);
        pull_at(&w, n);
        let first = activate(
            &w.env,
            t,
            &ActivateInput {
                code: Some(code.clone()),
                new_pin: pin(PIN),
            },
            None,
        );
        plug_back(&w, t);
        if let Err(e) = &first {
            pulled += 1;
            assert!(interrupted(e), "call {n}: {e}");
            // Resume: the same code if it was not spent, a fresh one if it was.
            let again = activate(
                &w.env,
                t,
                &ActivateInput {
                    code: Some(code),
                    new_pin: pin(PIN),
                },
                None,
            );
            match again {
                Ok(_) => {}
                // The code was spent before the pull: a fresh one is asked for.
                Err(FlowError::CodeNotRequested) => {
                    let code = fresh_activation_code(&w, &t.serial);
                    activate(
                        &w.env,
                        t,
                        &ActivateInput {
                            code: Some(code),
                            new_pin: pin(PIN),
                        },
                        None,
                    )
                    .unwrap_or_else(|e| panic!("call {n}: resume failed: {e}"));
                }
                Err(FlowError::Ca(c))
                    if matches!(
                        c.api_code(),
                        Some(ErrorCode::CodeInvalid | ErrorCode::CodeExpired)
                    ) =>
                {
                    let code = fresh_activation_code(&w, &t.serial);
                    activate(
                        &w.env,
                        t,
                        &ActivateInput {
                            code: Some(code),
                            new_pin: pin(PIN),
                        },
                        None,
                    )
                    .unwrap_or_else(|e| panic!("call {n}: resume failed: {e}"));
                }
                Err(e) => panic!("call {n}: resume failed: {e}"),
            }
        }
        assert_eq!(w.key_status(t, PIN).state, CaKeyState::Active, "call {n}");
        key_works(&w, t, PIN);
    }
    assert!(pulled + 2 >= calls, "{pulled} of {calls} calls interrupted");
}

#[test]
fn renewal_install_survives_the_key_pulled_at_every_call() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    let apply_and_pay = || {
        renew::apply(&w.env, t, &pin(PIN), FinalTry::Refuse, 1, common::invoice()).unwrap();
        renew::pay_sandbox(&w.env, &t.serial).unwrap();
    };
    w.advance_days(300);
    apply_and_pay();
    let calls = count_calls(&w, || {
        renew::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None).unwrap();
    });
    assert!(calls > 10, "{calls}");
    let mut pulled = 0;
    for n in 1..=calls {
        w.enter_renewal_window(t);
        apply_and_pay();
        let before = renew::eligibility(&w.env, t).unwrap().not_after;
        pull_at(&w, n);
        let first = renew::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None);
        plug_back(&w, t);
        if let Err(e) = &first {
            pulled += 1;
            assert!(interrupted(e), "call {n}: {e}");
            // At every instant the key holds a usable certificate with its key.
            let s = w.module.session(t).unwrap();
            s.login(&pin(PIN), FinalTry::Refuse).unwrap();
            assert!(holds_a_usable_pair(&w, &s), "call {n}: no usable pair");
            s.logout().unwrap();
            renew::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None)
                .unwrap_or_else(|e| panic!("call {n}: resume failed: {e}"));
        }
        let after = renew::eligibility(&w.env, t).unwrap().not_after;
        assert_eq!(after.year() - before.year(), 1, "call {n}");
        key_works(&w, t, PIN);
    }
    assert!(pulled + 2 >= calls, "{pulled} of {calls} calls interrupted");
}

#[test]
fn unlock_survives_the_key_pulled_at_every_call() {
    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    let start = |w: &World| {
        w.advance_days(1);
        let b = unlock::apply(&w.env, &t.serial, &handler()).unwrap();
        assert_eq!(b.state, BusinessState::Approved);
        w.sms_code(&t.serial)
    };
    let code = start(&w);
    let calls = count_calls(&w, || {
        unlock::finish(&w.env, t, Some(&code), &pin("Probe#2026ok"), None).unwrap();
    });
    assert!(calls > 5, "{calls}");
    let mut pulled = 0;
    for n in 1..=calls {
        let new_pin = format!("Unlock#{n:04}ok");
        let code = start(&w);
        pull_at(&w, n);
        let first = unlock::finish(&w.env, t, Some(&code), &pin(&new_pin), None);
        plug_back(&w, t);
        if let Err(e) = &first {
            pulled += 1;
            assert!(interrupted(e), "call {n}: {e}");
            let again = unlock::finish(&w.env, t, Some(&code), &pin(&new_pin), None);
            match again {
                Ok(_) => {}
                // The code was spent before the pull: a fresh one is asked for.
                Err(FlowError::CodeNotRequested) => {
                    let code = fresh_activation_code(&w, &t.serial);
                    activate(
                        &w.env,
                        t,
                        &ActivateInput {
                            code: Some(code),
                            new_pin: pin(PIN),
                        },
                        None,
                    )
                    .unwrap_or_else(|e| panic!("call {n}: resume failed: {e}"));
                }
                Err(FlowError::Ca(c))
                    if matches!(
                        c.api_code(),
                        Some(ErrorCode::CodeInvalid | ErrorCode::CodeExpired)
                    ) =>
                {
                    w.server.clock().advance(time::Duration::minutes(2));
                    unlock::send_code(&w.env, &t.serial).unwrap();
                    let code = w.sms_code(&t.serial);
                    unlock::finish(&w.env, t, Some(&code), &pin(&new_pin), None)
                        .unwrap_or_else(|e| panic!("call {n}: resume failed: {e}"));
                }
                Err(e) => panic!("call {n}: resume failed: {e}"),
            }
        }
        key_works(&w, t, &new_pin);
    }
    assert!(pulled + 2 >= calls, "{pulled} of {calls} calls interrupted");
}
