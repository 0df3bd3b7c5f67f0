//! The electronic seal of GB/T 38540-2020 (version 4 of the structure GM/T 0031-2014
//! introduced): encode, lenient decode and verify. No I/O.
//!
//! The structure Keyward writes, by the standard's names (version 4):
//!
//! - `SES_Seal`: `esealInfo` (`SES_SealInfo`), `cert` (the maker's certificate, an OCTET
//!   STRING holding its DER), `signAlgID` (SM2 with SM3, 1.2.156.10197.1.501) and
//!   `signedValue` (a BIT STRING holding the maker's SM2 signature over the DER of
//!   `esealInfo`).
//! - `SES_SealInfo`: `header` (`SES_Header`: ID "ES" as IA5String, version 4, vid), `esID`
//!   (IA5String), `property` (`SES_ESPropertyInfo`), `picture` (`SES_ESPictrueInfo`) and
//!   optional `extDatas`.
//! - `SES_ESPropertyInfo`: type (INTEGER), name (UTF8String), certListType (1: certificates,
//!   2: certificate digests), certList (`SES_CertList`: a SEQUENCE OF OCTET STRING holding
//!   certificates, or of `CertDigestObj {PrintableString, OCTET STRING}`), and createDate,
//!   validStart, validEnd as **GeneralizedTime**.
//! - `SES_ESPictrueInfo`: type (IA5String: "PNG", "JPG", ...), data, width, height
//!   (millimetres).
//!
//! What Keyward writes is DER. What it reads may come from other makers and older versions:
//! definite lengths in any long form and indefinite (BER) lengths, UTCTime dates (versions
//! before 4 have them) or GeneralizedTime, no certListType (version 1), the version 1 outer
//! shape `SES_Seal {esealInfo, signInfo {cert, signatureAlgorithm, signData}}` whose
//! signature covers `SEQUENCE {esealInfo, cert, signatureAlgorithm}`, OCTET STRING where BIT
//! STRING is due, a signature either DER or bare `r‖s`. The maker's signature is always
//! checked over the bytes exactly as received, never over a re-encoding.

use sha2::Digest;
use sm2::dsa::signature::{Signer, Verifier};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};
use x509_parser::prelude::FromDer;

use crate::PkiError;
use crate::der::{tlv, uint};

/// SM2 signature with SM3 (GM/T 0006): the only `signAlgID` Keyward makes or accepts.
pub const SM2_WITH_SM3_OID: &str = "1.2.156.10197.1.501";
const SM2_WITH_SM3_DER: [u8; 8] = [0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75];
/// The SM2 curve (GM/T 0006), as the parameters of an EC public key.
pub const SM2_CURVE_OID_DER: [u8; 10] =
    [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
/// The distinguishing ID SM2 signatures use when nothing else is agreed (GM/T 0009).
pub const DEFAULT_SM2_ID: &str = "1234567812345678";
/// The header ID every seal carries.
pub const SEAL_HEADER_ID: &str = "ES";
/// The header version Keyward writes (GB/T 38540-2020); the only one it encodes.
pub const SEAL_VERSION: i64 = 4;
/// Keyward's `property.type` code for the official seal (公章).
pub const SEAL_TYPE_OFFICIAL: i64 = 1;
/// Keyward's `property.type` code for the contract seal (合同专用章).
pub const SEAL_TYPE_CONTRACT: i64 = 2;
/// How deep nested TLVs may go before the input is called malformed.
const MAX_DEPTH: usize = 32;

fn err(msg: impl Into<String>) -> PkiError {
    PkiError::Seal(msg.into())
}

/// The certificates a seal is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertList {
    /// certListType 1: the certificates themselves, DER.
    Certs(Vec<Vec<u8>>),
    /// certListType 2: digests of the certificates.
    Digests(Vec<CertDigest>),
}

/// One `CertDigestObj`: the digest algorithm's name and the digest of a certificate's DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDigest {
    /// The algorithm's name as written ("SM3", "SHA256", ...).
    pub algorithm: String,
    /// The digest.
    pub value: Vec<u8>,
}

/// `SES_ESPictrueInfo`: the seal's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    /// "PNG", "JPG", "GIF", "SVG", "OFD" ...
    pub kind: String,
    /// The image file's bytes.
    pub data: Vec<u8>,
    /// Display width in millimetres.
    pub width: i64,
    /// Display height in millimetres.
    pub height: i64,
}

impl Picture {
    /// The MIME type of the image, when its kind is a common one.
    pub fn mime_type(&self) -> Option<&'static str> {
        match self.kind.to_ascii_uppercase().as_str() {
            "PNG" => Some("image/png"),
            "JPG" | "JPEG" => Some("image/jpeg"),
            "GIF" => Some("image/gif"),
            "BMP" => Some("image/bmp"),
            "SVG" => Some("image/svg+xml"),
            _ => None,
        }
    }
}

/// `SES_SealInfo`, the part the maker signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealInfo {
    /// `header.version`.
    pub version: i64,
    /// `header.vid`: the maker's vendor identifier.
    pub vid: String,
    /// `esID`: the seal's identifier.
    pub es_id: String,
    /// `property.type`.
    pub seal_type: i64,
    /// `property.name`.
    pub name: String,
    /// `property.certList` (its type follows from the variant).
    pub cert_list: CertList,
    /// `property.createDate`.
    pub created: OffsetDateTime,
    /// `property.validStart`.
    pub valid_start: OffsetDateTime,
    /// `property.validEnd`.
    pub valid_end: OffsetDateTime,
    /// `picture`.
    pub picture: Picture,
    /// `extDatas` as received (the whole TLV), kept but not interpreted.
    pub ext_datas: Option<Vec<u8>>,
}

