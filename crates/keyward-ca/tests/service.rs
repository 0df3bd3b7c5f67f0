//! Router-level tests: skeleton, error model, registry, certification, activation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use keyward_ca_api::endpoints::ENDPOINTS;
use serde_json::json;

#[tokio::test]
async fn health_and_openapi() {
    let ca = TestCa::new().await;
    let (s, v) = ca.get("/healthz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    let (s, doc) = ca.get("/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for ep in ENDPOINTS {
        assert!(
            doc["paths"][ep.path][ep.method.to_ascii_lowercase()].is_object(),
            "{} {}",
            ep.method,
            ep.path
        );
        assert!(
            matches!(ep.response, "bytes" | "html")
                || doc["components"]["schemas"][ep.response].is_object(),
            "schema {}",
            ep.response
        );
        if let Some(r) = ep.request {
            assert!(doc["components"]["schemas"][r].is_object(), "schema {r}");
        }
    }
    let codes = doc["components"]["schemas"]["ApiError"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap();
    assert!(codes.iter().any(|c| c == "nonce_replayed"));
}

#[tokio::test]
async fn every_documented_endpoint_is_routed() {
    let ca = TestCa::new().await;
    for ep in ENDPOINTS {
        let path = ep
            .path
            .replace("{serial}", "NOKEY")
            .replace("{id}", "noid")
            .replace("{sha256}", "00")
            .replace("{uscc}", "NOORG");
        let req = Request::builder()
            .method(ep.method)
            .uri(&path)
            .body(Body::empty())
            .unwrap();
        if ep.path == "/v1/forms/seal" {
            // A public download answers with the file itself, not JSON.
            let resp = tower::ServiceExt::oneshot(ca.app.router.clone(), req)
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{}", ep.path);
            continue;
        }
        let (s, v) = ca.raw(req).await;
        assert_ne!(
            code_of(&v),
            "not_found",
            "{} {} is not routed",
            ep.method,
            ep.path
        );
        assert_ne!(
            code_of(&v),
            "method_not_allowed",
            "{} {} is not routed",
            ep.method,
            ep.path
        );
        assert_ne!(
            s,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{} {}: {v}",
            ep.method,
            ep.path
        );
        if !s.is_success() {
            assert!(
                v["code"].is_string() && v["message"].is_string(),
                "{} {}: {v}",
                ep.method,
                ep.path
            );
        }
    }
}

#[test]
fn openapi_examples_are_real_wire_values() {
    use keyward_ca_api::*;
    let examples = keyward_ca::openapi::examples();
    // Every type the endpoint table names has an example, and every example reads back as
    // its type: an example not checked here fails, so a new type cannot slip by.
    for ep in ENDPOINTS {
        for name in ep.request.into_iter().chain([ep.response]) {
            assert!(
                matches!(name, "html" | "bytes") || examples.iter().any(|(n, _)| *n == name),
                "{} {} names {name}, which has no example",
                ep.method,
                ep.path
            );
        }
    }
    for (name, example) in examples {
        let ok = match name {
            "CertifyRequest" => serde_json::from_value::<CertifyRequest>(example).is_ok(),
            "RegisterKeyRequest" => serde_json::from_value::<RegisterKeyRequest>(example).is_ok(),
            "NonceRequest" => serde_json::from_value::<NonceRequest>(example).is_ok(),
            "RedeemCodeRequest" => serde_json::from_value::<RedeemCodeRequest>(example).is_ok(),
            "RenewalApplication" => serde_json::from_value::<RenewalApplication>(example).is_ok(),
            "SandboxOutcome" => serde_json::from_value::<SandboxOutcome>(example).is_ok(),
            "PaymentNotification" => serde_json::from_value::<PaymentNotification>(example).is_ok(),
            "CsrSubmission" => serde_json::from_value::<CsrSubmission>(example).is_ok(),
            "KeyStatus" => serde_json::from_value::<KeyStatus>(example).is_ok(),
            "Business" => serde_json::from_value::<Business>(example).is_ok(),
            "ApiError" => serde_json::from_value::<ApiError>(example).is_ok(),
            "SealApplication" => serde_json::from_value::<SealApplication>(example).is_ok(),
            "SealDocument" => serde_json::from_value::<SealDocument>(example).is_ok(),
            "BusinessForm" => serde_json::from_value::<BusinessForm>(example).is_ok(),
            "InvoiceDetails" => serde_json::from_value::<InvoiceDetails>(example).is_ok(),
            "Invoice" => serde_json::from_value::<Invoice>(example).is_ok(),
            "CertificateHistory" => serde_json::from_value::<CertificateHistory>(example).is_ok(),
            "UnlockApplication" => serde_json::from_value::<UnlockApplication>(example).is_ok(),
            "ReviewDecision" => serde_json::from_value::<ReviewDecision>(example).is_ok(),
            "ReviewQueue" => serde_json::from_value::<ReviewQueue>(example).is_ok(),
            "Health" => serde_json::from_value::<Health>(example).is_ok(),
            "OpenApi" => example["openapi"] == "3.1.0",
            "CaChain" => serde_json::from_value::<CaChain>(example).is_ok(),
            "CaProfile" => serde_json::from_value::<CaProfile>(example).is_ok(),
            "IssuedCertificate" => serde_json::from_value::<IssuedCertificate>(example).is_ok(),
            "SmsOutbox" => serde_json::from_value::<SmsOutbox>(example).is_ok(),
            "AuditLog" => serde_json::from_value::<AuditLog>(example).is_ok(),
            "NonceGrant" => serde_json::from_value::<NonceGrant>(example).is_ok(),
            "CodeSent" => serde_json::from_value::<CodeSent>(example).is_ok(),
            "TransportPinRelease" => serde_json::from_value::<TransportPinRelease>(example).is_ok(),
            "BusinessList" => serde_json::from_value::<BusinessList>(example).is_ok(),
            "PaymentRequest" => serde_json::from_value::<PaymentRequest>(example).is_ok(),
            "UnlockAuthorisation" => serde_json::from_value::<UnlockAuthorisation>(example).is_ok(),
            "Attachment" => serde_json::from_value::<Attachment>(example).is_ok(),
            "KeyStanding" => serde_json::from_value::<KeyStanding>(example).is_ok(),
            "CreatedBusiness" => serde_json::from_value::<CreatedBusiness>(example).is_ok(),
            "RegisteredKey" => serde_json::from_value::<RegisteredKey>(example).is_ok(),
            "RenewalInstalled" => serde_json::from_value::<RenewalInstalled>(example).is_ok(),
            "ChangeForm" => serde_json::from_value::<ChangeForm>(example).is_ok(),
            "RefundForm" => serde_json::from_value::<RefundForm>(example).is_ok(),
            other => panic!("example {other} is not checked against its type"),
        };
        assert!(ok, "example {name} does not read back");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_typed_errors() {
    let ca = TestCa::new().await;
    let (s, v) = ca.get("/nope").await;
    assert_eq!((s, code_of(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = ca.post_empty("/healthz").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    // A key's status is the key's to read: an unknown serial is refused like a known one,
    // so the answer tells nobody which serials exist.
    let (s, v) = ca.get("/v1/keys/NOKEY").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_missing")
    );
    let (s, v) = ca.get("/v1/keys/NOKEY/standing").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"awaiting_activation": false, "waiting": []}));
}

#[tokio::test]
async fn bad_bodies_get_typed_errors() {
    let ca = TestCa::new().await;
    let token = ca.app.admin_token().to_owned();
    let send = |body: Vec<u8>, ct: Option<&str>| {
        let mut r =
            Request::post("/admin/v1/certify").header("authorization", format!("Bearer {token}"));
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.body(Body::from(body)).unwrap()
    };
    let (s, v) = ca
        .raw(send(b"{not json".to_vec(), Some("application/json")))
        .await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_json"));
    let (s, v) = ca
        .raw(send(
            br#"{"organisation": 5, "csr_pem": "x", "years": 1}"#.to_vec(),
            Some("application/json"),
        ))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let body = json!({"organisation": org(USCC), "csr_pem": "x", "years": 1, "extra": true});
    let (s, v) = ca
        .raw(send(
            serde_json::to_vec(&body).unwrap(),
            Some("application/json"),
        ))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (s, v) = ca.raw(send(b"{}".to_vec(), None)).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (s, v) = ca
        .raw(send(vec![b' '; 200 * 1024], Some("application/json")))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let (s, v) = ca
        .raw(send(
            b"[1,2,3]".to_vec(),
            Some("application/json; charset=utf-8"),
        ))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[tokio::test]
async fn admin_endpoints_need_the_token() {
    let ca = TestCa::new().await;
    let (s, v) = ca.post("/admin/v1/certify", &json!({})).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let req = Request::get("/admin/v1/sms")
        .header("authorization", "Bearer wrong")
        .body(Body::empty())
        .unwrap();
    let (s, v) = ca.raw(req).await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = ca.get("/admin/v1/audit").await;
    assert_eq!((s, code_of(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
}

#[tokio::test]
async fn certify_issues_the_organisation_profile_and_openssl_verifies_it() {
    let ca = TestCa::new().await;
    let key = p256();
    let v = ca.certify(&key, USCC, 2).await;
    let out = openssl_verify(
        ca.dir.path(),
        v["certificate_pem"].as_str().unwrap(),
        v["chain_pem"].as_array().unwrap(),
    );
    assert!(out.contains("OK"), "{out}");
    let text = openssl_text(ca.dir.path(), v["certificate_pem"].as_str().unwrap());
    assert!(text.contains("C=CN"), "{text}");
    assert!(text.contains("O=广州示例科技有限公司"), "{text}");
    assert!(text.contains("CN=广州示例科技有限公司"), "{text}");
    assert!(
        text.contains(&format!("organizationIdentifier=NTRCN-{USCC}")),
        "{text}"
    );
    assert!(
        text.contains("Digital Signature, Non Repudiation"),
        "{text}"
    );
    // The chain endpoint serves the same root.
    let (_, chain) = ca.get("/v1/ca/chain").await;
    assert_eq!(chain["root_pem"], v["chain_pem"][1]);
}

#[tokio::test]
async fn certify_refuses_bad_input() {
    let ca = TestCa::new().await;
    let key = p256();
    let good_csr = csr(&key);
    let post = |body: serde_json::Value| {
        let ca = &ca;
        async move { ca.admin_post("/admin/v1/certify", &body).await }
    };
    let (s, v) =
        post(json!({"organisation": org("91350100M000100Y44"), "csr_pem": good_csr, "years": 1}))
            .await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_uscc"));
    let (s, v) = post(json!({"organisation": org(USCC), "csr_pem": good_csr, "years": 6})).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_years"));
    let (s, v) = post(json!({"organisation": org(USCC), "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "years": 1})).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_csr"));
    // Flip a byte inside the CSR's signature.
    let der = x509_parser::pem::parse_x509_pem(good_csr.as_bytes())
        .unwrap()
        .1
        .contents;
    let mut bad = der.clone();
    let n = bad.len();
    bad[n - 5] ^= 0x55;
    let bad_pem = pem_encode("CERTIFICATE REQUEST", &bad);
    let (s, v) = post(json!({"organisation": org(USCC), "csr_pem": bad_pem, "years": 1})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        ["csr_signature_invalid", "invalid_csr"].contains(&code_of(&v)),
        "{v}"
    );
    let mut org_bad = org(USCC);
    org_bad["name"] = json!("");
    let (s, v) = post(json!({"organisation": org_bad, "csr_pem": good_csr, "years": 1})).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_party"));
}

pub fn pem_encode(label: &str, der: &[u8]) -> String {
    // Base64 by the openssl binary, to keep the test free of a base64 crate.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.der");
    std::fs::write(&p, der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["base64", "-in"])
        .arg(&p)
        .output()
        .unwrap();
    format!(
        "-----BEGIN {label}-----\n{}-----END {label}-----\n",
        String::from_utf8_lossy(&out.stdout)
    )
}

#[tokio::test]
async fn csr_with_a_tampered_signature_is_refused() {
    let ca = TestCa::new().await;
    let key = p256();
    let other = p256();
    // A CSR whose body carries one key but is signed by another.
    let good = csr(&key);
    let der = x509_parser::pem::parse_x509_pem(good.as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, parsed) = <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(&der).unwrap();
    let info = parsed.certification_request_info.raw.to_vec();
    use rcgen::SigningKey;
    let sig = other.sign(&info).unwrap();
    let mut body = info.clone();
    // AlgorithmIdentifier ecdsa-with-SHA256
    body.extend_from_slice(&[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ]);
    let mut bits = vec![0x03];
    bits.extend(der_len(sig.len() + 1));
    bits.push(0);
    bits.extend_from_slice(&sig);
    body.extend(bits);
    let mut seq = vec![0x30];
    seq.extend(der_len(body.len()));
    seq.extend(body);
    let (s, v) = ca
        .admin_post("/admin/v1/certify", &json!({"organisation": org(USCC), "csr_pem": pem_encode("CERTIFICATE REQUEST", &seq), "years": 1}))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "csr_signature_invalid"),
        "{v}"
    );
}

fn der_len(n: usize) -> Vec<u8> {
    if n < 128 {
        vec![n as u8]
    } else if n < 256 {
        vec![0x81, n as u8]
    } else {
        vec![0x82, (n >> 8) as u8, n as u8]
    }
}

#[tokio::test]
async fn register_key_escrows_pins_and_tells_the_handler() {
    let ca = TestCa::new().await;
    let key = p256();
    let registered = ca.register("NETCA0001", &key, 1).await;
    let v = &registered["status"];
    assert_eq!(v["state"], "awaiting_activation");
    assert_eq!(v["uscc"], USCC);
    assert!(v["activated_at"].is_null());
    // The issue business comes with its secret, for the organisation (a refund of a key
    // never activated needs it: such a key cannot sign).
    assert_eq!(registered["issue"]["business"]["kind"], "issue");
    assert_eq!(registered["issue"]["secret"].as_str().unwrap().len(), 64);
    let (s, sms) = ca.admin_get("/admin/v1/sms").await;
    assert_eq!(s, StatusCode::OK);
    let msgs = sms["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["phone"], PHONE);
    // The handler is told the key is issued; the code is asked for once the key arrived.
    assert_eq!(msgs[0]["purpose"], "issued");
    assert!(
        !msgs[0]["text"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| c.is_ascii_digit())
    );
    // Escrowed PINs are not stored in the clear.
    let mut all = Vec::new();
    for entry in std::fs::read_dir(ca.data_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    let hay = String::from_utf8_lossy(&all);
    assert!(!hay.contains("SoPin-Secret-0001") && !hay.contains("Transport-7788"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["escrow.key", "admin.token", "ca/issuing.key", "ca/root.key"] {
            let mode = std::fs::metadata(ca.data_dir().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} is readable by others");
        }
    }
    // Progress, read by the key, shows the issue business awaiting activation.
    let (s, p) = ca
        .signed_get(&key, "NETCA0001", "/v1/keys/NETCA0001/businesses")
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["businesses"][0]["kind"], "issue");
    assert_eq!(p["businesses"][0]["state"], "awaiting_activation");
    // The audit log has the registration, under the account that made it.
    let (_, audit) = ca.admin_get("/admin/v1/audit?key_serial=NETCA0001").await;
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "key_registered" && r["actor"] == "staff:admin")
    );
}

#[tokio::test]
async fn register_key_refusals() {
    let ca = TestCa::new().await;
    let key = p256();
    let cert = ca.certify(&key, USCC, 1).await;
    let pem = cert["certificate_pem"].as_str().unwrap();
    // Certificate for another organisation.
    let (s, v) = ca
        .admin_post("/admin/v1/keys", &register_body("K1", USCC2, pem))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "certificate_mismatch")
    );
    // A certificate this CA did not issue.
    let foreign = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&p256())
        .unwrap()
        .pem();
    let (s, v) = ca
        .admin_post("/admin/v1/keys", &register_body("K1", USCC, &foreign))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_certificate")
    );
    // Bad handler phone.
    let mut body = register_body("K1", USCC, pem);
    body["handler"]["phone"] = json!("12345");
    let (s, v) = ca.admin_post("/admin/v1/keys", &body).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "invalid_party"));
    // Bad key serial.
    let (s, v) = ca
        .admin_post("/admin/v1/keys", &register_body("K 1/", USCC, pem))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // Good, then the same serial again.
    let (s, v) = ca
        .admin_post("/admin/v1/keys", &register_body("K1", USCC, pem))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cert2 = ca.certify(&p256(), USCC, 1).await;
    let (s, v) = ca
        .admin_post(
            "/admin/v1/keys",
            &register_body("K1", USCC, cert2["certificate_pem"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::CONFLICT, "key_already_registered")
    );
    // The same certificate on a second key.
    let (s, v) = ca
        .admin_post("/admin/v1/keys", &register_body("K2", USCC, pem))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "certificate_mismatch")
    );
}

