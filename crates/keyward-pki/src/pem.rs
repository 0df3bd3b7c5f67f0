//! PEM, as the CA service sends certificates and takes requests.

use x509_parser::pem::Pem;

use crate::PkiError;

/// PEM-encodes DER under `label` (e.g. `CERTIFICATE`), 64 characters a line.
pub fn encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
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
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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
        let two = format!(
            "{}{}",
            encode("CERTIFICATE", b"a"),
            encode("CERTIFICATE", b"b")
        );
        assert_eq!(decode_all(&two).expect("two").len(), 2);
    }
}
