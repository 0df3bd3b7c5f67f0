//! Randomness, secrets at rest, HMAC and the verification of key signatures.

use crate::error::{CaError, CaResult, reject};
use keyward_ca_api::ErrorCode;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use std::path::Path;
use zeroize::Zeroizing;

/// Fills `buf` from the system's secure random source.
pub fn random(buf: &mut [u8]) -> CaResult<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CaError::Crypto("system random source failed"))
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> CaResult<String> {
    let mut buf = vec![0u8; n];
    random(&mut buf)?;
    Ok(hex::encode(buf))
}

/// A random decimal verification code of `digits` digits.
pub fn random_digits(digits: usize) -> CaResult<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(digits));
    let mut buf = [0u8; 1];
    while out.len() < digits {
        random(&mut buf)?;
        // 250 = 25 * 10: reject above to stay uniform.
        if buf[0] < 250 {
            out.push(char::from(b'0' + buf[0] % 10));
        }
    }
    Ok(out)
}

/// Reads a 32-byte secret kept as hex in `path`, creating it (mode 0600) on first use.
pub fn load_or_create_secret(path: &Path) -> CaResult<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = Zeroizing::new(
                hex::decode(text.trim())
                    .map_err(|_| CaError::Corrupt(format!("{} is not hex", path.display())))?,
            );
            if bytes.len() != 32 {
                return Err(CaError::Corrupt(format!(
                    "{} does not hold 32 bytes",
                    path.display()
                )));
            }
            key.copy_from_slice(&bytes);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            random(&mut key[..])?;
            write_private(path, hex::encode(&key[..]).as_bytes())?;
        }
        Err(e) => return Err(CaError::io(path, e)),
    }
    Ok(key)
}

/// Writes a file only its owner can read (mode 0600 on Unix), atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> CaResult<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(|e| CaError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| CaError::io(&tmp, e))?;
    f.sync_all().map_err(|e| CaError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| CaError::io(path, e))?;
    Ok(())
}

/// Encrypts escrowed PINs with AES-256-GCM under a key kept in the data dir.
pub struct Escrow {
    key: LessSafeKey,
}

impl std::fmt::Debug for Escrow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Escrow(***)")
    }
}

impl Escrow {
    pub fn new(key: &[u8; 32]) -> CaResult<Self> {
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| CaError::Crypto("escrow key rejected"))?;
        Ok(Escrow {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals `secret`, bound to `context` (e.g. `so_pin:<key serial>`): hex(nonce || ct || tag).
    pub fn seal(&self, context: &str, secret: &str) -> CaResult<String> {
        let mut nonce = [0u8; 12];
        random(&mut nonce)?;
        let mut buf = Zeroizing::new(secret.as_bytes().to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut *buf,
            )
            .map_err(|_| CaError::Crypto("escrow seal failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(hex::encode(out))
    }

    /// Opens what [`Escrow::seal`] made for the same context.
    pub fn open(&self, context: &str, sealed: &str) -> CaResult<Zeroizing<String>> {
        let bytes = hex::decode(sealed).map_err(|_| CaError::Corrupt("escrow record".into()))?;
        if bytes.len() < 12 + 16 {
            return Err(CaError::Corrupt("escrow record too short".into()));
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CaError::Corrupt("escrow nonce".into()))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CaError::Crypto("escrow record does not open"))?;
        let text = std::str::from_utf8(plain)
            .map_err(|_| CaError::Corrupt("escrow record is not text".into()))?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

/// HMAC-SHA256, hex.
pub fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex::encode(ring::hmac::sign(&key, msg).as_ref())
}

/// Constant-time check of a hex HMAC.
pub fn hmac_verify(key: &[u8], msg: &[u8], tag_hex: &str) -> bool {
    let Ok(tag) = hex::decode(tag_hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::verify(&key, msg, &tag).is_ok()
}

/// SHA-256 hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(keyward_ca_api::body_sha256(bytes))
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

/// A public key the service can verify signatures of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyKey {
    /// The DER `RSAPublicKey`.
    Rsa(Vec<u8>),
    /// The uncompressed P-256 point.
    P256(Vec<u8>),
}

impl VerifyKey {
    /// From an x509-parser SubjectPublicKeyInfo.
    pub fn from_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> CaResult<Self> {
        let alg = spki.algorithm.algorithm.to_id_string();
        let key = spki.subject_public_key.data.to_vec();
        if alg == OID_RSA {
            return Ok(VerifyKey::Rsa(key));
        }
        if alg == OID_EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            if curve.as_deref() == Some(OID_P256) {
                return Ok(VerifyKey::P256(key));
            }
        }
        reject(
            ErrorCode::UnsupportedKeyAlgorithm,
            "only RSA (2048 bits or more) and ECDSA P-256 keys are supported",
        )
    }

    /// Verifies an RSA PKCS#1 v1.5 SHA-256 or ECDSA P-256 SHA-256 (DER) signature.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            VerifyKey::Rsa(k) => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k)
                .verify(message, signature)
                .is_ok(),
            VerifyKey::P256(k) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, k)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escrow_round_trip_and_context_binding() {
        let e = Escrow::new(&[7u8; 32]).unwrap();
        let sealed = e.seal("so_pin:K1", "12345678").unwrap();
        assert!(!sealed.contains("12345678"));
        assert_eq!(e.open("so_pin:K1", &sealed).unwrap().as_str(), "12345678");
        assert!(e.open("so_pin:K2", &sealed).is_err());
    }

    #[test]
    fn digits_are_digits() {
        let d = random_digits(6).unwrap();
        assert_eq!(d.len(), 6);
        assert!(d.chars().all(|c| c.is_ascii_digit()));
    }
}
