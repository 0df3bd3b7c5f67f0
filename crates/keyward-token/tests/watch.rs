//! The key watcher against keyward-sim: keys present at the start, pulled out, plugged back
//! in, and a PIN state change, by slot events and by polling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use keyward_pki::Pin;
use keyward_sim::control;
use keyward_token::{FinalTry, PinState, TokenEvent, WatchMode, WatchOptions, Watcher};
use softhsm_fixtures::{FixtureSet, KeyState};

fn next(rx: &mpsc::Receiver<TokenEvent>) -> TokenEvent {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("an event within 5 s")
}

fn watch_a_key_come_and_go(force_polling: bool) {
    let (set, module, manifest) = FixtureSet::build(
        &[KeyState::IssuedEc, KeyState::IssuedRsa],
        &common::sim_module(),
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let options = WatchOptions {
        state_poll: Duration::from_millis(200),
        force_polling,
        ..Default::default()
    };
    let watcher = Watcher::spawn(module.clone(), options, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let expected = if force_polling {
        WatchMode::Polling
    } else {
        WatchMode::SlotEvents
    };
    assert_eq!(watcher.mode(), expected);

    let mut present: Vec<String> = (0..2)
        .map(|_| match next(&rx) {
            TokenEvent::Inserted { token } => token.serial,
            other => panic!("{other:?}"),
        })
        .collect();
    present.sort();
    let mut serials: Vec<String> = manifest.tokens.iter().map(|t| t.serial.clone()).collect();
    serials.sort();
    assert_eq!(present, serials);

    let pulled = &manifest.tokens[0].serial;
    control::remove(set.sim_state(), pulled).unwrap();
    assert_eq!(
        next(&rx),
        TokenEvent::Removed {
            serial: pulled.clone()
        }
    );
    control::insert(set.sim_state(), pulled).unwrap();
    match next(&rx) {
        TokenEvent::Inserted { token } => assert_eq!(&token.serial, pulled),
        other => panic!("{other:?}"),
    }

    // A wrong PIN raises no slot event, but the PIN state change is reported.
    let s = module.session(&module.find(Some(pulled)).unwrap()).unwrap();
    assert!(
        s.login(&Pin::new("Wrong#00000".into()), FinalTry::Refuse)
            .is_err()
    );
    match next(&rx) {
        TokenEvent::Changed { token } => {
            assert_eq!(&token.serial, pulled);
            assert_eq!(token.pin.user, PinState::CountLow);
            assert_eq!(token.pin.user_tries_left, Some(9));
        }
        other => panic!("{other:?}"),
    }
    watcher.stop();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no events after stop"
    );
}

#[test]
fn slot_events_report_insert_remove_and_pin_changes() {
    watch_a_key_come_and_go(false);
}

#[test]
fn polling_reports_the_same() {
    watch_a_key_come_and_go(true);
}
