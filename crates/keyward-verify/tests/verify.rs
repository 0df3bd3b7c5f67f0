//! keyward-verify against tokens and signatures made outside it: authentication tokens signed
//! here with software keys under a test CA, CMS made by OpenSSL (`openssl cms -sign`). Each
//! hostile case must be refused with its rule named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use keyward_verify::{AuthTokenVerifier, Nonces, Rule, TrustAnchors, verify_cms};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SigningKey,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

const PORTAL: &str = "https://portal.test";

fn uscc() -> String {
    keyward_pki::uscc::with_check_character("91440101MA5E00042").unwrap()
}

struct Pki {
    root: rcgen::Certificate,
    issuing: rcgen::Certificate,
    issuing_key: KeyPair,
}

fn ca(
    name: &str,
    parent: Option<(&rcgen::Certificate, &KeyPair)>,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let cert = match parent {
        None => p.self_signed(&key).unwrap(),
        Some((c, k)) => p
            .signed_by(&key, &Issuer::from_ca_cert_der(c.der(), k).unwrap())
            .unwrap(),
    };
    (cert, key)
}

fn pki() -> Pki {
    let (root, root_key) = ca("测试根 CA", None);
    let (issuing, issuing_key) = ca("测试签发 CA", Some((&root, &root_key)));
    Pki {
        root,
        issuing,
        issuing_key,
    }
}

impl Pki {
    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::new(
            vec![self.root.der().to_vec()],
            vec![self.issuing.der().to_vec()],
        )
    }

    /// An organisation certificate with `usages`, valid from `from` for `days`.
    fn leaf(
        &self,
        usages: Vec<KeyUsagePurpose>,
        from: OffsetDateTime,
        days: i64,
    ) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::OrganizationName, "广州市验证示例有限公司");
        p.distinguished_name
            .push(DnType::CommonName, "广州市验证示例有限公司");
        p.distinguished_name.push(
            DnType::CustomDnType(vec![2, 5, 4, 97]),
            format!("NTRCN-{}", uscc()),
        );
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = usages;
        p.not_before = from;
        p.not_after = from + Duration::days(days);
        let issuer = Issuer::from_ca_cert_der(self.issuing.der(), &self.issuing_key).unwrap();
        (p.signed_by(&key, &issuer).unwrap(), key)
    }

    fn good_leaf(&self) -> (rcgen::Certificate, KeyPair) {
        self.leaf(
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::ContentCommitment,
            ],
            OffsetDateTime::now_utc() - Duration::days(1),
            365,
        )
    }
}

/// A token as the bridge makes it, signed here: over hash(origin) ‖ hash(nonce), ES256 r‖s.
fn token(cert: &rcgen::Certificate, key: &KeyPair, origin: &str, nonce: &str) -> String {
    let mut signed = ring::digest::digest(&ring::digest::SHA256, origin.as_bytes())
        .as_ref()
        .to_vec();
    signed
        .extend_from_slice(ring::digest::digest(&ring::digest::SHA256, nonce.as_bytes()).as_ref());
    let der = key.sign(&signed).unwrap();
    let raw = keyward_pki::digest::ecdsa_der_to_raw(&der, 32).unwrap();
    json!({
        "unverifiedCertificate": keyward_pki::pem::base64(cert.der()),
        "algorithm": "ES256",
        "signature": keyward_pki::pem::base64(&raw),
        "format": "web-eid:1.0",
        "appVersion": "urn:keyward:bridge:test",
    })
    .to_string()
}

