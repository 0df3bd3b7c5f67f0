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
        let mut config = Config::new(dir.path().join("data"));
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
        let input = signing_input(&request_purpose("POST", path), nonce, &body_sha256(&bytes));
        let sig = key.sign(&input).unwrap();
        let mut req = Request::post(path)
            .header(NONCE_HEADER, nonce)
            .header(SIGNATURE_HEADER, hex::encode(sig));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        self.raw(req.body(Body::from(bytes)).unwrap()).await
    }

    /// The newest SMS code sent to a key, read from the outbox.
    pub async fn last_code(&self, serial: &str) -> String {
        let (s, v) = self
            .admin_get(&format!("/admin/v1/sms?key_serial={serial}"))
            .await;
        assert_eq!(s, StatusCode::OK);
        let text = v["messages"].as_array().unwrap().last().unwrap()["text"]
            .as_str()
            .unwrap()
            .to_owned();
        text.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .chars()
            .take(6)
            .collect()
    }

    /// Certifies a CSR for the test organisation and registers the key.
    pub async fn issue_key(&self, serial: &str, key: &KeyPair, years: u8) -> Value {
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

    /// Issues and activates a key; returns the transport PIN.
    pub async fn activate(&self, serial: &str, key: &KeyPair) -> String {
        self.issue_key(serial, key, 1).await;
        let code = self.last_code(serial).await;
        let (s, v) = self
            .post(
                &format!("/v1/keys/{serial}/activation/redeem"),
                &json!({"code": code}),
            )
            .await;
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