#[tokio::test]
async fn activation_releases_the_transport_pin_only_for_the_right_code() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.issue_key("K1", &key, 1).await;
    let ticket = ca.send_activation_code("K1").await;
    let code = ca.last_code("K1").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, v) = ca.redeem("K1", &ticket, wrong).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_invalid"));
    // Without the ticket the code cannot be tried at all.
    let (s, v) = ca
        .post("/v1/keys/K1/activation/redeem", &json!({"code": code}))
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (s, v) = ca.redeem("K1", "not-a-ticket", &code).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_expired"));
    // The right code for another key does not work.
    ca.issue_key("K2", &p256(), 1).await;
    let ticket2 = ca.send_activation_code("K2").await;
    let code2 = ca.last_code("K2").await;
    if code2 != code {
        let (s, v) = ca.redeem("K1", &ticket, &code2).await;
        assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_invalid"));
    }
    let (s, v) = ca.redeem("K1", &ticket2, &code).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_expired"));
    let (s, v) = ca.redeem("K1", &ticket, &code).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["transport_pin"], "Transport-7788");
    // Single use.
    let (s, v) = ca.redeem("K1", &ticket, &code).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_expired"));
    // An unknown key and a key that does not await activation answer alike.
    let (s, v) = ca.redeem("NOKEY", &ticket, &code).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
}

