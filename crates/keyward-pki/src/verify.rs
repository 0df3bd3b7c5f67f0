//! Checking a signature against a public key in software: the proof that a key pair on a
//! token matches the certificate about to be written for it.

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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData, SigningKey};

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
