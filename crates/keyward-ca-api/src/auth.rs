//! Key-signature authentication: the one definition of what a key signs.
//!
//! A request about a key is trusted only with a fresh signature from that key. The client
//! asks for a nonce (`POST /v1/nonces`, or takes the one the previous answer carried in
//! [`NEXT_NONCE_HEADER`]), then signs [`signing_input`] over the request's
//! purpose ([`request_purpose`]: method and path), the nonce and the SHA-256 of the exact
//! body bytes it sends. It puts the nonce and the hex signature in [`NONCE_HEADER`] and
//! [`SIGNATURE_HEADER`].
//!
//! Signature formats (the key's certificate decides which):
//! - RSA: PKCS#1 v1.5 with SHA-256 over the signing input (PKCS#11 `CKM_SHA256_RSA_PKCS`);
//! - ECDSA P-256: SHA-256 over the signing input, the signature DER-encoded as the X9.62
//!   `Ecdsa-Sig-Value` SEQUENCE { r INTEGER, s INTEGER } (a token's raw `r || s` from
//!   `CKM_ECDSA` must be converted with [`ecdsa_raw_to_der`]).

use sha2::{Digest, Sha256};

/// Header carrying the nonce the signature covers.
pub const NONCE_HEADER: &str = "x-keyward-nonce";
/// Response header on every answer to a request the key's signature was accepted for: a
/// fresh nonce for the same key, so a client signing several requests in a row asks
/// `POST /v1/nonces` only for the first. It lives as long as any nonce and is spent the same
/// way; a client that does not use it loses nothing.
pub const NEXT_NONCE_HEADER: &str = "x-keyward-next-nonce";
/// Header carrying the key's signature, lower-case hex.
pub const SIGNATURE_HEADER: &str = "x-keyward-signature";
/// Header carrying a business's own secret ([`crate::CreatedBusiness`]), for acting on a
/// business without the key's signature.
pub const BUSINESS_SECRET_HEADER: &str = "x-keyward-business-secret";
/// Header carrying the sandbox payment provider's HMAC over a notification body.
pub const PAYMENT_SIGNATURE_HEADER: &str = "x-keyward-payment-signature";

/// Domain separation: no other Keyward signature starts with these bytes.
pub const SIGNING_DOMAIN: &[u8] = b"Keyward CA request signature v1\0";

/// The purpose of a request: upper-case method, one space, the path with its query string
/// as sent, e.g. `POST /v1/keys/NETCA0001/renewals` or
/// `POST /v1/businesses/bz1/attachments?kind=seal_scan`.
pub fn request_purpose(method: &str, path: &str) -> String {
    format!("{} {}", method.to_ascii_uppercase(), path)
}

/// SHA-256 of the exact body bytes sent (an empty body hashes the empty string).
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// The bytes a key signs to authorise one request.
///
/// `SIGNING_DOMAIN || u32be(len(purpose)) || purpose || u32be(len(nonce)) || nonce || body_sha256`
///
/// Length prefixes keep purpose and nonce from running into each other.
pub fn signing_input(purpose: &str, nonce: &str, body_sha256: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNING_DOMAIN.len() + 8 + purpose.len() + nonce.len() + 32);
    out.extend_from_slice(SIGNING_DOMAIN);
    push_prefixed(&mut out, purpose.as_bytes());
    push_prefixed(&mut out, nonce.as_bytes());
    out.extend_from_slice(body_sha256);
    out
}

fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Purposes and nonces are short; anything longer than u32::MAX cannot be a request.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Converts a raw ECDSA signature `r || s` (as PKCS#11 `CKM_ECDSA` returns it) into the
/// DER `Ecdsa-Sig-Value` the service expects; one implementation for both ends.
pub use keyward_pki::csr::ecdsa_raw_to_der;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_input_is_length_prefixed_and_domain_separated() {
        let h = body_sha256(b"{}");
        let a = signing_input("POST /v1/x", "ab", &h);
        let b = signing_input("POST /v1/xa", "b", &h);
        assert_ne!(a, b);
        assert!(a.starts_with(SIGNING_DOMAIN));
        assert!(a.ends_with(&h));
    }

    #[test]
    fn purpose_uppercases_method() {
        assert_eq!(request_purpose("post", "/v1/a"), "POST /v1/a");
    }

    #[test]
    fn raw_ecdsa_converts_to_der() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a pad byte
        raw[63] = 1; // s is tiny
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert!(ecdsa_raw_to_der(&raw[..63]).is_err());
    }
}