/// A decoded `SES_Seal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// The seal information, decoded.
    pub info: SealInfo,
    /// The bytes of `SES_SealInfo` exactly as received.
    pub info_bytes: Vec<u8>,
    /// What the maker's signature covers, from the bytes as received: `info_bytes` for
    /// version 4; for the version 1 shape, `SEQUENCE {esealInfo, cert, signatureAlgorithm}`
    /// around the three elements as received.
    pub signed_bytes: Vec<u8>,
    /// The maker's certificate, DER.
    pub maker_cert: Vec<u8>,
    /// `signAlgID`, dotted.
    pub sign_alg: String,
    /// The signature value's bytes (DER `SEQUENCE {r, s}` or bare `r‖s`).
    pub signature: Vec<u8>,
}

/// What a person needs to see of a seal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SealSummary {
    /// The seal's name (the text around the stamp).
    pub name: String,
    /// `property.type`.
    pub seal_type: i64,
    /// The seal's identifier.
    pub es_id: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Valid from.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_start: OffsetDateTime,
    /// Valid until.
    #[serde(with = "time::serde::rfc3339")]
    pub valid_end: OffsetDateTime,
    /// The image kind ("PNG", ...).
    pub image_type: String,
    /// The image's size in bytes.
    pub image_len: usize,
}

// ---------------------------------------------------------------------------------------
// Encoding (DER)

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    // Minimal two's complement.
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(0x02, &bytes[start..])
}

/// DER GeneralizedTime, UTC, whole seconds: `YYYYMMDDHHMMSSZ`.
fn generalized_time(t: OffsetDateTime) -> Result<Vec<u8>, PkiError> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return Err(err(format!("the year {year} has no GeneralizedTime")));
    }
    let s = format!(
        "{year:04}{:02}{:02}{:02}{:02}{:02}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Ok(tlv(0x18, s.as_bytes()))
}

impl SealInfo {
    /// DER of `SES_SealInfo`, version 4 of GB/T 38540-2020. Older versions are read, never
    /// written: any other `version` is refused.
    pub fn to_der(&self) -> Result<Vec<u8>, PkiError> {
        if self.version != SEAL_VERSION {
            return Err(err(format!(
                "Keyward writes seals of version {SEAL_VERSION} only, not {}",
                self.version
            )));
        }
        let header = seq(&[
            tlv(0x16, SEAL_HEADER_ID.as_bytes()),
            int(self.version),
            tlv(0x16, self.vid.as_bytes()),
        ]);
        let (list_type, list) = match &self.cert_list {
            CertList::Certs(certs) => (
                1,
                seq(&certs.iter().map(|c| tlv(0x04, c)).collect::<Vec<_>>()),
            ),
            CertList::Digests(ds) => (
                2,
                seq(&ds
                    .iter()
                    .map(|d| seq(&[tlv(0x13, d.algorithm.as_bytes()), tlv(0x04, &d.value)]))
                    .collect::<Vec<_>>()),
            ),
        };
        let property = seq(&[
            int(self.seal_type),
            tlv(0x0c, self.name.as_bytes()),
            int(list_type),
            list,
            generalized_time(self.created)?,
            generalized_time(self.valid_start)?,
            generalized_time(self.valid_end)?,
        ]);
        let picture = seq(&[
            tlv(0x16, self.picture.kind.as_bytes()),
            tlv(0x04, &self.picture.data),
            int(self.picture.width),
            int(self.picture.height),
        ]);
        let mut parts = vec![header, tlv(0x16, self.es_id.as_bytes()), property, picture];
        if let Some(ext) = &self.ext_datas {
            parts.push(ext.clone());
        }
        Ok(seq(&parts))
    }
}

/// The maker's SM2 key, in software.
pub struct SealMakerKey(sm2::dsa::SigningKey);

impl std::fmt::Debug for SealMakerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealMakerKey(<secret>)")
    }
}

impl SealMakerKey {
    /// The key from its 32-byte secret scalar.
    pub fn from_bytes(secret: &[u8]) -> Result<Self, PkiError> {
        sm2::dsa::SigningKey::from_slice(DEFAULT_SM2_ID, secret)
            .map(Self)
            .map_err(|_| err("not an SM2 private key"))
    }

    /// A fresh key from a source of random bytes (the caller's CSPRNG).
    pub fn generate(
        mut fill: impl FnMut(&mut [u8]) -> Result<(), PkiError>,
    ) -> Result<Self, PkiError> {
        for _ in 0..16 {
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            fill(secret.as_mut())?;
            if let Ok(k) = Self::from_bytes(secret.as_ref()) {
                return Ok(k);
            }
        }
        Err(err("no valid SM2 key came out of the random source"))
    }

    /// The 32-byte secret scalar (for the caller to keep, protected).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.0.to_bytes().to_vec())
    }

    /// The uncompressed public point (65 bytes).
    pub fn public_point(&self) -> Vec<u8> {
        self.0.verifying_key().to_sec1_bytes().to_vec()
    }

    /// DER SubjectPublicKeyInfo of the public key (id-ecPublicKey on the SM2 curve).
    pub fn public_key_spki(&self) -> Vec<u8> {
        crate::der::ec_spki(&SM2_CURVE_OID_DER, &self.public_point())
    }

    /// SM2-with-SM3 signature (default ID), DER `SEQUENCE {r, s}`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let sig: sm2::dsa::Signature = self
            .0
            .try_sign(message)
            .map_err(|_| err("SM2 signing failed"))?;
        let bytes = sig.to_bytes();
        let (r, s) = bytes.split_at(32);
        let mut body = uint(r);
        body.extend(uint(s));
        Ok(tlv(0x30, &body))
    }
}

