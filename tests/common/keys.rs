//! Simulated USB keys: keyward-sim over SoftHSM tokens in a temporary folder, in any of the
//! fixture states, and the CA's issuing station provisioning a blank one.

use std::path::PathBuf;
use std::sync::Arc;

use keyward_ca_api::Organisation;
use keyward_flows::station::{StationOrder, issue as station_issue};
use keyward_flows::{KeySpec, Module, TokenRef};
use softhsm_fixtures::{FixtureSet, KeyState, Manifest, SO_PIN};

use super::{Ca, handler, pin, sim_module};

/// Keys behind the simulator, loaded in this process.
pub struct Keys {
    pub set: FixtureSet,
    pub module: Arc<Module>,
    pub manifest: Manifest,
}

impl Keys {
    /// One key per state (certified by the fixtures' own test CA, not by [`Ca`]).
    pub fn fixtures(states: &[KeyState]) -> Keys {
        let (set, module, manifest) = FixtureSet::build(states, &sim_module()).unwrap();
        Keys {
            set,
            module,
            manifest,
        }
    }

    /// `n` blank keys, for the station to issue.
    pub fn blank(n: usize) -> Keys {
        Keys::fixtures(&vec![KeyState::Blank; n])
    }

    /// The keys plugged in, by label.
    pub fn tokens(&self) -> Vec<TokenRef> {
        let mut tokens = self.module.tokens().unwrap();
        tokens.sort_by(|a, b| a.label.cmp(&b.label));
        tokens
    }

    /// The serial of the key in `state`.
    pub fn serial(&self, state: KeyState) -> String {
        self.manifest
            .tokens
            .iter()
            .find(|t| t.state == state)
            .expect("a key in that state")
            .serial
            .clone()
    }

    /// The simulator's state folder: presence, PIN counters, faults (`keyward_sim::control`).
    pub fn sim_state(&self) -> PathBuf {
        self.set.sim_state()
    }

    /// What another process needs to reach these keys: SoftHSM's and the simulator's
    /// configuration, and the module itself.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let mut env = self.set.env();
        env.push(("KEYWARD_PKCS11_MODULE", sim_module()));
        env
    }
}

/// The CA's issuing station provisions `token` for `organisation` (handler [`handler`]):
/// key pair and CSR on the key, certificate and chain written, transport and SO PINs
/// escrowed. The key then awaits activation.
pub fn issue(
    ca: &Ca,
    module: &Arc<Module>,
    token: &TokenRef,
    organisation: &Organisation,
    spec: KeySpec,
) {
    let order = StationOrder {
        organisation: organisation.clone(),
        handler: handler(),
        years: 1,
        spec,
    };
    station_issue(&ca.admin, module, token, &pin(SO_PIN), &order, None).unwrap();
}
