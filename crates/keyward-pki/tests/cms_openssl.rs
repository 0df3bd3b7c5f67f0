//! The CMS signatures keyward-pki makes, checked by OpenSSL (`openssl cms -verify`, the
//! chain to a root given as the only trust anchor), and OpenSSL's own signatures read by
//! keyward-pki's checker. Software keys stand in for the token: both schemes a key holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use keyward_pki::cms::{self, Content, Detached, SignOptions};
use keyward_pki::{KeySigner, PkiError, SignatureScheme};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData, SigningKey,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

struct Soft {
    key: KeyPair,
    spki: Vec<u8>,
    scheme: SignatureScheme,
}

impl KeySigner for Soft {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        SigningKey::sign(&self.key, message).map_err(|e| PkiError::Signer(e.into()))
    }
}

struct Pki {
    dir: tempfile::TempDir,
    root_der: Vec<u8>,
    issuing_der: Vec<u8>,
    issuing: Issuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let root_params = ca_params("CMS Test Root");
        let root_cert = root_params.self_signed(&root_key).unwrap();
        let root = Issuer::new(root_params, root_key);
        let issuing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let issuing_params = ca_params("CMS Test Issuing");
        let issuing_cert = issuing_params.signed_by(&issuing_key, &root).unwrap();
        std::fs::write(dir.path().join("root.pem"), root_cert.pem()).unwrap();
        Pki {
            dir,
            root_der: root_cert.der().to_vec(),
            issuing_der: issuing_cert.der().to_vec(),
            issuing: Issuer::new(issuing_params, issuing_key),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// A signer of `scheme` with its certificate (DER) under the issuing CA.
    fn signer(&self, scheme: SignatureScheme) -> (Soft, Vec<u8>) {
        let key = match scheme {
            SignatureScheme::EcdsaP256Sha256 => {
                KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
            }
            SignatureScheme::RsaPkcs1Sha256 => {
                let pem = self.path("rsa.key");
                openssl(
                    &[
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                        "-out",
                    ],
                    &[&pem],
                );
                let text = std::fs::read_to_string(&pem).unwrap();
                KeyPair::from_pkcs8_pem_and_sign_algo(&text, &PKCS_RSA_SHA256).unwrap()
            }
        };
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::OrganizationName, "广州市示例科技有限公司");
        p.distinguished_name
            .push(DnType::CommonName, "广州市示例科技有限公司");
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        let cert = p.signed_by(&key, &self.issuing).unwrap().der().to_vec();
        let spki = key.subject_public_key_info();
        (Soft { key, spki, scheme }, cert)
    }
}

