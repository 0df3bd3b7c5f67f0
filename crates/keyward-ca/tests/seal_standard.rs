//! The seal the reference CA makes, checked by parts Keyward did not write: Python's
//! asn1tools decodes it with an ASN.1 module typed from GB/T 38540-2020 (version 4,
//! GeneralizedTime dates) and finds it canonical DER, and OpenSSL 3 and gmssl (a pure-Python
//! SM2) each verify its SM2 signature with SM3 and the default distinguishing ID over
//! `esealInfo` as received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

const PNG_SCAN: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR stamped seal scan";

async fn reference_ca_seal(ca: &TestCa) -> (Vec<u8>, Vec<u8>) {
    let key = p256();
    ca.activate("K1", &key).await;
    let (s, b) = ca
        .signed(
            &key,
            "K1",
            "/v1/keys/K1/seals",
            Some(&json!({"seal_name": "广州示例科技有限公司", "seal_kind": "contract", "change": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let id = b["business"]["id"].as_str().unwrap().to_owned();
    let secret = b["secret"].as_str().unwrap().to_owned();
    let (s, v) = ca
        .upload(&id, &secret, "seal_scan", "image/png", PNG_SCAN)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = ca
        .with_secret(
            "POST",
            &format!("/v1/businesses/{id}/submit"),
            &secret,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = ca
        .admin_post(
            &format!("/admin/v1/reviews/{id}/approve"),
            &json!({"note": "印模清晰"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, doc) = ca.signed_get(&key, "K1", "/v1/keys/K1/seal").await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    let der = keyward_pki::pem::from_base64(doc["seal_der_base64"].as_str().unwrap()).unwrap();
    let (_, status) = ca.signed_get(&key, "K1", "/v1/keys/K1").await;
    let cert = keyward_pki::pem::decode(
        status["certificate"]["pem"].as_str().unwrap(),
        "CERTIFICATE",
    )
    .unwrap();
    (der, cert)
}

fn decode_with_asn1tools(seal: &Path, out: &Path) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standard/check_seal.py");
    // Bounded in time; the script bounds its own memory.
    let o = Command::new("timeout")
        .args(["60", "python3"])
        .arg(script)
        .arg(seal)
        .arg(out)
        .output()
        .expect("python3 (cargo xtask setup installs asn1tools)");
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&o.stdout).unwrap())
}

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl")
}

fn sm2_verify(dir: &Path, message: &str) -> bool {
    let o = openssl(
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "maker-pub.pem",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-in",
            message,
            "-sigfile",
            "signature.der",
        ],
        dir,
    );
    let text = String::from_utf8_lossy(&o.stdout);
    o.status.success() && text.contains("Signature Verified Successfully")
}

/// gmssl's verdict on the seal check_seal.py took apart in `dir`, over `message` there
/// (tests/standard/sm2_gmssl.py).
fn sm2_verified_by_gmssl(dir: &Path, message: &str) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standard/sm2_gmssl.py");
    let o = Command::new("timeout")
        .args(["60", "python3"])
        .arg(script)
        .args([message, "signature.der", "maker.der"])
        .current_dir(dir)
        .output()
        .expect("python3 (cargo xtask setup installs gmssl)");
    let text = String::from_utf8_lossy(&o.stdout);
    // Anything but a clean verdict either way (a missing module, a decoding error) fails.
    assert!(
        text.trim() == "verified" || text.trim() == "not verified",
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.status.success() && text.trim() == "verified"
}

#[tokio::test]
async fn the_reference_cas_seal_is_gbt_38540_version_4_and_verifies_with_openssl_and_gmssl() {
    let ca = TestCa::new().await;
    let (der, cert) = reference_ca_seal(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let seal_path = dir.path().join("seal.der");
    std::fs::write(&seal_path, &der).unwrap();

    let read = decode_with_asn1tools(&seal_path, dir.path()).expect("the standard's decoder");
    assert_eq!(read["header_id"], "ES");
    assert_eq!(read["version"], 4);
    assert_eq!(read["name"], "广州示例科技有限公司");
    assert_eq!(read["type"], keyward_pki::seal::SEAL_TYPE_CONTRACT);
    assert_eq!(read["cert_list_type"], 1);
    assert_eq!(read["cert_list"], "CertInfoList");
    assert_eq!(read["cert_count"], 1);
    assert_eq!(read["picture_type"], "PNG");
    assert_eq!(read["picture_len"], PNG_SCAN.len());
    assert_eq!(read["picture_mm"], json!([40, 40]));
    assert_eq!(read["sign_alg"], keyward_pki::seal::SM2_WITH_SM3_OID);
    assert!(
        read["create_date"].as_str().unwrap().starts_with("20"),
        "{read}"
    );
    // What the decoder wrote out is what Keyward's own reader sees.
    let seal = keyward_pki::seal::Seal::from_der(&der).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("info.der")).unwrap(),
        seal.info_bytes
    );
    seal.verify_binding(&cert)
        .expect("bound to the key's certificate");

    // OpenSSL 3: the maker's SM2 key from its certificate, SM3, the default ID.
    let o = openssl(
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "maker.der",
            "-pubkey",
            "-noout",
            "-out",
            "maker-pub.pem",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        sm2_verify(dir.path(), "info.der"),
        "OpenSSL verifies the seal"
    );
    // gmssl, a second SM2 implementation (pure Python), agrees.
    assert!(
        sm2_verified_by_gmssl(dir.path(), "info.der"),
        "gmssl verifies the seal"
    );
    // And both refuse it over a changed esealInfo.
    let mut changed = std::fs::read(dir.path().join("info.der")).unwrap();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(dir.path().join("changed.der"), &changed).unwrap();
    assert!(
        !sm2_verify(dir.path(), "changed.der"),
        "a changed seal fails"
    );
    assert!(
        !sm2_verified_by_gmssl(dir.path(), "changed.der"),
        "a changed seal fails for gmssl"
    );
}

/// A minimal seal-shaped value with the given three dates.
fn hand_made(dates: [Vec<u8>; 3]) -> Vec<u8> {
    use keyward_pki::der::tlv;
    let seq = |parts: &[Vec<u8>]| tlv(0x30, &parts.concat());
    let int = |v: u8| tlv(0x02, &[v]);
    let [d0, d1, d2] = dates;
    let info = seq(&[
        seq(&[tlv(0x16, b"ES"), int(4), tlv(0x16, b"kw")]),
        tlv(0x16, b"X"),
        seq(&[
            int(1),
            tlv(0x0c, b"n"),
            int(1),
            seq(&[tlv(0x04, b"c")]),
            d0,
            d1,
            d2,
        ]),
        seq(&[tlv(0x16, b"PNG"), tlv(0x04, b"p"), int(40), int(40)]),
    ]);
    seq(&[
        info,
        tlv(0x04, b"m"),
        tlv(0x06, &[0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75]),
        tlv(0x03, &[0, 1, 2]),
    ])
}

/// The decoder is strict where the standard is: UTCTime dates (what seals before version 4
/// carried) are refused, so the test above would catch a CA that wrote them.
#[test]
fn the_standards_decoder_refuses_utc_time_dates() {
    use keyward_pki::der::tlv;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.der");
    let utc = || tlv(0x17, b"261121100000Z");
    std::fs::write(&path, hand_made([utc(), utc(), utc()])).unwrap();
    let refused = decode_with_asn1tools(&path, dir.path());
    assert!(refused.is_err(), "{refused:?}");
    let gen_time = || tlv(0x18, b"20261121100000Z");
    std::fs::write(&path, hand_made([gen_time(), gen_time(), gen_time()])).unwrap();
    let read = decode_with_asn1tools(&path, dir.path()).expect("GeneralizedTime reads");
    assert_eq!(read["create_date"], "2026-11-21T10:00:00");
}
