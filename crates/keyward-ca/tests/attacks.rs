//! The trust model, tried from outside: a stranger who knows what is printed on paper (key
//! serials, credit codes, the handler's name and ID number, business ids seen on a form)
//! attacks a real CA over HTTPS, the way the review of the service found it could be
//! attacked. Each test is named after the hole it closes and fails if the hole reopens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use keyward_ca::{Config, Server, ServerHandle};
use keyward_ca_api::auth::{
    BUSINESS_SECRET_HEADER, NEXT_NONCE_HEADER, NONCE_HEADER, SIGNATURE_HEADER,
};
use keyward_ca_api::endpoints::{Access, ENDPOINTS};
use keyward_ca_api::{body_sha256, request_purpose, signing_input};
use rcgen::{KeyPair, SigningKey};
use serde_json::{Value, json};

/// The stranger: not the handler of record, with a phone of their own.
fn stranger() -> Value {
    json!({"name": "赵六", "id_number": "110105198001010016", "phone": "13600136000"})
}

const STRANGER_PHONE: &str = "13600136000";

/// A real CA on a loopback port, reached over TLS with its root pinned.
struct Ca {
    handle: ServerHandle,
    client: reqwest::Client,
    base: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Ca {
    async fn start(config: impl FnOnce(std::path::PathBuf) -> Config) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let handle = Server::start(config(dir.path().join("data")))
            .await
            .unwrap();
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(handle.root_pem().as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        Ca {
            base: handle.base_url(),
            admin: handle.admin_token().to_owned(),
            handle,
            client,
            _dir: dir,
        }
    }

    async fn sandbox() -> Ca {
        Ca::start(Config::sandbox).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.client.post(self.url(path)).json(body)).await
    }

    async fn admin_get(&self, path: &str) -> Value {
        self.send(self.client.get(self.url(path)).bearer_auth(&self.admin))
            .await
            .1
    }

