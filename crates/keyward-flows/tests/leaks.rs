//! The PIN-leak check: every workflow runs with logging at trace level — Keyward's own, the
//! CA's and the simulator's — and afterwards no user PIN, SO PIN or transport PIN may be
//! found in the logs, the journal, the CA's data folder (its database holds them only
//! encrypted) or the simulator's state.
#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{PIN, World, handler, pin};
use keyward_flows::activate::{ActivateInput, activate};
use keyward_flows::{renew, unlock};
use keyward_token::{FinalTry, KeySpec};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p.display().to_string(), bytes));
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_pin_of_any_kind_reaches_a_log_a_journal_or_a_database() {
    // SAFETY: first thing in this test's own process (nextest), before any thread starts.
    unsafe { std::env::set_var("KEYWARD_SIM_LOG", "trace") };
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();

    let w = World::new(1, KeySpec::EcP256);
    let t = &w.tokens[0];
    let admin = &w.admin;

    // The transport PIN, learned the way the client learns it, to look for it afterwards.
    let sent = w.env.ca.send_activation_code(&t.serial).unwrap();
    let code = w.sms_code(&t.serial);
    let transport = w
        .env
        .ca
        .redeem_activation_code(&t.serial, &code, sent.ticket.as_ref().unwrap())
        .unwrap()
        .transport_pin
        .expose()
        .to_owned();
    w.server.clock().advance(time::Duration::minutes(2));
    keyward_flows::activate::send_code(&w.env, &t.serial).unwrap();
    let code = w.sms_code(&t.serial);
    activate(
        &w.env,
        t,
        &ActivateInput {
            code: Some(code),
            new_pin: pin(PIN),
        },
        None,
    )
    .unwrap();

    let changed = "Changed#2026pin";
    keyward_flows::pin::change_pin(&w.env, t, &pin(PIN), &pin(changed), FinalTry::Refuse).unwrap();
    let _ = keyward_flows::pin::change_pin(
        &w.env,
        t,
        &pin("Wrong#PIN0001"),
        &pin("Never#2026pin"),
        FinalTry::Refuse,
    );

    let unlocked = "Unlocked#2026pin";
    w.advance_days(1);
    unlock::apply(&w.env, &t.serial, &handler()).unwrap();
    let code = w.sms_code(&t.serial);
    unlock::finish(&w.env, t, Some(&code), &pin(unlocked), None).unwrap();

    w.advance_days(300);
    renew::apply(
        &w.env,
        t,
        &pin(unlocked),
        FinalTry::Refuse,
        1,
        common::invoice(),
    )
    .unwrap();
    renew::pay_sandbox(&w.env, &t.serial).unwrap();
    renew::install(&w.env, t, &pin(unlocked), FinalTry::Refuse, None).unwrap();

    // The SO PINs: the one the unlock rotated to is the one the CA releases next.
    w.advance_days(1);
    let b = unlock::apply(&w.env, &t.serial, &handler()).unwrap();
    let code = w.sms_code(&t.serial);
    let secret = w
        .env
        .journal
        .load::<unlock::UnlockJournal>(keyward_flows::FlowKind::Unlock, &t.serial)
        .unwrap()
        .unwrap()
        .secret;
    let auth = admin
        .unlock_authorisation(&t.serial, &b.id, &secret, &code)
        .unwrap();
    let so_now = auth.so_pin.expose().to_owned();
    let so_next = auth.new_so_pin.expose().to_owned();

    let secrets = [
        ("user PIN", PIN.to_owned()),
        ("changed PIN", changed.to_owned()),
        ("wrong PIN", "Wrong#PIN0001".to_owned()),
        ("unlock PIN", unlocked.to_owned()),
        ("transport PIN", transport),
        ("SO PIN", so_now),
        ("next SO PIN", so_next),
        ("factory SO PIN", softhsm_fixtures::SO_PIN.to_owned()),
    ];
    // The check can see a secret where there is one: a canary logged on purpose is found.
    tracing::info!(canary = "Canary#2026pin", "canary");
    let log = logs.0.lock().unwrap().clone();
    assert!(contains(&log, "Canary#2026pin") && contains(&log, &t.serial));
    let mut places = vec![("trace log".to_owned(), log)];
    files_under(w.env.journal.dir(), &mut places);
    files_under(w.server.data_dir(), &mut places);
    files_under(&w.fixtures.sim_state(), &mut places);
    for f in ["keyward-sim.log"] {
        if let Ok(bytes) = std::fs::read(w.fixtures.dir().join(f)) {
            places.push((f.to_owned(), bytes));
        }
    }
    assert!(places[0].1.len() > 10_000, "the trace log captured the run");
    assert!(
        places.iter().any(|(p, _)| p.ends_with("keyward-sim.log")),
        "the simulator logged"
    );
    for (what, secret) in &secrets {
        for (place, bytes) in &places {
            assert!(!contains(bytes, secret), "the {what} is in {place}");
        }
    }
}
