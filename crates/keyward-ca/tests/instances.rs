//! Three instances of `keyward-ca serve`, each its own process on a loopback port, behind
//! nginx (TLS at the balancer, TLS again to each instance, round robin per request), on
//! one PostgreSQL database, sharing one secrets directory made by the offline root. The
//! client pins the root and talks to the balancer; some tests reach the instances
//! directly, as a stranger on the network could.
//!
//! Needs PostgreSQL's server binaries and nginx (Debian: `postgresql`, `nginx`, both
//! installed by `cargo xtask setup`). Without them the tests say so and pass, unless
//! KEYWARD_REQUIRE_POSTGRES=1 (which `cargo xtask test` sets) makes it a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use keyward_ca_api::{
    AttachmentKind, BusinessKind, BusinessState, CertifyRequest, Handler, InvoiceDetails,
    Organisation, OrganisationKind, PaymentNotification, PaymentStatus, RegisterKeyRequest,
    RenewalApplication, SealApplication, SealKind, Secret, UnlockApplication,
};
use keyward_ca_client::{BusinessAuth, CaClient, ClientConfig, RequestSigner};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, SigningKey};

const SO_PIN: &str = "SoPin-Multi-0001";
const TRANSPORT_PIN: &str = "Transport-7788";

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn required() -> bool {
    std::env::var("KEYWARD_REQUIRE_POSTGRES").is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_keyward-ca")
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keyward-ca {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One `keyward-ca serve` process.
struct Instance {
    port: u16,
    secrets: PathBuf,
    data: PathBuf,
    offset_days: i64,
    child: Option<Child>,
}

/// The deployment: PostgreSQL, the secrets, three instances, nginx in front.
struct Deployment {
    cluster: Cluster,
    dir: tempfile::TempDir,
    secrets: PathBuf,
    root_pem: String,
    admin_token: String,
    instances: Vec<Instance>,
    nginx: Child,
    lb_port: u16,
    extra: Vec<String>,
}

/// The balancer's source address towards the instances, the one they trust.
const BALANCER_SOURCE: &str = "127.0.0.2";

impl Deployment {
    /// `None` (having said why) when PostgreSQL or nginx is missing and not required.
    fn start(extra: &[&str]) -> Option<Deployment> {
        let nginx = match nginx_binary() {
            Some(n) => n,
            None => {
                assert!(!required(), "nginx not found (Debian package nginx)");
                eprintln!("SKIPPED: nginx not found (Debian package nginx)");
                return None;
            }
        };
        let cluster = Cluster::start()?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("offline-root");
        let secrets = dir.path().join("secrets");
        run_ok(&["root", "--root-dir", p(&root), "init"]);
        run_ok(&[
            "root",
            "--root-dir",
            p(&root),
            "issue",
            "--secrets-dir",
            p(&secrets),
        ]);
        run_ok(&[
            "secrets",
            "init",
            "--secrets-dir",
            p(&secrets),
            "--admin-token",
            "--sandbox-payments",
        ]);
        let root_pem = std::fs::read_to_string(root.join("root.crt")).unwrap();
        let admin_token = std::fs::read_to_string(secrets.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        let lb_port = free_port();
        let mut d = Deployment {
            cluster,
            secrets: secrets.clone(),
            root_pem,
            admin_token,
            instances: Vec::new(),
            nginx: Command::new("true").spawn().unwrap(),
            lb_port,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            dir,
        };
        for n in 0..3 {
            let data = d.dir.path().join(format!("data{n}"));
            d.instances.push(Instance {
                port: free_port(),
                secrets: secrets.clone(),
                data,
                offset_days: 0,
                child: None,
            });
        }
        for n in 0..3 {
            d.launch(n);
        }
        d.nginx = d.start_nginx(&nginx);
        Some(d)
    }

    fn url(&self) -> String {
        self.cluster.url()
    }

    /// Starts instance `n` and waits until it says it listens.
    fn launch(&mut self, n: usize) {
        let i = &self.instances[n];
        let log = std::fs::File::create(self.dir.path().join(format!("instance{n}.log"))).unwrap();
        let mut child = Command::new(bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", i.port)])
            .args(["--data-dir", p(&i.data), "--secrets-dir", p(&i.secrets)])
            .args(["--database-url", &self.cluster.url()])
            .args(["--sandbox-payments", "--sandbox-sms"])
            .args([
                "--trusted-proxy",
                BALANCER_SOURCE,
                "--heartbeat-seconds",
                "1",
            ])
            .args([
                "--rate-per-address",
                "100000",
                "--burst-per-address",
                "100000",
            ])
            .args(["--rate-overall", "100000", "--burst-overall", "100000"])
            .args(["--clock-offset-days", &i.offset_days.to_string()])
            .args(&self.extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line.contains("listening") => {
                std::thread::spawn(move || for _ in lines {});
            }
            other => panic!(
                "instance {n} did not start ({other:?}): {}",
                std::fs::read_to_string(self.dir.path().join(format!("instance{n}.log")))
                    .unwrap_or_default()
            ),
        }
        self.instances[n].child = Some(child);
    }

    /// Kills instance `n` outright (SIGKILL: no clean stop).
    fn kill(&mut self, n: usize) {
        if let Some(mut c) = self.instances[n].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn start_nginx(&self, nginx: &Path) -> Child {
        let dir = self.dir.path().join("nginx");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        run_ok(&[
            "tls-cert",
            "--secrets-dir",
            p(&self.secrets),
            "--name",
            "localhost",
            "--cert",
            p(&crt),
            "--key",
            p(&key),
        ]);
        let servers: String = self
            .instances
            .iter()
            .map(|i| {
                format!(
                    "    server 127.0.0.1:{} max_fails=1 fail_timeout=60s;\n",
                    i.port
                )
            })
            .collect();
        let user = if is_root() { "user root root;" } else { "" };
        let d = p(&dir);
        let conf = format!(
            r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 512; }}
http {{
  log_format upstreams '$upstream_addr $request_method $request_uri $status';
  access_log {d}/access.log upstreams;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  client_max_body_size 6m;
  upstream keyward_ca {{
{servers}    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{lb} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    location / {{
      proxy_pass https://keyward_ca;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_bind {src};
      proxy_ssl_trusted_certificate {root};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
    }}
  }}
}}
"#,
            lb = self.lb_port,
            crt = p(&crt),
            key = p(&key),
            src = BALANCER_SOURCE,
            root = p(&self.secrets.join("ca").join("root.crt")),
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .args(["-p", d, "-e", &format!("{d}/error.log"), "-c"])
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.client().health().is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not come up: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The health checks are not the journey's.
        self.access_log_mark();
        child
    }

    fn client_to(&self, port: u16) -> CaClient {
        CaClient::new(&ClientConfig::new(
            format!("https://localhost:{port}"),
            Some(self.root_pem.clone()),
        ))
        .unwrap()
    }

    /// The client, talking to the balancer.
    fn client(&self) -> CaClient {
        self.client_to(self.lb_port)
    }

    fn admin(&self) -> CaClient {
        self.client().with_admin(Secret::new(&self.admin_token))
    }

    /// A client of instance `n` directly.
    fn direct(&self, n: usize) -> CaClient {
        self.client_to(self.instances[n].port)
    }

    fn access_log(&self) -> PathBuf {
        self.dir.path().join("nginx").join("access.log")
    }

    /// Starts the access log afresh; returns nothing.
    fn access_log_mark(&self) {
        std::fs::write(self.access_log(), "").unwrap();
        // nginx writes with O_APPEND: truncating keeps it writing at the (new) end.
    }

    /// The upstream ports that answered each request since the mark, in order, with the
    /// path: (ports tried, path).
    /// [`served`](Self::served) once two reads 200 ms apart agree (nothing in flight).
    fn served_settled(&self) -> Vec<(Vec<u16>, String)> {
        let mut last = self.served();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.served();
            if now.len() == last.len() {
                return now;
            }
            last = now;
        }
    }

    fn served(&self) -> Vec<(Vec<u16>, String)> {
        std::fs::read_to_string(self.access_log())
            .unwrap()
            .lines()
            .filter_map(|l| {
                let mut parts: Vec<&str> = l.split(' ').collect();
                // "$upstream_addr" may be "a, b" (tried a, then b).
                let status = parts.pop()?;
                let uri = parts.pop()?;
                let _method = parts.pop()?;
                let ports = parts
                    .join(" ")
                    .split(',')
                    .filter_map(|a| a.trim().rsplit(':').next()?.parse().ok())
                    .collect();
                let _ = status;
                Some((ports, uri.to_owned()))
            })
            .collect()
    }

    /// Registers key `serial` for organisation `n` through `station` (certify, register).
    fn issue(&self, station: &CaClient, serial: &str, n: usize) -> SoftKey {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let issued = station
            .certify(&CertifyRequest {
                organisation: organisation(n),
                csr_pem: csr(&key),
                years: 1,
                keep_validity_of: None,
            })
            .unwrap();
        station
            .register_key(&RegisterKeyRequest {
                key_serial: serial.to_owned(),
                organisation: organisation(n),
                handler: handler(),
                certificate_pem: issued.certificate_pem,
                so_pin: Secret::new(SO_PIN),
                transport_pin: Secret::new(TRANSPORT_PIN),
            })
            .unwrap();
        SoftKey {
            serial: serial.to_owned(),
            key,
        }
    }

    /// The newest code texted about `serial`.
    fn sms_code(&self, serial: &str) -> String {
        let outbox = self.admin().sms_outbox().unwrap();
        let msg = outbox
            .messages
            .iter()
            .filter(|m| m.key_serial.as_deref() == Some(serial) && m.text.contains("编号"))
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
            .expect("an SMS with a code");
        let after = msg.text.split("验证码").nth(1).unwrap();
        after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
    }

    /// Activates `key` through `client`: code, redeem (the transport PIN), confirm.
    fn activate(&self, client: &CaClient, key: &SoftKey) {
        let sent = client.send_activation_code(&key.serial).unwrap();
        let code = self.sms_code(&key.serial);
        let released = client
            .redeem_activation_code(&key.serial, &code, sent.ticket.as_ref().unwrap())
            .unwrap();
        assert_eq!(released.transport_pin.expose(), TRANSPORT_PIN);
        client.confirm_activation(key).unwrap();
    }

    /// Unlocks `key` (its handler of record asks): returns the SO PIN released.
    fn unlock(&self, client: &CaClient, key: &SoftKey) -> (String, String) {
        let created = client
            .apply_unlock(
                &key.serial,
                &UnlockApplication {
                    requester: handler(),
                },
            )
            .unwrap();
        let id = created.business.id.clone();
        // Approved at once (the handler of record asked): the code is on its way.
        assert_eq!(created.business.state, BusinessState::Approved);
        let code = self.sms_code(&key.serial);
        let auth = client
            .unlock_authorisation(&key.serial, &id, &created.secret, &code)
            .unwrap();
        let pins = (
            auth.so_pin.expose().to_owned(),
            auth.new_so_pin.expose().to_owned(),
        );
        let done = client.confirm_unlock(&id, key).unwrap();
        assert_eq!(done.state, BusinessState::Completed);
        pins
    }

    fn db(&self) -> (tokio::runtime::Runtime, keyward_ca::db::Db) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = rt
            .block_on(keyward_ca::db::connect(
                Some(&self.cluster.url()),
                self.dir.path(),
            ))
            .unwrap();
        (rt, db)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
        for n in 0..self.instances.len() {
            if let Some(mut c) = self.instances[n].child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A software key standing in for a USB key.
struct SoftKey {
    serial: String,
    key: KeyPair,
}

impl RequestSigner for SoftKey {
    fn key_serial(&self) -> &str {
        &self.serial
    }
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.key.sign(input)?)
    }
}

fn csr(key: &KeyPair) -> String {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "token request");
    p.serialize_request(key).unwrap().pem().unwrap()
}

fn organisation(n: usize) -> Organisation {
    Organisation {
        name: format!("广州市多实例示例第{n}有限公司"),
        uscc: keyward_pki::uscc::with_check_character(&format!("91440101MA5F{n:05}")).unwrap(),
        kind: OrganisationKind::Enterprise,
        legal_address: "广州市天河区示例路 1 号".into(),
    }
}

fn handler() -> Handler {
    Handler {
        name: "张经办".into(),
        id_number: "11010519491231002X".into(),
        phone: "13800138000".into(),
    }
}

fn invoice(n: usize) -> InvoiceDetails {
    InvoiceDetails {
        title: organisation(n).name,
        tax_id: organisation(n).uscc,
        email: "finance@example.cn".into(),
    }
}

#[test]
fn a_whole_journey_alternates_between_instances_and_survives_one_killed() {
    let Some(mut d) = Deployment::start(&[]) else {
        return;
    };
    // The issuing station's own instance, 300 days back, so the certificate it issues is
    // in its renewal window today. It shares the database and the secrets.
    d.instances.push(Instance {
        port: free_port(),
        secrets: d.secrets.clone(),
        data: d.dir.path().join("station"),
        offset_days: -300,
        child: None,
    });
    d.launch(3);
    let station = d
        .client_to(d.instances[3].port)
        .with_admin(Secret::new(&d.admin_token));
    let key = d.issue(&station, "KWM00000001", 1);
    d.access_log_mark();

    let client = d.client();
    let admin = d.admin();
    // Activation: the code asked on one instance, redeemed on another, confirmed on a third.
    d.activate(&client, &key);
    // Renewal: apply, pay in the sandbox, the new key's CSR, confirmed by the new key.
    let created = client
        .apply_renewal(
            &RenewalApplication {
                years: 1,
                invoice: invoice(1),
            },
            &key,
        )
        .unwrap();
    let renewal = created.business.id.clone();
    let payment = client
        .payment(&renewal, BusinessAuth::Secret(&created.secret))
        .unwrap();
    let paid = client
        .sandbox_pay(&payment.payment_id, PaymentStatus::Paid)
        .unwrap();
    assert_eq!(paid.status, PaymentStatus::Paid);
    let new_key = SoftKey {
        serial: key.serial.clone(),
        key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
    };
    client
        .submit_renewal_csr(&renewal, &csr(&new_key.key), &key)
        .unwrap();
    client
        .confirm_renewal_installed(&renewal, &new_key)
        .unwrap();

    // nginx logs a request after its answer has gone: the last one may reach the log after
    // the client has it. Read the log once it has stopped growing.
    let before_kill = d.served_settled();
    // One instance dies mid-journey, without a clean stop.
    let killed = d.instances[1].port;
    d.kill(1);

    // The seal: applied for, the stamped scan uploaded and submitted, approved by staff,
    // fetched and confirmed installed — each step wherever the balancer sends it.
    let created = client
        .apply_seal(
            &SealApplication {
                seal_name: organisation(1).name,
                seal_kind: SealKind::Official,
                change: false,
            },
            &new_key,
        )
        .unwrap();
    let seal = created.business.id.clone();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(b" the stamped seal scan");
    client
        .upload_attachment(
            &seal,
            BusinessAuth::Secret(&created.secret),
            AttachmentKind::SealScan,
            "image/png",
            png,
        )
        .unwrap();
    client
        .submit_for_review(&seal, BusinessAuth::Secret(&created.secret))
        .unwrap();
    let approved = admin
        .approve(
            &seal,
            &keyward_ca_api::ReviewDecision {
                note: "印章扫描件清晰".into(),
            },
        )
        .unwrap();
    assert_eq!(approved.state, BusinessState::CertificateIssued);
    let doc = client.seal(&new_key).unwrap();
    assert_eq!(doc.business_id, seal);
    client.confirm_seal_installed(&seal, &new_key).unwrap();

    // Unlock (忘记密码) by the handler of record: the escrowed SO PIN comes back.
    let (so_pin, fresh) = d.unlock(&client, &new_key);
    assert_eq!(so_pin, SO_PIN);
    assert_ne!(fresh, SO_PIN);

    // Progress: every business, completed.
    let list = client.businesses(&new_key).unwrap();
    let kinds: Vec<(BusinessKind, BusinessState)> =
        list.businesses.iter().map(|b| (b.kind, b.state)).collect();
    assert_eq!(
        kinds,
        [
            (BusinessKind::Issue, BusinessState::Completed),
            (BusinessKind::Renewal, BusinessState::Completed),
            (BusinessKind::Seal, BusinessState::Completed),
            (BusinessKind::Unlock, BusinessState::Completed),
        ]
    );

    // What the balancer did: before the kill, every request went to the next instance in
    // turn, so each step's requests were spread over all three (a signed request spends
    // the nonce another instance's answer carried); after it, the dead one answered
    // nothing.
    let ports: Vec<u16> = d.instances[..3].iter().map(|i| i.port).collect();
    assert!(before_kill.len() >= 10, "{before_kill:?}");
    for (tried, uri) in &before_kill {
        assert_eq!(tried.len(), 1, "{uri} tried {tried:?}");
    }
    for w in before_kill.windows(2) {
        assert_ne!(
            w[0].0, w[1].0,
            "two requests in a row on one instance: {w:?}"
        );
    }
    for port in &ports {
        let n = before_kill.iter().filter(|(t, _)| t[0] == *port).count();
        assert!(n >= before_kill.len() / 3 - 1, "instance {port} served {n}");
    }
    let after_kill = &d.served_settled()[before_kill.len()..];
    assert!(after_kill.len() >= 10, "{after_kill:?}");
    for (tried, uri) in after_kill {
        assert_ne!(
            tried.last(),
            Some(&killed),
            "{uri} answered by the dead instance"
        );
    }
    let survivors: std::collections::BTreeSet<u16> = after_kill
        .iter()
        .filter_map(|(t, _)| t.last().copied())
        .collect();
    assert_eq!(survivors.len(), 2, "both survivors served: {survivors:?}");
}

/// A request signed by `key` over `nonce`, sent to `base` as is (no fresh nonce).
fn signed_post(
    http: &reqwest::blocking::Client,
    base: &str,
    key: &SoftKey,
    nonce: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    let body = b"{}";
    let input = keyward_ca_api::signing_input(
        &keyward_ca_api::request_purpose("POST", path),
        nonce,
        &keyward_ca_api::body_sha256(body),
    );
    let sig = key.key.sign(&input).unwrap();
    let resp = http
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header(keyward_ca_api::auth::NONCE_HEADER, nonce)
        .header(keyward_ca_api::auth::SIGNATURE_HEADER, hex::encode(sig))
        .body(body.to_vec())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or_default())
}

fn http_client(root_pem: &str, local: Option<IpAddr>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap());
    if let Some(ip) = local {
        b = b.local_address(ip);
    }
    b.build().unwrap()
}

