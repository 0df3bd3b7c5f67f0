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

/// Refuses a secret file that anyone but its owner may read or write (on Unix: any group or
/// other permission bit), so a key is never quietly exposed on a shared machine.
pub fn check_private(path: &Path) -> CaResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| CaError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CaError::Config(format!(
                "{} may be read by others (mode {:03o}): make it the owner's alone (chmod 600)",
                path.display(),
                mode & 0o777
            )));
        }
    }
    Ok(())
}

/// Reads a secret file, which must exist and be its owner's alone (mode 0600).
pub fn read_private(path: &Path) -> CaResult<Zeroizing<String>> {
    check_private(path)?;
    Ok(Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?,
    ))
}

fn parse_secret(path: &Path, text: &str) -> CaResult<Zeroizing<[u8; 32]>> {
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
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Makes a new 32-byte secret in `path` (hex, mode 0600); refuses to replace one.
pub fn create_secret(path: &Path) -> CaResult<Zeroizing<[u8; 32]>> {
    if path.exists() {
        return Err(CaError::Config(format!(
            "{} exists already",
            path.display()
        )));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    random(&mut key[..])?;
    write_private(path, hex::encode(&key[..]).as_bytes())?;
    Ok(key)
}

/// Reads a 32-byte secret kept as hex in `path`, creating it (mode 0600) on first use.
pub fn load_or_create_secret(path: &Path) -> CaResult<Zeroizing<[u8; 32]>> {
    if path.exists() {
        return read_secret(path);
    }
    create_secret(path)
}

/// Reads a 32-byte secret kept as hex in `path`; it must exist and be mode 0600.
pub fn read_secret(path: &Path) -> CaResult<Zeroizing<[u8; 32]>> {
    if !path.exists() {
        return Err(CaError::Config(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let text = read_private(path)?;
    parse_secret(path, &text)
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

/// Encrypts escrowed PINs with AES-256-GCM. A ciphertext names the key that made it
/// (`<key id>:<hex>`), so the escrow key can be rotated: an escrow opens what any of its keys
/// made and seals under the first. Records written before key ids existed (bare hex) are
/// read with the first key.
pub struct Escrow {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Escrow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escrow")
            .field(
                "key_ids",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The id of an escrow key: 16 hex digits of a hash of it, safe to store and log.
pub fn escrow_key_id(key: &[u8; 32]) -> String {
    let mut msg = b"keyward escrow key id\0".to_vec();
    msg.extend_from_slice(key);
    sha256_hex(&msg)[..16].to_owned()
}

impl Escrow {
    /// An escrow over one key.
    pub fn new(key: &[u8; 32]) -> CaResult<Self> {
        Self::with_keys(&[key])
    }

    /// An escrow that seals under `keys[0]` and opens under any of `keys`.
    pub fn with_keys(keys: &[&[u8; 32]]) -> CaResult<Self> {
        if keys.is_empty() {
            return Err(CaError::Config("an escrow needs a key".into()));
        }
        let keys = keys
            .iter()
            .map(|k| {
                let unbound = UnboundKey::new(&AES_256_GCM, &k[..])
                    .map_err(|_| CaError::Crypto("escrow key rejected"))?;
                Ok((escrow_key_id(k), LessSafeKey::new(unbound)))
            })
            .collect::<CaResult<Vec<_>>>()?;
        Ok(Escrow { keys })
    }

    /// The id of the key new records are sealed under.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    /// The ids of every key this escrow holds, the sealing one first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|(id, _)| id.clone()).collect()
    }

    /// Whether this escrow holds the key with this id.
    pub fn holds(&self, id: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == id)
    }

    /// The id of the key a record names; `None` for a record from before key ids.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        sealed.split_once(':').map(|(id, _)| id)
    }

    /// Seals `secret`, bound to `context` (e.g. `so_pin:<key serial>`):
    /// `<key id>:hex(nonce || ct || tag)`.
    pub fn seal(&self, context: &str, secret: &str) -> CaResult<String> {
        self.seal_under(self.current_key_id(), context, secret)
    }

    /// Seals `secret` under the key with id `id`, which this escrow must hold.
    pub fn seal_under(&self, id: &str, context: &str, secret: &str) -> CaResult<String> {
        let (id, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| CaError::Config(format!("escrow key {id} is not in the keyring")))?;
        let mut nonce = [0u8; 12];
        random(&mut nonce)?;
        let mut buf = Zeroizing::new(secret.as_bytes().to_vec());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut *buf,
        )
        .map_err(|_| CaError::Crypto("escrow seal failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{id}:{}", hex::encode(out)))
    }

    /// Opens what [`Escrow::seal`] made for the same context, under whichever key it names.
    pub fn open(&self, context: &str, sealed: &str) -> CaResult<Zeroizing<String>> {
        let (key, body) = match sealed.split_once(':') {
            Some((id, body)) => {
                let key = self
                    .keys
                    .iter()
                    .find(|(k, _)| k == id)
                    .map(|(_, k)| k)
                    .ok_or_else(|| {
                        CaError::Config(format!("escrow record under unknown key {id}"))
                    })?;
                (key, body)
            }
            None => (&self.keys[0].1, sealed),
        };
        let bytes = hex::decode(body).map_err(|_| CaError::Corrupt("escrow record".into()))?;
        if bytes.len() < 12 + 16 {
            return Err(CaError::Corrupt("escrow record too short".into()));
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| CaError::Corrupt("escrow nonce".into()))?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = key
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
    fn escrow_records_name_their_key_so_it_can_rotate() {
        let old = Escrow::new(&[7u8; 32]).unwrap();
        let sealed = old.seal("so_pin:K1", "12345678").unwrap();
        let (id, _) = sealed.split_once(':').unwrap();
        assert_eq!(id, escrow_key_id(&[7u8; 32]));
        assert_eq!(id, old.current_key_id());
        // A rotated escrow seals under the new key and still opens the old records.
        let rotated = Escrow::with_keys(&[&[9u8; 32], &[7u8; 32]]).unwrap();
        assert_eq!(
            rotated.open("so_pin:K1", &sealed).unwrap().as_str(),
            "12345678"
        );
        let fresh = rotated.seal("so_pin:K1", "87654321").unwrap();
        assert!(fresh.starts_with(&format!("{}:", escrow_key_id(&[9u8; 32]))));
        // An escrow without the key a record names says so, rather than failing to decrypt.
        let e = Escrow::new(&[9u8; 32]).unwrap();
        assert!(matches!(
            e.open("so_pin:K1", &sealed),
            Err(CaError::Config(_))
        ));
        // A record from before key ids is read with the first key.
        let legacy = sealed.split_once(':').unwrap().1;
        assert_eq!(old.open("so_pin:K1", legacy).unwrap().as_str(), "12345678");
    }

    #[test]
    fn digits_are_digits() {
        let d = random_digits(6).unwrap();
        assert_eq!(d.len(), 6);
        assert!(d.chars().all(|c| c.is_ascii_digit()));
    }
}
