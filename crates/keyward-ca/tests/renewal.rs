//! Router-level tests of renewal, sandbox payment and progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use keyward_ca_api::auth::PAYMENT_SIGNATURE_HEADER;
use serde_json::{Value, json};
use time::Duration;
use time::format_description::well_known::Rfc3339;

fn application(years: u8) -> Value {
    json!({"years": years, "invoice": {"title": "广州示例科技有限公司", "tax_id": USCC, "email": "finance@example.com"}})
}

fn instant(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

async fn notify(ca: &TestCa, body: &Value, key: &[u8]) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let tag = keyward_ca::crypto::hmac_hex(key, &bytes);
    let req = Request::post("/v1/payments/notify")
        .header("content-type", "application/json")
        .header(PAYMENT_SIGNATURE_HEADER, tag)
        .body(Body::from(bytes))
        .unwrap();
    ca.raw(req).await
}

fn payment_key(ca: &TestCa) -> Vec<u8> {
    let text = std::fs::read_to_string(ca.data_dir().join("payment-sandbox.key")).unwrap();
    hex::decode(text.trim()).unwrap()
}

#[tokio::test]
async fn renewal_end_to_end() {
    renewal_end_to_end_on(TestCa::new().await).await;
}

#[tokio::test]
async fn renewal_end_to_end_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    renewal_end_to_end_on(TestCa::with_database(Some(cluster.url())).await).await;
}

