//! Certificate signing requests whose signature comes from a key this crate never holds.
//!
//! A [`KeySigner`] is anything that can sign with a private key — a USB key through PKCS#11,
//! in Keyward's case. [`build_csr`] lays out a PKCS#10 request for an organisation subject
//! and asks the signer for the one signature it needs.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
    PublicKeyData, SignatureAlgorithm, SigningKey,
};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::PkiError;
use crate::der;

/// The signature schemes Keyward's keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// ECDSA on P-256 with SHA-256; signatures DER-encoded (X9.62 Ecdsa-Sig-Value).
    EcdsaP256Sha256,
}

impl SignatureScheme {
    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            SignatureScheme::RsaPkcs1Sha256 => &PKCS_RSA_SHA256,
            SignatureScheme::EcdsaP256Sha256 => &PKCS_ECDSA_P256_SHA256,
        }
    }
}

/// A private key somewhere else that can sign.
pub trait KeySigner {
    /// The scheme `sign` produces.
    fn scheme(&self) -> SignatureScheme;
    /// The public key as DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> &[u8];
    /// Signs `message` (the signer hashes it) and returns the signature as it goes into
    /// X.509: PKCS#1 v1.5 bytes for RSA, DER Ecdsa-Sig-Value for ECDSA.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
}

/// The subject of an organisation certificate: O and CN carry the registered name,
/// organizationIdentifier (2.5.4.97) carries `NTRCN-` and the unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSubject {
    /// Registered organisation name.
    pub organization: String,
    /// Unified social credit code.
    pub credit_code: String,
}

impl OrgSubject {
    /// The distinguished name Keyward's certificates carry.
    pub fn distinguished_name(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "CN");
        dn.push(DnType::OrganizationName, self.organization.as_str());
        dn.push(DnType::CommonName, self.organization.as_str());
        dn.push(
            DnType::CustomDnType(vec![2, 5, 4, 97]),
            format!("NTRCN-{}", self.credit_code),
        );
        dn
    }
}

/// Adapts a [`KeySigner`] to the signing interface of the certificate library, keeping the
/// signer's own error (the library only knows "remote key error").
struct Adapter<'a> {
    signer: &'a dyn KeySigner,
    key_bits: Vec<u8>,
    failure: std::cell::RefCell<Option<PkiError>>,
}

impl PublicKeyData for Adapter<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.signer.scheme().rcgen()
    }
}

impl SigningKey for Adapter<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg).map_err(|e| {
            *self.failure.borrow_mut() = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// The subjectPublicKey bits inside a DER SubjectPublicKeyInfo.
pub fn spki_key_bits(spki: &[u8]) -> Result<Vec<u8>, PkiError> {
    let (_, info) =
        SubjectPublicKeyInfo::from_der(spki).map_err(|e| PkiError::PublicKey(e.to_string()))?;
    Ok(info.subject_public_key.data.to_vec())
}

/// Builds a DER PKCS#10 request for `subject`, signed by `signer`.
pub fn build_csr(subject: &OrgSubject, signer: &dyn KeySigner) -> Result<Vec<u8>, PkiError> {
    let adapter = Adapter {
        signer,
        key_bits: spki_key_bits(signer.public_key_spki())?,
        failure: std::cell::RefCell::new(None),
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name();
    let csr = params.serialize_request(&adapter).map_err(|e| match e {
        rcgen::Error::RemoteKeyError => adapter
            .failure
            .borrow_mut()
            .take()
            .unwrap_or_else(|| PkiError::Signer("the key refused to sign".into())),
        other => PkiError::Csr(other.to_string()),
    })?;
    Ok(csr.der().to_vec())
}

/// DER-encodes a raw ECDSA signature `r‖s` (as PKCS#11's CKM_ECDSA returns it).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, PkiError> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 264 {
        return Err(PkiError::Signature(format!(
            "raw ECDSA signature of {} bytes",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let mut body = der::uint(r);
    body.extend(der::uint(s));
    Ok(der::tlv(0x30, &body))
}

/// The DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2), put before the hash when a token
/// only offers raw CKM_RSA_PKCS.
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::KeyPair;
    use x509_parser::prelude::*;

    /// A software signer, standing in for a token in unit tests.
    struct Soft {
        key: KeyPair,
        spki: Vec<u8>,
        refuse: bool,
    }

    impl Soft {
        fn new(refuse: bool) -> Self {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
            let spki = key.subject_public_key_info();
            Soft { key, spki, refuse }
        }
    }

    impl KeySigner for Soft {
        fn scheme(&self) -> SignatureScheme {
            SignatureScheme::EcdsaP256Sha256
        }
        fn public_key_spki(&self) -> &[u8] {
            &self.spki
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
            if self.refuse {
                return Err(PkiError::Signer("device removed".into()));
            }
            SigningKey::sign(&self.key, message).map_err(|e| PkiError::Signer(e.into()))
        }
    }

    fn subject() -> OrgSubject {
        OrgSubject {
            organization: "广州市示例科技有限公司".into(),
            credit_code: "91350100M000100Y43".into(),
        }
    }

    #[test]
    fn csr_carries_subject_and_verifies() {
        let signer = Soft::new(false);
        let der = build_csr(&subject(), &signer).expect("csr");
        let (_, csr) = X509CertificationRequest::from_der(&der).expect("parse");
        csr.verify_signature().expect("signature verifies");
        let subject = csr.certification_request_info.subject.to_string();
        assert!(subject.contains("广州市示例科技有限公司"), "{subject}");
        assert_eq!(
            csr.certification_request_info.subject_pki.raw,
            signer.public_key_spki()
        );
    }

    #[test]
    fn a_signer_that_fails_gives_a_signer_error() {
        let signer = Soft::new(true);
        match build_csr(&subject(), &signer) {
            Err(PkiError::Signer(e)) => {
                assert_eq!(e.to_string(), "device removed", "the signer's own error")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ecdsa_der_encoding() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a pad byte
        raw[31] = 1;
        raw[63] = 5; // s is small: leading zeros trimmed
        let der = ecdsa_raw_to_der(&raw).expect("der");
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert_eq!(der[4], 0x00);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
        assert!(ecdsa_raw_to_der(&[]).is_err());
        let zero = ecdsa_raw_to_der(&[0u8; 64]).expect("zeros");
        assert_eq!(zero, vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]);
    }
}
