//! The sample procurement portal (keyward-sample-portal) in this process over HTTPS on a
//! loopback port, trusting the fixture keys' CA, on a clock a test can move; and an HTTPS
//! client of its API that keeps its session cookie, as a browser would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use keyward_sample_portal::{PortalConfig, Running};
use serde_json::Value;

pub const PORTAL_HOST: &str = "portal.test";
pub const HOSTILE_HOST: &str = "evil.test";
pub const HOSTILE: &str = "https://evil.test";

/// The built SDK the portal serves (`cargo xtask test` builds it first).
pub fn sdk_dist() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sdk/dist");
    assert!(
        dir.join("index.js").exists(),
        "{} is missing: build the SDK first (cargo xtask test does; or npm run build in sdk/)",
        dir.display()
    );
    dir
}

/// A running portal and the knob of its clock.
pub struct PortalWorld {
    pub running: Running,
    /// Seconds added to the real time.
    pub offset: Arc<AtomicI64>,
}

impl PortalWorld {
    /// Starts the portal on `runtime` for origin `https://portal.test`, accepting
    /// certificates under `roots_pem`/`intermediates_pem`, its pages pointed at `bridge_url`.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        roots_pem: &str,
        intermediates_pem: &str,
        bridge_url: &str,
    ) -> PortalWorld {
        let offset = Arc::new(AtomicI64::new(0));
        let o = Arc::clone(&offset);
        let config = PortalConfig {
            origin: format!("https://{PORTAL_HOST}"),
            hostile_hosts: vec![HOSTILE_HOST.to_owned()],
            listen: "127.0.0.1:0".parse().unwrap(),
            roots_pem: roots_pem.to_owned(),
            intermediates_pem: intermediates_pem.to_owned(),
            bridge_url: bridge_url.to_owned(),
            sdk_dir: sdk_dist(),
            clock: Arc::new(move || {
                time::OffsetDateTime::now_utc() + time::Duration::seconds(o.load(Ordering::SeqCst))
            }),
        };
        let running = runtime
            .block_on(keyward_sample_portal::start(config))
            .unwrap();
        PortalWorld { running, offset }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Moves the portal's clock forward.
    pub fn advance_seconds(&self, s: i64) {
        self.offset.fetch_add(s, Ordering::SeqCst);
    }

    /// A fresh client: a browser with no cookie yet.
    pub fn client(&self) -> Api {
        let root = reqwest::Certificate::from_pem(self.running.tls.root_pem.as_bytes()).unwrap();
        let http = reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root)
            .resolve(PORTAL_HOST, self.addr())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Api {
            http,
            base: format!("https://{PORTAL_HOST}:{}", self.addr().port()),
            cookie: None,
        }
    }
}

/// The portal's API as one browser session uses it.
pub struct Api {
    http: reqwest::blocking::Client,
    base: String,
    cookie: Option<String>,
}

impl Api {
    /// POSTs `body` to `path`: the status and the JSON answer; a new session cookie is kept.
    pub fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().unwrap();
        if let Some(set) = resp.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = Some(pair);
        }
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    pub fn get(&mut self, path: &str) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// A fresh nonce for this session.
    pub fn challenge(&mut self) -> String {
        let (status, v) = self.post("/api/challenge", serde_json::json!({}));
        assert_eq!(status, 200, "{v}");
        v["nonce"].as_str().unwrap().to_owned()
    }

    /// A new account, logged in with its password.
    pub fn register_and_login(&mut self, account: &str, password: &str) {
        let body = serde_json::json!({"account": account, "password": password});
        let (s, v) = self.post("/api/accounts", body.clone());
        assert_eq!(s, 201, "{v}");
        let (s, v) = self.post("/api/login/password", body);
        assert_eq!(s, 200, "{v}");
    }
}

/// The `rule` (or else the `code`) of a refusal.
pub fn rule(v: &Value) -> String {
    v["rule"]
        .as_str()
        .or_else(|| v["code"].as_str())
        .unwrap_or("?")
        .to_owned()
}
