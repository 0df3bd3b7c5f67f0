//! The sample portal's server against what an attacker can hand it, with tokens and CMS made
//! by the real bridge over simulator keys (RSA and EC): keyward-verify, embedded in the
//! portal, must refuse each with the rule named — a replayed token, a token for another
//! origin, a stale nonce, a tampered or foreign signature — while the honest journey binds,
//! logs in and bids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::bridge::{BridgeWorld, Client, KEYS, PORTAL, Reply};
use common::portal::{Api, HOSTILE, PortalWorld, rule};
use keyward_bridge::agent::Action;
use keyward_flows::FinalTry;
use serde_json::{Value, json};
use softhsm_fixtures::USER_PIN;

struct World {
    bridge: BridgeWorld,
    portal: PortalWorld,
}

fn world() -> World {
    let bridge = BridgeWorld::new(&KEYS, &[PORTAL, HOSTILE], |_| {});
    let url = format!("ws://{}/", bridge.addr);
    let portal = PortalWorld::start(
        &bridge.runtime,
        &bridge.manifest.root_pem,
        &bridge.manifest.issuing_pem,
        &url,
    );
    World { bridge, portal }
}

impl World {
    /// A token from the bridge for a page of `origin`, over `nonce`, with key `i`.
    fn token(&self, c: &mut Client, i: usize, nonce: &str, purpose: &str) -> Value {
        self.bridge
            .agent
            .reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
        let a = c.call(
            "keyward.authenticate",
            json!({"nonce": nonce, "key_serial": self.bridge.serial(i), "purpose": purpose}),
        );
        a["result"].clone()
    }

    /// CMS over `text` from key `i`, base64.
    fn cms(&self, c: &mut Client, i: usize, text: &str) -> String {
        self.bridge
            .agent
            .reply(Reply::Pin(USER_PIN, FinalTry::Refuse));
        let a = c.call(
            "keyward.signMessage",
            json!({"key_serial": self.bridge.serial(i), "data": STANDARD.encode(text)}),
        );
        a["result"]["cms"]
            .as_str()
            .unwrap_or_else(|| panic!("{a}"))
            .to_owned()
    }

    fn certificate_of(&self, i: usize) -> keyward_pki::CertSummary {
        let c = keyward_flows::usekey::WebKeys::new(vec![self.bridge.module.clone()])
            .certificate(&self.bridge.serial(i))
            .unwrap();
        c.summary
    }

    /// Account `name` with key `i` bound, logged in.
    fn bound(&self, c: &mut Client, name: &str, i: usize) -> Api {
        let mut api = self.portal.client();
        api.register_and_login(name, "Supplier#2026");
        let nonce = api.challenge();
        let token = self.token(c, i, &nonce, "bind");
        let (s, v) = api.post("/api/bind", json!({ "token": token }));
        assert_eq!(s, 200, "{v}");
        api
    }
}

#[test]
fn binding_records_issuer_serial_and_credit_code_and_one_certificate_per_account() {
    let w = world();
    let mut c = w.bridge.connect(PORTAL);
    for i in 0..2 {
        let account = format!("supplier-{i}");
        let mut api = w.bound(&mut c, &account, i);
        let cert = w.certificate_of(i);
        let b = w.portal.running.portal.binding(&account).unwrap();
        assert_eq!(b.serial, cert.serial);
        assert_eq!(b.issuer, cert.issuer);
        assert_eq!(b.credit_code, cert.credit_code);
        assert!(b.credit_code.is_some(), "the fixture carries a credit code");
        // The operator was told it was 绑定.
        assert!(matches!(
            w.bridge.agent.shown().pop().unwrap().action,
            Action::Bind
        ));
        // A second certificate on the same account: refused (one certificate an account).
        let nonce = api.challenge();
        let token = w.token(&mut c, 1 - i, &nonce, "bind");
        let (s, v) = api.post("/api/bind", json!({ "token": token }));
        assert_eq!((s, rule(&v).as_str()), (409, "already_bound"), "{v}");
        assert_eq!(w.portal.running.portal.binding(&account).unwrap(), b);
    }
    // A certificate already bound elsewhere cannot be bound to a third account.
    let mut api = w.portal.client();
    api.register_and_login("supplier-x", "Supplier#2026");
    let nonce = api.challenge();
    let token = w.token(&mut c, 0, &nonce, "bind");
    let (s, v) = api.post("/api/bind", json!({ "token": token }));
    assert_eq!((s, rule(&v).as_str()), (409, "certificate_taken"), "{v}");
}

