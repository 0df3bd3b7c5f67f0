//! Router-level tests of unlock (忘记密码), attachments and review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};

fn stranger() -> Value {
    json!({"name": "李四", "id_number": "110105198001010016", "phone": "13900139000"})
}

async fn code_for(ca: &TestCa, serial: &str, purpose: &str) -> String {
    let (_, v) = ca
        .admin_get(&format!("/admin/v1/sms?key_serial={serial}"))
        .await;
    let m = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["purpose"] == purpose)
        .unwrap()
        .clone();
    m["text"]
        .as_str()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect()
}

async fn upload(
    ca: &TestCa,
    id: &str,
    secret: &str,
    kind: &str,
    ct: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    ca.upload(id, secret, kind, ct, &bytes).await
}

/// Applies to unlock K1 as `requester`; the business and its secret.
async fn apply(ca: &TestCa, requester: Value) -> (StatusCode, Value, String) {
    let (s, v) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": requester}))
        .await;
    let secret = v["secret"].as_str().unwrap_or_default().to_owned();
    (s, v["business"].clone(), secret)
}

/// Operator-facing notes carry none of PKCS#11's words (SO PIN, slot, token, C_…).
fn assert_plain(notes: &[&str]) {
    for note in notes {
        let lower = note.to_lowercase();
        for word in ["pin", "slot", "token", "c_", "pkcs", "so "] {
            assert!(!lower.contains(word), "{word:?} in the note {note:?}");
        }
    }
}

fn jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend_from_slice(b"identity card scan");
    v
}

