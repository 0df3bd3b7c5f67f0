//! Checking signatures in software: the proof that a key pair on a token matches the
//! certificate about to be written for it, and that a certificate was issued by the CA
//! certificate above it, up to a pinned root.

use ring::signature::{self, UnparsedPublicKey};

use crate::PkiError;
use crate::csr::{SignatureScheme, spki_key_bits};

/// Verifies `signature` (X.509 form: PKCS#1 v1.5 bytes, or DER ECDSA) over `message` with
/// the public key in DER SubjectPublicKeyInfo `spki`.
pub fn verify(
    spki: &[u8],
    scheme: SignatureScheme,
    message: &[u8],
    signature: &[u8],
) -> Result<(), PkiError> {
    let key = spki_key_bits(spki)?;
    let alg: &dyn signature::VerificationAlgorithm = match scheme {
        SignatureScheme::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        SignatureScheme::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
    };
    UnparsedPublicKey::new(alg, key)
        .verify(message, signature)
        .map_err(|_| {
            PkiError::Signature("the signature does not verify with this public key".into())
        })
}

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";

/// Whether certificate `child` (DER) names `issuer` (DER) as its issuer and carries its
/// signature (ECDSA P-256 or RSA PKCS#1 v1.5, with SHA-256), and the issuer is a CA.
pub fn issued_by(child: &[u8], issuer: &[u8]) -> Result<(), PkiError> {
    use x509_parser::certificate::X509Certificate;
    use x509_parser::prelude::FromDer;
    let cert_err = |e: String| PkiError::Certificate(e);
    let (_, c) = X509Certificate::from_der(child).map_err(|e| cert_err(e.to_string()))?;
    let (_, i) = X509Certificate::from_der(issuer).map_err(|e| cert_err(e.to_string()))?;
    if c.issuer().as_raw() != i.subject().as_raw() {
        return Err(PkiError::Signature(
            "the certificate names another issuer".into(),
        ));
    }
    if !i.is_ca() {
        return Err(PkiError::Signature("the issuer is not a CA".into()));
    }
    let scheme = match c.signature_algorithm.algorithm.to_id_string().as_str() {
        OID_ECDSA_SHA256 => SignatureScheme::EcdsaP256Sha256,
        OID_RSA_SHA256 => SignatureScheme::RsaPkcs1Sha256,
        other => {
            return Err(PkiError::Signature(format!(
                "unsupported certificate signature algorithm {other}"
            )));
        }
    };
    verify(
        i.public_key().raw,
        scheme,
        c.tbs_certificate.as_ref(),
        &c.signature_value.data,
    )
}

/// Whether `leaf` chains to `root` through `intermediates` (each issued by the next, the
/// last by the root), all valid at `now`. The root is the caller's own trust anchor (the
/// pinned root), compared byte for byte, never one the chain supplies.
pub fn chains_to(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    root: &[u8],
    now: time::OffsetDateTime,
) -> Result<(), PkiError> {
    let mut path: Vec<&[u8]> = vec![leaf];
    path.extend(
        intermediates
            .iter()
            .map(Vec::as_slice)
            .filter(|c| *c != root),
    );
    path.push(root);
    for pair in path.windows(2) {
        issued_by(pair[0], pair[1])?;
    }
    for cert in &path {
        let (_, c) = x509_parser::parse_x509_certificate(cert)
            .map_err(|e| PkiError::Certificate(e.to_string()))?;
        let at = x509_parser::time::ASN1Time::from_timestamp(now.unix_timestamp())
            .map_err(|e| PkiError::Certificate(e.to_string()))?;
        if !c.validity().is_valid_at(at) {
            return Err(PkiError::Signature(format!(
                "{} is valid from {} to {}, not at {}",
                c.subject(),
                c.validity().not_before,
                c.validity().not_after,
                at
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData, SigningKey};

    fn ca(
        name: &str,
        issuer: Option<(&rcgen::Certificate, &KeyPair)>,
    ) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = match issuer {
            None => params.self_signed(&key).expect("self-signed"),
            Some((ic, ik)) => {
                let issuer = rcgen::Issuer::from_ca_cert_der(ic.der(), ik).expect("issuer");
                params.signed_by(&key, &issuer).expect("signed")
            }
        };
        (cert, key)
    }

    fn leaf(issuer: (&rcgen::Certificate, &KeyPair)) -> Vec<u8> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "leaf");
        let issuer = rcgen::Issuer::from_ca_cert_der(issuer.0.der(), issuer.1).expect("issuer");
        params
            .signed_by(&key, &issuer)
            .expect("leaf")
            .der()
            .to_vec()
    }

    #[test]
    fn a_chain_holds_only_up_to_the_pinned_root() {
        let (root, root_key) = ca("root", None);
        let (issuing, issuing_key) = ca("issuing", Some((&root, &root_key)));
        let leaf = leaf((&issuing, &issuing_key));
        let now = time::OffsetDateTime::now_utc();
        let chain = vec![issuing.der().to_vec(), root.der().to_vec()];
        chains_to(&leaf, &chain, root.der(), now).expect("chains");
        // Another root, even one named like the pinned one, is not it.
        let (other_root, other_key) = ca("root", None);
        assert!(chains_to(&leaf, &chain, other_root.der(), now).is_err());
        // An issuing CA of another root, with the same name, does not chain either.
        let (fake_issuing, fake_key) = ca("issuing", Some((&other_root, &other_key)));
        let fake_leaf = self::leaf((&fake_issuing, &fake_key));
        let fake_chain = vec![fake_issuing.der().to_vec()];
        assert!(chains_to(&fake_leaf, &fake_chain, root.der(), now).is_err());
        // Outside the validity (rcgen's default validity starts in 1975).
        assert!(
            chains_to(
                &leaf,
                &chain,
                root.der(),
                now - time::Duration::days(365 * 60)
            )
            .is_err()
        );
        // A leaf is no issuer.
        assert!(issued_by(&leaf, &leaf).is_err());
    }

    #[test]
    fn a_good_signature_verifies_and_a_tampered_one_does_not() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        let spki = key.subject_public_key_info();
        let sig = key.sign(b"message").expect("sign");
        verify(&spki, SignatureScheme::EcdsaP256Sha256, b"message", &sig).expect("verifies");
        assert!(verify(&spki, SignatureScheme::EcdsaP256Sha256, b"massage", &sig).is_err());
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
        assert!(
            verify(
                &other.subject_public_key_info(),
                SignatureScheme::EcdsaP256Sha256,
                b"message",
                &sig
            )
            .is_err()
        );
        assert!(verify(b"junk", SignatureScheme::EcdsaP256Sha256, b"message", &sig).is_err());
    }
}