#[test]
fn a_nonce_used_on_one_instance_is_refused_on_another() {
    let Some(d) = Deployment::start(&[]) else {
        return;
    };
    let key = d.issue(&d.admin(), "KWM00000002", 2);
    d.activate(&d.client(), &key);
    let http = http_client(&d.root_pem, None);
    let base = |n: usize| format!("https://localhost:{}", d.instances[n].port);
    let path = format!("/v1/keys/{}/activation/confirm", key.serial);
    // Given by instance 0, spent on instance 1.
    let nonce = d.direct(0).nonce(&key.serial).unwrap().nonce;
    let (s, v) = signed_post(&http, &base(1), &key, &nonce, &path);
    assert_eq!(s, 200, "{v}");
    // The same signed request, replayed on instance 2 and on instance 0: refused.
    for n in [2, 0, 1] {
        let (s, v) = signed_post(&http, &base(n), &key, &nonce, &path);
        assert_eq!(
            (s, v["code"].as_str()),
            (401, Some("nonce_replayed")),
            "instance {n}: {v}"
        );
    }
    // Replayed at the same moment on all three: at most one of a fresh nonce's uses wins.
    let nonce = d.direct(2).nonce(&key.serial).unwrap().nonce;
    let barrier = Arc::new(Barrier::new(3));
    let wins: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|n| {
                let (http, barrier, nonce, path, base) =
                    (&http, barrier.clone(), &nonce, &path, base(n));
                let key = &key;
                s.spawn(move || {
                    barrier.wait();
                    signed_post(http, &base, key, nonce, path).0 == 200
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(wins, 1);
}

/// Asks for an activation code through the balancer from loopback address `from`.
fn ask_code(d: &Deployment, from: IpAddr, serial: &str) -> Result<(), String> {
    let http = http_client(&d.root_pem, Some(from));
    let resp = http
        .post(format!(
            "https://localhost:{}/v1/keys/{serial}/activation/code",
            d.lb_port
        ))
        .send()
        .unwrap();
    let ok = resp.status().is_success();
    let v: serde_json::Value = resp.json().unwrap_or_default();
    if ok {
        Ok(())
    } else {
        Err(v["code"].as_str().unwrap_or("?").to_owned())
    }
}

/// Runs `n` requests at once, each `f(i)`, and counts the answers.
fn at_once(
    n: usize,
    f: impl Fn(usize) -> Result<(), String> + Sync,
) -> std::collections::BTreeMap<String, usize> {
    let barrier = Barrier::new(n);
    let mut out = std::collections::BTreeMap::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        for h in handles {
            let k = match h.join().unwrap() {
                Ok(()) => "sent".to_owned(),
                Err(code) => code,
            };
            *out.entry(k).or_insert(0) += 1;
        }
    });
    out
}

#[test]
fn sms_cooldown_and_daily_caps_hold_across_instances() {
    // Four codes a day per client address, all keys together.
    let Some(d) = Deployment::start(&["--codes-per-address", "4"]) else {
        return;
    };
    let admin = d.admin();
    let keys: Vec<SoftKey> = (0..8)
        .map(|n| d.issue(&admin, &format!("KWM0000010{n}"), 10 + n))
        .collect();
    let ip = |last: u8| IpAddr::from([127, 0, 0, last]);
    let count = |m: &std::collections::BTreeMap<String, usize>, k: &str| *m.get(k).unwrap_or(&0);

    // The cool-down: one asker, three requests at once, spread by the balancer over the
    // three instances: one code is sent.
    let got = at_once(3, |_| ask_code(&d, ip(11), &keys[0].serial));
    assert_eq!(
        (count(&got, "sent"), count(&got, "code_cooldown")),
        (1, 2),
        "{got:?}"
    );
    // Straight to each instance, with an X-Forwarded-For of the asker's choosing: it is
    // not the balancer, so it is the address it connects from that counts.
    for n in 0..3 {
        let http = http_client(&d.root_pem, Some(ip(11)));
        let resp = http
            .post(format!(
                "https://localhost:{}/v1/keys/{}/activation/code",
                d.instances[n].port, keys[0].serial
            ))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .unwrap();
        let v: serde_json::Value = resp.json().unwrap();
        assert_eq!(v["code"], "code_cooldown", "instance {n}: {v}");
    }

    // The daily cap per key (10): twelve askers at once, each its own address, for one key.
    let got = at_once(12, |i| ask_code(&d, ip(20 + i as u8), &keys[1].serial));
    assert_eq!(
        (count(&got, "sent"), count(&got, "code_daily_limit")),
        (10, 2),
        "{got:?}"
    );

    // The cap per address (4 here): one address asking for six keys at once.
    let got = at_once(6, |i| ask_code(&d, ip(40), &keys[i + 2].serial));
    assert_eq!(
        (count(&got, "sent"), count(&got, "code_daily_limit")),
        (4, 2),
        "{got:?}"
    );
}

#[test]
fn a_payment_notification_delivered_twice_to_two_instances_counts_once() {
    let Some(d) = Deployment::start(&[]) else {
        return;
    };
    let client = d.client();
    let created = client
        .order(&keyward_ca_api::BusinessForm::NewApplication(
            keyward_ca_api::NewApplicationForm {
                organisation: organisation(30),
                handler: handler(),
                years: 2,
                invoice: invoice(30),
            },
        ))
        .unwrap();
    let id = created.business.id.clone();
    let payment = client
        .payment(&id, BusinessAuth::Secret(&created.secret))
        .unwrap();
    // The provider's notification, signed with its key, delivered to two instances at once.
    let body = serde_json::to_vec(&PaymentNotification {
        payment_id: payment.payment_id.clone(),
        business_id: id.clone(),
        status: PaymentStatus::Paid,
        amount_fen: payment.amount_fen,
    })
    .unwrap();
    let key = hex::decode(
        std::fs::read_to_string(d.secrets.join("payment-sandbox.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let tag = keyward_ca::crypto::hmac_hex(&key, &body);
    let http = http_client(&d.root_pem, None);
    for round in 0..2 {
        let barrier = Barrier::new(2);
        let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
            let hs: Vec<_> = [0usize, 2]
                .into_iter()
                .map(|n| {
                    let (http, body, tag, barrier) = (&http, &body, &tag, &barrier);
                    let port = d.instances[n].port;
                    s.spawn(move || {
                        barrier.wait();
                        let r = http
                            .post(format!("https://localhost:{port}/v1/payments/notify"))
                            .header("content-type", "application/json")
                            .header(keyward_ca_api::auth::PAYMENT_SIGNATURE_HEADER, tag)
                            .body(body.clone())
                            .send()
                            .unwrap();
                        (r.status().as_u16(), r.json().unwrap_or_default())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (s, v) in &answers {
            assert_eq!(
                (*s, v["status"].as_str()),
                (200, Some("paid")),
                "round {round}: {v}"
            );
        }
    }
    // Counted once: one "paid" in the timeline, one in the audit log.
    let b = client
        .business(&id, BusinessAuth::Secret(&created.secret))
        .unwrap();
    let paid = b
        .timeline
        .iter()
        .filter(|e| e.state == BusinessState::Paid)
        .count();
    assert_eq!(paid, 1, "{:?}", b.timeline);
    assert_eq!(b.state, BusinessState::AwaitingDocuments);
    let audit = d.admin().audit_log().unwrap();
    let entries = audit
        .records
        .iter()
        .filter(|e| e.action == "payment_paid" && e.business_id.as_deref() == Some(id.as_str()))
        .count();
    assert_eq!(entries, 1);
}

/// Every escrow key id the records name, read from the database.
fn keys_in_use(d: &Deployment) -> std::collections::BTreeSet<String> {
    let (rt, db) = d.db();
    rt.block_on(async {
        let mut conn = db.acquire().await.unwrap();
        keyward_ca::escrow::key_ids_in_use(&mut conn).await.unwrap()
    })
}

fn rotate(d: &Deployment, extra: &[&str]) -> Child {
    Command::new(bin())
        .args(["rotate-escrow", "--secrets-dir", p(&d.secrets)])
        .args(["--database-url", &d.url(), "--grace-seconds", "1"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn the_escrow_is_rotated_while_journeys_run_and_no_pin_is_ever_unreadable() {
    let Some(d) = Deployment::start(&["--codes-per-address", "100000"]) else {
        return;
    };
    let admin = d.admin();
    let keys: Vec<SoftKey> = (0..24)
        .map(|n| d.issue(&admin, &format!("KWM00000{:03}", 200 + n), 200 + n))
        .collect();
    let before = keys_in_use(&d);
    assert_eq!(before.len(), 1, "{before:?}");

    // The rotation runs while keys are activated (transport PINs opened), unlocked (SO
    // PINs opened, fresh ones sealed) and registered (PINs sealed), all through the
    // balancer, on every instance.
    let mut rotation = rotate(&d, &["--remove-unused"]);
    let started = Instant::now();
    let client = d.client();
    let mut during = 0;
    let mut n = 0;
    let mut extra = Vec::new();
    let finished = loop {
        if let Some(status) = rotation.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rotation hangs"
        );
        if let Some(key) = keys.get(n) {
            d.activate(&client, key);
            if n % 3 == 0 {
                let (so, _) = d.unlock(&client, key);
                assert_eq!(so, SO_PIN);
            }
            during += 1;
            n += 1;
        } else {
            extra.push(d.issue(
                &admin,
                &format!("KWM00000{:03}", 300 + extra.len()),
                300 + extra.len(),
            ));
        }
    };
    let out = rotation.wait_with_output().unwrap();
    assert!(
        finished.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        during >= 2,
        "only {during} journeys ran during the rotation"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("removed"), "{stdout}");
    // Every record is under the new key, and the old key's file is gone.
    let after = keys_in_use(&d);
    assert_eq!(after.len(), 1);
    assert!(after.is_disjoint(&before));
    assert_eq!(keyward_ca::escrow::key_files(&d.secrets).unwrap().len(), 1);
    // With the old key gone from every instance (each re-reads its keyring), everything
    // escrowed still opens: the rest of the keys activate, those unlocked unlock again.
    std::thread::sleep(Duration::from_secs(2));
    for key in keys.iter().skip(n).chain(extra.iter()) {
        d.activate(&client, key);
    }
    for key in keys.iter().take(n).step_by(3) {
        let (so, _) = d.unlock(&client, key);
        assert_ne!(so, SO_PIN, "the SO PIN rotated by the earlier unlock");
    }
    let (so, _) = d.unlock(&client, &keys[1]);
    assert_eq!(so, SO_PIN);
}

#[test]
fn an_instance_without_the_new_escrow_key_holds_the_rotation_back() {
    let Some(mut d) = Deployment::start(&["--codes-per-address", "100000"]) else {
        return;
    };
    // Instance 2 runs on another machine: its secrets directory is a copy.
    let copy = d.dir.path().join("secrets-copy");
    let out = Command::new("cp")
        .args(["-a", p(&d.secrets), p(&copy)])
        .output()
        .unwrap();
    assert!(out.status.success());
    d.kill(2);
    d.instances[2].secrets = copy.clone();
    d.launch(2);
    let admin = d.admin();
    let keys: Vec<SoftKey> = (0..4)
        .map(|n| d.issue(&admin, &format!("KWM00000{:03}", 400 + n), 400 + n))
        .collect();
    let before = keys_in_use(&d);

    // The new key is made in the shared directory only: the rotation waits for instance 2,
    // then gives up without switching or moving a record.
    let out = rotate(&d, &["--wait-seconds", "4"])
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{}", d.instances[2].port)),
        "{err}"
    );
    assert_eq!(keys_in_use(&d), before);
    // Instance 2 opens everything still: straight to it, an activation.
    d.activate(&d.direct(2), &keys[0]);

    // Once the key is copied there, the rotation is taken up and finishes.
    for f in keyward_ca::escrow::key_files(&d.secrets).unwrap() {
        let to = copy.join(f.file_name().unwrap());
        if !to.exists() {
            std::fs::copy(&f, &to).unwrap();
        }
    }
    let out = rotate(&d, &[]).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("taking up"));
    let after = keys_in_use(&d);
    assert!(after.is_disjoint(&before), "{after:?}");
    // Every instance opens what moved.
    for (n, key) in keys.iter().enumerate().skip(1) {
        d.activate(&d.direct(n - 1), key);
    }
    let (so, _) = d.unlock(&d.direct(2), &keys[0]);
    assert_eq!(so, SO_PIN);
}

#[test]
fn an_attachment_taken_in_by_one_instance_is_reviewed_and_sealed_by_another() {
    let Some(d) = Deployment::start(&[]) else {
        return;
    };
    let key = d.issue(&d.admin(), "KWM00000500", 500);
    d.activate(&d.client(), &key);
    let created = d
        .direct(0)
        .apply_seal(
            &SealApplication {
                seal_name: organisation(500).name,
                seal_kind: SealKind::Contract,
                change: false,
            },
            &key,
        )
        .unwrap();
    let id = created.business.id.clone();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(b" stamped on instance 0");
    let att = d
        .direct(0)
        .upload_attachment(
            &id,
            BusinessAuth::Secret(&created.secret),
            AttachmentKind::SealScan,
            "image/png",
            png.clone(),
        )
        .unwrap();
    d.direct(1)
        .submit_for_review(&id, BusinessAuth::Secret(&created.secret))
        .unwrap();
    // The reviewer on instance 2 reads the scan and approves; the seal is made there.
    let http = http_client(&d.root_pem, None);
    let resp = http
        .get(format!(
            "https://localhost:{}/admin/v1/attachments/{}",
            d.instances[2].port, att.sha256
        ))
        .bearer_auth(&d.admin_token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().unwrap().to_vec(), png);
    let approved = d
        .direct(2)
        .with_admin(Secret::new(&d.admin_token))
        .approve(&id, &keyward_ca_api::ReviewDecision { note: "ok".into() })
        .unwrap();
    assert_eq!(approved.state, BusinessState::CertificateIssued);
    let doc = d.direct(1).seal(&key).unwrap();
    let der = keyward_pki::pem::from_base64(&doc.seal_der_base64).unwrap();
    // The picture in the seal is the scan instance 0 took in.
    assert!(der.windows(png.len()).any(|w| w == png.as_slice()));
}

#[test]
fn instances_starting_together_on_an_empty_database_all_come_up() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (root, secrets) = (dir.path().join("root"), dir.path().join("secrets"));
    run_ok(&["root", "--root-dir", p(&root), "init"]);
    run_ok(&[
        "root",
        "--root-dir",
        p(&root),
        "issue",
        "--secrets-dir",
        p(&secrets),
    ]);
    run_ok(&[
        "secrets",
        "init",
        "--secrets-dir",
        p(&secrets),
        "--admin-token",
    ]);
    // Four at the same moment: they migrate one at a time and make the admin account once.
    let barrier = Barrier::new(4);
    let started: Vec<Result<Child, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|n| {
                let (barrier, secrets, url) = (&barrier, &secrets, cluster.url());
                let data = dir.path().join(format!("data{n}"));
                s.spawn(move || {
                    barrier.wait();
                    let mut child = Command::new(bin())
                        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
                        .args(["--data-dir", p(&data), "--secrets-dir", p(secrets)])
                        .args(["--database-url", &url])
                        .env("RUST_LOG", "warn")
                        .env("RUST_BACKTRACE", "0")
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap();
                    let stdout = child.stdout.take().unwrap();
                    let mut lines = std::io::BufReader::new(stdout).lines();
                    match lines.next() {
                        Some(Ok(l)) if l.contains("listening") => Ok(child),
                        _ => Err(String::from_utf8_lossy(
                            &child.wait_with_output().unwrap().stderr,
                        )
                        .into_owned()),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failed = Vec::new();
    for s in started {
        match s {
            Ok(mut c) => {
                c.kill().unwrap();
                c.wait().unwrap();
            }
            Err(e) => failed.push(e),
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}
