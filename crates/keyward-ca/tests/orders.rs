//! Router-level tests of the order businesses: seal, new application, add a certificate,
//! change, re-issue, refund, invoices, organisation progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};

fn invoice() -> Value {
    json!({"title": "广州示例科技有限公司", "tax_id": USCC, "email": "finance@example.com"})
}

async fn upload(ca: &TestCa, id: &str, secret: &str, kind: &str) {
    let (s, v) = ca
        .upload(
            id,
            secret,
            kind,
            "application/pdf",
            b"%PDF-1.7\nstamped form",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// The business and secret a creating answer carries.
fn created(v: &Value) -> (String, String) {
    (
        v["business"]["id"].as_str().expect("a business").to_owned(),
        v["secret"].as_str().expect("a secret").to_owned(),
    )
}

/// Attachments → submit → approve; returns the approved business.
async fn through_review(ca: &TestCa, id: &str, secret: &str, kind: &str) -> Value {
    upload(ca, id, secret, kind).await;
    let (s, v) = ca
        .with_secret("POST", &format!("/v1/businesses/{id}/submit"), secret, None)
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("under_review")),
        "{v}"
    );
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/approve"),
            &json!({"note": "ok"}),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{v}"
    );
    v
}

async fn pay(ca: &TestCa, id: &str, secret: &str) {
    let (s, p) = ca
        .with_secret(
            "POST",
            &format!("/v1/businesses/{id}/payment"),
            secret,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (s, v) = ca
        .post(
            &format!("{}/complete", p["pay_url"].as_str().unwrap()),
            &json!({"outcome": "paid"}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("paid")));
}

async fn complete(ca: &TestCa, id: &str) -> (StatusCode, Value) {
    ca.admin_post(
        &format!("/admin/v1/businesses/{id}/complete"),
        &json!({"note": "done"}),
    )
    .await
}

#[tokio::test]
async fn seal_apply_review_complete_and_change() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.activate("K1", &key).await;
    let seals = "/v1/keys/K1/seals";
    let official =
        json!({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": false});
    let (s, v) = ca.post(seals, &official).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_missing")
    );
    let (s, v) = ca.signed(&key, "K1", seals, Some(&json!({"seal_name": "广州新名字有限公司", "seal_kind": "official", "change": false}))).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "name_change_not_seal")
    );
    assert!(v["message"].as_str().unwrap().contains("change business"));
    let (s, v) = ca.signed(&key, "K1", seals, Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "finance", "change": false}))).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "only official and contract seals"
    );
    let (s, v) = ca.signed(&key, "K1", seals, Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": true}))).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "change without a seal"
    );
    let (s, c) = ca.signed(&key, "K1", seals, Some(&official)).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let b = &c["business"];
    assert_eq!(
        (
            b["kind"].as_str(),
            b["state"].as_str(),
            b["fee_fen"].as_i64()
        ),
        (Some("seal"), Some("awaiting_documents"), Some(0))
    );
    let (id, secret) = created(&c);
    let (s, v) = ca.signed(&key, "K1", seals, Some(&official)).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "one at a time"
    );
    let (s, v) = complete(&ca, &id).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "not accepted yet"
    );
    let (s, v) = ca.get(&format!("/v1/businesses/{id}/form")).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "the form is the business's"
    );
    let form = tower::ServiceExt::oneshot(
        ca.app.router.clone(),
        Request::get(format!("/v1/businesses/{id}/form"))
            .header(keyward_ca_api::auth::BUSINESS_SECRET_HEADER, &secret)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let html = String::from_utf8(
        http_body_util::BodyExt::collect(form.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        html.contains("电子印章申请表")
            && html.contains("广州示例科技有限公司")
            && html.contains(USCC)
            && html.contains("138****8000"),
        "{html}"
    );
    assert!(!html.contains(PHONE), "the form masks the phone");
    upload(&ca, &id, &secret, "seal_form").await;
    let (s, v) = ca.get("/v1/keys/K1/seal").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_missing"),
        "the seal is the key's to read"
    );
    let (s, v) = ca.signed_get(&key, "K1", "/v1/keys/K1/seal").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "no seal yet"
    );
    seal_through_review(&ca, &id, &secret).await;
    let (s, v) = complete(&ca, &id).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "a seal is completed by the key installing it, not by the station"
    );
    let doc = check_seal(&ca, &key, "K1", &id, "广州示例科技有限公司", 1).await;
    assert!(doc["installed_at"].is_null());
    let installed = format!("/v1/keys/K1/seals/{id}/installed");
    let (s, v) = ca.post_empty(&installed).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_missing")
    );
    let (s, v) = ca
        .signed(&key, "K1", "/v1/keys/K1/seals/bz-nope/installed", None)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::NOT_FOUND, "business_not_found"),
        "{v}"
    );
    let (s, v) = ca.signed(&key, "K1", &installed, None).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{v}"
    );
    let (s, v) = ca.signed(&key, "K1", &installed, None).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("completed")),
        "confirming twice is harmless"
    );
    let (_, doc) = ca.signed_get(&key, "K1", "/v1/keys/K1/seal").await;
    assert!(doc["installed_at"].is_string(), "{doc}");
    // One certificate holds exactly one seal: a second apply is refused, a change is taken.
    let (s, v) = ca.signed(&key, "K1", seals, Some(&official)).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    let contract = json!({"seal_name": "广州示例科技有限公司合同专用章", "seal_kind": "contract", "change": true});
    let (s, v) = ca.signed(&key, "K1", seals, Some(&contract)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The change makes a new seal, which becomes the key's current one.
    let (id2, secret2) = created(&v);
    seal_through_review(&ca, &id2, &secret2).await;
    check_seal(&ca, &key, "K1", &id2, "广州示例科技有限公司合同专用章", 2).await;
}

