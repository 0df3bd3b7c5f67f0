//! Cross-cutting guarantees: secrets never reach the logs, and concurrent requests cannot
//! spend one nonce twice or lose a write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // For the whole process (nextest runs each test in its own): a subscriber set for this
    // thread only would miss what the database's worker threads log.
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber");

    let ca = TestCa::new().await;
    let key = p256();
    ca.issue_key("K1", &key, 1).await;
    let ticket = ca.send_activation_code("K1").await;
    let code = ca.last_code("K1").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    ca.redeem("K1", &ticket, wrong).await;
    let (s, _) = ca.redeem("K1", &ticket, &code).await;
    assert_eq!(s, StatusCode::OK);
    ca.signed(&key, "K1", "/v1/keys/K1/activation/confirm", None)
        .await;
    let (_, created) = ca
        .post("/v1/keys/K1/unlocks", &json!({"requester": handler()}))
        .await;
    let business_secret = created["secret"].as_str().unwrap().to_owned();
    let unlock_code = ca.last_code("K1").await;
    let (s, a) = ca
        .with_secret(
            "POST",
            &format!(
                "/v1/keys/K1/unlocks/{}/authorisation",
                created["business"]["id"].as_str().unwrap()
            ),
            &business_secret,
            Some(&json!({"code": unlock_code})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let new_so = a["new_so_pin"].as_str().unwrap().to_owned();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("released transport PIN"),
        "logging was not captured"
    );
    // The statements the database's worker threads log are captured too.
    assert!(
        text.contains("sqlx::query"),
        "the database's logging was not captured"
    );
    for secret in [
        "SoPin-Secret-0001",
        "Transport-7788",
        code.as_str(),
        unlock_code.as_str(),
        new_so.as_str(),
        ca.app.admin_token(),
        ticket.as_str(),
        business_secret.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_spend_a_nonce_once_and_lose_nothing() {
    let ca = Arc::new(TestCa::new().await);
    let key = Arc::new(p256());
    ca.activate("K1", &key).await;
    ca.clock.advance(time::Duration::days(300));
    // Eight requests race with the same nonce: exactly one may pass.
    let nonce = ca.nonce("K1").await;
    let app = json!({"years": 1, "invoice": {"title": "t", "tax_id": USCC, "email": "a@b.c"}});
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (ca, key, nonce, app) = (ca.clone(), key.clone(), nonce.clone(), app.clone());
        tasks.push(tokio::spawn(async move {
            ca.signed_with_nonce(&key, &nonce, "/v1/keys/K1/renewals", Some(&app))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        if s == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(code_of(&v), "nonce_replayed", "{v}");
        }
    }
    assert_eq!(ok, 1);
    // Forty certifications at once all land.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let ca = ca.clone();
        tasks.push(tokio::spawn(async move {
            ca.certify(&p256(), USCC2, 1).await["serial"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    let mut serials = std::collections::BTreeSet::new();
    for t in tasks {
        serials.insert(t.await.unwrap());
    }
    assert_eq!(serials.len(), 40);
    let (_, audit) = ca.admin_get("/admin/v1/audit").await;
    let issued = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "certificate_issued")
        .count();
    assert_eq!(issued, 41, "one for the activated key plus forty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_redeemed_once_even_when_requests_race() {
    let ca = Arc::new(TestCa::new().await);
    ca.issue_key("K1", &p256(), 1).await;
    let ticket = ca.send_activation_code("K1").await;
    let code = ca.last_code("K1").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (ca, code, ticket) = (ca.clone(), code.clone(), ticket.clone());
        tasks.push(tokio::spawn(async move {
            ca.redeem("K1", &ticket, &code).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        if s == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(code_of(&v), "code_expired", "{v}");
        }
    }
    assert_eq!(ok, 1);
}
