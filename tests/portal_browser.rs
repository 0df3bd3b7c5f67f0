//! The sample procurement portal in headless Chromium at `https://portal.test` (mapped to a
//! loopback port, its test certificate trusted by its key's hash), the page using the
//! portal SDK, `keyward bridge serve --allow-origin https://portal.test --pin-fd 0` signing
//! with simulator keys, the portal's server verifying with keyward-verify.
//!
//! Chromium treats the portal as a public site (`--ip-address-space-overrides`), so reaching
//! the bridge on loopback is Local Network Access: once pre-allowed (the check disabled, as the
//! enterprise policy does), once asking — headless Chromium refuses the question, and the SDK
//! must have explained it before and say what to do after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::chromium::{Browser, Driver, shots_dir};
use common::portal::{HOSTILE_HOST, PORTAL_HOST, PortalWorld};
use serde_json::{Value, json};
use softhsm_fixtures::{FixtureSet, KeyState, Manifest, USER_PIN};

const PORTAL: &str = "https://portal.test";

/// `keyward bridge serve` over fixture keys, its PIN descriptor a pipe, what it tells the
/// operator in a file.
struct Serve {
    child: Child,
    pins: ChildStdin,
    url: String,
    audit: PathBuf,
    stderr: PathBuf,
    set: FixtureSet,
    manifest: Manifest,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(states: &[KeyState]) -> Serve {
    let sim = softhsm_fixtures::sim_module();
    let (set, _module, manifest) = FixtureSet::build(states, &sim).unwrap();
    let stderr = set.dir().join("bridge-stderr.txt");
    let mut child = Command::new(common::binary("keyward"))
        .args([
            "bridge",
            "serve",
            "--json",
            "--listen",
            "127.0.0.1:0",
            "--pin-fd",
            "0",
        ])
        .args(["--allow-origin", PORTAL])
        .envs(set.env())
        .env("KEYWARD_PKCS11_MODULE", &sim)
        .env("KEYWARD_DATA_DIR", set.dir().join("keyward"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started: Value = serde_json::from_str(&line).unwrap();
    Serve {
        pins: child.stdin.take().unwrap(),
        child,
        url: started["listening"].as_str().unwrap().to_owned(),
        audit: PathBuf::from(started["audit_log"].as_str().unwrap()),
        stderr,
        set,
        manifest,
    }
}

impl Serve {
    fn pin_line(&mut self, line: &str) {
        writeln!(self.pins, "{line}").unwrap();
        self.pins.flush().unwrap();
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn shown(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn serial(&self, state: KeyState) -> String {
        self.manifest
            .tokens
            .iter()
            .find(|t| t.state == state)
            .unwrap()
            .serial
            .clone()
    }
}

// Fields are dropped in this order: the browser's session is closed (chromedriver then
// ends Chromium) before chromedriver itself is stopped, or Chromium outlives the test.
struct Journey {
    browser: Browser,
    _driver: Driver,
    serve: Serve,
    runtime: tokio::runtime::Runtime,
    portal: PortalWorld,
    _profile: tempfile::TempDir,
}

/// The bridge, the portal, and Chromium with `extra` flags.
fn journey(states: &[KeyState], extra: &[&str]) -> Journey {
    let serve = serve(states);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let portal = PortalWorld::start(
        &runtime,
        &serve.manifest.root_pem,
        &serve.manifest.issuing_pem,
        &serve.url,
    );
    let port = portal.addr().port();
    let driver = Driver::start(&serve.set.dir().join("chromedriver.log"));
    let profile = tempfile::tempdir().unwrap();
    let mut flags = vec![
        format!(
            "--host-resolver-rules=MAP {PORTAL_HOST}:443 127.0.0.1:{port}, MAP {HOSTILE_HOST}:443 127.0.0.1:{port}"
        ),
        // The portal's test certificate, trusted by its key: no other certificate error is
        // ignored.
        format!(
            "--ignore-certificate-errors-spki-list={}",
            portal.running.tls.leaf_spki_sha256
        ),
        format!("--ip-address-space-overrides=127.0.0.1:{port}=public"),
    ];
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let browser = driver.browser(profile.path(), &flags);
    Journey {
        browser,
        _driver: driver,
        serve,
        runtime,
        portal,
        _profile: profile,
    }
}

fn message(b: &Browser) -> Value {
    b.read("#message")
}

/// Waits for the page's message to carry `code`.
fn expect_message(b: &Browser, code: &str) -> Value {
    b.wait_data("#message", "code", code, 30)
}

fn choose(b: &Browser, serial: &str) {
    b.click(&format!("li[data-serial=\"{serial}\"] input"));
}

/// A SOF_* call in the page through the portal's SOF layer: its result and last error.
fn sof(b: &Browser, function: &str, args: Value) -> (Value, Value) {
    let v = b.eval_async(
        "const [f, a, done] = arguments; const s = window.keywardPortal.sof; \
         s[f](...a).then((r) => done({ r, last: s.SOF_GetLastError(), code: s.keywardLastError()?.code ?? null }), \
         (e) => done({ threw: String(e) }))",
        json!([function, args]),
    );
    assert!(v.get("threw").is_none(), "{function} threw: {v}");
    (v["r"].clone(), json!({"sor": v["last"], "code": v["code"]}))
}

fn openssl_verify_cms(dir: &Path, cms: &[u8], root_pem: &str, content: Option<&str>) -> bool {
    let (sig, root, data) = (dir.join("b.p7s"), dir.join("root.pem"), dir.join("b.txt"));
    std::fs::write(&sig, cms).unwrap();
    std::fs::write(&root, root_pem).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.args(["cms", "-verify", "-inform", "DER", "-binary", "-in"])
        .arg(&sig)
        .arg("-CAfile")
        .arg(&root)
        .arg("-out")
        .arg(dir.join("out.txt"));
    if let Some(c) = content {
        std::fs::write(&data, c).unwrap();
        cmd.arg("-content").arg(&data);
    }
    cmd.output().unwrap().status.success()
}

#[test]
fn a_supplier_binds_logs_in_and_bids_with_the_key_in_chromium() {
    let mut j = journey(
        &[KeyState::IssuedRsa, KeyState::IssuedEc],
        &["--disable-features=LocalNetworkAccessChecks"],
    );
    let shots = shots_dir();
    let ec = j.serve.serial(KeyState::IssuedEc);
    let b = &j.browser;
    b.goto(&format!("{PORTAL}/"));
    b.find("#connect");

    // Nothing reaches Keyward before the supplier clicks: a script connecting on its own is
    // refused by the SDK, though the browser would let it through here.
    let v = b.eval_async(
        "const done = arguments[arguments.length - 1]; \
         window.keywardPortal.bridge.connect().then(() => done('connected'), (e) => done(e.code))",
        json!([]),
    );
    assert_eq!(v, "NEEDS_USER_GESTURE");
    assert!(j.serve.audit().is_empty(), "{:?}", j.serve.audit());

    // A supplier account with a password.
    b.fill("#account", "gz-supplier");
    b.fill("#password", "Supplier#2026");
    b.click("#register");
    expect_message(b, "registered");
    b.click("#login-password");
    expect_message(b, "logged_in");
    assert_eq!(b.read("#me")["text"], "gz-supplier");
    assert!(b.read("#binding-none")["text"].is_string());

    // Connect (a click), both keys listed.
    b.click("#connect");
    b.wait_data("#bridge-status", "connected", "true", 30);
    let listed = b.eval(
        "return [...document.querySelectorAll('#certs li')].map((l) => l.dataset.serial)",
        json!([]),
    );
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    // 绑定 the EC key: the operator is shown 绑定 and types the PIN into Keyward.
    choose(b, &ec);
    j.serve.pin_line(USER_PIN);
    b.click("#bind");
    expect_message(b, "bound");
    let binding = j.portal.running.portal.binding("gz-supplier").unwrap();
    let cert_der = STANDARD.decode(&binding.certificate).unwrap();
    let summary =
        keyward_pki::CertSummary::from_der(&cert_der, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(binding.serial, summary.serial);
    assert_eq!(binding.issuer, summary.issuer);
    assert_eq!(binding.credit_code, summary.credit_code);
    assert!(binding.credit_code.is_some());
    let info = b.read("#binding-info");
    assert_eq!(info["data"]["serial"], summary.serial.as_str(), "{info}");
    assert!(j.serve.shown().contains("绑定"), "{}", j.serve.shown());
    b.screenshot(&shots.join("portal-bound.png"));

    // Log out, log in with the key.
    b.click("#logout");
    expect_message(b, "logged_out");
    assert_eq!(b.read("#anonymous")["hidden"], false);
    b.click("#connect");
    b.wait_data("#bridge-status", "connected", "true", 30);
    choose(b, &ec);
    j.serve.pin_line(USER_PIN);
    b.click("#login-key");
    expect_message(b, "logged_in_with_key");
    assert_eq!(b.read("#me")["text"], "gz-supplier");

    // A bid the server wrote, signed by the key as CMS, verified by the server.
    b.fill("#project", "GZCG-2026-0815");
    b.fill("#amount", "1280000");
    j.serve.pin_line(USER_PIN);
    b.click("#bid-submit");
    b.wait_data("#bid-result", "accepted", "true", 30);
    b.screenshot(&shots.join("portal-bid.png"));
    let bids = j.portal.running.portal.bids("gz-supplier");
    assert_eq!(bids.len(), 1);
    let bid = &bids[0];
    assert!(
        bid.text.contains("项目编号：GZCG-2026-0815"),
        "{}",
        bid.text
    );
    assert!(bid.text.contains("投标报价（元）：1280000"));
    assert_eq!(bid.signer_serial, summary.serial);
    // The operator read the bid itself before signing.
    assert!(
        j.serve.shown().contains("投标报价（元）：1280000"),
        "{}",
        j.serve.shown()
    );
    // An outside check of the same signature.
    let cms = STANDARD.decode(&bid.cms).unwrap();
    assert!(openssl_verify_cms(
        j.serve.set.dir(),
        &cms,
        &j.serve.manifest.root_pem,
        None
    ));

    // 证书续期 for the bound key: the headless host has no window, and says so.
    b.click("#renew");
    let m = expect_message(b, "NOT_SUPPORTED");
    assert!(m["text"].as_str().unwrap().contains("打开 Keyward"), "{m}");
    let open = j
        .serve
        .audit()
        .into_iter()
        .rev()
        .find(|e| e["method"] == "keyward.open")
        .unwrap();
    assert_eq!(
        open["key_serial"],
        ec.as_str(),
        "{open} {:?}",
        j.serve.audit()
    );
    assert_eq!(open["origin"], PORTAL);

    // The GM/T 0020 layer in the same page, over the same bridge.
    let cert_b64 = STANDARD.encode(&cert_der);
    let (users, _) = sof(b, "SOF_GetUserList", json!([]));
    assert!(
        users.as_str().unwrap().contains(&format!("||{ec}&&&")),
        "{users}"
    );
    let (exported, _) = sof(b, "SOF_ExportUserCert", json!([ec]));
    assert_eq!(exported, cert_b64.as_str());
    let (org, _) = sof(b, "SOF_GetCertInfo", json!([cert_b64, 0x32]));
    assert_eq!(org.as_str(), summary.organization.as_deref());
    let (serial, _) = sof(b, "SOF_GetCertInfo", json!([cert_b64, 0x02]));
    assert_eq!(serial, summary.serial.as_str());
    let (tries, _) = sof(b, "SOF_GetPinRetryCount", json!([ec]));
    assert_eq!(tries, 10);
    // SOF_Login: Keyward's PIN, never the page's.
    j.serve.pin_line("Wrong#2026pin");
    let (ok, last) = sof(b, "SOF_Login", json!([ec, USER_PIN]));
    assert_eq!(
        (ok, last["code"].clone()),
        (json!(false), json!("PIN_INCORRECT"))
    );
    let (tries, _) = sof(b, "SOF_GetPinRetryCount", json!([ec]));
    assert_eq!(tries, 9);
    j.serve.pin_line(USER_PIN);
    let (ok, _) = sof(b, "SOF_Login", json!([ec, "ignored"]));
    assert_eq!(ok, true);
    // SOF_SignData: a signature over the text itself, which the operator read.
    let text = "报价确认：壹佰贰拾捌万元整";
    j.serve.pin_line(USER_PIN);
    let (sig, _) = sof(b, "SOF_SignData", json!([ec, text]));
    let sig = STANDARD.decode(sig.as_str().unwrap()).unwrap();
    assert_eq!(sig.len(), 64, "ECDSA r‖s");
    assert!(j.serve.shown().contains(text));
    let pubkey = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        x509_public_key(&cert_der),
    );
    pubkey.verify(text.as_bytes(), &sig).unwrap();
    assert!(
        pubkey
            .verify("报价确认：壹仟万元整".as_bytes(), &sig)
            .is_err()
    );
    // SOF_SignMessage, detached: checked by keyward-verify against the text.
    j.serve.pin_line(USER_PIN);
    let (p7, _) = sof(b, "SOF_SignMessage", json!([1, ec, text]));
    let p7 = STANDARD.decode(p7.as_str().unwrap()).unwrap();
    let anchors = keyward_verify::TrustAnchors::from_pem(
        &j.serve.manifest.root_pem,
        &j.serve.manifest.issuing_pem,
    )
    .unwrap();
    let signed = keyward_verify::verify_cms(
        &p7,
        Some(text.as_bytes()),
        &anchors,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(signed.signer.serial, summary.serial);
    // Refused: decryption, and the PIN change a headless host cannot show.
    let (r, last) = sof(b, "SOF_DecryptData", json!([ec, "ZGF0YQ=="]));
    assert_eq!((r, last["sor"].clone()), (json!(""), json!(0x0b00_0002)));
    let (r, last) = sof(b, "SOF_ChangePassWd", json!([ec, USER_PIN, "New#Pin2027"]));
    assert_eq!(
        (r, last["code"].clone()),
        (json!(false), json!("NOT_SUPPORTED"))
    );
    let pin_screen = j
        .serve
        .audit()
        .into_iter()
        .rev()
        .find(|e| e["method"] == "keyward.open")
        .unwrap();
    assert_eq!(pin_screen["outcome"], "NOT_SUPPORTED");

    // A site beside the portal, never granted, gets nothing from the key.
    b.goto(&format!("https://{HOSTILE_HOST}/"));
    b.click("#steal");
    let r = b.wait_data("#hostile-result", "code", "ORIGIN_NOT_ALLOWED", 30);
    assert!(
        r["text"].as_str().unwrap().contains("没有允许本网站"),
        "{r}"
    );
    b.screenshot(&shots.join("hostile-refused.png"));
    let audit = j.serve.audit();
    let hostile: Vec<&Value> = audit
        .iter()
        .filter(|e| e["origin"] == "https://evil.test")
        .collect();
    assert!(!hostile.is_empty(), "the hostile page reached the bridge");
    assert!(
        hostile
            .iter()
            .all(|e| e["outcome"] == "ORIGIN_NOT_ALLOWED" || e["method"] == "keyward.version"),
        "{hostile:?}"
    );
    // Nothing the bridge logged or printed holds the PIN.
    let logged = std::fs::read_to_string(&j.serve.audit).unwrap() + &j.serve.shown();
    assert!(!logged.contains(USER_PIN));
    drop(j.runtime);
}

/// The subjectPublicKey bits of a certificate (written here, with x509 parsing of its own).
fn x509_public_key(der: &[u8]) -> Vec<u8> {
    let spki = keyward_pki::CertSummary::spki_der(der).unwrap();
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING }: the bits are the last 65
    // bytes for a P-256 key (uncompressed point).
    spki[spki.len() - 65..].to_vec()
}

#[test]
fn with_local_network_access_asking_the_sdk_explains_first_then_says_what_to_do() {
    let j = journey(&[KeyState::IssuedEc], &[]);
    let shots = shots_dir();
    let b = &j.browser;
    b.goto(&format!("{PORTAL}/"));
    // Before any connection, the page shows what the browser's question will mean.
    let notice = b.wait_data("#lna-notice", "state", "prompt", 30);
    assert_eq!(notice["hidden"], false, "{notice}");
    let text = notice["text"].as_str().unwrap();
    assert!(
        text.contains("浏览器会询问是否允许本网站访问本机"),
        "{text}"
    );
    assert!(text.contains("请选择“允许”"), "{text}");
    assert!(text.contains("USB Key 密码只在 Keyward 中输入"), "{text}");
    b.screenshot(&shots.join("lna-explained.png"));

    // A script that connects on its own, with no click to answer for, is refused by the SDK
    // before the browser is asked anything.
    let v = b.eval_async(
        "const done = arguments[arguments.length - 1]; \
         window.keywardPortal.bridge.connect().then(() => done('connected'), (e) => done(e.code))",
        json!([]),
    );
    assert_eq!(v, "NEEDS_USER_GESTURE");

    // The question is asked and refused (headless Chromium refuses it): the SDK tells a
    // refusal from Keyward not running, and says where to allow it.
    b.click("#connect");
    let m = expect_message(b, "LOCAL_NETWORK_DENIED");
    let said = m["text"].as_str().unwrap();
    assert!(said.contains("本地网络访问被拒绝"), "{said}");
    assert!(said.contains("网站设置"), "{said}");
    assert!(said.contains("刷新本页面"), "{said}");
    b.screenshot(&shots.join("lna-refused.png"));
    // The browser stopped it: nothing reached the bridge.
    assert!(j.serve.audit().is_empty(), "{:?}", j.serve.audit());

    // The operator does what the page said (allows it in site settings) and connects.
    b.set_permission("loopback-network", "granted");
    b.click("#connect");
    b.wait_data("#bridge-status", "connected", "true", 30);
    let listed = b.eval(
        "return document.querySelectorAll('#certs li').length",
        json!([]),
    );
    assert_eq!(listed, 1);
    let methods: Vec<Value> = j
        .serve
        .audit()
        .iter()
        .map(|e| e["method"].clone())
        .collect();
    assert!(
        methods.contains(&json!("keyward.certificates")),
        "{methods:?}"
    );
    assert_eq!(message(b)["data"]["code"], "");
}