#[tokio::test]
async fn codes_expire_lock_after_five_attempts_and_rate_limit() {
    let ca = TestCa::new().await;
    ca.issue_key("K1", &p256(), 1).await;
    let ticket = ca.send_activation_code("K1").await;
    assert_eq!(ticket.len(), 48);
    // Cool-down right after a code, for the same asker.
    let (s, v) = ca.post_empty("/v1/keys/K1/activation/code").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "code_cooldown")
    );
    let code = ca.last_code("K1").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        let (_, v) = ca.redeem("K1", &ticket, wrong).await;
        assert_eq!(code_of(&v), "code_invalid");
    }
    let (s, v) = ca.redeem("K1", &ticket, wrong).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "code_attempts_exhausted")
    );
    // Even the right code is void now.
    let (_, v) = ca.redeem("K1", &ticket, &code).await;
    assert_eq!(code_of(&v), "code_expired");
    // A new code after the cool-down; it expires after ten minutes.
    ca.clock.advance(time::Duration::seconds(61));
    let (s, v) = ca.post_empty("/v1/keys/K1/activation/code").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["phone_masked"], "138****8000");
    assert_eq!(v["reference"].as_str().unwrap().len(), 2);
    let ticket = v["ticket"].as_str().unwrap().to_owned();
    let code = ca.last_code("K1").await;
    ca.clock.advance(time::Duration::minutes(11));
    let (s, v) = ca.redeem("K1", &ticket, &code).await;
    assert_eq!((s, code_of(&v)), (StatusCode::BAD_REQUEST, "code_expired"));
    // One address may ask three times a day for one key (two done); others may still ask.
    ca.clock.advance(time::Duration::seconds(61));
    let (s, v) = ca.post_empty("/v1/keys/K1/activation/code").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    ca.clock.advance(time::Duration::seconds(61));
    let (s, v) = ca.post_empty("/v1/keys/K1/activation/code").await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "code_daily_limit")
    );
    // Daily cap per key: ten codes in 24 hours, from whichever addresses.
    for i in 0..7u8 {
        ca.clock.advance(time::Duration::seconds(61));
        let (s, v) = ca
            .post_empty_from([10, 0, 0, i], "/v1/keys/K1/activation/code")
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    ca.clock.advance(time::Duration::seconds(61));
    let (s, v) = ca
        .post_empty_from([10, 0, 1, 1], "/v1/keys/K1/activation/code")
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "code_daily_limit")
    );
    ca.clock.advance(time::Duration::hours(24));
    let (s, _) = ca.post_empty("/v1/keys/K1/activation/code").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn activation_confirm_needs_a_fresh_signature_by_the_key() {
    let ca = TestCa::new().await;
    let key = p256();
    ca.issue_key("K1", &key, 1).await;
    let path = "/v1/keys/K1/activation/confirm";
    // Before redeeming the code.
    let (s, v) = ca.signed(&key, "K1", path, None).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    let ticket = ca.send_activation_code("K1").await;
    let code = ca.last_code("K1").await;
    let (s, _) = ca.redeem("K1", &ticket, &code).await;
    assert_eq!(s, StatusCode::OK);
    // No signature.
    let (s, v) = ca.post_empty(path).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_missing")
    );
    // Signed by another key.
    let (s, v) = ca.signed(&p256(), "K1", path, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    // A nonce never issued.
    let (s, v) = ca.signed_with_nonce(&key, "deadbeef", path, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "nonce_invalid")
    );
    // A nonce issued for another key.
    ca.issue_key("K2", &p256(), 1).await;
    let other = ca.nonce("K2").await;
    let (s, v) = ca.signed_with_nonce(&key, &other, path, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "nonce_invalid")
    );
    // An expired nonce.
    let old = ca.nonce("K1").await;
    ca.clock.advance(time::Duration::minutes(6));
    let (s, v) = ca.signed_with_nonce(&key, &old, path, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "nonce_invalid")
    );
    // The signature covers the path: a signature for another purpose does not verify.
    let nonce = ca.nonce("K1").await;
    let input = keyward_ca_api::signing_input(
        &keyward_ca_api::request_purpose("POST", "/v1/keys/K1/renewals"),
        &nonce,
        &keyward_ca_api::body_sha256(b""),
    );
    use rcgen::SigningKey;
    let sig = key.sign(&input).unwrap();
    let req = Request::post(path)
        .header(keyward_ca_api::auth::NONCE_HEADER, &nonce)
        .header(keyward_ca_api::auth::SIGNATURE_HEADER, hex::encode(&sig))
        .body(Body::empty())
        .unwrap();
    let (s, v) = ca.raw(req).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "signature_invalid")
    );
    // Good.
    let nonce = ca.nonce("K1").await;
    let (s, v) = ca.signed_with_nonce(&key, &nonce, path, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "active");
    assert!(v["activated_at"].is_string());
    // Replay.
    let (s, v) = ca.signed_with_nonce(&key, &nonce, path, None).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "nonce_replayed")
    );
    // Progress: the issue business is completed.
    let (_, p) = ca.signed_get(&key, "K1", "/v1/keys/K1/businesses").await;
    assert_eq!(p["businesses"][0]["state"], "completed");
    assert_eq!(p["businesses"][0]["timeline"].as_array().unwrap().len(), 2);
    // Once active, no more codes or PIN releases.
    ca.clock.advance(time::Duration::seconds(61));
    let (s, v) = ca.post_empty("/v1/keys/K1/activation/code").await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
    let (s, v) = ca.redeem("K1", &ticket, &code).await;
    assert_eq!((s, code_of(&v)), (StatusCode::CONFLICT, "wrong_state"));
}

