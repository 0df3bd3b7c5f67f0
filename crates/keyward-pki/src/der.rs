//! The few DER structures Keyward builds by hand: lengths, integers, and public keys from
//! the parts a PKCS#11 token hands out.

/// Appends a DER length.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A tag-length-value.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// Reads one definite-length element with tag `tag` off the front of `input`: its content
/// and what follows it. `None` for another tag, an indefinite or overlong length, or too few
/// bytes.
pub fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes.iter().fold(0usize, |l, &b| (l << 8) | usize::from(b));
        // DER: the short form where it fits, no leading zero byte.
        if len < 0x80 || bytes[0] == 0 {
            return None;
        }
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A non-negative INTEGER from big-endian magnitude bytes, minimally encoded.
pub fn uint(bytes: &[u8]) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    let b = &bytes[zeros.min(bytes.len().saturating_sub(1))..];
    let mut content = Vec::with_capacity(b.len() + 1);
    if b.first().is_none_or(|&x| x & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(b);
    tlv(0x02, &content)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = vec![0];
    content.extend_from_slice(bytes);
    tlv(0x03, &content)
}

const RSA_ALG: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
const EC_PUBLIC_KEY_OID: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// SubjectPublicKeyInfo of an RSA key from modulus and exponent.
pub fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut key = uint(modulus);
    key.extend(uint(exponent));
    let mut spki = RSA_ALG.to_vec();
    spki.extend(bit_string(&tlv(0x30, &key)));
    tlv(0x30, &spki)
}

/// SubjectPublicKeyInfo of an EC key from its DER parameters and raw point.
pub fn ec_spki(params: &[u8], point: &[u8]) -> Vec<u8> {
    let mut alg = EC_PUBLIC_KEY_OID.to_vec();
    alg.extend_from_slice(params);
    let mut spki = tlv(0x30, &alg);
    spki.extend(bit_string(point));
    tlv(0x30, &spki)
}

/// CKA_EC_POINT is a DER OCTET STRING by the standard; some modules return the bare point.
pub fn unwrap_ec_point(v: &[u8]) -> Vec<u8> {
    if v.len() > 2 && v[0] == 0x04 {
        let (len, hdr) = if v[1] < 0x80 {
            (usize::from(v[1]), 2)
        } else if v[1] == 0x81 && v.len() > 3 {
            (usize::from(v[2]), 3)
        } else {
            return v.to_vec();
        };
        if hdr + len == v.len() && v.get(hdr) == Some(&0x04) {
            return v[hdr..].to_vec();
        }
    }
    v.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_read_back_as_written() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![0xabu8; len];
            let mut bytes = tlv(0x04, &content);
            bytes.extend([1, 2, 3]);
            let (c, rest) = read_tlv(&bytes, 0x04).unwrap();
            assert_eq!((c, rest), (&content[..], &[1u8, 2, 3][..]), "{len}");
            assert!(read_tlv(&bytes, 0x30).is_none());
            assert!(read_tlv(&bytes[..bytes.len() - 4], 0x04).is_none() || len == 0);
        }
        // Indefinite, non-minimal and over-long lengths.
        assert!(read_tlv(&[0x30, 0x80, 0, 0], 0x30).is_none());
        assert!(read_tlv(&[0x30, 0x81, 0x05, 1, 2, 3, 4, 5], 0x30).is_none());
        assert!(read_tlv(&[0x30, 0x85, 1, 0, 0, 0, 0], 0x30).is_none());
        assert!(read_tlv(&[], 0x30).is_none());
    }

    #[test]
    fn ec_point_is_unwrapped_once() {
        let raw = {
            let mut p = vec![0x04];
            p.extend([7u8; 64]);
            p
        };
        let wrapped = tlv(0x04, &raw);
        assert_eq!(unwrap_ec_point(&wrapped), raw);
        assert_eq!(unwrap_ec_point(&raw), raw, "a bare point stays as it is");
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(uint(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(uint(&[1, 0, 1]), vec![2, 3, 1, 0, 1]);
    }
}
