//! PEM, as the CA service sends certificates and takes requests.

use x509_parser::pem::Pem;

use crate::PkiError;

/// PEM-encodes DER under `label` (e.g. `CERTIFICATE`), 64 characters a line.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, on one line (how the CA service carries binary in JSON).
pub fn base64(bytes: &[u8]) -> String {
    let mut b64 = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    b64
}

/// Reads standard base64 (padding optional, ASCII whitespace ignored).
pub fn from_base64(text: &str) -> Result<Vec<u8>, PkiError> {
    let bad = || PkiError::Certificate("malformed base64".into());
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = false;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            padding = true;
            continue;
        }
        if padding {
            return Err(bad());
        }
        let v = ALPHABET.iter().position(|&a| a == c).ok_or_else(bad)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err(bad());
    }
    Ok(out)
}

/// Every PEM block in `text`, as (label, DER).
pub fn decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, PkiError> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(text.as_bytes()) {
        let pem = block.map_err(|e| PkiError::Certificate(format!("PEM: {e}")))?;
        out.push((pem.label, pem.contents));
    }
    Ok(out)
}

/// The one block labelled `label` in `text`.
pub fn decode(text: &str, label: &str) -> Result<Vec<u8>, PkiError> {
    decode_all(text)?
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, der)| der)
        .ok_or_else(|| PkiError::Certificate(format!("no {label} in the PEM text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_every_padding() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 200] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = encode("CERTIFICATE", &der);
            assert_eq!(decode(&text, "CERTIFICATE").expect("decode"), der, "{len}");
        }
        assert!(decode("no pem here", "CERTIFICATE").is_err());
        for len in [0usize, 1, 2, 3, 4, 5, 100] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
            assert_eq!(from_base64(&base64(&data)).expect("b64"), data);
        }
        assert!(from_base64("a*b=").is_err());
        assert!(from_base64("QQ==QQ").is_err());
        let two = format!(
            "{}{}",
            encode("CERTIFICATE", b"a"),
            encode("CERTIFICATE", b"b")
        );
        assert_eq!(decode_all(&two).expect("two").len(), 2);
    }
}
