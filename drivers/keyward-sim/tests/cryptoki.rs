//! The simulator seen through cryptoki, the way Keyward's client sees it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use keyward_sim::control::{self, Effect, Fault};

fn flags(p: &cryptoki::context::Pkcs11, slot: cryptoki::slot::Slot) -> (bool, bool, bool) {
    let t = p.get_token_info(slot).expect("C_GetTokenInfo");
    (
        t.user_pin_count_low(),
        t.user_pin_final_try(),
        t.user_pin_locked(),
    )
}

fn so_flags(p: &cryptoki::context::Pkcs11, slot: cryptoki::slot::Slot) -> (bool, bool, bool) {
    let t = p.get_token_info(slot).expect("C_GetTokenInfo");
    (
        t.so_pin_count_low(),
        t.so_pin_final_try(),
        t.so_pin_locked(),
    )
}

/// An EC P-256 key pair on the token; returns the private key.
fn ec_key(session: &Session) -> ObjectHandle {
    let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::EcParams(p256),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sign(true),
                Attribute::Label(b"k".to_vec()),
            ],
        )
        .expect("generate key pair");
    private
}

fn sign(session: &Session, key: ObjectHandle) -> Result<Vec<u8>, cryptoki::error::Error> {
    session.sign(&Mechanism::Ecdsa, key, &[7u8; 32])
}

#[test]
fn user_pin_locks_after_exactly_ten_wrong_tries() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    assert_eq!(flags(&p, slot), (false, false, false));
    assert_eq!(pin_tries(&sim.lib, slot), Ok((10, 10)));
    let session = p.open_ro_session(slot).expect("session");
    for attempt in 1..=10u64 {
        let got = rv(session.login(UserType::User, Some(&pin(WRONG_PIN))));
        assert_eq!(got, RvError::PinIncorrect, "attempt {attempt}");
        let left = 10 - attempt;
        assert_eq!(
            pin_tries(&sim.lib, slot),
            Ok((left, 10)),
            "attempt {attempt}"
        );
        assert_eq!(
            flags(&p, slot),
            (true, left == 1, left == 0),
            "flags after attempt {attempt}"
        );
    }
    // Locked: even the right PIN is refused, and SoftHSM never sees it.
    assert_eq!(
        rv(session.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinLocked
    );
    assert_eq!(
        rv(session.login(UserType::User, Some(&pin(WRONG_PIN)))),
        RvError::PinLocked
    );
    assert_eq!(pin_tries(&sim.lib, slot), Ok((0, 10)));
    let t = control::tries(&sim.state, "T").expect("tries");
    assert_eq!((t.user_left, t.user_max, t.so_left), (0, 10, 10));
    // The SO is not affected.
    assert_eq!(so_flags(&p, slot), (false, false, false));
    let log = sim.log();
    assert!(
        !log.contains(USER_PIN) && !log.contains(WRONG_PIN),
        "a PIN leaked into the log"
    );
}

#[test]
fn right_pin_resets_the_counter() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_ro_session(slot).expect("session");
    for _ in 0..9 {
        let _ = session.login(UserType::User, Some(&pin(WRONG_PIN)));
    }
    assert_eq!(flags(&p, slot), (true, true, false));
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("the right PIN on the final try");
    assert_eq!(flags(&p, slot), (false, false, false));
    assert_eq!(pin_tries(&sim.lib, slot), Ok((10, 10)));
}

#[test]
fn so_unlocks_the_user_pin_with_init_pin() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    {
        let session = p.open_ro_session(slot).expect("session");
        for _ in 0..10 {
            let _ = session.login(UserType::User, Some(&pin(WRONG_PIN)));
        }
    }
    assert_eq!(flags(&p, slot), (true, false, true));
    {
        let so = p.open_rw_session(slot).expect("session");
        so.login(UserType::So, Some(&pin(SO_PIN)))
            .expect("SO login");
        so.init_pin(&pin("654321")).expect("C_InitPIN");
        so.logout().expect("logout");
    }
    assert_eq!(flags(&p, slot), (false, false, false));
    assert_eq!(pin_tries(&sim.lib, slot), Ok((10, 10)));
    let user = p.open_ro_session(slot).expect("session");
    user.login(UserType::User, Some(&pin("654321")))
        .expect("the new PIN works");
}