/// A PNG, as a scanner would give it (only the signature bytes matter to the service).
const PNG_SCAN: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR stamped seal scan";

/// Seal scan (PNG) → submit → approve: the CA makes the seal at once.
async fn seal_through_review(ca: &TestCa, id: &str, secret: &str) {
    let (s, v) = ca
        .upload(id, secret, "seal_scan", "image/png", PNG_SCAN)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = ca
        .with_secret("POST", &format!("/v1/businesses/{id}/submit"), secret, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/approve"),
            &json!({"note": "印模清晰"}),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("certificate_issued")),
        "{v}"
    );
}

/// The key's current seal: made by this business, signed by the SM2 maker certified by the
/// root, bound to the key's current certificate, with the scan as its picture.
async fn check_seal(
    ca: &TestCa,
    key: &rcgen::KeyPair,
    serial: &str,
    id: &str,
    name: &str,
    seal_type: i64,
) -> Value {
    let (s, doc) = ca
        .signed_get(key, serial, &format!("/v1/keys/{serial}/seal"))
        .await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    assert_eq!(doc["business_id"].as_str(), Some(id));
    assert_eq!(doc["seal_name"].as_str(), Some(name));
    let der = keyward_pki::pem::from_base64(doc["seal_der_base64"].as_str().unwrap()).unwrap();
    let seal = keyward_pki::seal::Seal::from_der(&der).unwrap();
    assert_eq!(seal.info.name, name);
    assert_eq!(seal.info.seal_type, seal_type);
    assert_eq!(seal.info.picture.kind, "PNG");
    assert_eq!(seal.info.picture.data, PNG_SCAN);
    seal.verify_signature().expect("the maker's SM2 signature");
    let (_, status) = ca
        .signed_get(key, serial, &format!("/v1/keys/{serial}"))
        .await;
    let cert = keyward_pki::pem::decode(
        status["certificate"]["pem"].as_str().unwrap(),
        "CERTIFICATE",
    )
    .unwrap();
    seal.verify_binding(&cert)
        .expect("bound to the key's certificate");
    assert_eq!(
        doc["cert_serial"].as_str(),
        status["certificate"]["serial"].as_str()
    );
    let (_, chain) = ca.get("/v1/ca/chain").await;
    let root =
        keyward_pki::pem::decode(chain["root_pem"].as_str().unwrap(), "CERTIFICATE").unwrap();
    seal.maker_issued_by(&root)
        .expect("the maker is certified by the root");
    let issuing =
        keyward_pki::pem::decode(chain["issuing_pem"].as_str().unwrap(), "CERTIFICATE").unwrap();
    assert!(seal.maker_issued_by(&issuing).is_err());
    assert_eq!(
        keyward_pki::pem::decode(chain["seal_maker_pem"].as_str().unwrap(), "CERTIFICATE").unwrap(),
        seal.maker_cert
    );
    doc
}

