//! Driver profile quirks drive the token layer: a module is matched to its profile when it
//! is opened, and the quirks its profile declares change what Keyward does with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use keyward_sim::control::{self, Effect, Fault};
use keyward_token::discovery::embedded_profiles;
use keyward_token::{DriverProfile, Quirk, TokenEvent, WatchMode, WatchOptions, Watcher};
use softhsm_fixtures::{FixtureSet, KeyState};

const CKR_DEVICE_ERROR: u64 = 0x30;

fn sim_profile_with(quirks: &[Quirk]) -> DriverProfile {
    let mut p = embedded_profiles()
        .unwrap()
        .into_iter()
        .find(|p| p.name == "keyward-sim")
        .unwrap();
    p.quirks = quirks.to_vec();
    p
}

#[test]
fn a_module_is_matched_to_its_profile_when_opened() {
    let (_set, module, _) =
        FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let profile = module.profile().expect("keyward-sim's profile");
    assert_eq!(profile.name, "keyward-sim");
    assert!(!module.has_quirk(Quirk::NoWaitForSlotEvent));
}

/// A slot that says a key is present but cannot describe it: without the quirk the key
/// list fails (as it should on a module that is not known for it); with it the slot is left
/// out and the real key is still listed.
#[test]
fn a_phantom_slot_is_left_out_only_where_the_profile_says_so() {
    let (set, module, manifest) = FixtureSet::build(
        &[KeyState::IssuedEc, KeyState::IssuedRsa],
        &common::sim_module(),
    )
    .unwrap();
    assert_eq!(module.tokens().unwrap().len(), 2);
    let arm = || {
        control::arm_fault(
            set.sim_state(),
            Fault {
                function: "C_GetTokenInfo",
                at_call: 1,
                effect: Effect::Return(CKR_DEVICE_ERROR),
            },
        )
        .unwrap()
    };
    arm();
    let e = module
        .tokens()
        .expect_err("no quirk: the slot's failure is reported");
    assert!(e.to_string().contains("CKR_DEVICE_ERROR"), "{e}");

    module.set_profile(Some(sim_profile_with(&[Quirk::PhantomSlot])));
    arm();
    let listed = module.tokens().expect("phantom slot left out");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(manifest.tokens.iter().any(|t| t.serial == listed[0].serial));
    // The next listing, with no phantom, has both again.
    assert_eq!(module.tokens().unwrap().len(), 2);
}

/// keyward-sim answers C_WaitForSlotEvent, so the watcher would wait on it; a profile that
/// says the module's slot events are not to be trusted makes it poll, and keys are still
/// reported coming and going.
#[test]
fn no_wait_for_slot_event_makes_the_watcher_poll() {
    let (set, module, manifest) =
        FixtureSet::build(&[KeyState::IssuedEc], &common::sim_module()).unwrap();
    let (tx, rx) = mpsc::channel();
    let w = Watcher::spawn(module.clone(), WatchOptions::default(), move |_| {}).unwrap();
    assert_eq!(w.mode(), WatchMode::SlotEvents);
    w.stop();

    module.set_profile(Some(sim_profile_with(&[Quirk::NoWaitForSlotEvent])));
    let w = Watcher::spawn(module.clone(), WatchOptions::default(), move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    assert_eq!(w.mode(), WatchMode::Polling);
    let serial = manifest.tokens[0].serial.clone();
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        TokenEvent::Inserted { token } if token.serial == serial
    ));
    control::remove(set.sim_state(), &serial).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        TokenEvent::Removed { serial }
    );
    w.stop();
}

/// A module file built for another architecture is refused before it is loaded, naming both.
#[test]
fn a_module_for_another_architecture_is_refused_before_loading() {
    let d = tempfile::tempdir().unwrap();
    let sim = std::fs::read(common::sim_module()).unwrap();
    let mut foreign = sim.clone();
    // e_machine of the copy: aarch64 on x86_64, x86_64 elsewhere.
    let other: u16 = if keyward_token::discovery::host_arch() == "x86_64" {
        183
    } else {
        62
    };
    foreign[18..20].copy_from_slice(&other.to_le_bytes());
    let path = d.path().join("libgm3000_pkcs11.so");
    std::fs::write(&path, &foreign).unwrap();
    let e = keyward_token::Module::open(&path).expect_err("refused");
    let text = e.to_string();
    let want_arch = if other == 183 { "aarch64" } else { "x86_64" };
    assert!(
        text.contains(&format!("this driver is for {want_arch}"))
            && text.contains(&format!(
                "this computer is {}",
                keyward_token::discovery::host_arch()
            )),
        "{text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(Path::new(&path).exists());
}