#[tokio::test]
async fn the_handler_of_record_is_approved_automatically_and_the_so_pin_rotates_safely() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.activate("K1", &key).await;
    let (s, first, first_secret) = apply(&ca, handler()).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(first["state"], "approved");
    // Applying again (from another computer, say) replaces the open one: the handler of
    // record is never kept out of their own key.
    ca.clock.advance(time::Duration::seconds(61));
    let (s, b, secret) = apply(&ca, handler()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["kind"], "unlock");
    assert_eq!(b["state"], "approved");
    assert_eq!(b["fee_fen"], 0);
    assert_eq!(secret.len(), 64);
    let id = b["id"].as_str().unwrap().to_owned();
    let old = first["id"].as_str().unwrap();
    let (_, old_state) = ca
        .with_secret("GET", &format!("/v1/businesses/{old}"), &first_secret, None)
        .await;
    assert_eq!(old_state["state"], "cancelled");

    let auth = format!("/v1/keys/K1/unlocks/{id}/authorisation");
    let code = code_for(&ca, "K1", "unlock").await;
    // The authorisation needs the unlock's own secret: not another's, not none.
    let (s, v) = ca.post(&auth, &json!({"code": code})).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = ca
        .with_secret("POST", &auth, &first_secret, Some(&json!({"code": code})))
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, v) = ca
        .with_secret("POST", &auth, &secret, Some(&json!({"code": wrong})))
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_invalid"));
    // Confirming before the authorisation is refused.
    let (s, v) = ca
        .signed(
            &key,
            "K1",
            &format!("/v1/keys/K1/unlocks/{id}/confirm"),
            None,
        )
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    let (s, a) = ca
        .with_secret("POST", &auth, &secret, Some(&json!({"code": code})))
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["so_pin"], "SoPin-Secret-0001");
    let fresh = a["new_so_pin"].as_str().unwrap().to_owned();
    assert_eq!(fresh.len(), 16);
    assert_ne!(fresh, "SoPin-Secret-0001");

    // The client crashes after rotating the SO PIN; a retry with a new code gets the same pair.
    ca.clock.advance(time::Duration::seconds(61));
    let send = format!("/v1/keys/K1/unlocks/{id}/code");
    let (s, v) = ca.post_empty(&send).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = ca.with_secret("POST", &send, &secret, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v.get("ticket").is_none(),
        "a business-bound code needs no ticket"
    );
    let code = code_for(&ca, "K1", "unlock").await;
    let (s, again) = ca
        .with_secret("POST", &auth, &secret, Some(&json!({"code": code})))
        .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["so_pin"], "SoPin-Secret-0001");
    assert_eq!(again["new_so_pin"], fresh.as_str());

    // Confirm (signed by the key, i.e. the user logged in with the new PIN).
    let confirm = format!("/v1/keys/K1/unlocks/{id}/confirm");
    let (s, v) = ca.signed(&p256(), "K1", &confirm, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    let (s, done) = ca.signed(&key, "K1", &confirm, None).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["state"], "completed");
    // The timeline is what the operator reads in 办理进度查询: the CA's words, none of the
    // key's technical ones.
    let notes: Vec<&str> = done["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes.last(), Some(&"解锁完成"), "{notes:?}");
    assert_plain(&notes);
    let (s, again) = ca.signed(&key, "K1", &confirm, None).await;
    assert_eq!(
        (s, again["state"].as_str()),
        (StatusCode::OK, Some("completed"))
    );

    // The next unlock releases the rotated SO PIN as current.
    ca.clock.advance(time::Duration::seconds(61));
    let (s, b2, secret2) = apply(&ca, handler()).await;
    assert_eq!(s, StatusCode::OK, "{b2}");
    let id2 = b2["id"].as_str().unwrap();
    let code = code_for(&ca, "K1", "unlock").await;
    let (s, a2) = ca
        .with_secret(
            "POST",
            &format!("/v1/keys/K1/unlocks/{id2}/authorisation"),
            &secret2,
            Some(&json!({"code": code})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a2}");
    assert_eq!(a2["so_pin"], fresh.as_str());
    assert_ne!(a2["new_so_pin"], fresh.as_str());
    // Escrow never holds SO PINs in the clear.
    let db = std::fs::read(ca.data_dir().join("keyward-ca.sqlite")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&fresh));
    let (_, audit) = ca.admin_get("/admin/v1/audit?key_serial=K1").await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"unlock_auto_approved") && actions.contains(&"unlock_completed"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn another_requester_needs_attachments_and_a_reviewer() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.activate("K1", &key).await;
    let (s, b, secret) = apply(&ca, stranger()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"], "awaiting_documents");
    let id = b["id"].as_str().unwrap().to_owned();
    let sec = secret.as_str();
    let (s, v) = ca
        .with_secret(
            "POST",
            &format!("/v1/keys/K1/unlocks/{id}/authorisation"),
            sec,
            Some(&json!({"code": "123456"})),
        )
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    // While it is open, nobody else may open one: the refusal names it, masked.
    let mut third = stranger();
    third["name"] = json!("王五");
    third["phone"] = json!("13700137000");
    let (s, err) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": third}))
        .await;
    assert_eq!(
        (s, code_of(&err)),
        (StatusCode::CONFLICT, "unlock_under_way")
    );
    assert_eq!(err["open_business"]["requester_masked"], "李*");
    assert_eq!(err["open_business"]["phone_masked"], "139****9000");
    assert!(err["open_business"].get("id_number").is_none());
    let submit = format!("/v1/businesses/{id}/submit");
    let (s, v) = ca.post_empty(&submit).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = ca.with_secret("POST", &submit, sec, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "attachment_required")
    );

    // Attachment checks.
    let (s, v) = upload(&ca, &id, sec, "id_card", "text/plain", b"hello".to_vec()).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_attachment")
    );
    let (s, v) = upload(
        &ca,
        &id,
        sec,
        "id_card",
        "image/jpeg",
        b"\x89PNG\r\n\x1a\nxx".to_vec(),
    )
    .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_attachment")
    );
    let (s, v) = upload(&ca, &id, sec, "passport_photo", "image/jpeg", jpeg()).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let mut big = jpeg();
    big.resize(6 * 1024 * 1024, 0);
    let (s, v) = upload(&ca, &id, sec, "id_card", "image/jpeg", big).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let (s, att) = upload(&ca, &id, sec, "id_card", "image/jpeg", jpeg()).await;
    assert_eq!(s, StatusCode::OK, "{att}");
    let sha = att["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha, hex::encode(keyward_ca_api::body_sha256(&jpeg())));
    // Kept in the database, where every instance finds it; nothing in the data directory.
    assert!(!ca.data_dir().join("attachments").join(&sha).exists());
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend_from_slice(b"authorisation letter");
    let (s, _) = upload(
        &ca,
        &id,
        sec,
        "authorisation_letter",
        "application/pdf",
        pdf,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let (s, v) = ca.with_secret("POST", &submit, sec, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "under_review");
    let (s, v) = upload(&ca, &id, sec, "other", "image/jpeg", jpeg()).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));

    // The reviewer's queue and the file download.
    let (s, q) = ca.admin_get("/admin/v1/reviews").await;
    assert_eq!(s, StatusCode::OK);
    let item = &q["items"][0];
    assert_eq!(item["business"]["id"], id.as_str());
    assert_eq!(item["requester"]["name"], "李四");
    assert_eq!(item["attachments"].as_array().unwrap().len(), 2);
    let req = Request::get(format!("/admin/v1/attachments/{sha}"))
        .header("authorization", format!("Bearer {}", ca.app.admin_token()))
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(ca.app.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let (s, v) = ca.get(&format!("/admin/v1/attachments/{sha}")).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));

    let approve = format!("/admin/v1/reviews/{id}/approve");
    // The reviewer is the account that asks, never a name in the body.
    let (s, v) = ca
        .admin_post(&approve, &json!({"reviewer": "王审核", "note": "材料齐全"}))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (s, v) = ca.admin_post(&approve, &json!({"note": "材料齐全"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "approved");
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/reject"),
            &json!({"note": "x"}),
        )
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "already_decided"));
    // The code goes to the approved requester's phone.
    let (_, sms) = ca.admin_get("/admin/v1/sms?phone=13900139000").await;
    assert_eq!(sms["messages"].as_array().unwrap().len(), 1);
    let code = code_for(&ca, "K1", "unlock").await;
    let (s, a) = ca
        .with_secret(
            "POST",
            &format!("/v1/keys/K1/unlocks/{id}/authorisation"),
            sec,
            Some(&json!({"code": code})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, done) = ca
        .signed(
            &key,
            "K1",
            &format!("/v1/keys/K1/unlocks/{id}/confirm"),
            None,
        )
        .await;
    assert_eq!(
        (s, done["state"].as_str()),
        (StatusCode::OK, Some("completed"))
    );
    // A requester a reviewer approved is the handler of record now: their next unlock is
    // automatic, and the former handler's is not.
    ca.clock.advance(time::Duration::seconds(61));
    let (s, b, _) = apply(&ca, stranger()).await;
    assert_eq!((s, b["state"].as_str()), (StatusCode::OK, Some("approved")));
    let (_, audit) = ca.admin_get("/admin/v1/audit?key_serial=K1").await;
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "review_approved" && r["actor"] == "staff:admin")
    );
}