#[test]
fn so_pin_has_its_own_counter() {
    let sim = Sim::with_config("so_pin_tries = 3\n");
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_rw_session(slot).expect("session");
    assert_eq!(
        rv(session.login(UserType::So, Some(&pin(WRONG_PIN)))),
        RvError::PinIncorrect
    );
    assert_eq!(so_flags(&p, slot), (true, false, false));
    assert_eq!(flags(&p, slot), (false, false, false));
    let _ = session.login(UserType::So, Some(&pin(WRONG_PIN)));
    assert_eq!(so_flags(&p, slot), (true, true, false));
    assert_eq!(pin_tries(&sim.lib, slot), Ok((10, 1)));
    let _ = session.login(UserType::So, Some(&pin(WRONG_PIN)));
    assert_eq!(so_flags(&p, slot), (true, false, true));
    assert_eq!(
        rv(session.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::PinLocked
    );
    // C_InitToken checks the SO PIN too.
    drop(session);
    assert_eq!(
        rv(p.init_token(slot, &pin(SO_PIN), "T")),
        RvError::PinLocked
    );
    // The user PIN still works.
    let user = p.open_ro_session(slot).expect("session");
    user.login(UserType::User, Some(&pin(USER_PIN)))
        .expect("user login");
}

#[test]
fn wrong_old_pin_in_set_pin_costs_a_try() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_rw_session(slot).expect("session");
    assert_eq!(
        rv(session.set_pin(&pin(WRONG_PIN), &pin("111111"))),
        RvError::PinIncorrect
    );
    assert_eq!(pin_tries(&sim.lib, slot), Ok((9, 10)));
    session
        .set_pin(&pin(USER_PIN), &pin("111111"))
        .expect("C_SetPIN with the right old PIN");
    assert_eq!(pin_tries(&sim.lib, slot), Ok((10, 10)));
    session
        .login(UserType::User, Some(&pin("111111")))
        .expect("new PIN");
}