async fn renewal_end_to_end_on(ca: TestCa) {
    let old = p256();
    assert_eq!(ca.activate("K1", &old).await, "active");
    let (_, status) = ca.signed_get(&old, "K1", "/v1/keys/K1").await;
    let old_serial = status["certificate"]["serial"].as_str().unwrap().to_owned();
    let old_not_after = instant(&status["certificate"]["not_after"]);
    let apply = "/v1/keys/K1/renewals";

    // Too early: the window opens 90 days before expiry.
    let (s, v) = ca.signed(&old, "K1", apply, Some(&application(2))).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "renewal_window_not_open"),
        "{v}"
    );

    ca.clock.advance(Duration::days(300));
    let (s, v) = ca.signed(&old, "K1", apply, Some(&application(0))).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_years"));
    let mut bad = application(2);
    bad["invoice"]["email"] = json!("nowhere");
    let (s, v) = ca.signed(&old, "K1", apply, Some(&bad)).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (s, v) = ca.post(apply, &application(2)).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_missing")
    );

    let (s, created) = ca.signed(&old, "K1", apply, Some(&application(2))).await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let b = created["business"].clone();
    assert_eq!(b["kind"], "renewal");
    assert_eq!(b["state"], "awaiting_payment");
    assert_eq!(b["fee_fen"], 40_000);
    let id = b["id"].as_str().unwrap().to_owned();
    let (s, v) = ca.signed(&old, "K1", apply, Some(&application(1))).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    // The answer is the business as it was stored.
    let (s, stored) = ca
        .with_secret("GET", &format!("/v1/businesses/{id}"), &secret, None)
        .await;
    assert_eq!((s, &stored), (StatusCode::OK, &b));

    let new = p256();
    let cert_path = format!("/v1/keys/K1/renewals/{id}/certificate");
    let (s, v) = ca
        .signed(&old, "K1", &cert_path, Some(&json!({"csr_pem": csr(&new)})))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "CSR before payment"
    );

    // Pay: first attempt fails, second succeeds. Only the renewal's own secret (or its key)
    // opens its payment.
    let pay = format!("/v1/businesses/{id}/payment");
    let (s, v) = ca.post_empty(&pay).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, p) = ca.with_secret("POST", &pay, &secret, None).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["amount_fen"], 40_000);
    assert_eq!(p["status"], "pending");
    let page = tower::ServiceExt::oneshot(
        ca.app.router.clone(),
        Request::get(p["pay_url"].as_str().unwrap())
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = http_body_util::BodyExt::collect(page.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&html).contains("¥ 400.00"));
    let (_, p_again) = ca.with_secret("POST", &pay, &secret, None).await;
    assert_eq!(p_again["payment_id"], p["payment_id"]);
    let (s, failed) = ca
        .post(
            p["pay_url"]
                .as_str()
                .map(|u| format!("{u}/complete"))
                .as_deref()
                .unwrap(),
            &json!({"outcome": "failed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{failed}");
    assert_eq!(failed["status"], "failed");
    let business = format!("/v1/businesses/{id}");
    let (_, b) = ca.with_secret("GET", &business, &secret, None).await;
    assert_eq!(b["state"], "awaiting_payment");
    let (_, p2) = ca.with_secret("POST", &pay, &secret, None).await;
    assert_ne!(p2["payment_id"], p["payment_id"]);
    let pid = p2["payment_id"].as_str().unwrap().to_owned();
    let note =
        json!({"payment_id": pid, "business_id": id, "status": "paid", "amount_fen": 40_000});
    let (s, v) = notify(&ca, &note, b"not the key").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "payment_signature_invalid")
    );
    let wrong_amount =
        json!({"payment_id": pid, "business_id": id, "status": "paid", "amount_fen": 1});
    let (s, v) = notify(&ca, &wrong_amount, &payment_key(&ca)).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let wrong_order = json!({"payment_id": pid, "business_id": "bzother", "status": "paid", "amount_fen": 40_000});
    let (s, v) = notify(&ca, &wrong_order, &payment_key(&ca)).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (s, v) = notify(&ca, &note, &payment_key(&ca)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "paid");
    // Idempotent: the same callback again, and a late "failed", change nothing.
    let (s, v) = notify(&ca, &note, &payment_key(&ca)).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("paid")));
    let (_, v) = ca
        .post(
            &format!("/sandbox/payments/{pid}/complete"),
            &json!({"outcome": "failed"}),
        )
        .await;
    assert_eq!(v["status"], "paid");
    let (_, b) = ca.with_secret("GET", &business, &secret, None).await;
    assert_eq!(b["state"], "paid");
    let (s, v) = ca.with_secret("POST", &pay, &secret, None).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    let (s, v) = ca
        .post(
            "/sandbox/payments/nopay/complete",
            &json!({"outcome": "paid"}),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::NOT_FOUND, "payment_not_found")
    );

    // CSR: the old key again is refused; a request signed by the new key is refused.
    let (s, v) = ca
        .signed(&old, "K1", &cert_path, Some(&json!({"csr_pem": csr(&old)})))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "csr_key_reused")
    );
    let (s, v) = ca
        .signed(&new, "K1", &cert_path, Some(&json!({"csr_pem": csr(&new)})))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    let (s, v) = ca
        .signed(&old, "K1", &cert_path, Some(&json!({"csr_pem": "garbage"})))
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_csr"));

    let (s, issued) = ca
        .signed(&old, "K1", &cert_path, Some(&json!({"csr_pem": csr(&new)})))
        .await;
    assert_eq!(s, StatusCode::OK, "{issued}");
    let at = Some(ca.clock.unix());
    openssl_verify_at(
        ca.dir.path(),
        issued["certificate_pem"].as_str().unwrap(),
        issued["chain_pem"].as_array().unwrap(),
        at,
    );
    let new_not_after = instant(&issued["not_after"]);
    assert_eq!(new_not_after.year(), old_not_after.year() + 2);
    assert_eq!(
        (new_not_after.month(), new_not_after.day()),
        (old_not_after.month(), old_not_after.day())
    );
    // A retry with the same key gets the same certificate; another key does not.
    let (s, again) = ca
        .signed(&old, "K1", &cert_path, Some(&json!({"csr_pem": csr(&new)})))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["serial"], issued["serial"]);
    let (s, v) = ca
        .signed(
            &old,
            "K1",
            &cert_path,
            Some(&json!({"csr_pem": csr(&p256())})),
        )
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));

    // The old key is still current until the client confirms the install with the new key.
    let (_, status) = ca.signed_get(&old, "K1", "/v1/keys/K1").await;
    assert_eq!(status["certificate"]["serial"], old_serial.as_str());
    let (_, hist) = ca.signed_get(&old, "K1", "/v1/keys/K1/certificates").await;
    let roles: Vec<&str> = hist["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["current", "pending"]);
    let installed = format!("/v1/keys/K1/renewals/{id}/installed");
    let (s, v) = ca.signed(&old, "K1", &installed, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    let (s, done) = ca.signed(&new, "K1", &installed, None).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["business"]["state"], "completed");
    assert!(done["seal"].is_null(), "no seal to remake");
    let (s, again) = ca.signed(&new, "K1", &installed, None).await;
    assert_eq!(
        (s, again["business"]["state"].as_str()),
        (StatusCode::OK, Some("completed"))
    );
    // The old key no longer speaks for K1; the new one does.
    let (s, v) = ca.signed_get(&old, "K1", "/v1/keys/K1").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    let (_, status) = ca.signed_get(&new, "K1", "/v1/keys/K1").await;
    assert_eq!(status["certificate"]["serial"], issued["serial"]);

    let (_, hist) = ca.signed_get(&new, "K1", "/v1/keys/K1/certificates").await;
    let list = hist["certificates"].as_array().unwrap();
    assert_eq!(list[0]["role"], "superseded");
    assert_eq!(list[0]["certificate"]["serial"], old_serial.as_str());
    assert_eq!(list[1]["role"], "current");
    assert_eq!(list[1]["certificate"]["serial"], issued["serial"]);
    // Progress lists both businesses with their timelines.
    let (_, p) = ca.signed_get(&new, "K1", "/v1/keys/K1/businesses").await;
    let list = p["businesses"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[1], done["business"],
        "the confirmation answers with the business as stored"
    );
    let states: Vec<&str> = list[1]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "awaiting_payment",
            "paid",
            "certificate_issued",
            "completed"
        ]
    );
    // The new key now authenticates; renewal is closed again (expiry far away).
    let (s, v) = ca.signed(&new, "K1", apply, Some(&application(1))).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "renewal_window_not_open")
    );
    let (_, audit) = ca.admin_get("/admin/v1/audit?key_serial=K1").await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in [
        "renewal_applied",
        "payment_failed",
        "payment_paid",
        "renewal_certificate_issued",
        "renewal_installed",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}

