//! The CA side of the fault matrix: every request a workflow makes to the CA is cut in turn
//! — once before it reaches the CA, once after the CA acted on it but before its answer
//! arrives. The operator then carries on (resume), and the workflow must complete with the
//! key and the CA agreeing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cut, PIN, World, handler, pin};
use keyward_ca_api::{BusinessState, ErrorCode, KeyState as CaKeyState};
use keyward_flows::activate::{ActivateInput, activate};
use keyward_flows::{FlowError, renew, unlock};
use keyward_token::{FinalTry, KeySpec, TokenRef};

const CUTS: [Cut; 2] = [Cut::Refuse, Cut::LoseAnswer];

fn proxy(w: &World) -> &common::Proxy {
    w.proxy.as_ref().unwrap()
}

/// Runs `step` until it succeeds, as an operator would press "continue" again; a code the
/// CA no longer takes is replaced by a fresh one from `new_code`.
fn carry_on<T>(
    what: &str,
    mut step: impl FnMut(Option<String>) -> Result<T, FlowError>,
    mut new_code: impl FnMut() -> String,
) -> T {
    let mut code = None;
    for _ in 0..4 {
        let outcome = step(code.take());
        if let Err(e) = &outcome {
            eprintln!("{what}: {e}");
        }
        match outcome {
            Ok(v) => return v,
            Err(FlowError::Ca(c))
                if c.is_transient()
                    || matches!(c, keyward_ca_client::ClientError::Malformed(_)) => {}
            Err(FlowError::Ca(c))
                if matches!(
                    c.api_code(),
                    Some(
                        ErrorCode::CodeInvalid
                            | ErrorCode::CodeExpired
                            | ErrorCode::CodeAttemptsExhausted
                    )
                ) =>
            {
                code = Some(new_code());
            }
            // The code's ticket was spent (or its answer lost): a fresh code is asked for.
            Err(FlowError::CodeNotRequested) => code = Some(new_code()),
            Err(e) => panic!("{what}: {e}"),
        }
    }
    panic!("{what}: did not complete")
}

fn key_signs(w: &World, t: &TokenRef, p: &str) {
    let s = w.module.session(t).unwrap();
    s.login(&pin(p), FinalTry::Refuse).unwrap();
    let id = keyward_flows::identity::identity(&s, w.env.now()).unwrap();
    assert!(!s.sign(&id.key_id, b"ok").unwrap().is_empty());
}

#[test]
fn activation_completes_whichever_ca_request_is_cut() {
    let w = World::behind_proxy(16, KeySpec::EcP256);
    let probe = &w.tokens[0];
    let code = w.activation_code(probe);
    let before = proxy(&w).connections();
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
    let requests = proxy(&w).connections() - before;
    assert!(
        requests >= 3 && (requests as usize) * 2 < w.tokens.len(),
        "{requests}"
    );
    let mut keys = w.tokens.iter().skip(1);
    for n in 1..=requests {
        for how in CUTS {
            let t = keys.next().unwrap();
            let first_code = w.activation_code(t);
            proxy(&w).cut(n, how);
            let what = format!("request {n} {how:?}");
            carry_on(
                &what,
                |code| {
                    let code = code.unwrap_or_else(|| first_code.clone());
                    activate(
                        &w.env,
                        t,
                        &ActivateInput {
                            code: Some(code),
                            new_pin: pin(PIN),
                        },
                        None,
                    )
                },
                || {
                    w.server.clock().advance(time::Duration::minutes(2));
                    keyward_flows::activate::send_code(&w.env, &t.serial).unwrap();
                    w.sms_code(&t.serial)
                },
            );
            proxy(&w).clear();
            assert_eq!(w.key_status(t, PIN).state, CaKeyState::Active, "{what}");
            key_signs(&w, t, PIN);
        }
    }
}

#[test]
fn renewal_completes_whichever_ca_request_is_cut() {
    let w = World::behind_proxy(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    // The whole renewal, as the operator presses each button (again, after a failure).
    // The whole renewal, as the operator presses each button: after an interruption the
    // client offers to carry on with the installation it has journaled.
    let renew_all = || -> Result<(), FlowError> {
        let installing = renew::pending(&w.env, &t.serial)?
            .is_some_and(|j| !matches!(j.step, renew::RenewStep::Applied));
        if !installing {
            renew::apply(&w.env, t, &pin(PIN), FinalTry::Refuse, 1, common::invoice())?;
            let (_, now) = renew::under_way(&w.env, &t.serial)?.expect("a renewal under way");
            if now.map(|n| n.state) == Some(BusinessState::AwaitingPayment) {
                renew::pay_sandbox(&w.env, &t.serial)?;
            }
        }
        renew::install(&w.env, t, &pin(PIN), FinalTry::Refuse, None)?;
        Ok(())
    };
    w.enter_renewal_window(t);
    let before = proxy(&w).connections();
    renew_all().unwrap();
    let requests = proxy(&w).connections() - before;
    assert!(requests >= 8, "{requests}");
    for n in 1..=requests {
        for how in CUTS {
            w.enter_renewal_window(t);
            let expires = renew::eligibility(&w.env, t).unwrap().not_after;
            proxy(&w).cut(n, how);
            let what = format!("request {n} {how:?}");
            carry_on(&what, |_| renew_all(), || unreachable!());
            proxy(&w).clear();
            assert_eq!(
                renew::eligibility(&w.env, t).unwrap().not_after.year(),
                expires.year() + 1,
                "{what}"
            );
            key_signs(&w, t, PIN);
        }
    }
}

#[test]
fn unlock_completes_whichever_ca_request_is_cut() {
    let w = World::behind_proxy(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
    let fresh_code = || {
        w.server.clock().advance(time::Duration::minutes(2));
        unlock::send_code(&w.env, &t.serial).unwrap();
        w.sms_code(&t.serial)
    };
    // Apply, then finish; after an interruption past the SO PIN rotation the client offers
    // to finish what it has journaled.
    let unlock_all = |code: Option<String>, new_pin: &str| -> Result<(), FlowError> {
        if unlock::pending(&w.env, &t.serial)? == Some(unlock::UnlockStep::Rotated) {
            unlock::finish(&w.env, t, None, &pin(new_pin), None)?;
            return Ok(());
        }
        unlock::apply(&w.env, &t.serial, &handler())?;
        let code = code.unwrap_or_else(|| w.sms_code(&t.serial));
        unlock::finish(&w.env, t, Some(&code), &pin(new_pin), None)?;
        Ok(())
    };
    w.advance_days(1);
    let before = proxy(&w).connections();
    unlock_all(None, "Probe#2026ok").unwrap();
    let requests = proxy(&w).connections() - before;
    assert!(requests >= 4, "{requests}");
    for n in 1..=requests {
        for how in CUTS {
            w.advance_days(1);
            let new_pin = format!("Cut#{n:02}{}ok", if how == Cut::Refuse { "r" } else { "l" });
            proxy(&w).cut(n, how);
            let what = format!("request {n} {how:?}");
            carry_on(&what, |code| unlock_all(code, &new_pin), fresh_code);
            proxy(&w).clear();
            key_signs(&w, t, &new_pin);
        }
    }
}