#[tokio::test]
async fn a_seal_is_made_only_from_an_image_scan() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.activate("K1", &key).await;
    let (s, v) = ca.signed_get(&key, "NOPE", "/v1/keys/NOPE/seal").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    let (s, b) = ca
        .signed(
            &key,
            "K1",
            "/v1/keys/K1/seals",
            Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (id, secret) = created(&b);
    upload(&ca, &id, &secret, "seal_scan").await; // a PDF
    let (s, _) = ca
        .with_secret(
            "POST",
            &format!("/v1/businesses/{id}/submit"),
            &secret,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/approve"),
            &json!({"note": "ok"}),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("PNG"));
    let (_, b) = ca
        .with_secret("GET", &format!("/v1/businesses/{id}"), &secret, None)
        .await;
    assert_eq!(b["state"].as_str(), Some("under_review"), "nothing changed");
    let (s, v) = ca
        .signed(
            &key,
            "K1",
            &format!("/v1/keys/K1/seals/{id}/installed"),
            None,
        )
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
}

#[tokio::test]
async fn new_application_is_paid_reviewed_completed_and_invoiced() {
    new_application_is_paid_reviewed_completed_and_invoiced_on(TestCa::new().await).await;
}

#[tokio::test]
async fn new_application_is_paid_reviewed_completed_and_invoiced_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    new_application_is_paid_reviewed_completed_and_invoiced_on(
        TestCa::with_database(Some(cluster.url())).await,
    )
    .await;
}

