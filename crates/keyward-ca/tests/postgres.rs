//! The service on PostgreSQL: a throw-away cluster started by the test itself (initdb and
//! pg_ctl in a temp dir, on a loopback port), then the same flows as on SQLite, and a
//! restart that keeps everything.
//!
//! Needs the PostgreSQL server binaries (Debian: `postgresql`), found on PATH or under
//! /usr/lib/postgresql/*/bin. Without them the tests say so and pass, unless
//! KEYWARD_REQUIRE_POSTGRES=1 makes their absence a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

use common::cluster::Cluster;

#[tokio::test]
async fn the_service_runs_on_postgres_and_keeps_its_state() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let ca = TestCa::with_database(Some(cluster.url())).await;
    let key = p256();
    // Issue, activation (codes, nonces, signatures) and refusals.
    ca.issue_key("PG1", &key, 1).await;
    let ticket = ca.send_activation_code("PG1").await;
    let code = ca.last_code("PG1").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, v) = ca.redeem("PG1", &ticket, wrong).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_invalid"));
    let (s, v) = ca.redeem("PG1", &ticket, &code).await;
    assert_eq!(
        (s, v["transport_pin"].as_str()),
        (StatusCode::OK, Some("Transport-7788"))
    );
    let nonce = ca.nonce("PG1").await;
    let (s, v) = ca
        .signed_with_nonce(&key, &nonce, "/v1/keys/PG1/activation/confirm", None)
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("active")),
        "{v}"
    );
    let (s, v) = ca
        .signed_with_nonce(&key, &nonce, "/v1/keys/PG1/activation/confirm", None)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "nonce_replayed")
    );
    // Renewal with payment.
    ca.clock.advance(time::Duration::days(300));
    let app = json!({"years": 1, "invoice": {"title": "t", "tax_id": USCC, "email": "a@b.c"}});
    let (s, b) = ca
        .signed(&key, "PG1", "/v1/keys/PG1/renewals", Some(&app))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let id = b["business"]["id"].as_str().unwrap().to_owned();
    let secret = b["secret"].as_str().unwrap().to_owned();
    let (_, p) = ca
        .with_secret(
            "POST",
            &format!("/v1/businesses/{id}/payment"),
            &secret,
            None,
        )
        .await;
    let (s, _) = ca
        .post(
            &format!("{}/complete", p["pay_url"].as_str().unwrap()),
            &json!({"outcome": "paid"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let new = p256();
    let (s, issued) = ca
        .signed(
            &key,
            "PG1",
            &format!("/v1/keys/PG1/renewals/{id}/certificate"),
            Some(&json!({"csr_pem": csr(&new)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{issued}");
    let (s, done) = ca
        .signed(
            &new,
            "PG1",
            &format!("/v1/keys/PG1/renewals/{id}/installed"),
            None,
        )
        .await;
    assert_eq!(
        (s, done["business"]["state"].as_str()),
        (StatusCode::OK, Some("completed"))
    );
    // Unlock (automatic) and an order.
    let (s, u) = ca
        .post("/v1/keys/PG1/unlocks", &json!({"requester": handler()}))
        .await;
    assert_eq!(
        (s, u["business"]["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{u}"
    );
    let (s, o) = ca
        .signed(
            &new,
            "PG1",
            "/v1/keys/PG1/changes",
            Some(&json!({"handler": handler(), "new_name": null, "new_legal_address": "广州市新地址"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    let (_, sms) = ca.admin_get("/admin/v1/sms?key_serial=PG1").await;
    // The issue notice, the activation code, the unlock code.
    assert_eq!(sms["messages"].as_array().unwrap().len(), 3);

    // The electronic seal: made on approval, served, confirmed by the key.
    let (s, b) = ca
        .signed(
            &new,
            "PG1",
            "/v1/keys/PG1/seals",
            Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "official", "change": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let seal_id = b["business"]["id"].as_str().unwrap().to_owned();
    let seal_secret = b["secret"].as_str().unwrap().to_owned();
    let (s, v) = ca
        .upload(
            &seal_id,
            &seal_secret,
            "seal_scan",
            "image/png",
            b"\x89PNG\r\n\x1a\n stamped",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    ca.with_secret(
        "POST",
        &format!("/v1/businesses/{seal_id}/submit"),
        &seal_secret,
        None,
    )
    .await;
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{seal_id}/approve"),
            &json!({"note": "ok"}),
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("certificate_issued")),
        "{v}"
    );
    let (s, doc) = ca.signed_get(&new, "PG1", "/v1/keys/PG1/seal").await;
    assert_eq!(
        (s, doc["business_id"].as_str()),
        (StatusCode::OK, Some(seal_id.as_str()))
    );
    let (s, v) = ca
        .signed(
            &new,
            "PG1",
            &format!("/v1/keys/PG1/seals/{seal_id}/installed"),
            None,
        )
        .await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("completed")),
        "{v}"
    );

    // Restart on the same database and data directory: everything is still there.
    let data = ca.data_dir();
    let clock = ca.clock.clone();
    let TestCa {
        dir: _kept, app, ..
    } = ca;
    drop(app);
    let mut config = keyward_ca::Config::sandbox(&data);
    config.database_url = Some(cluster.url());
    config.clock = clock;
    let app2 = keyward_ca::App::build(&config).await.unwrap();
    let nonce = {
        let resp = tower::ServiceExt::oneshot(
            app2.router.clone(),
            axum::http::Request::post("/v1/nonces")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(r#"{"key_serial":"PG1"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["nonce"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let path = "/v1/keys/PG1/businesses";
    let input = keyward_ca_api::signing_input(
        &keyward_ca_api::request_purpose("GET", path),
        &nonce,
        &keyward_ca_api::body_sha256(b""),
    );
    let sig = rcgen::SigningKey::sign(&new, &input).unwrap();
    let resp = tower::ServiceExt::oneshot(
        app2.router.clone(),
        axum::http::Request::get(path)
            .header(keyward_ca_api::auth::NONCE_HEADER, &nonce)
            .header(keyward_ca_api::auth::SIGNATURE_HEADER, hex::encode(sig))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let kinds: Vec<&str> = v["businesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["issue", "renewal", "unlock", "change", "seal"]);
}

/// Connections the database dropped while they sat in the pool (a restart, a timeout on
/// its side) are tested before a request is given one, and replaced: no request meets a
/// dead connection.
#[tokio::test]
async fn connections_dropped_while_idle_are_replaced_before_a_request_meets_them() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let ca = TestCa::with_database(Some(cluster.url())).await;
    ca.issue_key("PGIDLE", &p256(), 1).await;
    let dropped: u32 = cluster
        .psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .parse()
        .unwrap();
    assert!(dropped >= 1, "the service held no connection");
    // Idle long enough to be tested when next handed out.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for _ in 0..3 {
        ca.nonce("PGIDLE").await;
    }
}
