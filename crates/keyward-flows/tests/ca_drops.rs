//! The CA side of the fault matrix: every request a workflow makes to the CA is cut in turn
//! — once before it reaches the CA, once after the CA acted on it but before its answer
//! arrives. The operator then carries on (resume), and the workflow must complete with the
//! key and the CA agreeing: the business completed at the CA, the certificate the CA counts as
//! the key's the one on the key. The client talks TLS with the CA's root pinned, through a
//! proxy that counts the cuts it made: each case must have cut exactly one connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::checks::{ca_side, key_works, serial_hex};
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
/// CA no longer takes is replaced by a fresh one from `new_code`. Returns how many times
/// `step` ran.
fn carry_on(
    what: &str,
    mut step: impl FnMut(Option<String>) -> Result<(), FlowError>,
    mut new_code: impl FnMut() -> String,
) -> u32 {
    let mut code = None;
    for attempts in 1..=4 {
        let outcome = step(code.take());
        if let Err(e) = &outcome {
            eprintln!("{what}: {e}");
        }
        match outcome {
            Ok(()) => return attempts,
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

/// Runs one case of the matrix: cuts the `n`-th connection from now the way `how` says, lets
/// `run` carry on to the end, and checks the proxy made exactly that one cut. Returns whether
/// the cut interrupted the workflow (it needed more than one attempt). A cut that did not was
/// absorbed by the client's own retry of an idempotent call: then the workflow used one
/// connection more than the `requests` it makes uncut.
fn one_cut(w: &World, n: u64, how: Cut, requests: u64, run: impl FnOnce(&str) -> u32) -> bool {
    let what = format!("request {n} {how:?}");
    let (cuts, before) = (proxy(w).cuts(), proxy(w).connections());
    proxy(w).cut(n, how);
    let attempts = run(&what);
    proxy(w).clear();
    assert_eq!(proxy(w).cuts() - cuts, 1, "{what}: one connection cut");
    if attempts == 1 {
        assert_eq!(
            proxy(w).connections() - before,
            requests + 1,
            "{what}: completed at once, so the client retried the cut request"
        );
    }
    attempts > 1
}

/// The workflow is done on both sides: the key works with `p`; at the CA the key is active,
/// its newest business of `kind` completed, and the certificate it counts as the key's current
/// one is the organisation certificate on the key.
fn completed(w: &World, t: &TokenRef, kind: &str, p: &str, what: &str) {
    let on_key = key_works(w, t, p);
    let ca = ca_side(w, &t.serial);
    assert_eq!(ca.key_state, "active", "{what}: {ca:?}");
    assert_eq!(ca.newest(kind), Some("completed"), "{what}: {ca:?}");
    assert_eq!(
        ca.current_cert,
        serial_hex(&on_key.serial),
        "{what}: the CA's current certificate is the one on the key"
    );
}

#[test]
fn activation_completes_whichever_ca_request_is_cut() {
    let w = World::behind_proxy(16, KeySpec::EcP256);
    let probe = &w.tokens[0];
    // Counted from after the code is sent and read: those requests come before the workflow.
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
    completed(&w, probe, "issue", PIN, "uncut");
    assert!(
        requests >= 3 && (requests as usize) * 2 < w.tokens.len(),
        "{requests}"
    );
    let mut keys = w.tokens.iter().skip(1);
    let mut interrupted = 0;
    for n in 1..=requests {
        for how in CUTS {
            let t = keys.next().unwrap();
            let first_code = w.activation_code(t);
            let cut_in = one_cut(&w, n, how, requests, |what| {
                carry_on(
                    what,
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
                        .map(drop)
                    },
                    || {
                        w.server.clock().advance(time::Duration::minutes(2));
                        keyward_flows::activate::send_code(&w.env, &t.serial).unwrap();
                        w.sms_code(&t.serial)
                    },
                )
            });
            interrupted += u64::from(cut_in);
            let what = format!("request {n} {how:?}");
            assert_eq!(w.key_status(t, PIN).state, CaKeyState::Active, "{what}");
            completed(&w, t, "issue", PIN, &what);
        }
    }
    eprintln!(
        "{interrupted} of {} cuts interrupted activation",
        requests * 2
    );
}

#[test]
fn renewal_completes_whichever_ca_request_is_cut() {
    let w = World::behind_proxy(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    w.activate(t);
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
    completed(&w, t, "renewal", PIN, "uncut");
    assert!(requests >= 8, "{requests}");
    let mut interrupted = 0;
    for n in 1..=requests {
        for how in CUTS {
            w.enter_renewal_window(t);
            let expires = renew::eligibility(&w.env, t).unwrap().not_after;
            let renewals = ca_side(&w, &t.serial).count("renewal");
            interrupted += u64::from(one_cut(&w, n, how, requests, |what| {
                carry_on(what, |_| renew_all(), || unreachable!())
            }));
            let what = format!("request {n} {how:?}");
            assert_eq!(
                renew::eligibility(&w.env, t).unwrap().not_after.year(),
                expires.year() + 1,
                "{what}"
            );
            assert_eq!(
                ca_side(&w, &t.serial).count("renewal"),
                renewals + 1,
                "{what}: one renewal business"
            );
            completed(&w, t, "renewal", PIN, &what);
        }
    }
    eprintln!("{interrupted} of {} cuts interrupted renewal", requests * 2);
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
    completed(&w, t, "unlock", "Probe#2026ok", "uncut");
    assert!(requests >= 4, "{requests}");
    let mut interrupted = 0;
    for n in 1..=requests {
        for how in CUTS {
            w.advance_days(1);
            let new_pin = format!("Cut#{n:02}{}ok", if how == Cut::Refuse { "r" } else { "l" });
            let unlocks = ca_side(&w, &t.serial).count_in("unlock", "completed");
            interrupted += u64::from(one_cut(&w, n, how, requests, |what| {
                carry_on(what, |code| unlock_all(code, &new_pin), fresh_code)
            }));
            let what = format!("request {n} {how:?}");
            let ca = ca_side(&w, &t.serial);
            assert_eq!(
                ca.count_in("unlock", "completed"),
                unlocks + 1,
                "{what}: one unlock completed"
            );
            // An application whose answer was lost cannot be carried on (its secret never
            // arrived): applying again cancels it. None may be left open.
            assert_eq!(
                ca.count("unlock"),
                ca.count_in("unlock", "completed") + ca.count_in("unlock", "cancelled"),
                "{what}: no unlock left open: {ca:?}"
            );
            completed(&w, t, "unlock", &new_pin, &what);
        }
    }
    eprintln!("{interrupted} of {} cuts interrupted unlock", requests * 2);
}
