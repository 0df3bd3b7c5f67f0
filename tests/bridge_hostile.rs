//! The bridge against pages that should not get what they ask for, over a real loopback
//! WebSocket, with simulator keys and an operator answering from a script. Each test names
//! the claim it tries to break.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::bridge::{BridgeWorld as World, KEYS, NONCE, PORTAL, Reply, code, verify_token};
use keyward_bridge::Consent;
use keyward_bridge::agent::Action;
use keyward_flows::FinalTry;
use keyward_sim::control::{self, Effect, Fault};
use serde_json::{Value, json};
use softhsm_fixtures::{KeyState, USER_PIN};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn granted() -> World {
    World::new(&KEYS, &[PORTAL], |_| {})
}

#[test]
fn the_handshake_refuses_rebinding_missing_and_foreign_origins_before_the_upgrade() {
    let w = granted();
    let host = format!("127.0.0.1:{}", w.addr.port());
    type Case<'a> = (Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("Host", "evil.test".into()), ("Origin", PORTAL.into())],
            403,
            "DNS rebinding: Host evil.test",
        ),
        (
            vec![
                ("Host", format!("evil.test:{}", w.addr.port())),
                ("Origin", PORTAL.into()),
            ],
            403,
            "Host evil.test with the port",
        ),
        (vec![("Host", host.clone())], 403, "no Origin"),
        (
            vec![("Origin", "http://portal.test".into())],
            403,
            "http origin",
        ),
        (
            vec![("Origin", "http://localhost:8080".into())],
            403,
            "http localhost without the switch",
        ),
        (
            vec![("Origin", format!("https://{}.test", "a".repeat(250)))],
            403,
            "origin over 255 characters",
        ),
        (
            vec![("Origin", "https://portal.test/login".into())],
            403,
            "origin with a path",
        ),
        (vec![("Origin", "null".into())], 403, "opaque origin"),
    ];
    for (headers, status, what) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match w.try_connect(&h) {
            Err(s) => assert_eq!(s, status, "{what}"),
            Ok(_) => panic!("{what}: the handshake was accepted"),
        }
    }
    // A path other than /.
    let refused = w.runtime.block_on(async {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}/rpc", w.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("Origin", PORTAL.parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(w.addr).await.unwrap();
        tokio_tungstenite::client_async(req, tcp).await.err()
    });
    assert!(
        matches!(refused, Some(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 404),
        "{refused:?}"
    );
    // The same bridge accepts the real thing, on each loopback form of Host.
    for host in [host.as_str(), &format!("localhost:{}", w.addr.port())] {
        let mut c = w
            .try_connect(&[("Host", host), ("Origin", PORTAL)])
            .unwrap();
        assert_eq!(code(&c.call("keyward.version", json!({}))), "ok");
    }
}

