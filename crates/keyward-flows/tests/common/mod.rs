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

/// How the proxy cuts the connection it is told to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Closed at once: the request never reaches the CA.
    Refuse,
    /// The request reaches the CA, which acts on it; its answer is thrown away.
    LoseAnswer,
}

/// A TCP proxy between the client and the CA that can cut one connection (the client opens
/// one per request in these tests).
pub struct Proxy {
    pub url: String,
    connections: Arc<AtomicU64>,
    cut_at: Arc<AtomicU64>,
    lose: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(rt: &tokio::runtime::Runtime, upstream: std::net::SocketAddr) -> Proxy {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicU64::new(0));
        let cut_at = Arc::new(AtomicU64::new(0));
        let lose = Arc::new(AtomicBool::new(false));
        let (c, at, l) = (connections.clone(), cut_at.clone(), lose.clone());
        rt.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                let cut = at.load(Ordering::SeqCst) == n;
                let lose = l.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if cut && !lose {
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    if cut {
                        let (mut ri, _wi) = inbound.split();
                        let (mut ro, mut wo) = outbound.split();
                        let mut first = [0u8; 1];
                        tokio::select! {
                            _ = tokio::io::copy(&mut ri, &mut wo) => {}
                            _ = tokio::io::AsyncReadExt::read(&mut ro, &mut first) => {}
                        }
                    } else {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy {
            url,
            connections,
            cut_at,
            lose,
        }
    }

    /// Requests through the proxy so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Cuts the `n`-th connection from now (1: the next one).
    pub fn cut(&self, n: u64, how: Cut) {
        self.lose.store(how == Cut::LoseAnswer, Ordering::SeqCst);
        self.cut_at.store(self.connections() + n, Ordering::SeqCst);
    }

    pub fn clear(&self) {
        self.cut_at.store(0, Ordering::SeqCst);
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

    /// The same, with the client reaching the CA (plain HTTP) through a [`Proxy`] and a new
    /// connection for every request.
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
        let mut config = Config::new(dirs.path().join("ca"));
        config.plain_http = proxied;
        let server = runtime.block_on(Server::start(config)).unwrap();
        let proxy = proxied.then(|| Proxy::start(&runtime, server.addr()));
        let client_config = match &proxy {
            Some(p) => ClientConfig {
                fresh_connections: true,
                ..ClientConfig::new(p.url.clone(), None)
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
            .filter(|m| m.key_serial.as_deref() == Some(serial))
            .max_by_key(|m| m.created_at)
            .expect("an SMS for the key");
        let after = msg.text.split("验证码").nth(1).expect("a code in the SMS");
        after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
    }

    /// Activates key `t` with [`PIN`] using the code the station's SMS carried.
    pub fn activate(&self, t: &TokenRef) {
        let code = self.sms_code(&t.serial);
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
