//! Helpers shared by the integration tests: a service on a temp dir, requests through the
//! router, software keys that sign like a token would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keyward_ca::{App, Clock, Config};
use keyward_ca_api::auth::{NONCE_HEADER, SIGNATURE_HEADER};
use keyward_ca_api::{body_sha256, request_purpose, signing_input};
use rcgen::{CertificateParams, KeyPair, SigningKey};
use serde_json::{Value, json};
use std::path::Path;
use tower::ServiceExt;

pub mod cluster;

pub const USCC: &str = "91350100M000100Y43";
pub const USCC2: &str = "91440101MA59ABCD1D";
pub const PHONE: &str = "13800138000";

pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub app: App,
    pub clock: Clock,
}

impl TestCa {
    pub async fn new() -> Self {
        Self::with_database(None).await
    }

    /// A service over the given database URL (None: SQLite in the data dir).
    pub async fn with_database(url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::sandbox(dir.path().join("data"));
        config.database_url = url;
        let clock = config.clock.clone();
        let app = App::build(&config).await.unwrap();
        TestCa { dir, app, clock }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("answer is not JSON: {}", String::from_utf8_lossy(&bytes))
            })
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.raw(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        let req = Request::get(path)
            .header(
                "authorization",
                format!("Bearer {}", self.app.admin_token()),
            )
            .body(Body::empty())
            .unwrap();
        self.raw(req).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.raw(req).await
    }

    pub async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.raw(Request::post(path).body(Body::empty()).unwrap())
            .await
    }

    /// An empty POST as if it came from client address `ip` (router-level tests have no
    /// socket; the service reads the peer from this extension).
    pub async fn post_empty_from(&self, ip: [u8; 4], path: &str) -> (StatusCode, Value) {
        let mut req = Request::post(path).body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(keyward_ca::limits::Peer(
                std::net::SocketAddr::from((ip, 40000)),
            )));
        self.raw(req).await
    }

    /// A JSON POST as if it came from client address `ip`.
    pub async fn post_from(&self, ip: [u8; 4], path: &str, body: &Value) -> (StatusCode, Value) {
        let mut req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(keyward_ca::limits::Peer(
                std::net::SocketAddr::from((ip, 40000)),
            )));
        self.raw(req).await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("content-type", "application/json")
            .header(
                "authorization",
                format!("Bearer {}", self.app.admin_token()),
            )
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        self.raw(req).await
    }

    pub async fn nonce(&self, serial: &str) -> String {
        let (s, v) = self
            .post("/v1/nonces", &json!({"key_serial": serial}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["nonce"].as_str().unwrap().to_owned()
    }

    /// A request signed by `key` over a fresh nonce. `body` None sends an empty body.
    pub async fn signed(
        &self,
        key: &KeyPair,
        serial: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let nonce = self.nonce(serial).await;
        self.signed_with_nonce(key, &nonce, path, body).await
    }

    pub async fn signed_with_nonce(
        &self,
        key: &KeyPair,
        nonce: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let ct = body.map(|_| "application/json");
        self.signed_raw(key, nonce, "POST", path, bytes, ct).await
    }

    /// A request of any method, with any body, signed by `key` over `nonce`.
    pub async fn signed_raw(
        &self,
        key: &KeyPair,
        nonce: &str,
        method: &str,
        path: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let input = signing_input(&request_purpose(method, path), nonce, &body_sha256(&bytes));
        let sig = key.sign(&input).unwrap();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(NONCE_HEADER, nonce)
            .header(SIGNATURE_HEADER, hex::encode(sig));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        self.raw(req.body(Body::from(bytes)).unwrap()).await
    }

    /// A GET signed by `key` over a fresh nonce.
    pub async fn signed_get(&self, key: &KeyPair, serial: &str, path: &str) -> (StatusCode, Value) {
        let nonce = self.nonce(serial).await;
        self.signed_raw(key, &nonce, "GET", path, Vec::new(), None)
            .await
    }

    /// A request on a business with its secret. `body` None sends an empty body.
    pub async fn with_secret(
        &self,
        method: &str,
        path: &str,
        secret: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(keyward_ca_api::auth::BUSINESS_SECRET_HEADER, secret);
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                serde_json::to_vec(b).unwrap()
            }
            None => Vec::new(),
        };
        self.raw(req.body(Body::from(bytes)).unwrap()).await
    }

    /// Uploads an attachment to a business with its secret.
    pub async fn upload(
        &self,
        business: &str,
        secret: &str,
        kind: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> (StatusCode, Value) {
        let req = Request::post(format!("/v1/businesses/{business}/attachments?kind={kind}"))
            .header(keyward_ca_api::auth::BUSINESS_SECRET_HEADER, secret)
            .header("content-type", content_type)
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        self.raw(req).await
    }

    /// Asks for an activation code for `serial`; returns the ticket.
    pub async fn send_activation_code(&self, serial: &str) -> String {
        let (s, v) = self
            .post_empty(&format!("/v1/keys/{serial}/activation/code"))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["ticket"].as_str().unwrap().to_owned()
    }

    /// An activated key `K1` and an unlock of it by its handler of record (approved at
    /// once); returns the key, the unlock's id and its secret.
    pub async fn with_unlock(&self) -> (KeyPair, String, String) {
        let key = p256();
        self.activate("K1", &key).await;
        let (s, v) = self
            .post("/v1/keys/K1/unlocks", &json!({"requester": handler()}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        (
            key,
            v["business"]["id"].as_str().unwrap().to_owned(),
            v["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Redeems the newest activation code with `ticket`.
    pub async fn redeem(&self, serial: &str, ticket: &str, code: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/v1/keys/{serial}/activation/redeem"),
            &json!({"code": code, "ticket": ticket}),
        )
        .await
    }

    /// The newest SMS code sent to a key, read from the outbox.
    pub async fn last_code(&self, serial: &str) -> String {
        let (s, v) = self
            .admin_get(&format!("/admin/v1/sms?key_serial={serial}"))
            .await;
        assert_eq!(s, StatusCode::OK);
        let text = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["text"].as_str().unwrap().contains("编号"))
            .expect("an SMS with a code")["text"]
            .as_str()
            .unwrap()
            .to_owned();
        code_in(&text)
    }

    /// Certifies a CSR for the test organisation and registers the key; the key's status.
    pub async fn issue_key(&self, serial: &str, key: &KeyPair, years: u8) -> Value {
        self.register(serial, key, years).await["status"].clone()
    }

    /// Certifies and registers; the whole answer (status and the issue business's secret).
    pub async fn register(&self, serial: &str, key: &KeyPair, years: u8) -> Value {
        let cert = self.certify(key, USCC, years).await;
        let (s, v) = self
            .admin_post(
                "/admin/v1/keys",
                &register_body(serial, USCC, cert["certificate_pem"].as_str().unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    pub async fn certify(&self, key: &KeyPair, uscc: &str, years: u8) -> Value {
        let (s, v) = self
            .admin_post(
                "/admin/v1/certify",
                &json!({"organisation": org(uscc), "csr_pem": csr(key), "years": years}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Issues and activates a key; returns the key's state.
    pub async fn activate(&self, serial: &str, key: &KeyPair) -> String {
        self.issue_key(serial, key, 1).await;
        let ticket = self.send_activation_code(serial).await;
        let code = self.last_code(serial).await;
        let (s, v) = self.redeem(serial, &ticket, &code).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = self
            .signed(
                key,
                serial,
                &format!("/v1/keys/{serial}/activation/confirm"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["state"].as_str().unwrap().to_owned()
    }
}

/// The six-digit code in an SMS text (the digits after 验证码).
pub fn code_in(text: &str) -> String {
    text.split("验证码")
        .nth(1)
        .unwrap_or(text)
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect()
}

pub fn org(uscc: &str) -> Value {
    json!({"name": "广州示例科技有限公司", "uscc": uscc, "kind": "enterprise", "legal_address": "广州市天河区示例路1号"})
}

pub fn handler() -> Value {
    json!({"name": "张三", "id_number": "11010519491231002X", "phone": PHONE})
}

pub fn register_body(serial: &str, uscc: &str, cert_pem: &str) -> Value {
    json!({
        "key_serial": serial,
        "organisation": org(uscc),
        "handler": handler(),
        "certificate_pem": cert_pem,
        "so_pin": "SoPin-Secret-0001",
        "transport_pin": "Transport-7788",
    })
}

pub fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// An RSA-2048 key made by the openssl binary (ring cannot generate RSA keys).
pub fn rsa2048(dir: &Path) -> KeyPair {
    let path = dir.join(format!("rsa-{}.pem", std::process::id()));
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&path).unwrap();
    KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap()
}

pub fn csr(key: &KeyPair) -> String {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "token request");
    params.serialize_request(key).unwrap().pem().unwrap()
}

/// Runs `openssl verify` on leaf against chain [issuing, root]; returns its output.
pub fn openssl_verify(dir: &Path, leaf: &str, chain: &[Value]) -> String {
    openssl_verify_at(dir, leaf, chain, None)
}

/// `openssl verify` as of a unix time (for tests that move the service's clock).
pub fn openssl_verify_at(dir: &Path, leaf: &str, chain: &[Value], at: Option<i64>) -> String {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let leaf_p = write("leaf.pem", leaf);
    let issuing = write("issuing.pem", chain[0].as_str().unwrap());
    let root = write("root.pem", chain[1].as_str().unwrap());
    let out = std::process::Command::new("openssl")
        .args(["verify", "-x509_strict"])
        .args(
            at.map(|t| vec!["-attime".to_owned(), t.to_string()])
                .unwrap_or_default(),
        )
        .arg("-CAfile")
        .arg(&root)
        .arg("-untrusted")
        .arg(&issuing)
        .arg(&leaf_p)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn openssl_text(dir: &Path, pem: &str) -> String {
    let p = dir.join("show.pem");
    std::fs::write(&p, pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-text",
            "-nameopt",
            "utf8,sep_comma_plus",
            "-in",
        ])
        .arg(&p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn code_of(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("<no code>")
}