async fn new_application_is_paid_reviewed_completed_and_invoiced_on(ca: TestCa) {
    let form = json!({"kind": "new_application", "organisation": org(USCC2), "handler": handler(), "years": 3, "invoice": invoice()});
    let (s, c) = ca.post("/v1/businesses", &form).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let b = &c["business"];
    assert_eq!(
        (b["state"].as_str(), b["fee_fen"].as_i64()),
        (Some("awaiting_payment"), Some(60_000))
    );
    let (id, secret) = created(&c);
    let organisation = format!("/admin/v1/organisations/{USCC2}/businesses");
    // The application registers nothing: the organisation exists once the station
    // completes the approved business.
    let (s, v) = ca.admin_get(&organisation).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::NOT_FOUND, "organisation_not_found")
    );
    let invoice_path = format!("/v1/businesses/{id}/invoice");
    let (s, v) = ca
        .with_secret("POST", &invoice_path, &secret, Some(&invoice()))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "invoice before the end"
    );
    pay(&ca, &id, &secret).await;
    let (_, b) = ca
        .with_secret("GET", &format!("/v1/businesses/{id}"), &secret, None)
        .await;
    assert_eq!(b["state"], "awaiting_documents");
    let review = through_review(&ca, &id, &secret, "business_licence").await;
    assert_eq!(review["state"], "approved");
    let (s, q) = ca.admin_get(&organisation).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{q}");
    let (s, v) = complete(&ca, &id).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("completed"))
    );
    let (s, inv) = ca
        .with_secret("POST", &invoice_path, &secret, Some(&invoice()))
        .await;
    assert_eq!(s, StatusCode::OK, "{inv}");
    assert_eq!(
        (inv["amount_fen"].as_i64(), inv["status"].as_str()),
        (Some(60_000), Some("requested"))
    );
    let (s, again) = ca
        .with_secret("POST", &invoice_path, &secret, Some(&invoice()))
        .await;
    assert_eq!((s, &again), (StatusCode::OK, &inv));
    // Organisation progress, for staff, shows the whole timeline; nobody else reads it.
    let (s, v) = ca.get(&organisation).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, p) = ca.admin_get(&organisation).await;
    assert_eq!(s, StatusCode::OK);
    let states: Vec<&str> = p["businesses"][0]["timeline"]
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
            "awaiting_documents",
            "under_review",
            "approved",
            "completed"
        ]
    );
    let (s, v) = ca
        .admin_get("/admin/v1/organisations/91110000100000000R/businesses")
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::NOT_FOUND, "organisation_not_found")
    );
    // Add a certificate: taken for any well-formed code (the reviewer decides), so the
    // answer says nothing about who is a customer.
    let add = json!({"kind": "add_certificate", "uscc": USCC2, "handler": handler(), "years": 1, "invoice": invoice()});
    let (s, v) = ca.post("/v1/businesses", &add).await;
    assert_eq!(
        (s, v["business"]["fee_fen"].as_i64()),
        (StatusCode::OK, Some(20_000))
    );
    let add = json!({"kind": "add_certificate", "uscc": "91110000100000000R", "handler": handler(), "years": 1, "invoice": invoice()});
    let (s, v) = ca.post("/v1/businesses", &add).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn change_is_free_keeps_the_entity_and_renames_on_completion() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.activate("K1", &key).await;
    let changes = "/v1/keys/K1/changes";
    // Only the key asks for its organisation's change.
    let form = json!({"handler": handler(), "new_name": "广州新示例科技有限公司", "new_legal_address": null});
    let (s, v) = ca.post(changes, &form).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_missing")
    );
    let (s, v) = ca
        .signed(
            &key,
            "K1",
            changes,
            Some(&json!({"handler": handler(), "new_name": null, "new_legal_address": " "})),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (s, c) = ca.signed(&key, "K1", changes, Some(&form)).await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let b = &c["business"];
    assert_eq!(
        (b["state"].as_str(), b["fee_fen"].as_i64()),
        (Some("awaiting_documents"), Some(0))
    );
    let (id, secret) = created(&c);
    let name = |v: &Value| v["organisation_name"].as_str().unwrap().to_owned();
    let (_, k) = ca.signed_get(&key, "K1", "/v1/keys/K1").await;
    assert_eq!(name(&k), "广州示例科技有限公司");
    through_review(&ca, &id, &secret, "business_licence").await;
    let (_, k) = ca.signed_get(&key, "K1", "/v1/keys/K1").await;
    assert_eq!(
        name(&k),
        "广州示例科技有限公司",
        "nothing applies before completion"
    );
    complete(&ca, &id).await;
    let (_, k) = ca.signed_get(&key, "K1", "/v1/keys/K1").await;
    assert_eq!(name(&k), "广州新示例科技有限公司");
    let (s, v) = ca
        .with_secret(
            "POST",
            &format!("/v1/businesses/{id}/invoice"),
            &secret,
            Some(&invoice()),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "free business, no invoice"
    );
}

#[tokio::test]
async fn reissue_costs_200_yuan() {
    let ca = TestCa::new().await;
    ca.activate("K1", &p256()).await;
    let form = json!({"kind": "reissue", "key_serial": "K1", "handler": handler(), "reason": "lost", "invoice": invoice()});
    let (s, c) = ca.post("/v1/businesses", &form).await;
    let b = &c["business"];
    assert_eq!(
        (s, b["fee_fen"].as_i64(), b["state"].as_str()),
        (StatusCode::OK, Some(20_000), Some("awaiting_payment"))
    );
    // An unknown key and an expired one answer alike.
    let (s, unknown) = ca.post("/v1/businesses", &json!({"kind": "reissue", "key_serial": "NOKEY", "handler": handler(), "reason": "broken", "invoice": invoice()})).await;
    assert_eq!(
        (s, code_of(&unknown)),
        (StatusCode::CONFLICT, "wrong_state")
    );
    ca.clock.advance(time::Duration::days(400));
    let (s, expired) = ca.post("/v1/businesses", &form).await;
    assert_eq!(
        (s, code_of(&expired)),
        (StatusCode::CONFLICT, "wrong_state")
    );
    assert_eq!(unknown["message"], expired["message"]);
}