/// Builds and signs a `SES_Seal`: `info` signed by `maker`, whose certificate is `maker_cert`.
pub fn build(
    info: &SealInfo,
    maker_cert: &[u8],
    maker: &SealMakerKey,
) -> Result<Vec<u8>, PkiError> {
    let info_der = info.to_der()?;
    let signature = maker.sign(&info_der)?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    Ok(seq(&[
        info_der,
        tlv(0x04, maker_cert),
        tlv(0x06, &SM2_WITH_SM3_DER),
        tlv(0x03, &bits),
    ]))
}

/// A certificate time as RFC 5280 wants it: UTCTime through 2049, GeneralizedTime after.
fn x509_time(t: OffsetDateTime) -> Result<Vec<u8>, PkiError> {
    let t = t.to_offset(time::UtcOffset::UTC);
    if (1950..2050).contains(&t.year()) {
        let s = format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            t.year() % 100,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        Ok(tlv(0x17, s.as_bytes()))
    } else {
        generalized_time(t)
    }
}

/// Signs a TBSCertificate for [`maker_certificate`].
pub type TbsSigner<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, PkiError> + 'a;

/// The X.509 v3 certificate of an SM2 seal maker, signed with ECDSA P-256 and SHA-256 by
/// the CA whose subject (DER Name) is `issuer_name`: subject "Keyward Seal Maker" of
/// `organisation`, keyUsage digitalSignature and nonRepudiation, not a CA. `sign` returns
/// the issuer's DER ECDSA signature over the TBSCertificate it is given.
pub fn maker_certificate(
    issuer_name: &[u8],
    organisation: &str,
    maker_spki: &[u8],
    serial: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    sign: &TbsSigner<'_>,
) -> Result<Vec<u8>, PkiError> {
    const ECDSA_SHA256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let rdn = |oid: &[u8], tag: u8, value: &str| {
        tlv(0x31, &seq(&[tlv(0x06, oid), tlv(tag, value.as_bytes())]))
    };
    let subject = seq(&[
        rdn(&[0x55, 0x04, 0x06], 0x13, "CN"),
        rdn(&[0x55, 0x04, 0x0a], 0x0c, organisation),
        rdn(&[0x55, 0x04, 0x03], 0x0c, "Keyward Seal Maker"),
    ]);
    // keyUsage (critical): digitalSignature, nonRepudiation.
    let key_usage = seq(&[
        tlv(0x06, &[0x55, 0x1d, 0x0f]),
        vec![0x01, 0x01, 0xff],
        tlv(0x04, &[0x03, 0x02, 0x06, 0xc0]),
    ]);
    // basicConstraints (critical): not a CA.
    let basic = seq(&[
        tlv(0x06, &[0x55, 0x1d, 0x13]),
        vec![0x01, 0x01, 0xff],
        tlv(0x04, &[0x30, 0x00]),
    ]);
    let algorithm = seq(&[ECDSA_SHA256.to_vec()]);
    let tbs = seq(&[
        tlv(0xa0, &[0x02, 0x01, 0x02]),
        uint(serial),
        algorithm.clone(),
        issuer_name.to_vec(),
        seq(&[x509_time(not_before)?, x509_time(not_after)?]),
        subject,
        maker_spki.to_vec(),
        tlv(0xa3, &seq(&[key_usage, basic])),
    ]);
    let signature = sign(&tbs)?;
    let mut bits = vec![0u8];
    bits.extend(signature);
    Ok(seq(&[tbs, algorithm, tlv(0x03, &bits)]))
}

// ---------------------------------------------------------------------------------------
// Lenient decoding (BER)

#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    /// The identifier octet (class, constructed bit, low tag number); high tag numbers keep
    /// their first octet only.
    tag: u8,
    /// The content octets (for an indefinite length: everything before the end-of-contents).
    content: &'a [u8],
    /// The whole element as received.
    raw: &'a [u8],
}

impl Tlv<'_> {
    fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
    fn number(&self) -> u8 {
        self.tag & 0x1f
    }
}

fn read_tlv(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), PkiError> {
    if depth > MAX_DEPTH {
        return Err(err("nested too deeply"));
    }
    let tag = *input.first().ok_or_else(|| err("truncated: missing tag"))?;
    let mut pos = 1;
    if tag & 0x1f == 0x1f {
        loop {
            let b = *input.get(pos).ok_or_else(|| err("truncated tag"))?;
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
            if pos > 6 {
                return Err(err("tag number too long"));
            }
        }
    }
    let first = *input
        .get(pos)
        .ok_or_else(|| err("truncated: missing length"))?;
    pos += 1;
    if first == 0x80 {
        // Indefinite length: constructed only, ends with 00 00.
        if tag & 0x20 == 0 {
            return Err(err("indefinite length on a primitive element"));
        }
        let start = pos;
        let mut rest = input.get(pos..).ok_or_else(|| err("truncated"))?;
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let end = input.len() - rest.len();
                let content = &input[start..end];
                let raw = &input[..end + 2];
                return Ok((Tlv { tag, content, raw }, &rest[2..]));
            }
            if rest.is_empty() {
                return Err(err("indefinite length without end-of-contents"));
            }
            let (_, after) = read_tlv(rest, depth + 1)?;
            rest = after;
        }
    }
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n > 8 {
            return Err(err("length too long"));
        }
        let mut len: usize = 0;
        for i in 0..n {
            let b = *input.get(pos + i).ok_or_else(|| err("truncated length"))?;
            len = len
                .checked_mul(256)
                .and_then(|l| l.checked_add(usize::from(b)))
                .ok_or_else(|| err("length overflows"))?;
        }
        pos += n;
        len
    };
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= input.len())
        .ok_or_else(|| err("truncated: content shorter than its length"))?;
    Ok((
        Tlv {
            tag,
            content: &input[pos..end],
            raw: &input[..end],
        },
        &input[end..],
    ))
}

