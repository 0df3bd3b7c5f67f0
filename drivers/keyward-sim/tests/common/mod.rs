//! Shared set-up for the simulator's tests: a throw-away SoftHSM token
//! directory and simulator configuration per test (each test runs in its own
//! process under nextest, so setting the environment here is safe).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tempfile::TempDir;

pub const SO_PIN: &str = "87654321";
pub const USER_PIN: &str = "123456";
pub const WRONG_PIN: &str = "999999";
pub const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The simulator built alongside this test. A test build leaves the cdylib
/// in `target/<profile>/deps/` next to the test executable (only `cargo
/// build` copies it up to `target/<profile>/`), so the newer of the two wins.
pub fn lib_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [
        deps.join("libkeyward_sim.so"),
        deps.parent()
            .map(|p| p.join("libkeyward_sim.so"))
            .unwrap_or_default(),
    ];
    candidates
        .into_iter()
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max()
        .map(|(_, p)| p)
        .expect("libkeyward_sim.so next to the test executable")
}

/// The `keyward-sim` control command built with the tests.
pub fn sim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keyward-sim"))
}

pub struct Sim {
    pub dir: TempDir,
    pub state: PathBuf,
    pub conf: PathBuf,
    pub lib: PathBuf,
}

impl Sim {
    /// A fresh SoftHSM token directory and simulator configuration, with
    /// `extra` appended to the configuration, and one token labelled `label`.
    pub fn new() -> Self {
        Self::with_config("")
    }

    pub fn with_config(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).expect("token dir");
        let softhsm_conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &softhsm_conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        let state = dir.path().join("sim-state");
        let conf = dir.path().join("keyward-sim.toml");
        std::fs::write(
            &conf,
            format!(
                "module = \"{SOFTHSM}\"\nstate_dir = \"{}\"\nlog_file = \"{}\"\nlog_level = \"debug\"\n{extra}",
                state.display(),
                dir.path().join("keyward-sim.log").display()
            ),
        )
        .expect("sim config");
        // SAFETY: set before any thread is started; each test is its own process.
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", &softhsm_conf);
            std::env::set_var("KEYWARD_SIM_CONF", &conf);
            std::env::remove_var("KEYWARD_SIM_LOG");
        }
        Sim {
            dir,
            state,
            conf,
            lib: lib_path(),
        }
    }

    /// Creates a token directly in SoftHSM (not through the simulator).
    pub fn add_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .output()
            .expect("softhsm2-util");
        assert!(out.status.success(), "softhsm2-util: {out:?}");
    }

    /// The simulator, loaded and initialised through cryptoki.
    pub fn pkcs11(&self) -> Pkcs11 {
        let p = Pkcs11::new(&self.lib).expect("load the simulator");
        p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .expect("C_Initialize");
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("keyward-sim.log")).unwrap_or_default()
    }

    /// Runs `pkcs11-tool --module <sim>` with the given arguments.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&self.lib)
            .args(args)
            .output()
            .expect("pkcs11-tool")
    }

    /// Runs the `keyward-sim` control command on this state directory.
    pub fn control(&self, args: &[&str]) -> Output {
        Command::new(sim_bin())
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .expect("keyward-sim")
    }
}

/// The slot holding the token labelled `label` (present tokens only).
pub fn slot_of(p: &Pkcs11, label: &str) -> Slot {
    p.get_slots_with_token()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| p.get_token_info(*s).is_ok_and(|t| t.label() == label))
        .unwrap_or_else(|| panic!("no token labelled {label}"))
}

pub fn pin(s: &str) -> AuthPin {
    AuthPin::from(s)
}

/// The PKCS#11 return code of a failed call.
pub fn rv<T: std::fmt::Debug>(r: Result<T, Error>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

/// `keyward_sim_pin_tries` looked up in the simulator, as a client does.
pub fn pin_tries(lib: &Path, slot: Slot) -> Result<(u64, u64), u64> {
    type F = unsafe extern "C" fn(u64, *mut u64, *mut u64) -> u64;
    // SAFETY: loading the simulator (already loaded: same handle).
    let l = unsafe { libloading::Library::new(lib) }.expect("dlopen");
    // SAFETY: the symbol has this signature (see the crate docs).
    let f = unsafe { l.get::<F>(b"keyward_sim_pin_tries\0") }.expect("dlsym");
    let (mut u, mut s) = (0u64, 0u64);
    // SAFETY: valid out-pointers.
    let rv = unsafe { f(slot.id(), &mut u, &mut s) };
    if rv == 0 { Ok((u, s)) } else { Err(rv) }
}