#[test]
fn counters_persist_across_processes() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_ro_session(slot).expect("session");
    for _ in 0..3 {
        let _ = session.login(UserType::User, Some(&pin(WRONG_PIN)));
    }
    // Another process reads the persisted counter.
    let out = sim.control(&["tries", "T", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let tries: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(tries["user_left"], 7);
    assert_eq!(tries["user_max"], 10);
    // Another process spends a try; this process sees it.
    let out = sim.pkcs11_tool(&[
        "--token-label",
        "T",
        "--login",
        "--pin",
        WRONG_PIN,
        "--list-objects",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CKR_PIN_INCORRECT"),
        "{out:?}"
    );
    assert_eq!(pin_tries(&sim.lib, slot), Ok((6, 10)));
    assert_eq!(flags(&p, slot), (true, false, false));
}

#[test]
fn identity_and_tries_overrides_per_token() {
    let sim = Sim::with_config(
        "[[token]]\nmatch = \"T\"\nmanufacturer = \"NETCA\"\nmodel = \"UKey 3000\"\nserial = \"NC0001\"\nuser_pin_tries = 3\n",
    );
    sim.add_token("T");
    sim.add_token("U");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let info = p.get_token_info(slot).expect("token info");
    assert_eq!(info.manufacturer_id(), "NETCA");
    assert_eq!(info.model(), "UKey 3000");
    assert_eq!(info.serial_number(), "NC0001");
    let other = p.get_token_info(slot_of(&p, "U")).expect("token info");
    assert_eq!(other.manufacturer_id(), "SoftHSM project");
    assert_eq!(pin_tries(&sim.lib, slot), Ok((3, 10)));
    let session = p.open_ro_session(slot).expect("session");
    for _ in 0..3 {
        let _ = session.login(UserType::User, Some(&pin(WRONG_PIN)));
    }
    assert_eq!(flags(&p, slot), (true, false, true));
    // Control API: by overridden serial and by label.
    assert_eq!(
        control::tries(&sim.state, "NC0001")
            .expect("tries")
            .user_left,
        0
    );
    assert_eq!(control::tries(&sim.state, "T").expect("tries").user_left, 0);
    assert_eq!(
        control::tries(&sim.state, "U").expect("tries").user_left,
        10
    );
}

#[test]
fn pulled_token_closes_sessions_and_comes_back() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_rw_session(slot).expect("session");
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login");
    let key = ec_key(&session);
    sign(&session, key).expect("sign while present");

    control::remove(&sim.state, "T").expect("remove");
    assert_eq!(rv(sign(&session, key)), RvError::DeviceRemoved);
    assert_eq!(rv(session.find_objects(&[])), RvError::DeviceRemoved);
    assert!(!p.get_slots_with_token().expect("slot list").contains(&slot));
    assert!(p.get_all_slots().expect("all slots").contains(&slot));
    let slot_info = p.get_slot_info(slot).expect("slot info");
    assert!(!slot_info.token_present());
    assert!(slot_info.removable_device());
    assert_eq!(rv(p.get_token_info(slot)), RvError::TokenNotPresent);
    assert_eq!(rv(p.open_ro_session(slot)), RvError::TokenNotPresent);
    assert_eq!(
        pin_tries(&sim.lib, slot),
        Err(cryptoki_sys::CKR_TOKEN_NOT_PRESENT)
    );
    let status = control::status(&sim.state).expect("status");
    assert!(!status.tokens[0].present);

    control::insert(&sim.state, "T").expect("insert");
    assert_eq!(slot_of(&p, "T"), slot);
    assert!(p.get_slot_info(slot).expect("slot info").token_present());
    // The old session stays gone; a fresh one works, with a fresh login.
    assert_eq!(rv(sign(&session, key)), RvError::DeviceRemoved);
    let fresh = p.open_rw_session(slot).expect("fresh session");
    fresh
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login again (the old login went with the key)");
    let keys = fresh
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .expect("find");
    assert_eq!(keys.len(), 1);
    sign(&fresh, keys[0]).expect("sign after re-insert");
    drop(session);
}

#[test]
fn remove_and_insert_between_calls_still_kills_old_sessions() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_ro_session(slot).expect("session");
    control::remove(&sim.state, "T").expect("remove");
    control::insert(&sim.state, "T").expect("insert");
    assert_eq!(rv(session.get_session_info()), RvError::DeviceRemoved);
    let fresh = p.open_ro_session(slot).expect("fresh session");
    fresh.get_session_info().expect("fresh session works");
}

#[test]
fn wait_for_slot_event_blocks_until_insert() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    assert_eq!(p.get_slot_event().expect("non-blocking"), None);
    control::remove(&sim.state, "T").expect("remove");
    assert_eq!(p.get_slot_event().expect("non-blocking"), Some(slot));
    assert_eq!(p.get_slot_event().expect("non-blocking"), None);

    let waiter = {
        let p = p.clone();
        std::thread::spawn(move || p.wait_for_slot_event())
    };
    std::thread::sleep(Duration::from_millis(150));
    assert!(!waiter.is_finished(), "returned without an event");
    // How soon the event follows the insert is measured by the hot-plug bench, not here.
    control::insert(&sim.state, "T").expect("insert");
    let got = waiter
        .join()
        .expect("waiter thread")
        .expect("C_WaitForSlotEvent");
    assert_eq!(got, slot);
    assert!(p.get_slots_with_token().expect("slots").contains(&slot));
}

