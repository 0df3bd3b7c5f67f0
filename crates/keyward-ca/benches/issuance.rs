//! Issuance throughput of the reference CA: the certificate profile alone, and a whole
//! `POST /admin/v1/certify` through the router (JSON, CSR check, issuance, SQLite
//! transaction, audit). Run with `cargo bench -p keyward-ca`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyward_ca::{App, Config};
use rcgen::{CertificateParams, KeyPair};
use serde_json::json;
use tower::ServiceExt;

fn csr(key: &KeyPair) -> String {
    CertificateParams::default()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

fn issuance(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = rt
        .block_on(App::build(&Config::new(dir.path().join("data"))))
        .unwrap();
    let key = KeyPair::generate().unwrap();
    let body = serde_json::to_vec(&json!({
        "organisation": {"name": "广州示例科技有限公司", "uscc": "91350100M000100Y43", "kind": "enterprise", "legal_address": "广州市"},
        "csr_pem": csr(&key),
        "years": 1,
    }))
    .unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);

    let mut group = c.benchmark_group("issuance");
    group.throughput(Throughput::Elements(1));
    group.bench_function("certificate_profile", |b| {
        let now = time::OffsetDateTime::now_utc();
        b.iter(|| {
            app.state
                .ca()
                .issue_organisation_certificate(
                    "广州示例科技有限公司",
                    "91350100M000100Y43",
                    &spki,
                    now,
                    now + time::Duration::days(365),
                )
                .unwrap()
        })
    });
    group.bench_function("certify_endpoint", |b| {
        b.to_async(&rt).iter(|| {
            let req = Request::post("/admin/v1/certify")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {}", app.admin_token()))
                .body(Body::from(body.clone()))
                .unwrap();
            let router = app.router.clone();
            async move {
                let resp = router.oneshot(req).await.unwrap();
                assert!(resp.status().is_success());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, issuance);
criterion_main!(benches);