#[test]
fn a_replayed_token_is_nonce_reused_in_its_session_and_signature_in_another() {
    let w = world();
    let mut c = w.bridge.connect(PORTAL);
    for i in 0..2 {
        let account = format!("supplier-{i}");
        // 绑定, then the same token again in the same session: its nonce is spent.
        let mut api = w.portal.client();
        api.register_and_login(&account, "Supplier#2026");
        let nonce = api.challenge();
        let token = w.token(&mut c, i, &nonce, "bind");
        let (s, v) = api.post("/api/bind", json!({ "token": token }));
        assert_eq!(s, 200, "{v}");
        let (s, v) = api.post("/api/bind", json!({ "token": token }));
        assert_eq!(
            (s, rule(&v).as_str()),
            (401, "nonce_reused"),
            "key {i}: {v}"
        );

        let mut browser = w.portal.client();
        let nonce = browser.challenge();
        let token = w.token(&mut c, i, &nonce, "login");
        let (s, v) = browser.post("/api/login/key", json!({ "token": token }));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["account"], account.as_str());
        // The same login token again: the session that held its nonce ended with the login,
        // and the new one was given none.
        let (s, v) = browser.post("/api/login/key", json!({ "token": token }));
        assert_eq!((s, rule(&v).as_str()), (400, "no_challenge"), "{v}");
        // Asking for a fresh nonce does not help: the token answers the old one.
        browser.challenge();
        let (s, v) = browser.post("/api/login/key", json!({ "token": token }));
        assert_eq!((s, rule(&v).as_str()), (401, "signature"), "key {i}: {v}");
        // Stolen and replayed from another browser, which was given a nonce of its own.
        let mut thief = w.portal.client();
        thief.challenge();
        let (s, v) = thief.post("/api/login/key", json!({ "token": token }));
        assert_eq!((s, rule(&v).as_str()), (401, "signature"), "key {i}: {v}");
        // Without any challenge at all, the portal has no nonce to check it against.
        let mut stranger = w.portal.client();
        let (s, v) = stranger.post("/api/login/key", json!({ "token": token }));
        assert_eq!((s, rule(&v).as_str()), (400, "no_challenge"), "{v}");
        assert_eq!(stranger.get("/api/me").0, 401);
        assert_eq!(thief.get("/api/me").0, 401);
    }
}

#[test]
fn a_token_made_for_another_origin_is_refused_by_signature() {
    let w = world();
    let mut portal_page = w.bridge.connect(PORTAL);
    // The operator also granted another site; a page there asks for a token over the nonce
    // the portal gave the victim's browser.
    let mut evil_page = w.bridge.connect(HOSTILE);
    for i in 0..2 {
        w.bound(&mut portal_page, &format!("supplier-{i}"), i);
        let mut victim = w.portal.client();
        let nonce = victim.challenge();
        let token = w.token(&mut evil_page, i, &nonce, "login");
        assert!(token["signature"].is_string(), "{token}");
        let (s, v) = victim.post("/api/login/key", json!({ "token": token }));
        assert_eq!((s, rule(&v).as_str()), (401, "signature"), "key {i}: {v}");
        assert_eq!(victim.get("/api/me").0, 401);
    }
}

#[test]
fn a_nonce_older_than_five_minutes_is_nonce_expired() {
    let w = world();
    let mut c = w.bridge.connect(PORTAL);
    for i in 0..2 {
        w.bound(&mut c, &format!("supplier-{i}"), i);
        let mut browser = w.portal.client();
        let nonce = browser.challenge();
        let token = w.token(&mut c, i, &nonce, "login");
        w.portal.advance_seconds(5 * 60 + 1);
        let (s, v) = browser.post("/api/login/key", json!({ "token": token }));
        assert_eq!(
            (s, rule(&v).as_str()),
            (401, "nonce_expired"),
            "key {i}: {v}"
        );
    }
}

fn draft(api: &mut Api, project: &str) -> (String, String) {
    let (s, v) = api.post(
        "/api/bids/draft",
        json!({"project": project, "amount": "1000000"}),
    );
    assert_eq!(s, 200, "{v}");
    (
        v["draft"].as_str().unwrap().to_owned(),
        v["text"].as_str().unwrap().to_owned(),
    )
}