#[test]
fn a_good_token_names_its_organisation_and_every_hostile_one_names_its_rule() {
    let pki = pki();
    let verifier = AuthTokenVerifier::new(PORTAL, pki.anchors()).unwrap();
    let nonces = Nonces::default();
    let now = OffsetDateTime::now_utc();
    let (cert, key) = pki.good_leaf();

    let c = nonces.issue(now).unwrap();
    let t = token(&cert, &key, PORTAL, &c.nonce);
    let id = verifier.verify(&t, &c.nonce, &nonces, now).unwrap();
    assert_eq!(id.organisation.as_deref(), Some("广州市验证示例有限公司"));
    assert_eq!(id.credit_code.as_deref(), Some(uscc().as_str()));

    // Replayed: the same token again.
    assert_eq!(
        verifier
            .verify(&t, &c.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::NonceReused
    );
    // A nonce this portal never issued.
    let foreign = "Zm9yZWlnbiBub25jZSBub3QgaXNzdWVkIGhlcmUgYXQgYWxs";
    let t = token(&cert, &key, PORTAL, foreign);
    assert_eq!(
        verifier.verify(&t, foreign, &nonces, now).unwrap_err().rule,
        Rule::NonceUnknown
    );
    // Stale: answered six minutes later.
    let c = nonces.issue(now).unwrap();
    let t = token(&cert, &key, PORTAL, &c.nonce);
    let late = now + Duration::minutes(6);
    assert_eq!(
        verifier
            .verify(&t, &c.nonce, &nonces, late)
            .unwrap_err()
            .rule,
        Rule::NonceExpired
    );
    // Made for another site (a phishing page relaying the portal's nonce).
    let c = nonces.issue(now).unwrap();
    let t = token(&cert, &key, "https://evil.test", &c.nonce);
    assert_eq!(
        verifier
            .verify(&t, &c.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::Signature
    );
    // For another nonce than the session's.
    let (c1, c2) = (nonces.issue(now).unwrap(), nonces.issue(now).unwrap());
    let t = token(&cert, &key, PORTAL, &c1.nonce);
    assert_eq!(
        verifier
            .verify(&t, &c2.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::Signature
    );
    // A tampered signature.
    let c = nonces.issue(now).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&token(&cert, &key, PORTAL, &c.nonce)).unwrap();
    let mut sig = keyward_pki::pem::from_base64(v["signature"].as_str().unwrap()).unwrap();
    sig[10] ^= 1;
    v["signature"] = json!(keyward_pki::pem::base64(&sig));
    assert_eq!(
        verifier
            .verify(&v.to_string(), &c.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::Signature
    );
    // A certificate from a CA the portal does not trust, with the same names.
    let other = self::pki();
    let (stranger, skey) = other.good_leaf();
    let c = nonces.issue(now).unwrap();
    let t = token(&stranger, &skey, PORTAL, &c.nonce);
    assert_eq!(
        verifier
            .verify(&t, &c.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::CertificateUntrusted
    );
    // Expired, not yet valid, and a certificate not meant for signatures.
    for (leaf, rule) in [
        (
            pki.leaf(
                vec![KeyUsagePurpose::DigitalSignature],
                now - Duration::days(400),
                365,
            ),
            Rule::CertificateExpired,
        ),
        (
            pki.leaf(
                vec![KeyUsagePurpose::DigitalSignature],
                now + Duration::days(2),
                365,
            ),
            Rule::CertificateNotYetValid,
        ),
        (
            pki.leaf(
                vec![KeyUsagePurpose::KeyEncipherment],
                now - Duration::days(1),
                365,
            ),
            Rule::CertificateKeyUsage,
        ),
    ] {
        let c = nonces.issue(now).unwrap();
        let t = token(&leaf.0, &leaf.1, PORTAL, &c.nonce);
        assert_eq!(
            verifier
                .verify(&t, &c.nonce, &nonces, now)
                .unwrap_err()
                .rule,
            rule
        );
    }
    // Another format, an algorithm not accepted, a missing field.
    let c = nonces.issue(now).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&token(&cert, &key, PORTAL, &c.nonce)).unwrap();
    v["format"] = json!("web-eid:2.0");
    assert_eq!(
        verifier
            .verify(&v.to_string(), &c.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::TokenFormat
    );
    v["format"] = json!("web-eid:1.0");
    v["algorithm"] = json!("none");
    assert_eq!(
        verifier
            .verify(&v.to_string(), &c.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::Algorithm
    );
    let mut v: serde_json::Value =
        serde_json::from_str(&token(&cert, &key, PORTAL, &c.nonce)).unwrap();
    v.as_object_mut().unwrap().remove("unverifiedCertificate");
    assert_eq!(
        verifier
            .verify(&v.to_string(), &c.nonce, &nonces, now)
            .unwrap_err()
            .rule,
        Rule::TokenFormat
    );
    // The portal's own origin must be a serialised https origin.
    for bad in ["http://portal.test", "https://portal.test/", "portal.test"] {
        assert_eq!(
            AuthTokenVerifier::new(bad, pki.anchors()).unwrap_err().rule,
            Rule::Origin
        );
    }
}

/// Signs `content` with OpenSSL's `cms -sign` (attached when `attached`).
fn openssl_cms(
    dir: &std::path::Path,
    cert: &rcgen::Certificate,
    key: &KeyPair,
    content: &[u8],
    attached: bool,
) -> Vec<u8> {
    std::fs::write(dir.join("signer.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("content"), content).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER",
    ])
    .arg("-signer")
    .arg(dir.join("signer.pem"))
    .arg("-inkey")
    .arg(dir.join("key.pem"))
    .arg("-in")
    .arg(dir.join("content"))
    .arg("-out")
    .arg(dir.join("sig.der"));
    if attached {
        cmd.arg("-nodetach");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("sig.der")).unwrap()
}

#[test]
fn cms_from_openssl_verifies_and_tampering_names_its_rule() {
    let pki = pki();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let now = OffsetDateTime::now_utc();
    let (cert, key) = pki.good_leaf();
    let content = "投标报价：壹佰万元整\n第一包".as_bytes();

    let attached = openssl_cms(&dir, &cert, &key, content, true);
    let ok = verify_cms(&attached, None, &pki.anchors(), now).unwrap();
    assert_eq!(ok.content, content);
    assert_eq!(ok.signer.credit_code.as_deref(), Some(uscc().as_str()));
    assert!(
        ok.signing_time
            .is_some_and(|t| (t - now).abs() < Duration::minutes(5))
    );
    // The same content given again is fine; other content is not.
    assert!(verify_cms(&attached, Some(content), &pki.anchors(), now).is_ok());
    assert_eq!(
        verify_cms(&attached, Some(b"other"), &pki.anchors(), now)
            .unwrap_err()
            .rule,
        Rule::CmsContent
    );

    let detached = openssl_cms(&dir, &cert, &key, content, false);
    assert!(verify_cms(&detached, Some(content), &pki.anchors(), now).is_ok());
    assert_eq!(
        verify_cms(&detached, None, &pki.anchors(), now)
            .unwrap_err()
            .rule,
        Rule::CmsContent
    );
    // The bid changed after signing.
    let changed = "投标报价：壹仟万元整\n第一包".as_bytes();
    assert_eq!(
        verify_cms(&detached, Some(changed), &pki.anchors(), now)
            .unwrap_err()
            .rule,
        Rule::CmsMessageDigest
    );
    // A flipped bit in the signature (the last field of the one SignerInfo).
    let mut tampered = detached.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        verify_cms(&tampered, Some(content), &pki.anchors(), now)
            .unwrap_err()
            .rule,
        Rule::Signature
    );
    // Signed by a certificate of another CA.
    let other = self::pki();
    let (stranger, skey) = other.good_leaf();
    let foreign = openssl_cms(&dir, &stranger, &skey, content, false);
    assert_eq!(
        verify_cms(&foreign, Some(content), &pki.anchors(), now)
            .unwrap_err()
            .rule,
        Rule::CertificateUntrusted
    );
    // Not CMS at all.
    assert_eq!(
        verify_cms(b"\x30\x03\x02\x01\x00", Some(content), &pki.anchors(), now)
            .unwrap_err()
            .rule,
        Rule::CmsMalformed
    );
}
