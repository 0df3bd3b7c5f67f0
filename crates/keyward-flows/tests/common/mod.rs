//! A world for workflow tests: simulated keys, the CA service on a loopback port (TLS, its
//! root pinned), the client and a journal.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keyward_ca::{Config, Server, ServerHandle};
use keyward_ca_api::{Handler, Organisation, OrganisationKind, Secret};
use keyward_ca_client::{CaClient, ClientConfig};
use keyward_flows::station::{StationOrder, issue};
use keyward_flows::{Env, Journal};
use keyward_pki::Pin;
use keyward_token::{KeySpec, Module, TokenRef};
use softhsm_fixtures::{FixtureSet, KeyState, SO_PIN};

pub const PIN: &str = "Operator#2026";

pub use softhsm_fixtures::sim_module;

pub mod checks;
mod proxy;
pub use proxy::{Cut, Proxy};

pub fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

pub fn handler() -> Handler {
    Handler {
        name: "张经办".into(),
        id_number: softhsm_fixtures::resident_id("44010119900101123"),
        phone: "13800138000".into(),
    }
}

pub fn organisation(n: u32) -> Organisation {
    Organisation {
        name: format!("广州市流程测试第{n}有限公司"),
        uscc: keyward_pki::uscc::with_check_character(&format!("91440101MA5D{n:05}")).unwrap(),
        kind: OrganisationKind::Enterprise,
        legal_address: "广州市天河区示例路 1 号".into(),
    }
}

/// Invoice details for organisation 1's renewals.
pub fn invoice() -> keyward_ca_api::InvoiceDetails {
    keyward_ca_api::InvoiceDetails {
        title: organisation(1).name,
        tax_id: organisation(1).uscc,
        email: "finance@example.com".into(),
    }
}

pub struct World {
    pub fixtures: FixtureSet,
    pub module: Arc<Module>,
    pub runtime: tokio::runtime::Runtime,
    pub server: ServerHandle,
    pub env: Env,
    pub admin: CaClient,
    pub tokens: Vec<TokenRef>,
    pub proxy: Option<Proxy>,
    _dirs: tempfile::TempDir,
}

impl World {
    /// `keys` blank keys, the CA, and every key issued for its own organisation.
    pub fn new(keys: usize, spec: KeySpec) -> World {
        World::build(keys, spec, false)
    }

    /// The same, with the client reaching the CA (TLS, its root pinned) through a [`Proxy`]
    /// and a new connection for every request.
    pub fn behind_proxy(keys: usize, spec: KeySpec) -> World {
        World::build(keys, spec, true)
    }

    fn build(keys: usize, spec: KeySpec, proxied: bool) -> World {
        let states = vec![KeyState::Blank; keys];
        let (fixtures, module, _) = FixtureSet::build(&states, &sim_module()).unwrap();
        let dirs = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config::sandbox(dirs.path().join("ca"));
        // The fault matrices renew one key a hundred times, a year each: the CA must
        // outlive them, or the client rightly refuses certificates of an expired CA.
        config.issuing_ca_years = 200;
        let server = runtime.block_on(Server::start(config)).unwrap();
        let proxy = proxied.then(|| Proxy::start(&runtime, server.addr()));
        let client_config = match &proxy {
            Some(p) => ClientConfig {
                fresh_connections: true,
                ..ClientConfig::new(p.url.clone(), Some(server.root_pem().to_owned()))
            },
            None => ClientConfig::new(server.base_url(), Some(server.root_pem().to_owned())),
        };
        let client = CaClient::new(&client_config).unwrap();
        let admin = client.clone().with_admin(Secret::new(server.admin_token()));
        let mut env = Env::new(
            module.clone(),
            client,
            Journal::new(dirs.path().join("journal")),
        );
        let clock = server.clock().clone();
        env.clock = Arc::new(move || clock.now());
        let mut tokens = module.tokens().unwrap();
        tokens.sort_by(|a, b| a.label.cmp(&b.label));
        for (i, t) in tokens.iter().enumerate() {
            let order = StationOrder {
                organisation: organisation(i as u32 + 1),
                handler: handler(),
                years: 1,
                spec,
            };
            issue(&admin, &module, t, &pin(SO_PIN), &order, None).unwrap();
        }
        World {
            fixtures,
            module,
            runtime,
            server,
            env,
            admin,
            tokens,
            proxy,
            _dirs: dirs,
        }
    }

    /// The newest SMS code sent about `serial`.
    pub fn sms_code(&self, serial: &str) -> String {
        let outbox = self.admin.sms_outbox().unwrap();
        let msg = outbox
            .messages
            .iter()
            .filter(|m| m.key_serial.as_deref() == Some(serial) && m.text.contains("编号"))
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
            .expect("an SMS with a code for the key");
        let after = msg.text.split("验证码").nth(1).expect("a code in the SMS");
        after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
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
            .login(&pin(pin_text), keyward_token::FinalTry::Refuse)
            .unwrap();
        let id = keyward_flows::identity::identity(&session, self.env.now()).unwrap();
        let out = f(&keyward_flows::identity::KeySigner::new(
            &session, &id.key_id,
        ));
        session.logout().unwrap();
        out
    }

    /// Where key `t` stands at the CA, read with a signature by the key under `pin`.
    pub fn key_status(&self, t: &TokenRef, pin_text: &str) -> keyward_ca_api::KeyStatus {
        self.as_key(t, pin_text, |k| self.env.ca.key_status(k).unwrap())
    }

    /// Business `id` of key `t` as the CA sees it, read with the key's signature under [`PIN`].
    pub fn business(&self, t: &TokenRef, id: &str) -> keyward_ca_api::Business {
        self.as_key(t, PIN, |k| {
            self.env
                .ca
                .business(id, keyward_ca_client::BusinessAuth::Key(k))
                .unwrap()
        })
    }

    /// The seal the CA holds for key `t`, read with the key's signature under [`PIN`].
    pub fn seal_document(&self, t: &TokenRef) -> keyward_ca_api::SealDocument {
        self.as_key(t, PIN, |k| self.env.ca.seal(k).unwrap())
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

    /// Moves the CA's clock to 30 days before key `t`'s certificate expires.
    pub fn enter_renewal_window(&self, t: &TokenRef) {
        let expires = keyward_flows::renew::eligibility(&self.env, t)
            .unwrap()
            .not_after;
        self.advance_days((expires - self.env.now()).whole_days() - 30);
    }

    pub fn advance_days(&self, days: i64) {
        self.server.clock().advance(time::Duration::days(days));
    }
}