#[test]
fn finalize_wakes_a_blocked_waiter() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let entered = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (p, entered) = (p.clone(), entered.clone());
        std::thread::spawn(move || {
            entered.store(true, Ordering::SeqCst);
            p.wait_for_slot_event()
        })
    };
    while !entered.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    // Blocked in the call, with no event to return: only C_Finalize can end it.
    assert!(!waiter.is_finished(), "returned before C_Finalize");
    p.finalize().expect("C_Finalize");
    assert_eq!(
        rv(waiter.join().expect("waiter thread")),
        RvError::CryptokiNotInitialized
    );
}

#[test]
fn survives_finalize_and_initialize_cycles() {
    let sim = Sim::new();
    sim.add_token("T");
    for _ in 0..3 {
        let p = sim.pkcs11();
        let slot = slot_of(&p, "T");
        let s = p.open_ro_session(slot).expect("session");
        let _ = s.login(UserType::User, Some(&pin(WRONG_PIN)));
        drop(s);
        p.finalize().expect("C_Finalize");
    }
    assert_eq!(control::tries(&sim.state, "T").expect("tries").user_left, 7);
}

#[test]
fn a_token_created_after_loading_appears_on_insert() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    assert_eq!(p.get_slots_with_token().expect("slots").len(), 2); // T + SoftHSM's free slot
    sim.add_token("NEW");
    control::insert(&sim.state, "NEW").expect("insert");
    let slot = slot_of(&p, "NEW");
    let s = p.open_ro_session(slot).expect("session");
    s.login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login on the new token");
}

#[test]
fn fault_returns_a_code_at_the_nth_call_once() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_rw_session(slot).expect("session");
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login");
    let key = ec_key(&session);
    // cryptoki's sign() calls C_Sign twice: once for the length, once to sign.
    control::arm_fault(
        &sim.state,
        Fault {
            function: "C_Sign",
            at_call: 3,
            effect: Effect::Return(cryptoki_sys::CKR_DEVICE_ERROR),
        },
    )
    .expect("arm");
    sign(&session, key).expect("calls 1 and 2 pass");
    assert_eq!(rv(sign(&session, key)), RvError::DeviceError);
    // The failed operation was ended underneath, as on a real key: the same
    // session can sign again (no CKR_OPERATION_ACTIVE), and the fault fired once.
    let third = sign(&session, key);
    assert!(third.is_ok(), "{third:?}\n{}", sim.log());
    let status = control::status(&sim.state).expect("status");
    assert!(status.faults[0].fired);
    assert_eq!(status.faults[0].calls, 3);
}

#[test]
fn fault_pulls_the_token_at_the_nth_call() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_rw_session(slot).expect("session");
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login");
    control::arm_fault(
        &sim.state,
        Fault {
            function: "C_CreateObject",
            at_call: 1,
            effect: Effect::RemoveToken,
        },
    )
    .expect("arm");
    let data = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(b"journal".to_vec()),
        Attribute::Value(b"x".to_vec()),
    ];
    assert_eq!(rv(session.create_object(&data)), RvError::DeviceRemoved);
    assert!(!p.get_slots_with_token().expect("slots").contains(&slot));
    assert_eq!(rv(session.find_objects(&[])), RvError::DeviceRemoved);
    let status = control::status(&sim.state).expect("status");
    assert!(!status.tokens[0].present);

    control::insert(&sim.state, "T").expect("insert");
    let fresh = p.open_rw_session(slot).expect("fresh session");
    fresh
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login");
    // The write never reached the token.
    let found = fresh
        .find_objects(&[Attribute::Label(b"journal".to_vec())])
        .expect("find");
    assert!(found.is_empty());
    fresh.create_object(&data).expect("the fault fired once");
}