#[tokio::test]
async fn expired_certificates_must_apply_anew() {
    expired_certificates_must_apply_anew_on(TestCa::new().await).await;
}

#[tokio::test]
async fn expired_certificates_must_apply_anew_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    expired_certificates_must_apply_anew_on(TestCa::with_database(Some(cluster.url())).await).await;
}

async fn expired_certificates_must_apply_anew_on(ca: TestCa) {
    let key = p256();
    ca.activate("K1", &key).await;
    ca.clock.advance(Duration::days(367));
    let (s, v) = ca
        .signed(&key, "K1", "/v1/keys/K1/renewals", Some(&application(1)))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "certificate_expired")
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("apply for a new certificate")
    );
}

#[tokio::test]
async fn keys_not_activated_cannot_renew() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.issue_key("K1", &key, 1).await;
    ca.clock.advance(Duration::days(300));
    let (s, v) = ca
        .signed(&key, "K1", "/v1/keys/K1/renewals", Some(&application(1)))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "key_not_activated")
    );
}

#[tokio::test]
async fn renewal_ids_are_scoped_to_their_key() {
    renewal_ids_are_scoped_to_their_key_on(TestCa::new().await).await;
}

#[tokio::test]
async fn renewal_ids_are_scoped_to_their_key_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    renewal_ids_are_scoped_to_their_key_on(TestCa::with_database(Some(cluster.url())).await).await;
}

async fn renewal_ids_are_scoped_to_their_key_on(ca: TestCa) {
    let a = p256();
    let b = p256();
    ca.activate("KA", &a).await;
    ca.activate("KB", &b).await;
    ca.clock.advance(Duration::days(300));
    let (s, bz) = ca
        .signed(&a, "KA", "/v1/keys/KA/renewals", Some(&application(1)))
        .await;
    assert_eq!(s, StatusCode::OK);
    let id = bz["business"]["id"].as_str().unwrap();
    let (s, v) = ca
        .signed(
            &b,
            "KB",
            &format!("/v1/keys/KB/renewals/{id}/certificate"),
            Some(&json!({"csr_pem": csr(&p256())})),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::NOT_FOUND, "business_not_found")
    );
    // KA's business, with KB's signature: answered as an unknown one is.
    let (s, v) = ca
        .signed_get(&b, "KB", &format!("/v1/businesses/{id}"))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    let (s, v) = ca
        .with_secret("GET", "/v1/businesses/nope", "00", None)
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = ca.post_empty("/v1/businesses/nope/payment").await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
}

#[test]
fn validity_extends_by_calendar_years() {
    use time::macros::datetime;
    let f = keyward_ca::routes::renewal::extend_by_years;
    assert_eq!(
        f(datetime!(2026-03-01 10:00 UTC), 2),
        datetime!(2028-03-01 10:00 UTC)
    );
    assert_eq!(
        f(datetime!(2028-02-29 10:00 UTC), 1),
        datetime!(2029-02-28 10:00 UTC)
    );
}