/// The elements inside a constructed element.
fn children<'a>(t: &Tlv<'a>, depth: usize) -> Result<Vec<Tlv<'a>>, PkiError> {
    if !t.constructed() {
        return Err(err("expected a constructed element"));
    }
    let mut out = Vec::new();
    let mut rest = t.content;
    while !rest.is_empty() {
        let (c, after) = read_tlv(rest, depth + 1)?;
        out.push(c);
        rest = after;
    }
    Ok(out)
}

fn sequence<'a>(t: &Tlv<'a>, what: &str, depth: usize) -> Result<Vec<Tlv<'a>>, PkiError> {
    if t.number() != 0x10 || !t.constructed() {
        return Err(err(format!("{what}: expected a SEQUENCE")));
    }
    children(t, depth)
}

/// The bytes of a string-like element: primitive, or BER constructed from primitive pieces.
fn octets(t: &Tlv<'_>, depth: usize) -> Result<Vec<u8>, PkiError> {
    if !t.constructed() {
        return Ok(t.content.to_vec());
    }
    let mut out = Vec::new();
    for c in children(t, depth)? {
        out.extend(octets(&c, depth + 1)?);
    }
    Ok(out)
}

fn text(t: &Tlv<'_>, what: &str, depth: usize) -> Result<String, PkiError> {
    let bytes = octets(t, depth)?;
    match t.number() {
        // BMPString: UTF-16BE.
        0x1e => {
            if bytes.len() % 2 != 0 {
                return Err(err(format!("{what}: odd BMPString")));
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| err(format!("{what}: bad BMPString")))
        }
        // UTF8String, PrintableString, IA5String, VisibleString, T61String, GeneralString.
        0x0c | 0x13 | 0x16 | 0x1a | 0x14 | 0x1b => {
            String::from_utf8(bytes).map_err(|_| err(format!("{what}: not UTF-8")))
        }
        _ => Err(err(format!("{what}: expected a string"))),
    }
}