#[test]
fn fault_on_a_slot_function_and_through_the_command() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let out = sim.control(&[
        "fault",
        "C_GetTokenInfo",
        "--at-call",
        "1",
        "--return",
        "CKR_FUNCTION_FAILED",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(rv(p.get_token_info(slot)), RvError::FunctionFailed);
    p.get_token_info(slot).expect("fired once");
    let out = sim.control(&["clear-faults"]);
    assert!(out.status.success());
    let out = sim.control(&["fault", "C_OpenSession", "--remove-token"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(rv(p.open_ro_session(slot)), RvError::TokenNotPresent);
    let out = sim.control(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["tokens"][0]["present"], false);
    assert!(sim.control(&["insert", "T"]).status.success());
    p.open_ro_session(slot).expect("present again");
}

#[test]
fn missing_or_broken_configuration_fails_initialize_cleanly() {
    let sim = Sim::new();
    let p = cryptoki::context::Pkcs11::new(&sim.lib).expect("load");
    let init = || {
        p.initialize(cryptoki::context::CInitializeArgs::new(
            cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
        ))
    };
    assert_eq!(
        pin_tries(
            &sim.lib,
            cryptoki::slot::Slot::try_from(0u64).expect("slot")
        ),
        Err(cryptoki_sys::CKR_CRYPTOKI_NOT_INITIALIZED)
    );
    // SAFETY: single-threaded test process.
    unsafe { std::env::remove_var("KEYWARD_SIM_CONF") };
    assert_eq!(rv(init()), RvError::GeneralError);
    std::fs::write(&sim.conf, "module = 3\n").expect("write");
    // SAFETY: as above.
    unsafe { std::env::set_var("KEYWARD_SIM_CONF", &sim.conf) };
    assert_eq!(rv(init()), RvError::GeneralError);
    std::fs::write(
        &sim.conf,
        format!(
            "module = \"/nonexistent/libnothing.so\"\nstate_dir = \"{}\"\n",
            sim.state.display()
        ),
    )
    .expect("write");
    assert_eq!(rv(init()), RvError::GeneralError);
    // The simulator as its own module underneath would recurse forever.
    std::fs::write(
        &sim.conf,
        format!(
            "module = \"{}\"\nstate_dir = \"{}\"\n",
            sim.lib.display(),
            sim.state.display()
        ),
    )
    .expect("write");
    assert_eq!(rv(init()), RvError::GeneralError);
    // A state directory that cannot be created.
    let blocker = sim.dir.path().join("a-file");
    std::fs::write(&blocker, "").expect("write");
    std::fs::write(
        &sim.conf,
        format!(
            "module = \"{SOFTHSM}\"\nstate_dir = \"{}\"\n",
            blocker.join("state").display()
        ),
    )
    .expect("write");
    assert_eq!(rv(init()), RvError::GeneralError);
    // The host process is fine, and a good configuration works afterwards.
    std::fs::write(
        &sim.conf,
        format!(
            "module = \"{SOFTHSM}\"\nstate_dir = \"{}\"\n",
            sim.state.display()
        ),
    )
    .expect("write");
    init().expect("C_Initialize with a good configuration");
}

#[test]
fn threads_share_the_module_and_the_counters() {
    let sim = Sim::new();
    sim.add_token("T");
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let admin = p.open_rw_session(slot).expect("session");
    admin
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login");
    let key = ec_key(&admin);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let session = p.open_ro_session(slot).expect("session");
                for _ in 0..25 {
                    sign(&session, key).expect("sign from a thread");
                }
            });
        }
    });
    admin.logout().expect("logout");
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let session = p.open_ro_session(slot).expect("session");
                for _ in 0..2 {
                    assert_eq!(
                        rv(session.login(UserType::User, Some(&pin(WRONG_PIN)))),
                        RvError::PinIncorrect
                    );
                }
            });
        }
    });
    // Six wrong PINs from three threads: six tries spent, none lost.
    assert_eq!(pin_tries(&sim.lib, slot), Ok((4, 10)));
    // Eight more race for the last four tries: exactly four reach the token.
    let answers = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let session = p.open_ro_session(slot).expect("session");
                for _ in 0..2 {
                    let r = rv(session.login(UserType::User, Some(&pin(WRONG_PIN))));
                    answers.lock().expect("answers").push(r);
                }
            });
        }
    });
    let answers = answers.into_inner().expect("answers");
    let wrong = answers
        .iter()
        .filter(|r| **r == RvError::PinIncorrect)
        .count();
    let locked = answers.iter().filter(|r| **r == RvError::PinLocked).count();
    assert_eq!((wrong, locked), (4, 4), "{answers:?}");
    assert_eq!(pin_tries(&sim.lib, slot), Ok((0, 10)));
}