#[tokio::test]
async fn rsa_keys_sign_with_pkcs1_sha256() {
    let ca = TestCa::new().await;
    let key = rsa2048(ca.dir.path());
    let v = ca.certify(&key, USCC, 1).await;
    openssl_verify(
        ca.dir.path(),
        v["certificate_pem"].as_str().unwrap(),
        v["chain_pem"].as_array().unwrap(),
    );
    let (s, r) = ca
        .admin_post(
            "/admin/v1/keys",
            &register_body("RSA1", USCC, v["certificate_pem"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let ticket = ca.send_activation_code("RSA1").await;
    let code = ca.last_code("RSA1").await;
    let (s, _) = ca.redeem("RSA1", &ticket, &code).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = ca
        .signed(&key, "RSA1", "/v1/keys/RSA1/activation/confirm", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "active");
}

#[tokio::test]
async fn a_nonce_is_granted_for_any_serial_and_tells_nothing() {
    a_nonce_is_granted_for_any_serial_and_tells_nothing_on(TestCa::new().await).await;
}

#[tokio::test]
async fn a_nonce_is_granted_for_any_serial_and_tells_nothing_on_postgres() {
    let Some(cluster) = common::cluster::Cluster::start() else {
        return;
    };
    a_nonce_is_granted_for_any_serial_and_tells_nothing_on(
        TestCa::with_database(Some(cluster.url())).await,
    )
    .await;
}

async fn a_nonce_is_granted_for_any_serial_and_tells_nothing_on(ca: TestCa) {
    let k1 = p256();
    ca.issue_key("K1", &k1, 1).await;
    // Known or not, the answer has the same shape: a nonce is no oracle for serials.
    let (s, known) = ca.post("/v1/nonces", &json!({"key_serial": "K1"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, unknown) = ca.post("/v1/nonces", &json!({"key_serial": "NOKEY"})).await;
    assert_eq!(s, StatusCode::OK);
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&known), keys(&unknown));
    // A key has a handful of unused nonces at most: asking for many drops the oldest.
    // Signed by K1's own key, so only the nonce can be what is refused.
    let first = ca.nonce("K1").await;
    let mut newer = Vec::new();
    for _ in 0..keyward_ca::limits::NONCES_PER_KEY {
        newer.push(ca.nonce("K1").await);
    }
    let (s, v) = ca
        .signed_raw(&k1, &first, "GET", "/v1/keys/K1", Vec::new(), None)
        .await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::UNAUTHORIZED, "nonce_invalid"),
        "{v}"
    );
    let (s, v) = ca
        .signed_raw(&k1, &newer[0], "GET", "/v1/keys/K1", Vec::new(), None)
        .await;
    assert_eq!(s, StatusCode::OK, "the oldest kept one still counts: {v}");
    let (s, v) = ca.post("/v1/nonces", &json!({"key_serial": 5})).await;
    assert_eq!(
        (s, code_of(&v)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[tokio::test]
async fn every_json_endpoint_refuses_bad_bodies_with_typed_errors() {
    let ca = TestCa::new().await;
    let token = ca.app.admin_token().to_owned();
    // A caller each rule lets in: the key K1 (activated), the secret of an unlock of it,
    // the bootstrap admin. Unauthenticated bodies are never read; these are.
    let (key, unlock, secret) = ca.with_unlock().await;
    for ep in ENDPOINTS.iter().filter(|e| e.request.is_some()) {
        use keyward_ca_api::endpoints::Access;
        let path = ep.path.replace("{serial}", "K1").replace("{id}", &unlock);
        let cases: [(&[u8], Option<&str>, StatusCode, &str); 4] = [
            (
                b"{oops",
                Some("application/json"),
                StatusCode::BAD_REQUEST,
                "invalid_json",
            ),
            (
                br#"{"no_such_field": 1}"#,
                Some("application/json"),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                b"[]",
                Some("application/json"),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                b"{}",
                Some("text/plain"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
        ];
        for (body, ct, status, code) in cases {
            let (s, v) = match ep.access {
                Access::Key | Access::RenewedKey | Access::BusinessKey => {
                    let nonce = ca.nonce("K1").await;
                    ca.signed_raw(&key, &nonce, ep.method, &path, body.to_vec(), ct)
                        .await
                }
                _ => {
                    let mut r = Request::builder()
                        .method(ep.method)
                        .uri(&path)
                        .header("authorization", format!("Bearer {token}"))
                        .header(keyward_ca_api::auth::BUSINESS_SECRET_HEADER, &secret);
                    if let Some(ct) = ct {
                        r = r.header("content-type", ct);
                    }
                    ca.raw(r.body(Body::from(body)).unwrap()).await
                }
            };
            if ep.access == Access::PaymentProvider {
                // The provider's signature is checked before anything else.
                assert_eq!(
                    (s, code_of(&v)),
                    (StatusCode::UNAUTHORIZED, "payment_signature_invalid")
                );
                continue;
            }
            assert_eq!(
                (s, code_of(&v)),
                (status, code),
                "{} {} with {:?}",
                ep.method,
                ep.path,
                String::from_utf8_lossy(body)
            );
        }
    }
}

/// The seal form as a browser or the client downloads it: no credentials, a file name in
/// the header, the CA's own PDF preferred over the built-in HTML form.
#[tokio::test]
async fn the_seal_form_is_a_public_download_the_ca_may_replace() {
    use http_body_util::BodyExt;
    let ca = TestCa::new().await;
    let get = || Request::get("/v1/forms/seal").body(Body::empty()).unwrap();
    let resp = tower::ServiceExt::oneshot(ca.app.router.clone(), get())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    // 电子印章申请表.html, percent-encoded as RFC 8187 has it.
    assert!(
        disposition.starts_with("attachment;")
            && disposition.contains("filename*=UTF-8''%E7%94%B5%E5%AD%90%E5%8D%B0%E7%AB%A0%E7%94%B3%E8%AF%B7%E8%A1%A8.html"),
        "{disposition}"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains("<title>电子印章申请表</title>"));
    // Its rules are the guides': one seal per certificate, a name change is 【变更】.
    assert!(html.contains("每张数字证书只能有一枚电子印章"));
    assert!(html.contains("单位名称变更须先办理【变更】"));

    let forms = ca.data_dir().join("forms");
    std::fs::create_dir_all(&forms).unwrap();
    std::fs::write(forms.join("seal.pdf"), b"%PDF-1.7\nthe CA's own form").unwrap();
    let resp = tower::ServiceExt::oneshot(ca.app.router.clone(), get())
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".pdf")
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"%PDF-1.7\nthe CA's own form");
    // The OpenAPI document says who may call it.
    let (_, doc) = ca.get("/openapi.json").await;
    assert_eq!(
        doc["paths"]["/v1/forms/seal"]["get"]["x-keyward-access"],
        "public"
    );
}

/// No answer to a request that may have written leaves before the log is flushed: a
/// nonce, a signed request (its spend) and a refused one each pass a flush, and the public
/// reads do not wait for one.
#[tokio::test]
async fn answers_that_may_have_written_wait_for_the_flush_of_the_log() {
    let ca = TestCa::new().await;
    let k1 = p256();
    ca.issue_key("K1", &k1, 1).await;
    let flushes = || ca.app.state.durability().flushes();
    let n = flushes();
    let (s, _) = ca.get("/v1/keys/K1/standing").await;
    assert_eq!(s, StatusCode::OK);
    ca.get("/healthz").await;
    assert_eq!(flushes(), n, "public reads wait for nothing");
    let nonce = ca.nonce("K1").await;
    assert_eq!(flushes(), n + 1, "a nonce is written before it is given");
    let (s, v) = ca
        .signed_raw(&k1, &nonce, "GET", "/v1/keys/K1", Vec::new(), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        flushes(),
        n + 2,
        "a spent nonce is on disk before the answer"
    );
    let (s, _) = ca
        .signed_raw(&k1, &nonce, "GET", "/v1/keys/K1", Vec::new(), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        flushes(),
        n + 3,
        "refusals wait too: a refusal may have counted"
    );
}