    async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(&self.admin)
                .json(body),
        )
        .await
    }

    async fn with_secret(&self, path: &str, secret: &str, body: &Value) -> (u16, Value) {
        self.send(
            self.client
                .post(self.url(path))
                .header(BUSINESS_SECRET_HEADER, secret)
                .json(body),
        )
        .await
    }

    async fn signed(
        &self,
        key: &KeyPair,
        serial: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (_, n) = self
            .post("/v1/nonces", &json!({"key_serial": serial}))
            .await;
        let nonce = n["nonce"].as_str().unwrap().to_owned();
        let (status, value, _) = self.signed_over(key, &nonce, method, path, body).await;
        (status, value)
    }

    /// A request signed by `key` over `nonce` as given: the status, the answer, and the next
    /// nonce the answer carried, if any.
    async fn signed_over(
        &self,
        key: &KeyPair,
        nonce: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, Option<String>) {
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let sig = key
            .sign(&signing_input(
                &request_purpose(method, path),
                nonce,
                &body_sha256(&bytes),
            ))
            .unwrap();
        let mut req = self
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                self.url(path),
            )
            .header(NONCE_HEADER, nonce)
            .header(SIGNATURE_HEADER, hex::encode(sig));
        if body.is_some() {
            req = req.header("content-type", "application/json").body(bytes);
        }
        let r = req.send().await.unwrap();
        let next = r
            .headers()
            .get(NEXT_NONCE_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            next,
        )
    }

    /// Every text the outbox holds for a phone.
    async fn texts_to(&self, phone: &str) -> Vec<String> {
        let v = self
            .admin_get(&format!("/admin/v1/sms?phone={phone}"))
            .await;
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The newest code-bearing text about a key.
    async fn last_code(&self, serial: &str) -> String {
        let v = self
            .admin_get(&format!("/admin/v1/sms?key_serial={serial}"))
            .await;
        let text = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["text"].as_str().unwrap().contains("验证码 "))
            .expect("a code")["text"]
            .as_str()
            .unwrap()
            .to_owned();
        code_in(&text)
    }

    /// The station issues key `serial` for the test organisation (handler of record: the
    /// common `handler()`), and the handler activates it.
    async fn activated_key(&self, serial: &str) -> KeyPair {
        let key = p256();
        let (s, cert) = self
            .admin_post(
                "/admin/v1/certify",
                &json!({"organisation": org(USCC), "csr_pem": csr(&key), "years": 1}),
            )
            .await;
        assert_eq!(s, 200, "{cert}");
        let (s, v) = self
            .admin_post(
                "/admin/v1/keys",
                &register_body(serial, USCC, cert["certificate_pem"].as_str().unwrap()),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        // Asked for from the client; a service that sent one at registration already keeps
        // it (and its cool-down).
        let (_, sent) = self
            .post(&format!("/v1/keys/{serial}/activation/code"), &json!({}))
            .await;
        let code = self.last_code(serial).await;
        let (s, v) = self
            .post(
                &format!("/v1/keys/{serial}/activation/redeem"),
                &with_ticket(&code, &sent),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = self
            .signed(
                &key,
                serial,
                "POST",
                &format!("/v1/keys/{serial}/activation/confirm"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        key
    }
}

/// A redemption body: the code, and the ticket a code answer carried (if it carried one).
fn with_ticket(code: &str, sent: &Value) -> Value {
    let mut body = json!({"code": code});
    if let Some(t) = sent["ticket"].as_str() {
        body["ticket"] = json!(t);
    }
    body
}

fn refused(status: u16) -> bool {
    (400..500).contains(&status)
}

/// The business in a creating answer (the answer itself, from a service that returns a bare
/// business).
fn biz(v: &Value) -> &Value {
    if v["business"].is_object() {
        &v["business"]
    } else {
        v
    }
}

/// The hole: a change order named anyone as handler, the unlock then compared the requester
/// with the latest business's handler, approved the stranger, sent them the code and
/// released the SO PIN. Now the order is not the stranger's to place, and the stranger's
/// unlock goes to review and never releases anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_hijack_through_a_change_order_is_refused_at_the_first_step() {
    let ca = Ca::sandbox().await;
    ca.activated_key("K1").await;
    // Step 1: an order naming the stranger as handler, by the key's serial alone.
    let (s, v) = ca
        .post(
            "/v1/businesses",
            &json!({"kind": "change", "key_serial": "K1", "handler": stranger(), "new_name": "广州示例科技有限公司", "new_legal_address": null}),
        )
        .await;
    assert!(refused(s), "a change by serial alone was taken: {s} {v}");
    let (s, v) = ca
        .post(
            "/v1/keys/K1/changes",
            &json!({"handler": stranger(), "new_name": "广州示例科技有限公司", "new_legal_address": null}),
        )
        .await;
    assert!(refused(s), "a change without the key's signature: {s} {v}");
    // Step 2: the stranger asks to unlock, naming themselves: never automatic.
    let (s, v) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": stranger()}))
        .await;
    assert_eq!(s, 200, "{v}");
    let business = biz(&v);
    assert_ne!(business["state"], "approved", "the stranger was approved");
    let id = business["id"].as_str().unwrap();
    // Step 3: no code reaches the stranger's phone, and nothing releases an SO PIN.
    ca.post(&format!("/v1/keys/K1/unlocks/{id}/code"), &json!({}))
        .await;
    let codes: Vec<String> = ca
        .texts_to(STRANGER_PHONE)
        .await
        .into_iter()
        .filter(|t| t.contains("验证码"))
        .collect();
    assert!(codes.is_empty(), "a code went to the stranger: {codes:?}");
    for code in ["000000", "123456"] {
        let (s, v) = ca
            .post(
                &format!("/v1/keys/K1/unlocks/{id}/authorisation"),
                &json!({"code": code}),
            )
            .await;
        assert!(refused(s) && v.get("so_pin").is_none(), "{s} {v}");
    }
    // Even with the business's own secret (the stranger holds it), no code, no PIN.
    if let Some(secret) = v["secret"].as_str() {
        let (s, v) = ca
            .with_secret(
                &format!("/v1/keys/K1/unlocks/{id}/authorisation"),
                secret,
                &json!({"code": "000000"}),
            )
            .await;
        assert!(refused(s) && v.get("so_pin").is_none(), "{s} {v}");
    }
}

/// The hole: a new application rewrote the organisation's registered name at once, and the
/// next renewal wrote the stored name into the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisation_rename_by_an_application_reaches_no_certificate() {
    let ca = Ca::sandbox().await;
    let key = ca.activated_key("K1").await;
    let mut rogue = org(USCC);
    rogue["name"] = json!("冒名顶替有限公司");
    rogue["legal_address"] = json!("某地某号");
    let (s, v) = ca
        .post(
            "/v1/businesses",
            &json!({"kind": "new_application", "organisation": rogue, "handler": stranger(), "years": 1, "invoice": {"title": "冒名顶替有限公司", "tax_id": USCC, "email": "x@y.z"}}),
        )
        .await;
    // The order may be taken (it costs money and goes to review), but it changes nothing.
    assert!(s == 200 || refused(s), "{s} {v}");
    // The key's renewed certificate carries the name the current one carries.
    ca.handle.clock().advance(time::Duration::days(300));
    let (s, applied) = ca
        .signed(
            &key,
            "K1",
            "POST",
            "/v1/keys/K1/renewals",
            Some(&json!({"years": 1, "invoice": {"title": "广州示例科技有限公司", "tax_id": USCC, "email": "finance@example.com"}})),
        )
        .await;
    assert_eq!(s, 200, "{applied}");
    let id = biz(&applied)["id"].as_str().unwrap();
    let secret = applied["secret"].as_str().unwrap_or_default();
    let (_, pay) = ca
        .with_secret(&format!("/v1/businesses/{id}/payment"), secret, &json!({}))
        .await;
    let (s, _) = ca
        .post(
            &format!("{}/complete", pay["pay_url"].as_str().unwrap()),
            &json!({"outcome": "paid"}),
        )
        .await;
    assert_eq!(s, 200);
    let new = p256();
    let (s, issued) = ca
        .signed(
            &key,
            "K1",
            "POST",
            &format!("/v1/keys/K1/renewals/{id}/certificate"),
            Some(&json!({"csr_pem": csr(&new)})),
        )
        .await;
    assert_eq!(s, 200, "{issued}");
    let der = keyward_pki::pem::decode(issued["certificate_pem"].as_str().unwrap(), "CERTIFICATE")
        .unwrap();
    let summary =
        keyward_pki::CertSummary::from_der(&der, time::OffsetDateTime::now_utc()).unwrap();
    assert_eq!(
        summary.organization.as_deref(),
        Some("广州示例科技有限公司"),
        "the rogue name reached the certificate"
    );
    // And the station cannot register a key under the rogue name either.
    let (s, v) = ca
        .admin_post(
            "/admin/v1/certify",
            &json!({"organisation": {"name": "冒名顶替有限公司", "uscc": USCC, "kind": "enterprise", "legal_address": "某地某号"}, "csr_pem": csr(&p256()), "years": 1}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("certificate_mismatch")));
}

/// The hole: the sandbox payer was routed in every CA, unauthenticated, and signed its
/// notification with the real notification key: anything could be paid for free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_payment_is_impossible_outside_the_sandbox() {
    let ca = Ca::start(|dir| {
        let mut c = Config::sandbox(dir);
        c.sandbox_payments = false;
        c
    })
    .await;
    let key = ca.activated_key("K1").await;
    ca.handle.clock().advance(time::Duration::days(300));
    let (s, applied) = ca
        .signed(
            &key,
            "K1",
            "POST",
            "/v1/keys/K1/renewals",
            Some(&json!({"years": 1, "invoice": {"title": "t", "tax_id": USCC, "email": "a@b.c"}})),
        )
        .await;
    assert_eq!(s, 200, "{applied}");
    let id = biz(&applied)["id"].as_str().unwrap();
    let secret = applied["secret"].as_str().unwrap_or_default();
    let (_, pay) = ca
        .with_secret(&format!("/v1/businesses/{id}/payment"), secret, &json!({}))
        .await;
    let pid = pay["payment_id"].as_str().unwrap();
    let (s, v) = ca
        .post(
            &format!("/sandbox/payments/{pid}/complete"),
            &json!({"outcome": "paid"}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")));
    let (s, _) = ca.get(&format!("/sandbox/payments/{pid}")).await;
    assert_eq!(s, 404);
    // A notification under any key a stranger could have is refused.
    let note =
        json!({"payment_id": pid, "business_id": id, "status": "paid", "amount_fen": 20_000});
    let bytes = serde_json::to_vec(&note).unwrap();
    for guess in [&[0u8; 32][..], b"keyward"] {
        let (s, v) = ca
            .send(
                ca.client
                    .post(ca.url("/v1/payments/notify"))
                    .header("content-type", "application/json")
                    .header(
                        keyward_ca_api::auth::PAYMENT_SIGNATURE_HEADER,
                        keyward_ca::crypto::hmac_hex(guess, &bytes),
                    )
                    .body(bytes.clone()),
            )
            .await;
        assert_eq!(
            (s, v["code"].as_str()),
            (401, Some("payment_signature_invalid"))
        );
    }
    let (_, b) = ca
        .send(
            ca.client
                .get(ca.url(&format!("/v1/businesses/{id}")))
                .header(BUSINESS_SECRET_HEADER, secret),
        )
        .await;
    assert_eq!(b["state"], "awaiting_payment", "still unpaid");
    // Nor does the OpenAPI document of such a CA mention the sandbox.
    let (_, doc) = ca.get("/openapi.json").await;
    assert!(
        doc["paths"]
            .get("/sandbox/payments/{id}/complete")
            .is_none()
    );
}

/// The hole: attachments took any business id, so a stranger could upload the seal scan
/// the CA would sign into the organisation's seal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_scan_injection_by_business_id_is_refused() {
    let ca = Ca::sandbox().await;
    let key = ca.activated_key("K1").await;
    let (s, applied) = ca
        .signed(
            &key,
            "K1",
            "POST",
            "/v1/keys/K1/seals",
            Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": false})),
        )
        .await;
    assert_eq!(s, 200, "{applied}");
    let id = biz(&applied)["id"].as_str().unwrap();
    let rogue_scan = b"\x89PNG\r\n\x1a\n the stranger's stamp".to_vec();
    for secret in [None, Some("00".repeat(32))] {
        let mut req = ca
            .client
            .post(ca.url(&format!("/v1/businesses/{id}/attachments?kind=seal_scan")))
            .header("content-type", "image/png")
            .body(rogue_scan.clone());
        if let Some(s) = &secret {
            req = req.header(BUSINESS_SECRET_HEADER, s);
        }
        let (s, v) = ca.send(req).await;
        assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
        let (s, _) = ca
            .send(
                ca.client
                    .post(ca.url(&format!("/v1/businesses/{id}/submit")))
                    .header(BUSINESS_SECRET_HEADER, secret.clone().unwrap_or_default()),
            )
            .await;
        assert_eq!(s, 401);
    }
    // Another key's signature does not open it either.
    let other = ca.activated_key("K2").await;
    let nonce = ca.post("/v1/nonces", &json!({"key_serial": "K2"})).await.1["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/businesses/{id}/attachments?kind=seal_scan");
    let sig = other
        .sign(&signing_input(
            &request_purpose("POST", &path),
            &nonce,
            &body_sha256(&rogue_scan),
        ))
        .unwrap();
    let (s, v) = ca
        .send(
            ca.client
                .post(ca.url(&path))
                .header("content-type", "image/png")
                .header(NONCE_HEADER, nonce)
                .header(SIGNATURE_HEADER, hex::encode(sig))
                .body(rogue_scan.clone()),
        )
        .await;
    assert!(refused(s), "{s} {v}");
    // The reviewer sees no scan from anyone but the owner.
    let q = ca.admin_get("/admin/v1/reviews").await;
    assert!(
        q["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["business"]["id"] != id),
        "the business was submitted by a stranger"
    );
}

/// The hole: invoices and refunds were asked for with the business id alone: anyone could
/// set the invoice title of another's business, or file its refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_and_refund_by_business_id_are_refused() {
    let ca = Ca::sandbox().await;
    let key = ca.activated_key("K1").await;
    ca.handle.clock().advance(time::Duration::days(300));
    let (_, applied) = ca
        .signed(
            &key,
            "K1",
            "POST",
            "/v1/keys/K1/renewals",
            Some(&json!({"years": 1, "invoice": {"title": "广州示例科技有限公司", "tax_id": USCC, "email": "finance@example.com"}})),
        )
        .await;
    let id = biz(&applied)["id"].as_str().unwrap();
    // The stranger, who read the id off a printed form.
    let (s, v) = ca
        .post(
            &format!("/v1/businesses/{id}/invoice"),
            &json!({"title": "别人的公司", "tax_id": "x", "email": "thief@example.com"}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    let (s, v) = ca
        .post(
            &format!("/v1/businesses/{id}/refund"),
            &json!({"handler": stranger(), "reason": "退钱"}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    let (s, v) = ca
        .post(
            "/v1/businesses",
            &json!({"kind": "refund", "business_id": id, "handler": stranger(), "reason": "退钱"}),
        )
        .await;
    assert!(refused(s), "a refund by id alone: {s} {v}");
    // Business ids are no credential for reading either.
    let (s, v) = ca.get(&format!("/v1/businesses/{id}")).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    let (s, _) = ca.get(&format!("/v1/businesses/{id}/form")).await;
    assert_eq!(s, 401);
}

/// The hole: a key's businesses (with amounts and reviewers' notes), its certificates and
/// seal, and an organisation's businesses, were public by serial or credit code, and a
/// not-found answer told which serials existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_by_credit_code_and_by_serial_is_not_public() {
    let ca = Ca::sandbox().await;
    ca.activated_key("K1").await;
    for path in [
        format!("/v1/organisations/{USCC}/businesses"),
        format!("/admin/v1/organisations/{USCC}/businesses"),
        "/v1/keys/K1".to_owned(),
        "/v1/keys/K1/businesses".to_owned(),
        "/v1/keys/K1/certificates".to_owned(),
        "/v1/keys/K1/seal".to_owned(),
    ] {
        let (s, v) = ca.get(&path).await;
        assert!(refused(s), "{path} answered {s}: {v}");
        assert!(
            v.get("businesses").is_none() && v.get("certificate").is_none(),
            "{path} told: {v}"
        );
    }
    // Known and unknown serials look the same from outside.
    for tail in ["", "/businesses", "/certificates", "/seal"] {
        let (s1, v1) = ca.get(&format!("/v1/keys/K1{tail}")).await;
        let (s2, v2) = ca.get(&format!("/v1/keys/NO-SUCH-KEY{tail}")).await;
        assert_eq!((s1, &v1), (s2, &v2), "{tail}");
    }
    // Signed by a key that is not K1, the answer is the unknown key's.
    let other = p256();
    let (s1, v1) = ca
        .signed(&other, "K1", "GET", "/v1/keys/K1/businesses", None)
        .await;
    let (s2, v2) = ca
        .signed(
            &other,
            "NO-SUCH-KEY",
            "GET",
            "/v1/keys/NO-SUCH-KEY/businesses",
            None,
        )
        .await;
    assert_eq!((s1, &v1), (s2, &v2));
    // The one public read says only whether the key awaits activation and what waits to
    // be installed, in the same shape for any serial.
    let (s, known) = ca.get("/v1/keys/K1/standing").await;
    assert_eq!(s, 200);
    let (_, unknown) = ca.get("/v1/keys/NO-SUCH-KEY/standing").await;
    assert_eq!(
        known, unknown,
        "an active key with nothing waiting reads as no key"
    );
    let mut fields: Vec<&String> = known.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["awaiting_activation", "waiting"]);
}

/// The hole this would open: an answer hands out a nonce for the next signed request. Only
/// the key's own accepted signature earns one; it is that key's alone, spent once, and a
/// stranger's bad signature over it neither uses it nor earns another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_nonce_is_earned_by_the_keys_signature_and_is_the_keys_alone() {
    let ca = Ca::sandbox().await;
    let k1 = ca.activated_key("K1").await;
    let k2 = ca.activated_key("K2").await;
    let stranger = p256();
    let fresh = |serial: &'static str| {
        let ca = &ca;
        async move {
            let (_, n) = ca.post("/v1/nonces", &json!({"key_serial": serial})).await;
            n["nonce"].as_str().unwrap().to_owned()
        }
    };
    let status = "/v1/keys/K1";
    // Public answers, refusals and other credentials carry none.
    for path in ["/healthz", "/v1/keys/K1/standing"] {
        let r = ca.client.get(ca.url(path)).send().await.unwrap();
        assert!(r.headers().get(NEXT_NONCE_HEADER).is_none(), "{path}");
    }
    let r = ca
        .client
        .post(ca.url("/v1/nonces"))
        .json(&json!({"key_serial": "K1"}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(NEXT_NONCE_HEADER).is_none());
    let n = fresh("K1").await;
    let (s, _, next) = ca.signed_over(&stranger, &n, "GET", status, None).await;
    assert!(
        refused(s) && next.is_none(),
        "a bad signature earned {next:?}"
    );
    // The stranger's try left the nonce unspent: the key still signs over it, and earns one.
    let (s, v, next) = ca.signed_over(&k1, &n, "GET", status, None).await;
    assert_eq!(s, 200, "{v}");
    let n1 = next.expect("an accepted signature earns the next nonce");
    assert_ne!(n1, n);
    // Another key cannot use K1's next nonce, nor the stranger.
    let (s, _, next) = ca.signed_over(&k2, &n1, "GET", "/v1/keys/K2", None).await;
    assert!(refused(s) && next.is_none(), "K2 used K1's nonce: {s}");
    let (s, _, next) = ca.signed_over(&stranger, &n1, "GET", status, None).await;
    assert!(refused(s) && next.is_none());
    // K1 spends it once; the replay is refused and earns nothing.
    let (s, v, next) = ca.signed_over(&k1, &n1, "GET", status, None).await;
    assert_eq!(s, 200, "{v}");
    let n2 = next.expect("the next one again");
    assert!(n2 != n1 && n2 != n);
    let (s, v, next) = ca.signed_over(&k1, &n1, "GET", status, None).await;
    assert_eq!((s, code_of(&v), next), (401, "nonce_replayed", None), "{v}");
    // A next nonce is a nonce like any other: a key asking for many drops the oldest.
    for _ in 0..keyward_ca::limits::NONCES_PER_KEY {
        fresh("K1").await;
    }
    let (s, v, _) = ca.signed_over(&k1, &n2, "GET", status, None).await;
    assert_eq!((s, code_of(&v)), (401, "nonce_invalid"), "{v}");
}

/// The hole: sending a code was unauthenticated and five wrong guesses voided the code: a
/// stranger could keep the handler from ever activating (or spend the day's codes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_void_the_handlers_code() {
    let ca = Ca::sandbox().await;
    let key = p256();
    let (_, cert) = ca
        .admin_post(
            "/admin/v1/certify",
            &json!({"organisation": org(USCC), "csr_pem": csr(&key), "years": 1}),
        )
        .await;
    ca.admin_post(
        "/admin/v1/keys",
        &register_body("K1", USCC, cert["certificate_pem"].as_str().unwrap()),
    )
    .await;
    // The handler's computer asks for a code (a service that sent one at registration
    // answers with its cool-down, and the handler has that code).
    let (_, mine) = ca.post("/v1/keys/K1/activation/code", &json!({})).await;
    let code = ca.last_code("K1").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    // The stranger guesses, with no ticket and with a made-up one, many times.
    for _ in 0..6 {
        for body in [
            json!({"code": wrong}),
            json!({"code": wrong, "ticket": "0".repeat(48)}),
        ] {
            let (s, v) = ca.post("/v1/keys/K1/activation/redeem", &body).await;
            assert!(refused(s), "{v}");
            assert!(v.get("transport_pin").is_none());
        }
    }
    // The stranger asks for codes of their own, and guesses against those.
    ca.handle.clock().advance(time::Duration::seconds(61));
    let (_, theirs) = ca.post("/v1/keys/K1/activation/code", &json!({})).await;
    if let Some(ticket) = theirs["ticket"].as_str() {
        for _ in 0..5 {
            ca.post(
                "/v1/keys/K1/activation/redeem",
                &json!({"code": wrong, "ticket": ticket}),
            )
            .await;
        }
    }
    // The handler's code still works, with the handler's ticket.
    let (s, v) = ca
        .post("/v1/keys/K1/activation/redeem", &with_ticket(&code, &mine))
        .await;
    assert_eq!(s, 200, "the stranger voided the handler's code: {v}");
    assert_eq!(v["transport_pin"], "Transport-7788");
}

/// The rule every route declares, enforced: each route that is not public refuses a caller
/// with no credential, over HTTPS, with real serials and ids in the path, whatever it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_without_a_public_rule_refuses_a_caller_without_credentials() {
    let ca = Ca::sandbox().await;
    let key = ca.activated_key("K1").await;
    let (_, seal) = ca
        .signed(
            &key,
            "K1",
            "POST",
            "/v1/keys/K1/seals",
            Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": false})),
        )
        .await;
    let id = biz(&seal)["id"].as_str().unwrap().to_owned();
    let mut checked = 0;
    for ep in ENDPOINTS {
        let path = ep
            .path
            .replace("{serial}", "K1")
            .replace("{id}", &id)
            .replace("{sha256}", &"0".repeat(64))
            .replace("{uscc}", USCC);
        let req = ca
            .client
            .request(
                reqwest::Method::from_bytes(ep.method.as_bytes()).unwrap(),
                ca.url(&path),
            )
            .header("content-type", "application/json")
            .body("{}");
        let (s, v) = ca.send(req).await;
        match ep.access {
            Access::Public | Access::Handler => continue,
            Access::Staff(_) => assert_eq!(
                (s, v["code"].as_str()),
                (401, Some("unauthorized")),
                "{} {}",
                ep.method,
                ep.path
            ),
            Access::PaymentProvider => assert_eq!(s, 401, "{} {}", ep.method, ep.path),
            _ => assert!(
                s == 401 && v["code"].is_string(),
                "{} {} answered {s} {v}",
                ep.method,
                ep.path
            ),
        }
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
    // A staff token of a role not listed is refused too: a reviewer is no station.
    let db = keyward_ca::db::connect(None, ca.handle.data_dir()).await;
    if let Ok(db) = db {
        let mut conn = db.acquire().await.unwrap();
        let token = keyward_ca::staff::add(
            &mut conn,
            "reviewer-1",
            keyward_ca_api::StaffRole::Reviewer,
            Some(1),
            ca.handle.clock().unix(),
        )
        .await
        .unwrap();
        drop(conn);
        db.close().await;
        let (s, v) = ca
            .send(
                ca.client
                    .post(ca.url("/admin/v1/keys"))
                    .bearer_auth(token.as_str())
                    .json(&json!({})),
            )
            .await;
        assert_eq!((s, v["code"].as_str()), (403, Some("forbidden")));
    }
}

/// What a reviewer decides is recorded under the account that decided, whatever a body says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_the_account_never_a_name_in_the_request() {
    let ca = Ca::sandbox().await;
    ca.activated_key("K1").await;
    let (_, created) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": stranger()}))
        .await;
    let id = biz(&created)["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap_or_default();
    ca.send(
        ca.client
            .post(ca.url(&format!("/v1/businesses/{id}/attachments?kind=id_card")))
            .header(BUSINESS_SECRET_HEADER, secret)
            .header("content-type", "image/jpeg")
            .body(vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]),
    )
    .await;
    ca.with_secret(&format!("/v1/businesses/{id}/submit"), secret, &json!({}))
        .await;
    let (s, _) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/reject"),
            &json!({"reviewer": "某领导", "note": "x"}),
        )
        .await;
    assert_eq!(s, 400, "a reviewer's name in the body is refused");
    let (s, _) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/reject"),
            &json!({"note": "材料不全"}),
        )
        .await;
    assert_eq!(s, 200);
    let audit = ca.admin_get("/admin/v1/audit?key_serial=K1").await;
    let decided: Vec<&Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "review_rejected")
        .collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["actor"], "staff:admin");
}

/// Request rates are limited per client address: a client flooding the service gets a
/// typed refusal, not service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_refused_with_a_typed_error() {
    let ca = Ca::start(|dir| {
        let mut c = Config::sandbox(dir);
        c.rate_limit = keyward_ca::RateLimit {
            per_address_per_second: 1,
            per_address_burst: 5,
            overall_per_second: 1000,
            overall_burst: 1000,
        };
        c
    })
    .await;
    let mut limited = None;
    for _ in 0..30 {
        let (s, v) = ca.get("/healthz").await;
        if s == 429 {
            limited = Some(v);
            break;
        }
    }
    let v = limited.expect("30 requests at once were all served");
    assert_eq!(v["code"], "rate_limited");
    assert!(v["message"].as_str().unwrap().contains("try again"));
}