#[test]
fn faults_count_calls_across_processes() {
    let sim = Sim::new();
    sim.add_token("T");
    control::arm_fault(
        &sim.state,
        Fault {
            function: "C_Login",
            at_call: 2,
            effect: Effect::Return(cryptoki_sys::CKR_DEVICE_ERROR),
        },
    )
    .expect("arm");
    // Call 1 happens in another process.
    let out = sim.pkcs11_tool(&[
        "--token-label",
        "T",
        "--login",
        "--pin",
        USER_PIN,
        "--list-objects",
    ]);
    assert!(out.status.success(), "{out:?}");
    // Call 2 happens here.
    let p = sim.pkcs11();
    let slot = slot_of(&p, "T");
    let session = p.open_ro_session(slot).expect("session");
    assert_eq!(
        rv(session.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::DeviceError
    );
    // An injected code is not a wrong PIN: no try is spent.
    assert_eq!(pin_tries(&sim.lib, slot), Ok((10, 10)));
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("fired once");
    let status = control::status(&sim.state).expect("status");
    assert_eq!((status.faults[0].calls, status.faults[0].fired), (2, true));
}

#[test]
fn init_token_through_the_simulator_starts_fresh_counters() {
    let sim = Sim::new();
    let p = sim.pkcs11();
    let free = p.get_all_slots().expect("slots")[0];
    p.init_token(free, &pin(SO_PIN), "NEW")
        .expect("C_InitToken");
    let slot = slot_of(&p, "NEW");
    {
        let so = p.open_rw_session(slot).expect("session");
        so.login(UserType::So, Some(&pin(SO_PIN)))
            .expect("SO login");
        so.init_pin(&pin(USER_PIN)).expect("C_InitPIN");
    }
    {
        let user = p.open_ro_session(slot).expect("session");
        let _ = user.login(UserType::User, Some(&pin(WRONG_PIN)));
        let _ = user.login(UserType::User, Some(&pin(WRONG_PIN)));
    }
    assert_eq!(pin_tries(&sim.lib, slot), Ok((8, 10)));
    // A wrong SO PIN in C_InitToken costs an SO try.
    assert_eq!(
        rv(p.init_token(slot, &pin(WRONG_PIN), "NEW")),
        RvError::PinIncorrect
    );
    assert_eq!(pin_tries(&sim.lib, slot), Ok((8, 9)));
    // Re-initialising the token starts both counters afresh.
    p.init_token(slot, &pin(SO_PIN), "NEW")
        .expect("C_InitToken again");
    let slot = slot_of(&p, "NEW");
    assert_eq!(pin_tries(&sim.lib, slot), Ok((10, 10)));
}

#[test]
fn a_fault_can_refuse_c_initialize_once() {
    let sim = Sim::new();
    sim.add_token("T");
    control::arm_fault(
        &sim.state,
        Fault {
            function: "C_Initialize",
            at_call: 1,
            effect: Effect::Return(cryptoki_sys::CKR_DEVICE_ERROR),
        },
    )
    .expect("arm");
    let p = cryptoki::context::Pkcs11::new(&sim.lib).expect("load");
    let init = || {
        p.initialize(cryptoki::context::CInitializeArgs::new(
            cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
        ))
    };
    assert_eq!(rv(init()), RvError::DeviceError);
    init().expect("fired once");
    slot_of(&p, "T");
    assert!(
        control::arm_fault(
            &sim.state,
            Fault {
                function: "C_Finalize",
                at_call: 1,
                effect: Effect::RemoveToken
            }
        )
        .is_err()
    );
    assert!(
        control::arm_fault(
            &sim.state,
            Fault {
                function: "C_Sign",
                at_call: 0,
                effect: Effect::RemoveToken
            }
        )
        .is_err()
    );
}
