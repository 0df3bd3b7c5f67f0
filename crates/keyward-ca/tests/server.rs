//! A real server on a loopback port: a flow over HTTP, and restart-and-continue on the same
//! data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use keyward_ca::{Config, Server};
use keyward_ca_api::auth::{NONCE_HEADER, SIGNATURE_HEADER};
use keyward_ca_api::{body_sha256, request_purpose, signing_input};
use rcgen::{KeyPair, SigningKey};
use serde_json::{Value, json};

struct Http {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Http {
    async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
    async fn admin_get(&self, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
    async fn with_secret(&self, path: &str, secret: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header(keyward_ca_api::auth::BUSINESS_SECRET_HEADER, secret)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
    /// Asks for an activation code and redeems it, as the client does.
    async fn redeem_code(&self, serial: &str) -> (u16, Value) {
        let (s, sent) = self
            .post(&format!("/v1/keys/{serial}/activation/code"), &json!({}))
            .await;
        assert_eq!(s, 200, "{sent}");
        let sms = self
            .admin_get(&format!("/admin/v1/sms?key_serial={serial}"))
            .await;
        let text = sms["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["purpose"] == "activation")
            .unwrap()["text"]
            .as_str()
            .unwrap()
            .to_owned();
        self.post(
            &format!("/v1/keys/{serial}/activation/redeem"),
            &json!({"code": code_in(&text), "ticket": sent["ticket"]}),
        )
        .await
    }
    async fn signed(&self, key: &KeyPair, serial: &str, path: &str) -> (u16, Value) {
        self.signed_as("POST", key, serial, path).await
    }
    async fn signed_as(
        &self,
        method: &str,
        key: &KeyPair,
        serial: &str,
        path: &str,
    ) -> (u16, Value) {
        let (_, n) = self
            .post("/v1/nonces", &json!({"key_serial": serial}))
            .await;
        let nonce = n["nonce"].as_str().unwrap();
        let sig = key
            .sign(&signing_input(
                &request_purpose(method, path),
                nonce,
                &body_sha256(b""),
            ))
            .unwrap();
        let r = self
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header(NONCE_HEADER, nonce)
            .header(SIGNATURE_HEADER, hex::encode(sig))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

/// A client that trusts only the CA's root, as the desktop client does.
fn pinned(root_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn connect(dir: &std::path::Path) -> (keyward_ca::ServerHandle, Http) {
    let handle = Server::start(Config::sandbox(dir)).await.unwrap();
    let http = Http {
        base: handle.base_url(),
        token: handle.admin_token().to_owned(),
        client: pinned(handle.root_pem()),
    };
    (handle, http)
}

#[tokio::test]
async fn tls_is_served_under_the_cas_own_root_only() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, http) = connect(&dir.path().join("data")).await;
    assert!(http.base.starts_with("https://localhost:"));
    let (s, v) = http.get("/healthz").await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
    // Also by IP address.
    let r = http
        .client
        .get(format!(
            "https://127.0.0.1:{}/healthz",
            handle.addr().port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A client that does not trust the CA's root refuses the connection.
    let other_root = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&p256())
        .unwrap()
        .pem();
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(other_root.as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(
        stranger
            .get(format!("{}/healthz", http.base))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port gets no answer it could read.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", handle.addr().port()))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // The service still answers after those failed handshakes.
    let (s, _) = http.get("/healthz").await;
    assert_eq!(s, 200);
    handle.shutdown().await;
}

#[tokio::test]
async fn activation_survives_a_restart_mid_business() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = p256();

    let (handle, http) = connect(&data).await;
    assert!(handle.addr().ip().is_loopback());
    let (s, health) = http.get("/healthz").await;
    assert_eq!((s, health["status"].as_str()), (200, Some("ok")));
    let (_, chain_before) = http.get("/v1/ca/chain").await;
    let (s, cert) = http
        .admin_post(
            "/admin/v1/certify",
            &json!({"organisation": org(USCC), "csr_pem": csr(&key), "years": 1}),
        )
        .await;
    assert_eq!(s, 200, "{cert}");
    openssl_verify(
        dir.path(),
        cert["certificate_pem"].as_str().unwrap(),
        cert["chain_pem"].as_array().unwrap(),
    );
    let (s, v) = http
        .admin_post(
            "/admin/v1/keys",
            &register_body("NETCA0001", USCC, cert["certificate_pem"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, pin) = http.redeem_code("NETCA0001").await;
    assert_eq!(s, 200, "{pin}");
    assert_eq!(pin["transport_pin"], "Transport-7788");
    // The operator's PC crashes here; the service restarts.
    handle.shutdown().await;

    let (handle, http) = connect(&data).await;
    let (_, chain_after) = http.get("/v1/ca/chain").await;
    assert_eq!(
        chain_before, chain_after,
        "the CA hierarchy is kept across restarts"
    );
    let (s, status) = http.get("/v1/keys/NETCA0001/standing").await;
    assert_eq!(
        (s, status["awaiting_activation"].as_bool()),
        (200, Some(true))
    );
    let (s, v) = http
        .signed(&key, "NETCA0001", "/v1/keys/NETCA0001/activation/confirm")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "active");
    let (_, progress) = http
        .signed_as("GET", &key, "NETCA0001", "/v1/keys/NETCA0001/businesses")
        .await;
    assert_eq!(progress["businesses"][0]["state"], "completed");
    let sms = http.admin_get("/admin/v1/sms").await;
    assert_eq!(sms["messages"].as_array().unwrap().len(), 2);
    // Typed errors over the wire too.
    let r = http
        .client
        .post(format!("{}/v1/nonces", http.base))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "invalid_json");
    handle.shutdown().await;
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    for plain in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut args = vec![
            "serve".to_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
        ];
        args.push(data.display().to_string());
        if plain {
            args.push("--plain-http".into());
        }
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keyward-ca"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut ok = false;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let (client, url) = if plain {
                (
                    reqwest::Client::new(),
                    format!("http://127.0.0.1:{port}/healthz"),
                )
            } else {
                let Ok(root) = std::fs::read_to_string(data.join("ca/root.crt")) else {
                    continue;
                };
                (pinned(&root), format!("https://localhost:{port}/healthz"))
            };
            if let Ok(r) = client.get(url).send().await {
                ok = r.status().is_success();
                break;
            }
        }
        assert!(ok, "the binary did not answer /healthz (plain: {plain})");
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_command_lists_and_decides() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = p256();
    let (handle, http) = connect(&data).await;
    let (_, cert) = http
        .admin_post(
            "/admin/v1/certify",
            &json!({"organisation": org(USCC), "csr_pem": csr(&key), "years": 1}),
        )
        .await;
    http.admin_post(
        "/admin/v1/keys",
        &register_body("K1", USCC, cert["certificate_pem"].as_str().unwrap()),
    )
    .await;
    http.redeem_code("K1").await;
    let (s, _) = http
        .signed(&key, "K1", "/v1/keys/K1/activation/confirm")
        .await;
    assert_eq!(s, 200);
    let stranger =
        json!({"name": "李四", "id_number": "110105198001010016", "phone": "13900139000"});
    let (s, b) = http
        .post("/v1/keys/K1/unlocks", &json!({"requester": stranger}))
        .await;
    assert_eq!(s, 200, "{b}");
    let id = b["business"]["id"].as_str().unwrap().to_owned();
    let secret = b["secret"].as_str().unwrap().to_owned();
    let r = http
        .client
        .post(format!(
            "{}/v1/businesses/{id}/attachments?kind=id_card",
            http.base
        ))
        .header("content-type", "image/png")
        .header(keyward_ca_api::auth::BUSINESS_SECRET_HEADER, &secret)
        .body(b"\x89PNG\r\n\x1a\nscan".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, v) = http
        .with_secret(&format!("/v1/businesses/{id}/submit"), &secret)
        .await;
    assert_eq!(s, 200, "{v}");

    let run = |args: Vec<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyward-ca"));
        cmd.arg("review")
            .arg("--url")
            .arg(handle.base_url())
            .arg("--data-dir")
            .arg(&data)
            .args(args);
        cmd.output().unwrap()
    };
    let out = run(vec!["list".into()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.contains(&id) && listing.contains("unlock") && listing.contains("139****9000"),
        "{listing}"
    );
    // A reviewer names nobody: the account does.
    let out = run(vec![
        "approve".into(),
        id.clone(),
        "--reviewer".into(),
        "王审核".into(),
    ]);
    assert!(!out.status.success(), "--reviewer is no option any more");
    let out = run(vec!["approve".into(), id.clone()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("approved"));
    let out = run(vec![
        "reject".into(),
        id.clone(),
        "--note".into(),
        "late".into(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already_decided"));
    handle.shutdown().await;
}

/// `keyward-ca staff …` on the service's database, and what each role may do over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_accounts_have_roles_expire_and_are_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (handle, http) = connect(&data).await;
    let staff = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyward-ca"))
            .arg("staff")
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap()
    };
    let add = |name: &str, role: &str| {
        let out = staff(&["add", name, "--role", role, "--days", "30"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let reviewer = add("wang.reviewer", "reviewer");
    let auditor = add("li.auditor", "auditor");
    assert!(reviewer.starts_with("kws_") && reviewer != auditor);
    assert!(
        !staff(&["add", "wang.reviewer", "--role", "admin"])
            .status
            .success()
    );
    assert!(!staff(&["add", "x", "--role", "boss"]).status.success());
    let call = |token: &str, path: &str| {
        let client = http.client.clone();
        let url = format!("{}{path}", http.base);
        let token = token.to_owned();
        async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // Each role reaches what it is for, and nothing else.
    let (s, _) = call(&reviewer, "/admin/v1/reviews").await;
    assert_eq!(s, 200);
    let (s, v) = call(&reviewer, "/admin/v1/audit").await;
    assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")));
    let (s, _) = call(&auditor, "/admin/v1/audit").await;
    assert_eq!(s, 200);
    let (s, v) = call(&auditor, "/admin/v1/reviews").await;
    assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")));
    let r = http
        .client
        .post(format!("{}/admin/v1/certify", http.base))
        .bearer_auth(&reviewer)
        .json(&json!({"organisation": org(USCC), "csr_pem": csr(&p256()), "years": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a reviewer is no issuing station");
    // The listing shows roles and states, never a token.
    let out = staff(&["list"]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.contains("wang.reviewer\treviewer\tvalid until"),
        "{listing}"
    );
    assert!(
        listing.contains("admin\tadmin\tvalid (no expiry)"),
        "{listing}"
    );
    assert!(!listing.contains(&reviewer));
    // Revoked: the token stops at once.
    assert!(staff(&["revoke", "wang.reviewer"]).status.success());
    let (s, v) = call(&reviewer, "/admin/v1/reviews").await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    // Expired: a token past its days is refused.
    handle.clock().advance(time::Duration::days(31));
    let (s, v) = call(&auditor, "/admin/v1/audit").await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    handle.shutdown().await;
}

#[test]
fn plain_http_is_refused_on_an_address_other_computers_reach() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward-ca"))
        .args([
            "serve",
            "--plain-http",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plain HTTP only on a loopback address"),
        "{err}"
    );
}

/// A key signing in `keyward-ca-client`, counting its signatures and keeping the nonce each
/// one covered.
struct CountingKey {
    serial: String,
    key: KeyPair,
    signed_over: std::sync::Mutex<Vec<String>>,
}

impl keyward_ca_client::RequestSigner for CountingKey {
    fn key_serial(&self) -> &str {
        &self.serial
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        // The signing input: the domain, then the length-prefixed purpose and nonce.
        let rest = &input[keyward_ca_api::auth::SIGNING_DOMAIN.len()..];
        let field = |at: usize| {
            let len = u32::from_be_bytes(rest[at..at + 4].try_into().unwrap()) as usize;
            (at + 4 + len, &rest[at + 4..at + 4 + len])
        };
        let (after_purpose, _) = field(0);
        let (_, nonce) = field(after_purpose);
        self.signed_over
            .lock()
            .unwrap()
            .push(String::from_utf8(nonce.to_vec()).unwrap());
        Ok(self.key.sign(input)?)
    }
}

/// The client takes the nonce each answer carries for its next signed request instead of
/// asking for one; when the CA no longer holds the kept one, it asks and signs again.
#[test]
fn the_client_signs_over_the_nonce_the_last_answer_carried() {
    use keyward_ca_client::{CaClient, ClientConfig};
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(Server::start(Config::sandbox(dir.path().join("data"))))
        .unwrap();
    let client = CaClient::new(&ClientConfig::new(
        server.base_url(),
        Some(server.root_pem().to_owned()),
    ))
    .unwrap();
    let station = client
        .clone()
        .with_admin(keyward_ca_api::Secret::new(server.admin_token()));
    let key = CountingKey {
        serial: "NN0001".into(),
        key: p256(),
        signed_over: Default::default(),
    };
    let issued = station
        .certify(
            &serde_json::from_value(
                json!({"organisation": org(USCC), "csr_pem": csr(&key.key), "years": 1}),
            )
            .unwrap(),
        )
        .unwrap();
    station
        .register_key(
            &serde_json::from_value(register_body(&key.serial, USCC, &issued.certificate_pem))
                .unwrap(),
        )
        .unwrap();
    for _ in 0..3 {
        client.key_status(&key).unwrap();
    }
    let signed: Vec<String> = key.signed_over.lock().unwrap().clone();
    assert_eq!(signed.len(), 3, "one signature a request");
    let unique: std::collections::BTreeSet<&String> = signed.iter().collect();
    assert_eq!(unique.len(), 3, "each nonce once: {signed:?}");
    // Only the first was asked for: the CA issued one nonce asked for and one carried by
    // each answer, and holds them all (each issued nonce is a row).
    let issued_nonces = || {
        runtime.block_on(async {
            sqlx::any::install_default_drivers();
            let url = format!(
                "sqlite://{}?mode=ro",
                dir.path().join("data").join("keyward-ca.sqlite").display()
            );
            let db = sqlx::AnyPool::connect(&url).await.unwrap();
            let row = sqlx::query("SELECT COUNT(*) AS n FROM nonces WHERE key_serial = $1")
                .bind("NN0001")
                .fetch_one(&db)
                .await
                .unwrap();
            db.close().await;
            sqlx::Row::get::<i64, _>(&row, "n")
        })
    };
    assert_eq!(issued_nonces(), 1 + 3);
    // The CA drops the kept nonce (a key asking for many loses the oldest): the client's
    // first try is refused before anything runs, and it signs again over a fresh one.
    for _ in 0..keyward_ca::limits::NONCES_PER_KEY {
        client.nonce(&key.serial).unwrap();
    }
    client.key_status(&key).unwrap();
    let signed: Vec<String> = key.signed_over.lock().unwrap().clone();
    assert_eq!(
        signed.len(),
        5,
        "the refused try and the one over a fresh nonce"
    );
    assert_ne!(signed[3], signed[4]);
    // And the answer to that one is kept in turn.
    client.key_status(&key).unwrap();
    assert_eq!(key.signed_over.lock().unwrap().len(), 6);
    runtime.block_on(server.shutdown());
}