#[tokio::test]
async fn refunds_follow_the_rules() {
    refunds_follow_the_rules_on(TestCa::new().await).await;
}

#[tokio::test]
async fn refunds_follow_the_rules_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    refunds_follow_the_rules_on(TestCa::with_database(Some(cluster.url())).await).await;
}

async fn refunds_follow_the_rules_on(ca: TestCa) {
    // A business not yet accepted can be refunded; the refund cancels it once approved.
    let form = json!({"kind": "new_application", "organisation": org(USCC2), "handler": handler(), "years": 1, "invoice": invoice()});
    let (_, c) = ca.post("/v1/businesses", &form).await;
    let (target, target_secret) = created(&c);
    pay(&ca, &target, &target_secret).await;
    let refund_path = format!("/v1/businesses/{target}/refund");
    let refund = json!({"handler": handler(), "reason": "不再需要"});
    let (s, v) = ca.post(&refund_path, &refund).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "unauthorized"),
        "only whoever may act on the business asks for its refund"
    );
    let (s, r) = ca
        .with_secret("POST", &refund_path, &target_secret, Some(&refund))
        .await;
    assert_eq!(
        (s, r["business"]["state"].as_str()),
        (StatusCode::OK, Some("awaiting_documents")),
        "{r}"
    );
    let (s, v) = ca
        .with_secret("POST", &refund_path, &target_secret, Some(&refund))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "one refund at a time"
    );
    let (rid, rsecret) = created(&r);
    upload(&ca, &rid, &rsecret, "other").await;
    ca.with_secret(
        "POST",
        &format!("/v1/businesses/{rid}/submit"),
        &rsecret,
        None,
    )
    .await;
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{rid}/approve"),
            &json!({"note": "退款"}),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{v}"
    );
    let (_, t) = ca
        .with_secret(
            "GET",
            &format!("/v1/businesses/{target}"),
            &target_secret,
            None,
        )
        .await;
    assert_eq!(t["state"], "cancelled");

    // An activated key is never refunded; it asks with its own signature.
    let key = p256();
    ca.activate("K1", &key).await;
    let (_, p) = ca.signed_get(&key, "K1", "/v1/keys/K1/businesses").await;
    let issue = p["businesses"][0]["id"].as_str().unwrap().to_owned();
    let (s, v) = ca
        .signed(
            &key,
            "K1",
            &format!("/v1/businesses/{issue}/refund"),
            Some(&json!({"handler": handler(), "reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "refund_not_allowed")
    );
    // A key not activated (it cannot sign): the issue business's secret, which the
    // station handed over with the key. Refundable within 14 days of delivery, not after.
    let k2 = ca.register("K2", &p256(), 1).await;
    let (issue2, secret2) = created(&k2["issue"]);
    ca.clock.advance(time::Duration::days(13));
    let (s, v) = ca
        .with_secret(
            "POST",
            &format!("/v1/businesses/{issue2}/refund"),
            &secret2,
            Some(&json!({"handler": handler(), "reason": "未使用"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let k3 = ca.register("K3", &p256(), 1).await;
    let (issue3, secret3) = created(&k3["issue"]);
    ca.clock.advance(time::Duration::days(15));
    let (s, v) = ca
        .with_secret(
            "POST",
            &format!("/v1/businesses/{issue3}/refund"),
            &secret3,
            Some(&json!({"handler": handler(), "reason": "x"})),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "refund_not_allowed")
    );
}

#[tokio::test]
async fn malformed_forms_are_refused() {
    let ca = TestCa::new().await;
    for kind in ["bribe", "change", "refund"] {
        let (s, v) = ca.post("/v1/businesses", &json!({"kind": kind})).await;
        assert_eq!(
            (s, code_of(&v)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{kind}"
        );
    }
    let (s, v) = ca.post("/v1/businesses", &json!({"kind": "new_application", "organisation": org(USCC), "handler": handler(), "years": 1, "invoice": invoice(), "discount": 100})).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (s, v) = ca.post("/v1/businesses", &json!({"kind": "new_application", "organisation": org(USCC), "handler": handler(), "years": 9, "invoice": invoice()})).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_years"));
    let (s, v) = ca.post("/v1/businesses", &json!({"kind": "new_application", "organisation": org("91350100M000100Y40"), "handler": handler(), "years": 1, "invoice": invoice()})).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_uscc"));
}

#[tokio::test]
async fn certify_keeps_validity_only_for_an_approved_change_or_reissue() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.activate("K1", &key).await;
    let (_, k) = ca.signed_get(&key, "K1", "/v1/keys/K1").await;
    let old_not_after = k["certificate"]["not_after"].clone();
    ca.clock.advance(time::Duration::days(100));
    let new_key = p256();
    let body = json!({"organisation": org(USCC), "csr_pem": csr(&new_key), "years": 1, "keep_validity_of": "K1"});
    let (s, v) = ca.admin_post("/admin/v1/certify", &body).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    let (_, c) = ca
        .signed(
            &key,
            "K1",
            "/v1/keys/K1/changes",
            Some(&json!({"handler": handler(), "new_name": null, "new_legal_address": "广州市新地址"})),
        )
        .await;
    let (id, secret) = created(&c);
    through_review(&ca, &id, &secret, "business_licence").await;
    let mut other = body.clone();
    other["organisation"] = org(USCC2);
    let (s, v) = ca.admin_post("/admin/v1/certify", &other).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "certificate_mismatch")
    );
    let (s, v) = ca.admin_post("/admin/v1/certify", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["not_after"], old_not_after, "validity kept");
}

#[tokio::test]
async fn one_open_business_per_key_and_kind() {
    one_open_business_per_key_and_kind_on(TestCa::new().await).await;
}

#[tokio::test]
async fn one_open_business_per_key_and_kind_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    one_open_business_per_key_and_kind_on(TestCa::with_database(Some(cluster.url())).await).await;
}

async fn one_open_business_per_key_and_kind_on(ca: TestCa) {
    let key = p256();
    ca.activate("K1", &key).await;
    let form = json!({"handler": handler(), "new_name": null, "new_legal_address": "广州市新地址"});
    let (s, _) = ca
        .signed(&key, "K1", "/v1/keys/K1/changes", Some(&form))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = ca
        .signed(&key, "K1", "/v1/keys/K1/changes", Some(&form))
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    assert!(v["message"].as_str().unwrap().contains("change"));
}

#[tokio::test]
async fn an_older_data_dir_gets_an_sm2_seal_maker_and_keeps_its_keys() {
    let ca = TestCa::new().await;
    let data = ca.data_dir();
    let (_, before) = ca.get("/v1/ca/chain").await;
    // A data directory from before SM2 seals: no SM2 maker, an old P-256 one.
    std::fs::remove_file(data.join("ca/seal-maker-sm2.key")).unwrap();
    std::fs::remove_file(data.join("ca/seal-maker-sm2.crt")).unwrap();
    std::fs::write(data.join("ca/seal-maker.crt"), "the old P-256 maker").unwrap();
    std::fs::write(data.join("ca/seal-maker.key"), "the old P-256 key").unwrap();
    let app = keyward_ca::App::build(&keyward_ca::Config::new(data.clone()))
        .await
        .unwrap();
    let res = tower::ServiceExt::oneshot(
        app.router.clone(),
        Request::get("/v1/ca/chain").body(Body::empty()).unwrap(),
    )
    .await
    .unwrap();
    let after: Value = serde_json::from_slice(
        &http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(after["root_pem"], before["root_pem"]);
    assert_eq!(after["issuing_pem"], before["issuing_pem"]);
    assert_ne!(
        after["seal_maker_pem"], before["seal_maker_pem"],
        "a new SM2 maker"
    );
    assert!(data.join("ca/seal-maker-sm2.key").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("ca/seal-maker.key")).unwrap(),
        "the old P-256 key",
        "the old files are left alone"
    );
    let maker =
        keyward_pki::pem::decode(after["seal_maker_pem"].as_str().unwrap(), "CERTIFICATE").unwrap();
    let root =
        keyward_pki::pem::decode(after["root_pem"].as_str().unwrap(), "CERTIFICATE").unwrap();
    // The maker certificate reads as X.509 and chains to the root with `openssl verify`.
    let (_, parsed) = x509_parser::parse_x509_certificate(&maker).unwrap();
    assert!(parsed.subject().to_string().contains("Keyward Seal Maker"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("root.pem"),
        after["root_pem"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("maker.pem"),
        after["seal_maker_pem"].as_str().unwrap(),
    )
    .unwrap();
    let _ = root;
    // openssl is part of the project's setup: a run without it is a broken run, not a pass.
    let out = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.path().join("root.pem"))
        .arg(dir.path().join("maker.pem"))
        .output()
        .expect("openssl runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains(": OK"), "{text}");
}

#[tokio::test]
async fn a_renewal_remakes_the_installed_seal_for_the_new_certificate() {
    a_renewal_remakes_the_installed_seal_for_the_new_certificate_on(TestCa::new().await).await;
}

#[tokio::test]
async fn a_renewal_remakes_the_installed_seal_for_the_new_certificate_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    a_renewal_remakes_the_installed_seal_for_the_new_certificate_on(
        TestCa::with_database(Some(cluster.url())).await,
    )
    .await;
}

async fn a_renewal_remakes_the_installed_seal_for_the_new_certificate_on(ca: TestCa) {
    let key = p256();
    ca.activate("K1", &key).await;
    let (_, c) = ca
        .signed(
            &key,
            "K1",
            "/v1/keys/K1/seals",
            Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": false})),
        )
        .await;
    let (id, secret) = created(&c);
    seal_through_review(&ca, &id, &secret).await;
    let (s, _) = ca
        .signed(
            &key,
            "K1",
            &format!("/v1/keys/K1/seals/{id}/installed"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Renewal: apply, pay, CSR of a new key, installed.
    ca.clock.advance(time::Duration::days(300));
    let app = json!({"years": 1, "invoice": invoice()});
    let (s, r) = ca
        .signed(&key, "K1", "/v1/keys/K1/renewals", Some(&app))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (rid, rsecret) = created(&r);
    pay(&ca, &rid, &rsecret).await;
    let new = p256();
    let (s, v) = ca
        .signed(
            &key,
            "K1",
            &format!("/v1/keys/K1/renewals/{rid}/certificate"),
            Some(&json!({"csr_pem": csr(&new)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = ca
        .signed(
            &new,
            "K1",
            &format!("/v1/keys/K1/renewals/{rid}/installed"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["business"]["state"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{v}"
    );

    // The seal was made again, for the new certificate, ready to install; the answer
    // carries that business with its secret, for the client that renewed.
    let (id2, secret2) = created(&v["seal"]);
    assert_ne!(id2, id);
    let (_, doc) = ca.signed_get(&new, "K1", "/v1/keys/K1/seal").await;
    assert_eq!(doc["business_id"].as_str(), Some(id2.as_str()));
    let (_, b2) = ca
        .with_secret("GET", &format!("/v1/businesses/{id2}"), &secret2, None)
        .await;
    assert_eq!(
        (b2["kind"].as_str(), b2["state"].as_str()),
        (Some("seal"), Some("certificate_issued"))
    );
    check_seal(&ca, &new, "K1", &id2, "广州示例科技有限公司", 1).await;
    let (s, v) = ca
        .signed(
            &new,
            "K1",
            &format!("/v1/keys/K1/seals/{id2}/installed"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{v}"
    );
}
