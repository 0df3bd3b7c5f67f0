//! Hash functions a digest may be signed under, and the two shapes an ECDSA signature
//! travels in.
//!
//! A web page that asks for a signature over a digest names the hash function that made it;
//! the key then signs that digest as it is: RSA keys as PKCS#1 v1.5 over its DigestInfo
//! (RFC 8017 §9.2), EC keys as ECDSA over the digest (X9.62; a digest longer than the curve's
//! order is truncated by the key, as the standard says).

use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::PkiError;
use crate::der;

/// A hash function of the SHA-2 family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum HashAlg {
    /// SHA-256.
    #[serde(rename = "SHA-256")]
    Sha256,
    /// SHA-384.
    #[serde(rename = "SHA-384")]
    Sha384,
    /// SHA-512.
    #[serde(rename = "SHA-512")]
    Sha512,
}

impl HashAlg {
    /// Every hash function, in order of length.
    pub const ALL: [HashAlg; 3] = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];

    /// The name as written in protocols: `SHA-256`, `SHA-384`, `SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }

    /// The hash function named `name` exactly (as [`HashAlg::name`] writes it).
    pub fn parse(name: &str) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|h| h.name() == name)
    }

    /// The length of its digests in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// The digest of `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// The DER DigestInfo prefix put before a digest of this function for RSASSA-PKCS1-v1_5
    /// (RFC 8017 §9.2, note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    /// `digest`'s DigestInfo: the prefix, then the digest. The digest must have this
    /// function's length.
    pub fn digest_info(self, digest: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.check(digest)?;
        let mut out = self.digest_info_prefix().to_vec();
        out.extend_from_slice(digest);
        Ok(out)
    }

    /// Refuses a digest whose length is not this function's.
    pub fn check(self, digest: &[u8]) -> Result<(), PkiError> {
        if digest.len() == self.digest_len() {
            Ok(())
        } else {
            Err(PkiError::Signature(format!(
                "a {} digest has {} bytes, not {}",
                self.name(),
                self.digest_len(),
                digest.len()
            )))
        }
    }
}

/// An ECDSA signature from its DER form (X9.62 Ecdsa-Sig-Value) to the fixed-length `r‖s`
/// of JWS (RFC 7518 §3.4), each half `half` bytes long (32 for P-256).
pub fn ecdsa_der_to_raw(sig: &[u8], half: usize) -> Result<Vec<u8>, PkiError> {
    let bad = |why: &str| PkiError::Signature(format!("ECDSA signature: {why}"));
    let (body, rest) = der::read_tlv(sig, 0x30).ok_or_else(|| bad("not a SEQUENCE"))?;
    if !rest.is_empty() {
        return Err(bad("bytes after the SEQUENCE"));
    }
    let (r, body) = der::read_tlv(body, 0x02).ok_or_else(|| bad("r is not an INTEGER"))?;
    let (s, body) = der::read_tlv(body, 0x02).ok_or_else(|| bad("s is not an INTEGER"))?;
    if !body.is_empty() {
        return Err(bad("more than two INTEGERs"));
    }
    let mut out = Vec::with_capacity(2 * half);
    for v in [r, s] {
        let v = match v {
            [0, tail @ ..] => tail,
            v => v,
        };
        if v.len() > half {
            return Err(bad("an INTEGER longer than the curve"));
        }
        out.extend(std::iter::repeat_n(0, half - v.len()));
        out.extend_from_slice(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::{SHA256_DIGEST_INFO_PREFIX, ecdsa_raw_to_der};

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for h in HashAlg::ALL {
            assert_eq!(HashAlg::parse(h.name()), Some(h));
            assert_eq!(h.hash(b"keyward").len(), h.digest_len());
            // The length byte at the end of the prefix is the digest's.
            assert_eq!(
                usize::from(*h.digest_info_prefix().last().unwrap_or(&0)),
                h.digest_len()
            );
        }
        for bad in ["sha-256", "SHA256", "SHA-1", "MD5", "", "SHA-256 "] {
            assert_eq!(HashAlg::parse(bad), None, "{bad}");
        }
        assert_eq!(
            HashAlg::Sha256.digest_info_prefix(),
            &SHA256_DIGEST_INFO_PREFIX[..]
        );
    }

    #[test]
    fn a_digest_of_the_wrong_length_is_refused() {
        assert!(HashAlg::Sha384.digest_info(&[0u8; 32]).is_err());
        assert_eq!(HashAlg::Sha256.digest_info(&[7u8; 32]).unwrap().len(), 51);
    }

    #[test]
    fn ecdsa_signatures_convert_both_ways() {
        // A short r (leading zero byte dropped by DER) and an s with its high bit set.
        let mut raw = vec![0u8; 64];
        raw[1] = 0x05;
        raw[31] = 0x01;
        raw[32] = 0x80;
        raw[63] = 0x02;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(ecdsa_der_to_raw(&der, 32).unwrap(), raw);
        assert!(ecdsa_der_to_raw(&der, 16).is_err());
        assert!(ecdsa_der_to_raw(&der[..der.len() - 1], 32).is_err());
        assert!(ecdsa_der_to_raw(b"\x30\x00", 32).is_err());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(ecdsa_der_to_raw(&trailing, 32).is_err());
    }
}