fn integer(t: &Tlv<'_>, what: &str) -> Result<i64, PkiError> {
    if t.tag != 0x02 || t.content.is_empty() || t.content.len() > 8 {
        return Err(err(format!("{what}: expected a small INTEGER")));
    }
    let mut v: i64 = if t.content[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in t.content {
        v = (v << 8) | i64::from(b);
    }
    Ok(v)
}

fn digits(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// UTCTime or GeneralizedTime, `Z` or no zone (taken as UTC), seconds optional, fractions
/// ignored.
fn date_time(t: &Tlv<'_>, what: &str) -> Result<OffsetDateTime, PkiError> {
    let bad = || err(format!("{what}: not a time"));
    let s = t.content;
    let (year, rest) = match t.tag {
        0x17 => {
            let yy = digits(s.get(..2).ok_or_else(bad)?).ok_or_else(bad)? as i32;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        0x18 => (
            digits(s.get(..4).ok_or_else(bad)?).ok_or_else(bad)? as i32,
            &s[4..],
        ),
        _ => return Err(err(format!("{what}: expected UTCTime or GeneralizedTime"))),
    };
    let field = |i: usize| -> Result<u8, PkiError> {
        rest.get(i..i + 2)
            .and_then(digits)
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(bad)
    };
    let month = Month::try_from(field(0)?).map_err(|_| bad())?;
    let day = field(2)?;
    let (hour, minute) = (field(4)?, field(6)?);
    let second = if rest.get(8).is_some_and(u8::is_ascii_digit) {
        field(8)?
    } else {
        0
    };
    let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    let tm = Time::from_hms(hour, minute, second).map_err(|_| bad())?;
    Ok(PrimitiveDateTime::new(date, tm).assume_utc())
}

fn parse_cert_list(
    list_type: Option<i64>,
    t: &Tlv<'_>,
    depth: usize,
) -> Result<CertList, PkiError> {
    let items = children(t, depth)?;
    // The type says which; when it is missing or odd, the items' shape decides.
    let digests = match list_type {
        Some(1) => false,
        Some(2) => true,
        _ => items.first().is_some_and(|i| i.number() == 0x10),
    };
    if digests {
        let mut out = Vec::new();
        for i in &items {
            let f = sequence(i, "CertDigestObj", depth + 1)?;
            let [alg, value] = f.as_slice() else {
                return Err(err("CertDigestObj: expected type and value"));
            };
            out.push(CertDigest {
                algorithm: text(alg, "CertDigestObj.type", depth + 2)?,
                value: octets(value, depth + 2)?,
            });
        }
        Ok(CertList::Digests(out))
    } else {
        let mut out = Vec::new();
        for i in &items {
            // An OCTET STRING holding the DER, or (leniently) the certificate itself.
            if i.number() == 0x10 && i.constructed() {
                out.push(i.raw.to_vec());
            } else {
                out.push(octets(i, depth + 1)?);
            }
        }
        Ok(CertList::Certs(out))
    }
}

fn parse_info(t: &Tlv<'_>) -> Result<SealInfo, PkiError> {
    let f = sequence(t, "SES_SealInfo", 1)?;
    if f.len() < 4 {
        return Err(err(
            "SES_SealInfo: expected header, esID, property and picture",
        ));
    }
    let h = sequence(&f[0], "SES_Header", 2)?;
    let [id, version, vid] = h.as_slice() else {
        return Err(err("SES_Header: expected ID, version and vid"));
    };
    if text(id, "SES_Header.ID", 3)? != SEAL_HEADER_ID {
        return Err(err("SES_Header: the ID is not \"ES\""));
    }
    let version = integer(version, "SES_Header.version")?;
    let vid = text(vid, "SES_Header.vid", 3)?;
    let es_id = text(&f[1], "esID", 2)?;

    let p = sequence(&f[2], "SES_ESPropertyInfo", 2)?;
    // With certListType (7 fields) or without it (6 fields, the older form).
    let (seal_type, name, list_type, list, dates) = match p.as_slice() {
        [ty, name, lt, list, d0, d1, d2] => (
            ty,
            name,
            Some(integer(lt, "certListType")?),
            list,
            [d0, d1, d2],
        ),
        [ty, name, list, d0, d1, d2] => (ty, name, None, list, [d0, d1, d2]),
        _ => return Err(err("SES_ESPropertyInfo: unexpected number of fields")),
    };
    let cert_list = parse_cert_list(list_type, list, 3)?;
    let pic = sequence(&f[3], "SES_ESPictrueInfo", 2)?;
    let [kind, data, width, height] = pic.as_slice() else {
        return Err(err(
            "SES_ESPictrueInfo: expected type, data, width and height",
        ));
    };
    Ok(SealInfo {
        version,
        vid,
        es_id,
        seal_type: integer(seal_type, "property.type")?,
        name: text(name, "property.name", 3)?,
        cert_list,
        created: date_time(dates[0], "createDate")?,
        valid_start: date_time(dates[1], "validStart")?,
        valid_end: date_time(dates[2], "validEnd")?,
        picture: Picture {
            kind: text(kind, "picture.type", 3)?,
            data: octets(data, 3)?,
            width: integer(width, "picture.width")?,
            height: integer(height, "picture.height")?,
        },
        ext_datas: f.get(4).map(|e| e.raw.to_vec()),
    })
}

fn oid_dotted(bytes: &[u8]) -> Result<String, PkiError> {
    if bytes.is_empty() {
        return Err(err("empty OBJECT IDENTIFIER"));
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut v: u64 = 0;
    for &b in bytes {
        v = v
            .checked_mul(128)
            .map(|x| x | u64::from(b & 0x7f))
            .ok_or_else(|| err("OBJECT IDENTIFIER arc too large"))?;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        }
    }
    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        return Err(err("truncated OBJECT IDENTIFIER"));
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

impl Seal {
    /// Reads a `SES_Seal` leniently (see the module docs). Never panics on any input.
    pub fn from_der(bytes: &[u8]) -> Result<Self, PkiError> {
        let (outer, rest) = read_tlv(bytes, 0)?;
        if !rest.iter().all(|&b| b == 0) {
            return Err(err("bytes after the seal"));
        }
        let f = sequence(&outer, "SES_Seal", 0)?;
        // Version 4: four fields. Version 1: esealInfo and signInfo {cert, alg, signData}.
        let (info_t, cert_t, alg_t, sig_t, signed_bytes) = match f.as_slice() {
            [info_t, cert_t, alg_t, sig_t] => (*info_t, *cert_t, *alg_t, *sig_t, None),
            [info_t, sign_info] => {
                let parts = sequence(sign_info, "SES_SignInfo", 1)?;
                let [cert_t, alg_t, sig_t] = parts.as_slice() else {
                    return Err(err(
                        "SES_SignInfo: expected cert, signatureAlgorithm and signData",
                    ));
                };
                let covered = [info_t.raw, cert_t.raw, alg_t.raw].concat();
                (*info_t, *cert_t, *alg_t, *sig_t, Some(tlv(0x30, &covered)))
            }
            _ => {
                return Err(err(
                    "SES_Seal: expected esealInfo, cert, signAlgID and signedValue",
                ));
            }
        };
        let (info_t, cert_t, alg_t, sig_t) = (&info_t, &cert_t, &alg_t, &sig_t);
        let info = parse_info(info_t)?;
        let maker_cert = if cert_t.number() == 0x10 && cert_t.constructed() {
            cert_t.raw.to_vec()
        } else if cert_t.number() == 0x04 {
            octets(cert_t, 1)?
        } else {
            return Err(err("cert: expected an OCTET STRING"));
        };
        let sign_alg = match alg_t.tag {
            0x06 => oid_dotted(alg_t.content)?,
            // An AlgorithmIdentifier where a bare OID is due.
            0x30 => {
                let a = children(alg_t, 1)?;
                match a.first() {
                    Some(o) if o.tag == 0x06 => oid_dotted(o.content)?,
                    _ => return Err(err("signAlgID: expected an OBJECT IDENTIFIER")),
                }
            }
            _ => return Err(err("signAlgID: expected an OBJECT IDENTIFIER")),
        };
        let signature = match sig_t.number() {
            0x03 => {
                let b = octets(sig_t, 1)?;
                match b.split_first() {
                    Some((0, rest)) => rest.to_vec(),
                    _ => return Err(err("signedValue: a BIT STRING with unused bits")),
                }
            }
            0x04 => octets(sig_t, 1)?,
            _ => return Err(err("signedValue: expected a BIT STRING")),
        };
        Ok(Self {
            info,
            info_bytes: info_t.raw.to_vec(),
            signed_bytes: signed_bytes.unwrap_or_else(|| info_t.raw.to_vec()),
            maker_cert,
            sign_alg,
            signature,
        })
    }

    /// The summary a person sees.
    pub fn summary(&self) -> SealSummary {
        SealSummary {
            name: self.info.name.clone(),
            seal_type: self.info.seal_type,
            es_id: self.info.es_id.clone(),
            created: self.info.created,
            valid_start: self.info.valid_start,
            valid_end: self.info.valid_end,
            image_type: self.info.picture.kind.clone(),
            image_len: self.info.picture.data.len(),
        }
    }

    /// The maker's SM2 public point, from its certificate.
    fn maker_point(&self) -> Result<Vec<u8>, PkiError> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&self.maker_cert)
            .map_err(|e| err(format!("the maker's certificate cannot be read: {e}")))?;
        Ok(cert.public_key().subject_public_key.data.to_vec())
    }

    /// Checks the maker's SM2-with-SM3 signature over `SES_SealInfo` as received, with the
    /// default distinguishing ID.
    pub fn verify_signature(&self) -> Result<(), PkiError> {
        self.verify_signature_with_id(DEFAULT_SM2_ID)
    }

    /// [`Seal::verify_signature`] with another distinguishing ID.
    pub fn verify_signature_with_id(&self, distid: &str) -> Result<(), PkiError> {
        if self.sign_alg != SM2_WITH_SM3_OID {
            return Err(err(format!(
                "unsupported signature algorithm {}",
                self.sign_alg
            )));
        }
        let point = self.maker_point()?;
        let key = sm2::dsa::VerifyingKey::from_sec1_bytes(distid, &point)
            .map_err(|_| err("the maker's certificate holds no SM2 public key"))?;
        let sig = sm2_signature(&self.signature)?;
        key.verify(&self.signed_bytes, &sig)
            .map_err(|_| PkiError::Signature("the seal's signature does not verify".into()))
    }

    /// Whether the seal is bound to `cert_der`: the certificate is in the list, or its SM3 or
    /// SHA-256 digest is.
    pub fn verify_binding(&self, cert_der: &[u8]) -> Result<(), PkiError> {
        let bound = match &self.info.cert_list {
            CertList::Certs(certs) => certs.iter().any(|c| c.as_slice() == cert_der),
            CertList::Digests(ds) => {
                let sm3 = sm3::Sm3::digest(cert_der).to_vec();
                let sha256 = sha2::Sha256::digest(cert_der).to_vec();
                ds.iter().any(|d| d.value == sm3 || d.value == sha256)
            }
        };
        if bound {
            Ok(())
        } else {
            Err(err("the seal is bound to another certificate"))
        }
    }

    /// Whether the maker's certificate was signed (ECDSA P-256 with SHA-256) by the CA whose
    /// certificate is `issuer_der`, and names it as issuer.
    pub fn maker_issued_by(&self, issuer_der: &[u8]) -> Result<(), PkiError> {
        use x509_parser::certificate::X509Certificate;
        let (_, maker) = X509Certificate::from_der(&self.maker_cert)
            .map_err(|e| err(format!("the maker's certificate cannot be read: {e}")))?;
        let (_, issuer) = X509Certificate::from_der(issuer_der)
            .map_err(|e| PkiError::Certificate(e.to_string()))?;
        if maker.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(err("the seal's maker was not certified by this CA"));
        }
        let spki = issuer.public_key().raw;
        crate::verify::verify(
            spki,
            crate::SignatureScheme::EcdsaP256Sha256,
            maker.tbs_certificate.as_ref(),
            &maker.signature_value.data,
        )
        .map_err(|_| err("the seal's maker was not certified by this CA"))
    }
}

/// An SM2 signature from DER `SEQUENCE {r, s}` or bare 64-byte `r‖s`.
fn sm2_signature(bytes: &[u8]) -> Result<sm2::dsa::Signature, PkiError> {
    let bad = || PkiError::Signature("malformed SM2 signature".into());
    if bytes.len() == 64 {
        return sm2::dsa::Signature::from_slice(bytes).map_err(|_| bad());
    }
    let (t, rest) = read_tlv(bytes, 0).map_err(|_| bad())?;
    if !rest.is_empty() || t.tag != 0x30 {
        return Err(bad());
    }
    let parts = children(&t, 0).map_err(|_| bad())?;
    let [r, s] = parts.as_slice() else {
        return Err(bad());
    };
    let mut rs = [0u8; 64];
    for (i, part) in [r, s].into_iter().enumerate() {
        if part.tag != 0x02 {
            return Err(bad());
        }
        let zeros = part.content.iter().take_while(|&&b| b == 0).count();
        let v = &part.content[zeros..];
        if v.len() > 32 {
            return Err(bad());
        }
        let at = i * 32 + 32 - v.len();
        rs[at..i * 32 + 32].copy_from_slice(v);
    }
    sm2::dsa::Signature::from_slice(&rs).map_err(|_| bad())
}

/// SM3 digest, for callers that bind seals by digest.
pub fn sm3_digest(data: &[u8]) -> Vec<u8> {
    sm3::Sm3::digest(data).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};
    use time::macros::datetime;

    fn random(buf: &mut [u8]) -> Result<(), PkiError> {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| err("rng"))
    }

    fn cert(name: &str) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, name);
        p.self_signed(&key).expect("cert").der().to_vec()
    }

    fn info(bound: Vec<u8>) -> SealInfo {
        SealInfo {
            version: SEAL_VERSION,
            vid: "keyward".into(),
            es_id: "KW-1".into(),
            seal_type: SEAL_TYPE_OFFICIAL,
            name: "示例科技有限公司".into(),
            cert_list: CertList::Certs(vec![bound]),
            created: datetime!(2026-11-21 10:00 UTC),
            valid_start: datetime!(2026-11-21 10:00 UTC),
            valid_end: datetime!(2027-11-21 10:00 UTC),
            picture: Picture {
                kind: "PNG".into(),
                data: b"\x89PNG\r\n\x1a\nfake".to_vec(),
                width: 40,
                height: 40,
            },
            ext_datas: None,
        }
    }

    fn maker() -> (SealMakerKey, Vec<u8>) {
        let key = SealMakerKey::generate(random).expect("key");
        // A stand-in maker certificate: only its public key matters here.
        let spki = key.public_key_spki();
        let tbs = seq(&[
            tlv(0xa0, &int(2)),
            int(1),
            seq(&[tlv(0x06, &SM2_WITH_SM3_DER)]),
            seq(&[]),
            seq(&[tlv(0x17, b"260101000000Z"), tlv(0x17, b"360101000000Z")]),
            seq(&[]),
            spki,
        ]);
        let cert = seq(&[
            tbs,
            seq(&[tlv(0x06, &SM2_WITH_SM3_DER)]),
            tlv(0x03, &[0, 0]),
        ]);
        (key, cert)
    }

    #[test]
    fn a_built_seal_reads_back_and_verifies() {
        let org = cert("示例科技有限公司");
        let (key, maker_cert) = maker();
        let der = build(&info(org.clone()), &maker_cert, &key).expect("build");
        let seal = Seal::from_der(&der).expect("parse");
        assert_eq!(seal.info, info(org.clone()));
        assert_eq!(seal.maker_cert, maker_cert);
        assert_eq!(seal.sign_alg, SM2_WITH_SM3_OID);
        seal.verify_signature().expect("signature");
        seal.verify_binding(&org).expect("binding");
        assert_eq!(seal.summary().image_type, "PNG");
        assert_eq!(seal.info.picture.mime_type(), Some("image/png"));
        assert!(seal.verify_signature_with_id("another id").is_err());
    }

    /// Version 4 has GeneralizedTime for the three dates, and nothing else is written.
    #[test]
    fn dates_are_generalized_time_and_only_version_4_is_written() {
        // Bound by digest, so no certificate (with UTCTime of its own) is inside.
        let mut i = info(vec![]);
        i.cert_list = CertList::Digests(vec![CertDigest {
            algorithm: "SM3".into(),
            value: sm3_digest(b"certificate"),
        }]);
        let der = i.to_der().expect("der");
        for stamp in [b"20261121100000Z", b"20271121100000Z"] {
            let mut t = vec![0x18, 15];
            t.extend_from_slice(stamp);
            assert!(der.windows(17).any(|w| w == t.as_slice()), "{stamp:?}");
        }
        assert!(!der.windows(2).any(|w| w == [0x17, 13]), "no UTCTime");
        let mut old = info(cert("a"));
        old.version = 1;
        assert!(old.to_der().is_err());
    }

    /// The GM/T 0031-2014 (version 1) shape: signInfo nesting cert, algorithm and signature,
    /// the signature over `SEQUENCE {esealInfo, cert, signatureAlgorithm}`, UTCTime dates and
    /// no certListType.
    #[test]
    fn a_version_1_seal_is_read_and_verified_as_received() {
        let org = cert("示例科技有限公司");
        let (key, maker_cert) = maker();
        let header = seq(&[tlv(0x16, b"ES"), int(1), tlv(0x16, b"other")]);
        let property = seq(&[
            int(1),
            tlv(0x0c, "示例科技有限公司".as_bytes()),
            seq(&[tlv(0x04, &org)]),
            tlv(0x17, b"261121100000Z"),
            tlv(0x17, b"261121100000Z"),
            tlv(0x17, b"271121100000Z"),
        ]);
        let picture = seq(&[tlv(0x16, b"PNG"), tlv(0x04, b"img"), int(40), int(40)]);
        let info_der = seq(&[header, tlv(0x16, b"V1-1"), property, picture]);
        let cert_t = tlv(0x04, &maker_cert);
        let alg_t = tlv(0x06, &SM2_WITH_SM3_DER);
        let covered = seq(&[info_der.clone(), cert_t.clone(), alg_t.clone()]);
        let mut bits = vec![0u8];
        bits.extend(key.sign(&covered).expect("sign"));
        let sign_info = seq(&[cert_t.clone(), alg_t.clone(), tlv(0x03, &bits)]);
        let der = seq(&[info_der.clone(), sign_info]);
        let seal = Seal::from_der(&der).expect("version 1 reads");
        assert_eq!(seal.info.version, 1);
        assert_eq!(seal.info.created, datetime!(2026-11-21 10:00 UTC));
        assert_eq!(seal.info.cert_list, CertList::Certs(vec![org.clone()]));
        assert_eq!(seal.maker_cert, maker_cert);
        assert_eq!(seal.signed_bytes, covered);
        seal.verify_signature().expect("over the three elements");
        seal.verify_binding(&org).expect("bound");
        // A signature over esealInfo alone is not what version 1 signs.
        let mut bits = vec![0u8];
        bits.extend(key.sign(&info_der).expect("sign"));
        let wrong = seq(&[info_der, seq(&[cert_t, alg_t, tlv(0x03, &bits)])]);
        assert!(
            Seal::from_der(&wrong)
                .expect("parses")
                .verify_signature()
                .is_err()
        );
    }

    #[test]
    fn a_tampered_signature_or_info_is_refused() {
        let org = cert("示例科技有限公司");
        let (key, maker_cert) = maker();
        let der = build(&info(org), &maker_cert, &key).expect("build");
        let mut seal = Seal::from_der(&der).expect("parse");
        let last = seal.signature.len() - 3;
        seal.signature[last] ^= 1;
        assert!(seal.verify_signature().is_err());

        // One byte of the name changed in the received bytes.
        let pos = der
            .windows(3)
            .position(|w| w == "示".as_bytes())
            .expect("name");
        let mut bad = der.clone();
        bad[pos + 2] ^= 1;
        let seal = Seal::from_der(&bad).expect("still parses");
        assert!(matches!(
            seal.verify_signature(),
            Err(PkiError::Signature(_))
        ));

        // Another maker's key under the same certificate.
        let (other, _) = maker();
        let forged = build(&info(cert("x")), &maker_cert, &other).expect("build");
        assert!(
            Seal::from_der(&forged)
                .expect("parse")
                .verify_signature()
                .is_err()
        );
    }

    #[test]
    fn a_seal_bound_to_another_certificate_is_refused() {
        let (key, maker_cert) = maker();
        let ours = cert("示例科技有限公司");
        let theirs = cert("另一家公司");
        let der = build(&info(theirs.clone()), &maker_cert, &key).expect("build");
        let seal = Seal::from_der(&der).expect("parse");
        seal.verify_signature().expect("a genuine seal");
        assert!(seal.verify_binding(&ours).is_err());
        seal.verify_binding(&theirs).expect("theirs");
    }

    #[test]
    fn digest_lists_bind_by_sm3_or_sha256() {
        let (key, maker_cert) = maker();
        let ours = cert("a");
        for value in [sm3_digest(&ours), sha2::Sha256::digest(&ours).to_vec()] {
            let mut i = info(vec![]);
            i.cert_list = CertList::Digests(vec![CertDigest {
                algorithm: "SM3".into(),
                value,
            }]);
            let der = build(&i, &maker_cert, &key).expect("build");
            let seal = Seal::from_der(&der).expect("parse");
            assert_eq!(seal.info, i);
            seal.verify_binding(&ours).expect("bound by digest");
            assert!(seal.verify_binding(&cert("b")).is_err());
        }
    }

    /// Re-encodes a DER seal the way a lenient maker might: BER lengths, GeneralizedTime,
    /// OCTET STRING for the signature, bare r‖s. The signature still checks, over the bytes
    /// as received.
    #[test]
    fn ber_and_wrong_types_are_read_and_verified_as_received() {
        let org = cert("示例科技有限公司");
        let (key, maker_cert) = maker();
        let mut i = info(org.clone());
        // A hand-made SES_SealInfo: indefinite-length outer SEQUENCE, a long-form length and
        // GeneralizedTime dates.
        let header = seq(&[tlv(0x16, b"ES"), int(4), tlv(0x16, b"keyward")]);
        let mut name = vec![0x0c, 0x82, 0x00, i.name.len() as u8];
        name.extend(i.name.as_bytes());
        let property = seq(&[
            int(1),
            name,
            int(1),
            seq(&[tlv(0x04, &org)]),
            tlv(0x18, b"20261121100000Z"),
            tlv(0x18, b"20261121100000Z"),
            tlv(0x18, b"20271121100000"),
        ]);
        let picture = seq(&[
            tlv(0x16, b"PNG"),
            tlv(0x04, &i.picture.data),
            int(40),
            int(40),
        ]);
        let mut info_ber = vec![0x30, 0x80];
        info_ber.extend(header);
        info_ber.extend(tlv(0x16, b"KW-1"));
        info_ber.extend(property);
        info_ber.extend(picture);
        info_ber.extend([0, 0]);
        let sig = key.sign(&info_ber).expect("sign");
        let rs = sm2_signature(&sig).expect("sig").to_bytes().to_vec();
        let mut outer = vec![0x30, 0x80];
        outer.extend(&info_ber);
        outer.extend(tlv(0x04, &maker_cert));
        outer.extend(tlv(0x06, &SM2_WITH_SM3_DER));
        outer.extend(tlv(0x04, &rs));
        outer.extend([0, 0]);
        let seal = Seal::from_der(&outer).expect("lenient parse");
        assert_eq!(seal.info_bytes, info_ber);
        i.cert_list = CertList::Certs(vec![org.clone()]);
        assert_eq!(seal.info, i);
        seal.verify_signature()
            .expect("verifies over the bytes as received");
        seal.verify_binding(&org).expect("bound");
        // Re-encoding would give other bytes, over which the signature does not hold.
        assert_ne!(seal.info.to_der().expect("der"), info_ber);
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let org = cert("a");
        let (key, maker_cert) = maker();
        let der = build(&info(org), &maker_cert, &key).expect("build");
        assert!(Seal::from_der(&[]).is_err());
        assert!(Seal::from_der(&[0x30]).is_err());
        assert!(Seal::from_der(&[0x30, 0x80]).is_err());
        assert!(Seal::from_der(&[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9]).is_err());
        assert!(Seal::from_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(Seal::from_der(&[0x1f, 0xff, 0xff]).is_err());
        assert!(Seal::from_der(b"not a seal at all").is_err());
        let mut deep = Vec::new();
        for _ in 0..200 {
            deep.extend([0x30, 0x80]);
        }
        assert!(Seal::from_der(&deep).is_err());
        // Every truncation and every single-byte change: an error or a seal, never a panic.
        for n in 0..der.len() {
            let _ = Seal::from_der(&der[..n]);
        }
        for i in 0..der.len() {
            for v in [0x00, 0x80, 0xff, der[i] ^ 0x20] {
                let mut m = der.clone();
                m[i] = v;
                if let Ok(s) = Seal::from_der(&m) {
                    // SM2 verification is slow unoptimised: a sample is enough here.
                    if i % 8 == 0 {
                        let _ = s.verify_signature();
                    }
                    let _ = s.verify_binding(&m);
                    let _ = s.summary();
                }
            }
        }
        assert!(sm2_signature(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]).is_err());
    }

    #[test]
    fn small_pieces() {
        assert_eq!(int(0), vec![2, 1, 0]);
        assert_eq!(int(128), vec![2, 2, 0, 128]);
        assert_eq!(int(-1), vec![2, 1, 0xff]);
        let t = Tlv {
            tag: 2,
            content: &[0xff, 0x7f],
            raw: &[],
        };
        assert_eq!(integer(&t, "x").expect("int"), -129);
        assert_eq!(
            oid_dotted(&SM2_WITH_SM3_DER).expect("oid"),
            SM2_WITH_SM3_OID
        );
        assert_eq!(
            generalized_time(datetime!(2050-01-02 03:04:05 UTC)).expect("time"),
            tlv(0x18, b"20500102030405Z")
        );
        assert_eq!(
            x509_time(datetime!(2049-12-31 23:59:59 UTC)).expect("time"),
            tlv(0x17, b"491231235959Z")
        );
        assert_eq!(
            x509_time(datetime!(2050-01-01 0:00 UTC)).expect("time")[0],
            0x18
        );
    }
}