/// The CMS with one byte of the first occurrence of `marker` + `skip` flipped.
fn flip_after(cms: &[u8], marker: &[u8], skip: usize) -> String {
    let at = cms
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker in the CMS");
    let mut out = cms.to_vec();
    out[at + marker.len() + skip] ^= 0x01;
    STANDARD.encode(out)
}

#[test]
fn a_tampered_or_foreign_bid_signature_is_refused_with_its_rule_and_an_honest_one_is_kept() {
    let w = world();
    let mut c = w.bridge.connect(PORTAL);
    // The messageDigest attribute: its OID, then SET { OCTET STRING (32 bytes) }.
    let message_digest_oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04,
    ];
    for i in 0..2 {
        let account = format!("supplier-{i}");
        let mut api = w.bound(&mut c, &account, i);
        let (id, text) = draft(&mut api, "GZCG-2026-0815");
        assert!(text.contains("投标报价（元）：1000000"), "{text}");
        let honest = w.cms(&mut c, i, &text);
        // The operator read the bid the server wrote.
        match w.bridge.agent.shown().pop().unwrap().action {
            Action::SignMessage { text: shown, .. } => {
                assert_eq!(shown.as_deref(), Some(text.as_str()))
            }
            other => panic!("{other:?}"),
        }
        let der = STANDARD.decode(&honest).unwrap();

        // Another text signed (the page changed the price): the content is not the server's.
        let other = w.cms(&mut c, i, &text.replace("1000000", "9000000"));
        let cases: Vec<(&str, String)> = vec![
            ("cms_content", other),
            // The signature's last byte: it no longer verifies.
            ("signature", {
                let mut d = der.clone();
                let n = d.len();
                // The signature is the SignerInfo's last field, at the end of the structure.
                d[n - 1] ^= 0x01;
                STANDARD.encode(d)
            }),
            // The message digest attribute changed: not the content's digest.
            (
                "cms_message_digest",
                flip_after(&der, &message_digest_oid, 4),
            ),
            ("cms_malformed", STANDARD.encode(&der[..der.len() / 2])),
            // Signed by the other fixture key, not the one bound to this account.
            ("signer_not_bound", w.cms(&mut c, 1 - i, &text)),
        ];
        for (expected, cms) in cases {
            let (s, v) = api.post("/api/bids", json!({"draft": id, "cms": cms}));
            assert_eq!(rule(&v), expected, "key {i}: {v}");
            assert!(s == 401 || s == 403, "{s} {v}");
        }
        assert!(w.portal.running.portal.bids(&account).is_empty());

        let (s, v) = api.post("/api/bids", json!({"draft": id, "cms": honest}));
        assert_eq!(s, 200, "{v}");
        let bids = w.portal.running.portal.bids(&account);
        assert_eq!(bids.len(), 1);
        assert_eq!(bids[0].text, text);
        assert_eq!(bids[0].signer_serial, w.certificate_of(i).serial);
        assert!(bids[0].signing_time.is_some());
        // The same signature again: the draft was used.
        let (_, v) = api.post("/api/bids", json!({"draft": id, "cms": honest}));
        assert_eq!(rule(&v), "no_draft", "{v}");
        // Replayed onto a new draft: its text (id, time) differs.
        let (id2, _) = draft(&mut api, "GZCG-2026-0815");
        let (_, v) = api.post("/api/bids", json!({"draft": id2, "cms": honest}));
        assert_eq!(rule(&v), "cms_content", "{v}");
    }
}

#[test]
fn the_hostile_host_gets_no_api_and_the_api_needs_a_login() {
    let w = world();
    let mut api = w.portal.client();
    assert_eq!(api.get("/api/me").0, 401);
    let (s, v) = api.post("/api/bids/draft", json!({"project": "X", "amount": "1"}));
    assert_eq!((s, rule(&v).as_str()), (401, "not_logged_in"));
    let (s, v) = api.post("/api/bind", json!({"token": {}}));
    assert_eq!((s, rule(&v).as_str()), (401, "not_logged_in"));
    // A wrong password and an unknown account read the same.
    api.register_and_login("supplier-a", "Supplier#2026");
    let mut other = w.portal.client();
    let (s1, v1) = other.post(
        "/api/login/password",
        json!({"account": "supplier-a", "password": "wrong-password"}),
    );
    let (s2, v2) = other.post(
        "/api/login/password",
        json!({"account": "nobody-here", "password": "wrong-password"}),
    );
    assert_eq!((s1, &v1), (s2, &v2));
    assert_eq!(rule(&v1), "bad_password");
}