fn openssl(args: &[&str], paths: &[&Path]) -> std::process::Output {
    let o = Command::new("openssl")
        .args(args)
        .args(paths)
        .output()
        .expect("openssl (cargo xtask setup)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `openssl cms -verify`, the root as the one trust anchor; `content` for detached ones.
fn openssl_verify(pki: &Pki, sig: &[u8], content: Option<&[u8]>) -> Result<Vec<u8>, String> {
    std::fs::write(pki.path("sig.der"), sig).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(pki.path("sig.der"))
        .arg("-CAfile")
        .arg(pki.path("root.pem"))
        .arg("-out")
        .arg(pki.path("out.bin"));
    if let Some(c) = content {
        std::fs::write(pki.path("content.bin"), c).unwrap();
        cmd.arg("-content").arg(pki.path("content.bin"));
    }
    let o = cmd.output().expect("openssl");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    if o.status.success() && stderr.contains("Verification successful") {
        Ok(std::fs::read(pki.path("out.bin")).unwrap())
    } else {
        Err(stderr)
    }
}

fn printed(pki: &Pki, sig: &[u8]) -> String {
    std::fs::write(pki.path("print.der"), sig).unwrap();
    let o = openssl(
        &["cms", "-cmsout", "-print", "-inform", "DER", "-in"],
        &[&pki.path("print.der")],
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const MESSAGE: &[u8] = "投标文件：广州市示例科技有限公司，2026-11-21".as_bytes();

#[test]
fn attached_signatures_of_both_schemes_verify_with_openssl() {
    let pki = Pki::new();
    let now = OffsetDateTime::now_utc();
    for scheme in [
        SignatureScheme::EcdsaP256Sha256,
        SignatureScheme::RsaPkcs1Sha256,
    ] {
        let (signer, cert) = pki.signer(scheme);
        let chain = vec![pki.issuing_der.clone(), pki.root_der.clone()];
        let sig = cms::sign(
            &signer,
            &cert,
            &chain,
            Content::Attached(MESSAGE),
            &SignOptions::message(now),
        )
        .unwrap();
        let out = openssl_verify(&pki, &sig, None).unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
        assert_eq!(out, MESSAGE, "OpenSSL reads the content back");
        let text = printed(&pki, &sig);
        for attr in [
            "contentType",
            "messageDigest",
            "signingTime",
            "signingCertificateV2",
        ] {
            assert!(text.contains(attr), "{attr} in\n{text}");
        }
        let v = cms::verify(&sig, None).unwrap();
        assert_eq!(v.content.as_deref(), Some(MESSAGE));
        assert_eq!(v.signer_cert, cert);
        assert_eq!(v.other_certs.len(), 2);
        assert!(v.signing_certificate_v2);
        assert_eq!(v.scheme, scheme);
        assert_eq!(
            v.signing_time.map(|t| t.unix_timestamp()),
            Some(now.unix_timestamp())
        );
        // Content carried inside: giving it again is a caller's mistake.
        assert!(cms::verify(&sig, Some(Detached::Content(MESSAGE))).is_err());
    }
}

#[test]
fn detached_and_precomputed_digest_signatures_verify_with_openssl() {
    let pki = Pki::new();
    for scheme in [
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::EcdsaP256Sha256,
    ] {
        let (signer, cert) = pki.signer(scheme);
        let chain = vec![pki.issuing_der.clone()];
        let detached = cms::sign(
            &signer,
            &cert,
            &chain,
            Content::Detached(MESSAGE),
            &SignOptions::pades(),
        )
        .unwrap();
        let digest: [u8; 32] = Sha256::digest(MESSAGE).into();
        let over_digest = cms::sign(
            &signer,
            &cert,
            &chain,
            Content::DetachedDigest(digest),
            &SignOptions::pades(),
        )
        .unwrap();
        for sig in [&detached, &over_digest] {
            openssl_verify(&pki, sig, Some(MESSAGE)).unwrap_or_else(|e| panic!("{scheme:?}: {e}"));
            let text = printed(&pki, sig);
            assert!(
                !text.contains("signingTime"),
                "PAdES leaves signing-time out"
            );
            assert!(text.contains("signingCertificateV2"));
            assert!(text.contains("eContent: <ABSENT>"), "{text}");
            let v = cms::verify(sig, Some(Detached::Digest(digest))).unwrap();
            assert_eq!(v.signing_time, None);
            assert_eq!(v.content, None);
            cms::verify(sig, Some(Detached::Content(MESSAGE))).unwrap();
            // Other content: OpenSSL and keyward-pki both refuse.
            let mut other = MESSAGE.to_vec();
            other[0] ^= 1;
            assert!(openssl_verify(&pki, sig, Some(&other)).is_err());
            assert!(matches!(
                cms::verify(sig, Some(Detached::Content(&other))),
                Err(PkiError::Signature(_))
            ));
            assert!(
                cms::verify(sig, None).is_err(),
                "detached needs its content"
            );
        }
    }
}

#[test]
fn openssl_refuses_a_signature_under_another_root() {
    let pki = Pki::new();
    let other = Pki::new();
    let (signer, cert) = other.signer(SignatureScheme::EcdsaP256Sha256);
    let sig = cms::sign(
        &signer,
        &cert,
        std::slice::from_ref(&other.issuing_der),
        Content::Attached(MESSAGE),
        &SignOptions::pades(),
    )
    .unwrap();
    let e = openssl_verify(&pki, &sig, None).unwrap_err();
    assert!(
        e.contains("unable to get") || e.contains("certificate verify error"),
        "{e}"
    );
    // Intact all the same: trust is the caller's question.
    cms::verify(&sig, None).unwrap();
}

#[test]
fn a_changed_signature_or_attribute_is_refused() {
    let pki = Pki::new();
    let (signer, cert) = pki.signer(SignatureScheme::EcdsaP256Sha256);
    let sig = cms::sign(
        &signer,
        &cert,
        &[],
        Content::Attached(MESSAGE),
        &SignOptions::pades(),
    )
    .unwrap();
    // The message-digest attribute's value, one bit changed.
    let digest = Sha256::digest(MESSAGE);
    let at = sig
        .windows(32)
        .position(|w| w == digest.as_slice())
        .unwrap();
    let mut bad = sig.clone();
    bad[at] ^= 1;
    assert!(cms::verify(&bad, None).is_err());
    assert!(openssl_verify(&pki, &bad, None).is_err());
    // The content, one bit changed.
    let at = sig
        .windows(MESSAGE.len())
        .position(|w| w == MESSAGE)
        .unwrap();
    let mut bad = sig.clone();
    bad[at] ^= 1;
    assert!(matches!(
        cms::verify(&bad, None),
        Err(PkiError::Signature(_))
    ));
}

#[test]
fn openssls_own_signature_is_read() {
    let pki = Pki::new();
    let (signer, cert) = pki.signer(SignatureScheme::EcdsaP256Sha256);
    std::fs::write(pki.path("leaf.der"), &cert).unwrap();
    std::fs::write(pki.path("leaf.key"), signer.key.serialize_pem()).unwrap();
    std::fs::write(pki.path("msg.bin"), MESSAGE).unwrap();
    openssl(
        &["x509", "-inform", "DER", "-in"],
        &[
            &pki.path("leaf.der"),
            Path::new("-out"),
            &pki.path("leaf.pem"),
        ],
    );
    openssl(
        &[
            "cms",
            "-sign",
            "-binary",
            "-md",
            "sha256",
            "-nodetach",
            "-outform",
            "DER",
            "-signer",
        ],
        &[
            &pki.path("leaf.pem"),
            Path::new("-inkey"),
            &pki.path("leaf.key"),
            Path::new("-in"),
            &pki.path("msg.bin"),
            Path::new("-out"),
            &pki.path("openssl.der"),
        ],
    );
    let sig = std::fs::read(pki.path("openssl.der")).unwrap();
    let v = cms::verify(&sig, None).unwrap();
    assert_eq!(v.content.as_deref(), Some(MESSAGE));
    assert_eq!(v.signer_cert, cert);
    assert!(v.signing_time.is_some());
}

#[test]
fn a_certificate_of_another_key_is_refused_before_signing() {
    let pki = Pki::new();
    let (signer, _) = pki.signer(SignatureScheme::EcdsaP256Sha256);
    let (_, other_cert) = pki.signer(SignatureScheme::EcdsaP256Sha256);
    assert!(matches!(
        cms::sign(
            &signer,
            &other_cert,
            &[],
            Content::Attached(MESSAGE),
            &SignOptions::pades()
        ),
        Err(PkiError::Cms(_))
    ));
}