#[test]
fn an_origin_not_granted_cannot_list_certificates_and_is_not_asked_again_at_once() {
    let w = granted();
    let mut evil = w.connect("https://evil.test");
    // keyward.version is open to any origin (so a page can tell Keyward is there).
    let v = evil.call("keyward.version", json!({}));
    assert_eq!(v["result"]["version"], env!("CARGO_PKG_VERSION"));
    for method in [
        "keyward.certificates",
        "keyward.authenticate",
        "keyward.sign",
        "keyward.signData",
        "keyward.signMessage",
        "keyward.open",
    ] {
        let params = match method {
            "keyward.authenticate" => json!({"nonce": NONCE}),
            "keyward.sign" => {
                json!({"key_serial": w.serial(0), "hash": STANDARD.encode([0u8; 32]), "hash_function": "SHA-256"})
            }
            "keyward.signData" => {
                json!({"key_serial": w.serial(0), "data": STANDARD.encode(b"pay 1000"), "hash_function": "SHA-256"})
            }
            "keyward.signMessage" => {
                json!({"key_serial": w.serial(0), "data": STANDARD.encode(b"pay 1000")})
            }
            "keyward.open" => json!({"screen": "pin", "key_serial": w.serial(0)}),
            _ => json!({}),
        };
        let a = evil.call(method, params);
        assert_eq!(code(&a), "ORIGIN_NOT_ALLOWED", "{method}: {a}");
        assert!(a.get("result").is_none());
    }
    // The operator was asked once (and refused); the rest were refused while it cools off.
    assert_eq!(w.agent.consents_asked(), 1);
    assert!(w.agent.shown().is_empty(), "nothing reached a confirmation");
    // The granted origin beside it lists both keys.
    let mut portal = w.connect(PORTAL);
    let list = portal.call("keyward.certificates", json!({}));
    assert_eq!(list["result"].as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn certificates_are_the_keys_own_with_organisation_and_credit_code() {
    let w = granted();
    let mut c = w.connect(PORTAL);
    let list = c.call("keyward.certificates", json!({}))["result"].clone();
    for (i, t) in w.manifest.tokens.iter().enumerate() {
        let entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key_serial"] == t.serial.as_str())
            .unwrap_or_else(|| panic!("key {i} missing: {list}"));
        let der = STANDARD
            .decode(entry["certificate"].as_str().unwrap())
            .unwrap();
        let summary = keyward_flows::usekey::WebKeys::new(vec![w.module.clone()])
            .certificate(&t.serial)
            .unwrap();
        assert_eq!(der, summary.certificate_der);
        assert_eq!(
            entry["organisation"],
            summary.summary.organization.clone().unwrap().as_str()
        );
        assert_eq!(
            entry["uscc"],
            summary.summary.credit_code.clone().unwrap().as_str()
        );
        assert!(entry["not_after"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn authentication_tokens_verify_for_the_handshake_origin_and_no_other() {
    let w = granted();
    let dir = tempfile::tempdir().unwrap();
    let mut c = w.connect(PORTAL);
    for i in 0..2 {
        let serial = w.serial(i);
        w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
        // The page claims to be another site, in every way a message can.
        let a = c.call(
            "keyward.authenticate",
            json!({"nonce": NONCE, "key_serial": serial, "origin": "https://bank.test",
                   "url": "https://bank.test/login", "purpose": "bind"}),
        );
        let token = &a["result"];
        assert_eq!(token["format"], "web-eid:1.0", "{a}");
        let expected_alg = if i == 0 { "RS256" } else { "ES256" };
        assert_eq!(token["algorithm"], expected_alg);
        let verdict = verify_token(dir.path(), token, PORTAL, NONCE);
        assert!(
            verdict.as_deref().is_ok_and(|v| v.starts_with("ok ")),
            "{expected_alg}: {verdict:?}"
        );
        for (origin, nonce) in [
            ("https://bank.test", NONCE),
            (PORTAL, "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq81="),
        ] {
            assert!(
                verify_token(dir.path(), token, origin, nonce).is_err(),
                "{expected_alg}: the token also verifies for {origin} {nonce}"
            );
        }
        // The operator saw the handshake's origin, the key and 绑定.
        let shown = w.agent.shown().pop().unwrap();
        assert_eq!(shown.origin.as_str(), PORTAL);
        assert_eq!(shown.key.serial, serial);
        assert_eq!(shown.action, Action::Bind);
    }
}

#[test]
fn a_bad_nonce_is_refused_before_anyone_is_asked() {
    let w = granted();
    let mut c = w.connect(PORTAL);
    for nonce in [
        "A".repeat(43),
        "A".repeat(129),
        format!("{}*", "A".repeat(43)),
    ] {
        let a = c.call("keyward.authenticate", json!({ "nonce": nonce }));
        assert_eq!(code(&a), "INVALID_ARGUMENT", "{a}");
    }
    assert!(w.agent.shown().is_empty());
}

#[test]
fn two_operations_at_once_the_second_is_action_pending() {
    let w = granted();
    let (release, released) = std::sync::mpsc::channel();
    w.agent.reply(Reply::WhenReleased(released, USER_PIN));
    let mut a = w.connect(PORTAL);
    let mut b = w.connect(PORTAL);
    let first = a.send(
        "keyward.authenticate",
        json!({"nonce": NONCE, "key_serial": w.serial(1)}),
    );
    // Wait until the first is in front of the operator.
    for _ in 0..100 {
        if !w.agent.shown().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(w.agent.shown().len(), 1);
    let second = b.call("keyward.certificates", json!({}));
    assert_eq!(code(&second), "ACTION_PENDING", "{second}");
    // The same connection is not blocked for version while its operation waits.
    let v = a.call("keyward.version", json!({}));
    assert_eq!(code(&v), "ok");
    release.send(()).unwrap();
    let done = a.answer();
    assert_eq!(done["id"], first);
    assert_eq!(code(&done), "ok", "{done}");
    // Another origin is not held up by this one's pending operation.
    assert_eq!(code(&b.call("keyward.certificates", json!({}))), "ok");
}

#[test]
fn an_oversize_frame_closes_the_connection_with_message_too_big() {
    let w = granted();
    let mut c = w.connect(PORTAL);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"keyward.signMessage","params":{{"key_serial":"K","data":"{}"}}}}"#,
        "A".repeat(70 * 1024)
    );
    c.send_text(&big);
    match c.next(Duration::from_secs(10)) {
        Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Size),
        other => panic!("{other:?}"),
    }
    assert!(w.agent.shown().is_empty());
}

#[test]
fn a_wrong_pin_reports_the_tries_left_and_the_final_try_needs_confirmation() {
    let w = granted();
    let serial = w.serial(1);
    let mut c = w.connect(PORTAL);
    let auth = json!({"nonce": NONCE, "key_serial": serial});
    for left in (2..=9).rev() {
        w.agent.reply(Reply::Pin("Wrong#2026pin", FinalTry::Refuse));
        let a = c.call("keyward.authenticate", auth.clone());
        assert_eq!(code(&a), "PIN_INCORRECT", "{a}");
        assert_eq!(a["error"]["data"]["tries_left"], left, "{a}");
    }
    // One more wrong PIN leaves one try: the key says final try.
    w.agent.reply(Reply::Pin("Wrong#2026pin", FinalTry::Refuse));
    let a = c.call("keyward.authenticate", auth.clone());
    assert_eq!(a["error"]["data"]["final_try"], true, "{a}");
    assert_eq!(control::tries(w.sim_state(), &serial).unwrap().user_left, 1);
    // The right PIN without the operator's confirmation: refused, no try spent.
    w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
    let a = c.call("keyward.authenticate", auth.clone());
    assert_eq!(code(&a), "FINAL_TRY_UNCONFIRMED", "{a}");
    assert_eq!(control::tries(w.sim_state(), &serial).unwrap().user_left, 1);
    let shown = w.agent.shown().pop().unwrap();
    assert_eq!(
        shown.pin.user,
        keyward_flows::PinState::FinalTry,
        "the window showed the final try"
    );
    // Confirmed: it works, and the count is back.
    w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Confirmed));
    assert_eq!(code(&c.call("keyward.authenticate", auth)), "ok");
    assert_eq!(
        control::tries(w.sim_state(), &serial).unwrap().user_left,
        10
    );
}

#[test]
fn a_locked_key_is_refused_without_asking_for_a_pin() {
    let w = granted();
    let serial = w.serial(1);
    let token = w
        .module
        .tokens()
        .unwrap()
        .into_iter()
        .find(|t| t.serial == serial)
        .unwrap();
    let session = w.module.session(&token).unwrap();
    for _ in 0..10 {
        let _ = session.login(
            &keyward_flows::Pin::new("Wrong#2026pin".into()),
            FinalTry::Confirmed,
        );
    }
    drop(session);
    assert_eq!(control::tries(w.sim_state(), &serial).unwrap().user_left, 0);
    let mut c = w.connect(PORTAL);
    let a = c.call(
        "keyward.authenticate",
        json!({"nonce": NONCE, "key_serial": serial}),
    );
    assert_eq!(code(&a), "PIN_LOCKED", "{a}");
    assert!(
        w.agent.shown().is_empty(),
        "the operator was asked for the PIN of a locked key"
    );
}

#[test]
fn a_key_pulled_out_mid_signature_is_key_removed_and_comes_back() {
    let w = granted();
    let serial = w.serial(0);
    let mut c = w.connect(PORTAL);
    control::arm_fault(
        w.sim_state(),
        Fault {
            function: "C_Sign",
            at_call: 1,
            effect: Effect::RemoveToken,
        },
    )
    .unwrap();
    w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
    let auth = json!({"nonce": NONCE, "key_serial": serial});
    let a = c.call("keyward.authenticate", auth.clone());
    assert_eq!(code(&a), "KEY_REMOVED", "{a}");
    // While it is out: not found.
    let a = c.call("keyward.authenticate", auth.clone());
    assert_eq!(code(&a), "KEY_NOT_FOUND", "{a}");
    control::clear_faults(w.sim_state()).unwrap();
    control::insert(w.sim_state(), &serial).unwrap();
    w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
    assert_eq!(code(&c.call("keyward.authenticate", auth)), "ok");
}

#[test]
fn the_operator_s_silence_is_user_timeout_and_cancel_is_user_cancelled() {
    let w = World::new(&KEYS, &[PORTAL], |c| {
        c.user_timeout = Duration::from_secs(1)
    });
    let mut c = w.connect(PORTAL);
    let auth = json!({"nonce": NONCE, "key_serial": w.serial(1)});
    w.agent
        .reply(Reply::Slowly(Duration::from_secs(3), USER_PIN));
    let a = c.call("keyward.authenticate", auth.clone());
    assert_eq!(code(&a), "USER_TIMEOUT", "{a}");
    w.agent.reply(Reply::Cancel);
    let a = c.call("keyward.authenticate", auth);
    assert_eq!(code(&a), "USER_CANCELLED", "{a}");
}

#[test]
fn several_keys_and_none_named_is_key_ambiguous_an_unknown_serial_key_not_found() {
    let w = granted();
    let mut c = w.connect(PORTAL);
    let a = c.call("keyward.authenticate", json!({"nonce": NONCE}));
    assert_eq!(code(&a), "KEY_AMBIGUOUS", "{a}");
    let a = c.call(
        "keyward.authenticate",
        json!({"nonce": NONCE, "key_serial": "NOSUCHKEY"}),
    );
    assert_eq!(code(&a), "KEY_NOT_FOUND", "{a}");
    let a = c.call("keyward.nothing", json!({}));
    assert_eq!(a["error"]["code"], -32601);
    assert!(w.agent.shown().is_empty());
}

#[test]
fn digests_are_signed_as_openssl_verifies_them() {
    let w = granted();
    let dir = tempfile::tempdir().unwrap();
    let mut c = w.connect(PORTAL);
    for i in 0..2 {
        let serial = w.serial(i);
        let cert = keyward_flows::usekey::WebKeys::new(vec![w.module.clone()])
            .certificate(&serial)
            .unwrap();
        let cert_file = dir.path().join("cert.der");
        std::fs::write(&cert_file, &cert.certificate_der).unwrap();
        let pubkey = dir.path().join("pub.pem");
        let out = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
            .arg(&cert_file)
            .output()
            .unwrap();
        std::fs::write(&pubkey, out.stdout).unwrap();
        for (f, md) in [
            ("SHA-256", "sha256"),
            ("SHA-384", "sha384"),
            ("SHA-512", "sha512"),
        ] {
            let alg = keyward_flows::HashAlg::parse(f).unwrap();
            let digest = alg.hash("投标文件 第一包".as_bytes());
            w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
            let a = c.call(
                "keyward.sign",
                json!({"key_serial": serial, "hash": STANDARD.encode(&digest), "hash_function": f}),
            );
            let r = &a["result"];
            assert_eq!(r["algorithm"]["hashFunction"], f, "{a}");
            let mut sig = STANDARD.decode(r["signature"].as_str().unwrap()).unwrap();
            if r["algorithm"]["cryptoAlgorithm"] == "ECC" {
                assert_eq!(sig.len(), 64);
                sig = keyward_pki_raw_to_der(&sig);
            }
            std::fs::write(dir.path().join("digest"), &digest).unwrap();
            std::fs::write(dir.path().join("sig"), &sig).unwrap();
            let ok = std::process::Command::new("openssl")
                .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
                .arg(&pubkey)
                .arg("-in")
                .arg(dir.path().join("digest"))
                .arg("-sigfile")
                .arg(dir.path().join("sig"))
                .args(["-pkeyopt", &format!("digest:{md}")])
                .output()
                .unwrap();
            assert!(
                ok.status.success(),
                "{serial} {f}: {}",
                String::from_utf8_lossy(&ok.stderr)
            );
            // The operator saw the digest, not a claim about it.
            match w.agent.shown().pop().unwrap().action {
                Action::SignDigest { digest_hex, .. } => assert_eq!(digest_hex, hex(&digest)),
                other => panic!("{other:?}"),
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `r‖s` to DER, for OpenSSL (written here, not taken from the code under test).
fn keyward_pki_raw_to_der(raw: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = v.iter().copied().skip_while(|&b| b == 0).collect();
        if v.first().is_none_or(|&b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = int(r);
    body.extend(int(s));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn an_origin_holds_four_connections_at_most() {
    let w = granted();
    let held: Vec<_> = (0..4).map(|_| w.connect(PORTAL)).collect();
    assert_eq!(w.try_connect(&[("Origin", PORTAL)]).err(), Some(429));
    // Another origin still gets in; and a closed connection gives its place back.
    let mut other = w.connect("https://other.test");
    assert_eq!(code(&other.call("keyward.version", json!({}))), "ok");
    drop(held);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(c) = w.try_connect(&[("Origin", PORTAL)]) {
            again = Some(c);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        again.is_some(),
        "the closed connections' places were not given back"
    );
}

#[test]
fn an_idle_connection_is_closed() {
    let w = World::new(&KEYS, &[PORTAL], |c| {
        c.idle_timeout = Duration::from_millis(500)
    });
    let mut c = w.connect(PORTAL);
    match c.next(Duration::from_secs(10)) {
        Some(Message::Close(Some(f))) => assert_eq!(f.code, CloseCode::Away),
        other => panic!("{other:?}"),
    }
}

#[test]
fn consent_once_lasts_the_connection_always_is_kept_and_deny_cools_off() {
    let w = World::new(&KEYS, &[], |_| {});
    // 允许一次: this connection only.
    w.agent.consent(Consent::Once);
    let mut first = w.connect(PORTAL);
    assert_eq!(code(&first.call("keyward.certificates", json!({}))), "ok");
    assert_eq!(code(&first.call("keyward.certificates", json!({}))), "ok");
    assert_eq!(w.agent.consents_asked(), 1);
    drop(first);
    // A new connection asks again; 始终允许 is written down.
    w.agent.consent(Consent::Always);
    let mut second = w.connect(PORTAL);
    assert_eq!(code(&second.call("keyward.certificates", json!({}))), "ok");
    assert_eq!(w.agent.consents_asked(), 2);
    let kept: Value = serde_json::from_str(&std::fs::read_to_string(&w.grants).unwrap()).unwrap();
    assert_eq!(kept["grants"][0]["origin"], PORTAL);
    let mut third = w.connect(PORTAL);
    assert_eq!(code(&third.call("keyward.certificates", json!({}))), "ok");
    assert_eq!(w.agent.consents_asked(), 2, "a kept grant does not ask");
    // 拒绝: refused, and refused again without asking while it cools off.
    let mut evil = w.connect("https://evil.test");
    assert_eq!(
        code(&evil.call("keyward.certificates", json!({}))),
        "ORIGIN_NOT_ALLOWED"
    );
    let again = evil.call("keyward.certificates", json!({}));
    assert_eq!(code(&again), "ORIGIN_NOT_ALLOWED");
    assert!(
        again["error"]["data"]["retry_after_seconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(w.agent.consents_asked(), 3);
}

#[test]
fn the_audit_log_names_origin_method_key_and_outcome_and_nothing_secret() {
    let w = granted();
    let mut c = w.connect(PORTAL);
    let serial = w.serial(1);
    w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
    assert_eq!(
        code(&c.call(
            "keyward.authenticate",
            json!({"nonce": NONCE, "key_serial": serial})
        )),
        "ok"
    );
    w.agent.reply(Reply::Cancel);
    let digest = STANDARD.encode([0x5au8; 32]);
    c.call(
        "keyward.sign",
        json!({"key_serial": serial, "hash": digest, "hash_function": "SHA-256"}),
    );
    let mut evil = w.connect("https://evil.test");
    evil.call("keyward.certificates", json!({}));
    let lines = w.audit_lines();
    let outcomes: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["origin"].as_str().unwrap().to_owned(),
                l["method"].as_str().unwrap().to_owned(),
                l["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (PORTAL.into(), "keyward.authenticate".into(), "ok".into()),
            (
                PORTAL.into(),
                "keyward.sign".into(),
                "USER_CANCELLED".into()
            ),
            (
                "https://evil.test".into(),
                "keyward.certificates".into(),
                "ORIGIN_NOT_ALLOWED".into()
            ),
        ]
    );
    assert_eq!(lines[0]["key_serial"], serial.as_str());
    let text = std::fs::read_to_string(&w.audit).unwrap();
    for secret in [USER_PIN, NONCE, digest.as_str()] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
}

#[test]
fn open_reaches_the_host_with_the_key_and_the_handshake_origin() {
    let w = granted();
    let mut c = w.connect(PORTAL);
    let a = c.call(
        "keyward.open",
        json!({"screen": "renew", "key_serial": w.serial(0), "origin": "https://bank.test"}),
    );
    assert_eq!(code(&a), "ok", "{a}");
    let a = c.call("keyward.open", json!({"screen": "format_disk"}));
    assert_eq!(code(&a), "INVALID_ARGUMENT");
    let opened = w.agent.opened.lock().unwrap().clone();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].0, PORTAL);
    assert_eq!(opened[0].2.as_deref(), Some(w.serial(0).as_str()));
}

#[test]
fn a_blank_key_is_not_offered() {
    let w = World::new(&[KeyState::Blank, KeyState::IssuedEc], &[PORTAL], |_| {});
    let mut c = w.connect(PORTAL);
    let list = c.call("keyward.certificates", json!({}));
    assert_eq!(list["result"].as_array().unwrap().len(), 1, "{list}");
    // With one key that can sign, none needs naming.
    w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
    assert_eq!(
        code(&c.call("keyward.authenticate", json!({"nonce": NONCE}))),
        "ok"
    );
}

#[test]
fn messages_are_signed_as_cms_openssl_verifies_and_the_operator_read_the_text() {
    let w = granted();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, &w.manifest.root_pem).unwrap();
    let mut c = w.connect(PORTAL);
    let bid = "投标人：广州市示例科技有限公司\n报价：壹佰万元整\n";
    for i in 0..2 {
        let serial = w.serial(i);
        for detached in [false, true] {
            w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
            let a = c.call(
                "keyward.signMessage",
                json!({"key_serial": serial, "data": STANDARD.encode(bid), "detached": detached}),
            );
            let cms = STANDARD
                .decode(a["result"]["cms"].as_str().unwrap_or_else(|| panic!("{a}")))
                .unwrap();
            let (sig, content, out) = (
                dir.path().join("sig.der"),
                dir.path().join("bid.txt"),
                dir.path().join("out"),
            );
            std::fs::write(&sig, &cms).unwrap();
            std::fs::write(&content, bid).unwrap();
            let verify = |content_file: Option<&std::path::Path>| {
                let mut cmd = std::process::Command::new("openssl");
                cmd.args(["cms", "-verify", "-inform", "DER", "-binary", "-in"])
                    .arg(&sig)
                    .arg("-CAfile")
                    .arg(&root)
                    .arg("-out")
                    .arg(&out);
                if let Some(f) = content_file {
                    cmd.arg("-content").arg(f);
                }
                cmd.output().unwrap()
            };
            let ok = verify(detached.then_some(content.as_path()));
            assert!(
                ok.status.success(),
                "key {i} detached {detached}: {}",
                String::from_utf8_lossy(&ok.stderr)
            );
            assert_eq!(std::fs::read_to_string(&out).unwrap(), bid);
            // Over other content it fails.
            if detached {
                std::fs::write(&content, "报价：壹仟万元整").unwrap();
                assert!(!verify(Some(content.as_path())).status.success());
            }
            // The operator read the bid itself.
            match w.agent.shown().pop().unwrap().action {
                Action::SignMessage { text, bytes, .. } => {
                    assert_eq!(text.as_deref(), Some(bid));
                    assert_eq!(bytes, bid.len());
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // Binary data is never passed off as text: the operator sees its length and digest.
    w.agent.reply(Reply::Cancel);
    let binary = [0u8, 1, 2, 0x1b, b'[', b'2', b'J', 0xff];
    c.call(
        "keyward.signMessage",
        json!({"key_serial": w.serial(1), "data": STANDARD.encode(binary)}),
    );
    match w.agent.shown().pop().unwrap().action {
        Action::SignMessage {
            text, sha256_hex, ..
        } => {
            assert_eq!(text, None);
            assert_eq!(sha256_hex.len(), 64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sign_data_signs_what_the_operator_read_as_openssl_verifies_it() {
    let w = granted();
    let dir = tempfile::tempdir().unwrap();
    let mut c = w.connect(PORTAL);
    let text = "投标人：广州市示例科技有限公司\n报价：壹佰万元整\n";
    std::fs::write(dir.path().join("data"), text).unwrap();
    for i in 0..2 {
        let serial = w.serial(i);
        let cert = keyward_flows::usekey::WebKeys::new(vec![w.module.clone()])
            .certificate(&serial)
            .unwrap();
        std::fs::write(dir.path().join("cert.der"), &cert.certificate_der).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
            .arg(dir.path().join("cert.der"))
            .output()
            .unwrap();
        std::fs::write(dir.path().join("pub.pem"), out.stdout).unwrap();
        w.agent.reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
        let a = c.call(
            "keyward.signData",
            json!({"key_serial": serial, "data": STANDARD.encode(text)}),
        );
        let r = &a["result"];
        assert_eq!(r["algorithm"]["hashFunction"], "SHA-256", "{a}");
        let mut sig = STANDARD.decode(r["signature"].as_str().unwrap()).unwrap();
        if r["algorithm"]["cryptoAlgorithm"] == "ECC" {
            sig = keyward_pki_raw_to_der(&sig);
        }
        std::fs::write(dir.path().join("sig"), &sig).unwrap();
        // openssl hashes the data itself: the signature is over the data, not a digest the
        // page chose.
        let verify = |data: &str| {
            std::process::Command::new("openssl")
                .args(["dgst", "-sha256", "-verify"])
                .arg(dir.path().join("pub.pem"))
                .arg("-signature")
                .arg(dir.path().join("sig"))
                .arg(dir.path().join(data))
                .output()
                .unwrap()
        };
        let ok = verify("data");
        assert!(ok.status.success(), "{serial}: {ok:?}");
        std::fs::write(dir.path().join("other"), "报价：壹仟万元整").unwrap();
        assert!(!verify("other").status.success());
        // The operator read the text, not a digest.
        match w.agent.shown().pop().unwrap().action {
            Action::SignMessage { text: shown, .. } => assert_eq!(shown.as_deref(), Some(text)),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn certificates_carry_the_pin_state_the_key_reports() {
    let w = granted();
    let serial = w.serial(1);
    let mut c = w.connect(PORTAL);
    let pin_of = |c: &mut common::bridge::Client| {
        let list = c.call("keyward.certificates", json!({}));
        list["result"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key_serial"] == serial)
            .unwrap()["pin"]
            .clone()
    };
    assert_eq!(pin_of(&mut c), json!({"state": "ok", "tries_left": 10}));
    w.agent.reply(Reply::Pin("Wrong#2026pin", FinalTry::Refuse));
    let a = c.call(
        "keyward.authenticate",
        json!({"nonce": NONCE, "key_serial": serial}),
    );
    assert_eq!(code(&a), "PIN_INCORRECT");
    assert_eq!(
        pin_of(&mut c),
        json!({"state": "count_low", "tries_left": 9})
    );
}
