//! The world the end-to-end tests share, whichever front end a test drives:
//!
//! - [`ca::Ca`]: the reference CA service (keyward-ca) in this process, in sandbox mode,
//!   over TLS on a loopback port under its own root: its address and root as a front end's
//!   settings name them, a staff client, the SMS outbox, the clock.
//! - [`keys::Keys`]: simulated USB keys (keyward-sim over SoftHSM), blank or in any fixture
//!   state, and [`keys::issue`], the CA's issuing station provisioning one of them.
//! - [`World`]: both, every key issued for an organisation of its own, and the workflows'
//!   [`Env`] over them on the CA's clock.
//! - [`cli`]: the `keyward` binary run against keys and a CA.
//! - [`bridge`]: the browser bridge in process, a scripted operator, a WebSocket client.
//! - [`portal`]: the sample procurement portal in process and an HTTPS client of its API.
//! - [`chromium`]: headless Chromium through chromedriver.
//!
//! Tests run under nextest, one per process: building the keys exports SoftHSM's environment
//! into the test process, so build them first thing. Binaries of the workspace (`keyward`,
//! `keyward-ca`, `libkeyward_sim.so`) are taken from the target folder the test runs from;
//! `cargo xtask test` builds them all before any test runs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod bridge;
pub mod ca;
pub mod chromium;
pub mod cli;
pub mod keys;
pub mod portal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_ca_api::{Handler, Organisation, OrganisationKind};
use keyward_flows::{Env, Journal, KeySpec, Module, TokenRef};
use keyward_pki::Pin;

pub use ca::Ca;
pub use keys::Keys;
pub use softhsm_fixtures::sim_module;

/// The PIN the operator sets at activation.
pub const PIN: &str = "Operator#2026";

pub fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

/// The handler of record of every organisation here.
pub fn handler() -> Handler {
    Handler {
        name: "张经办".into(),
        id_number: softhsm_fixtures::resident_id("44010119900101123"),
        phone: "13800138000".into(),
    }
}

/// Organisation `n`, with a valid unified social credit code of its own.
pub fn organisation(n: u32) -> Organisation {
    named_organisation(
        &format!("广州市流程测试第{n}有限公司"),
        &format!("91440101MA5D{n:05}"),
    )
}

/// An organisation called `name`, its credit code from the first 17 characters `uscc17`.
pub fn named_organisation(name: &str, uscc17: &str) -> Organisation {
    Organisation {
        name: name.into(),
        uscc: keyward_pki::uscc::with_check_character(uscc17).unwrap(),
        kind: OrganisationKind::Enterprise,
        legal_address: "广州市天河区示例路 1 号".into(),
    }
}

/// A binary of the workspace, from the target folder this test runs from.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace; cargo xtask test does)",
        path.display()
    );
    path
}

/// Blank keys, the CA, every key issued by the station for its own organisation, and the
/// workflows' environment over them.
pub struct World {
    pub keys: Keys,
    pub module: Arc<Module>,
    pub tokens: Vec<TokenRef>,
    pub env: Env,
    pub ca: Ca,
    _journal: tempfile::TempDir,
}

impl World {
    /// `n` blank keys, the CA, and key `i` issued for [`organisation`]`(i + 1)` with `spec`.
    pub fn new(n: usize, spec: KeySpec) -> World {
        let keys = Keys::blank(n);
        let ca = Ca::start();
        let tokens = keys.tokens();
        for (i, t) in tokens.iter().enumerate() {
            keys::issue(&ca, &keys.module, t, &organisation(i as u32 + 1), spec);
        }
        let journal = tempfile::tempdir().unwrap();
        let mut env = Env::from_settings(
            Arc::clone(&keys.module),
            &ca.settings(),
            Journal::new(journal.path()),
        )
        .unwrap();
        let clock = ca.server.clock().clone();
        env.clock = Arc::new(move || clock.now());
        World {
            module: Arc::clone(&keys.module),
            keys,
            tokens,
            env,
            ca,
            _journal: journal,
        }
    }

    /// The newest SMS code sent about `serial`.
    pub fn sms_code(&self, serial: &str) -> String {
        self.ca.sms_code(serial)
    }

    /// Asks for an activation code for key `t` (its ticket journaled) and reads the code
    /// from the SMS outbox.
    pub fn activation_code(&self, t: &TokenRef) -> String {
        keyward_flows::activate::send_code(&self.env, &t.serial).unwrap();
        self.sms_code(&t.serial)
    }

    /// Runs `f` with a signer over key `t`'s organisation key, logged in under `pin_text`.
    pub fn as_key<T>(
        &self,
        t: &TokenRef,
        pin_text: &str,
        f: impl FnOnce(&keyward_flows::identity::KeySigner<'_>) -> T,
    ) -> T {
        let session = self.module.session(t).unwrap();
        session
            .login(&pin(pin_text), keyward_flows::FinalTry::Refuse)
            .unwrap();
        let id = keyward_flows::identity::identity(&session, self.env.now()).unwrap();
        let out = f(&keyward_flows::identity::KeySigner::new(
            &session, &id.key_id,
        ));
        session.logout().unwrap();
        out
    }

    /// Where key `t` stands at the CA, read with a signature by the key under `pin_text`.
    pub fn key_status(&self, t: &TokenRef, pin_text: &str) -> keyward_ca_api::KeyStatus {
        self.as_key(t, pin_text, |k| self.env.ca.key_status(k).unwrap())
    }

    /// Whether the CA says key `t` awaits activation (its one public read).
    pub fn awaiting_activation(&self, t: &TokenRef) -> bool {
        self.env.ca.standing(&t.serial).unwrap().awaiting_activation
    }

    /// Activates key `t` with [`PIN`], asking for a code first.
    pub fn activate(&self, t: &TokenRef) {
        let code = self.activation_code(t);
        let input = keyward_flows::activate::ActivateInput {
            code: Some(code),
            new_pin: pin(PIN),
        };
        keyward_flows::activate::activate(&self.env, t, &input, None).unwrap();
    }

    pub fn advance_days(&self, days: i64) {
        self.ca.advance_days(days);
    }
}