#[tokio::test]
async fn rejection_is_final_and_recorded() {
    let ca = TestCa::new().await;
    ca.activate("K1", &p256()).await;
    let (_, b, secret) = apply(&ca, stranger()).await;
    let id = b["id"].as_str().unwrap().to_owned();
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/approve"),
            &json!({"note": ""}),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "wrong_state"),
        "not submitted yet"
    );
    upload(
        &ca,
        &id,
        &secret,
        "id_card",
        "image/png",
        b"\x89PNG\r\n\x1a\nxx".to_vec(),
    )
    .await;
    ca.with_secret(
        "POST",
        &format!("/v1/businesses/{id}/submit"),
        &secret,
        None,
    )
    .await;
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/reject"),
            &json!({"note": "身份证模糊"}),
        )
        .await;
    assert_eq!((s, v["state"].as_str()), (StatusCode::OK, Some("rejected")));
    let (_, audit) = ca.admin_get("/admin/v1/audit?key_serial=K1").await;
    let r = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "review_rejected")
        .unwrap()
        .clone();
    assert_eq!(r["actor"], "staff:admin");
    assert_eq!(r["detail"], "身份证模糊");
    // The requester is told by SMS, with the reviewer's reason; the timeline says the same
    // in plain words.
    let (_, sms) = ca.admin_get("/admin/v1/sms?key_serial=K1").await;
    let told = sms["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["purpose"] == "unlock_rejected")
        .expect("an SMS for the rejection")
        .clone();
    assert_eq!(told["phone"], "13900139000");
    assert!(
        told["text"]
            .as_str()
            .unwrap()
            .contains("未通过审核：身份证模糊"),
        "{told}"
    );
    let notes: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes.last(), Some(&"审核未通过：身份证模糊"));
    assert_plain(&notes);
    // A new unlock can be started after a rejection.
    let (s, _) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": stranger()}))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn unlock_refusals() {
    let ca = TestCa::new().await;
    ca.issue_key("K1", &p256(), 1).await;
    let (s, v) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": handler()}))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "key_not_activated")
    );
    // An unknown serial answers as a key never activated does.
    let (s, v) = ca
        .post("/v1/keys/NOKEY/unlocks", &json!({"requester": handler()}))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "key_not_activated")
    );
    let mut bad = handler();
    bad["id_number"] = json!("123");
    let (s, v) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": bad}))
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_party"));
    let (s, v) = ca
        .with_secret(
            "POST",
            "/v1/keys/K1/unlocks/nope/authorisation",
            "0000",
            Some(&json!({"code": "1"})),
        )
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
}
