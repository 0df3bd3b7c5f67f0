//! CMS SignedData (RFC 5652) made with a key this crate never holds, and checked.
//!
//! # Making a signature
//!
//! [`sign`] lays out one `SignerInfo` for the certificate on a [`KeySigner`] and asks the
//! signer for the one signature it needs, over the DER of the signed attributes (the signer
//! hashes it, as for a CSR). The result is a DER `ContentInfo` of type `id-signedData`.
//!
//! - What is signed, [`Content`]: the bytes carried inside (`Attached`, for a message that
//!   travels in the signature), bytes carried elsewhere (`Detached`), or only the SHA-256
//!   digest of bytes carried elsewhere (`DetachedDigest`: a PDF's byte range, hashed by the
//!   caller as it streams).
//! - Signed attributes, always: content-type, message-digest (SHA-256 of the content) and
//!   ESS signing-certificate-v2 (RFC 5035: SHA-256 of the signer's certificate with its
//!   issuer and serial); signing-time when [`SignOptions::signing_time`] is given. PAdES
//!   baseline signatures leave signing-time out (the time is in the PDF's signature
//!   dictionary): [`SignOptions::pades`].
//! - `certificates`: the signer's certificate, then the chain given (CA certificates).
//! - The signer identified by issuer and serial number; digest SHA-256; signature algorithm
//!   by [`SignatureScheme`]: rsaEncryption (PKCS#1 v1.5 with SHA-256) or ecdsa-with-SHA256.
//!
//! ```ignore
//! // keyward.signMessage, attached: the message travels inside the signature.
//! let der = cms::sign(&signer, &cert_der, &chain, Content::Attached(msg), &SignOptions::message(now))?;
//! // keyward.signMessage, detached: the portal keeps the message.
//! let der = cms::sign(&signer, &cert_der, &chain, Content::Detached(msg), &SignOptions::message(now))?;
//! // PAdES (ETSI.CAdES.detached): over the digest of the byte range, no signing-time.
//! let der = cms::sign(&signer, &cert_der, &chain, Content::DetachedDigest(digest), &SignOptions::pades())?;
//! ```
//!
//! # Checking one
//!
//! [`verify`] reads a `ContentInfo`, takes its one `SignerInfo`, finds the signer's
//! certificate among those carried, checks content-type and message-digest against the
//! content (carried inside, or given by the caller as bytes or digest), the
//! signing-certificate-v2 hash when present, and the signature over the signed attributes.
//! Whether the certificate is trusted is the caller's question
//! ([`crate::verify::chains_to`]).

use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence, Tag};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};

use crate::PkiError;
use crate::csr::{KeySigner, SignatureScheme};

/// id-data (RFC 5652): arbitrary octets.
pub const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// id-signedData (RFC 5652).
pub const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// id-aa-signingCertificateV2 (RFC 5035).
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

fn err(msg: impl Into<String>) -> PkiError {
    PkiError::Cms(msg.into())
}

fn der_err(what: &str) -> impl Fn(der::Error) -> PkiError + '_ {
    move |e| err(format!("{what}: {e}"))
}

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// The content, carried inside the signature (`eContent`).
    Attached(&'a [u8]),
    /// The content, carried elsewhere: only its digest is in the signature.
    Detached(&'a [u8]),
    /// The SHA-256 digest of content carried elsewhere, computed by the caller.
    DetachedDigest([u8; 32]),
}

impl Content<'_> {
    fn digest(&self) -> [u8; 32] {
        match self {
            Content::Attached(b) | Content::Detached(b) => Sha256::digest(b).into(),
            Content::DetachedDigest(d) => *d,
        }
    }
}

/// How a signature is made beyond its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignOptions {
    /// `eContentType` and the content-type attribute; [`ID_DATA`] for plain bytes.
    pub content_type: ObjectIdentifier,
    /// The signing-time attribute, when given.
    pub signing_time: Option<OffsetDateTime>,
}

impl SignOptions {
    /// A signed message: id-data, with the signing time.
    pub fn message(now: OffsetDateTime) -> Self {
        SignOptions {
            content_type: ID_DATA,
            signing_time: Some(now),
        }
    }

    /// A PAdES baseline signature (ETSI EN 319 142-1): id-data, no signing-time attribute
    /// (the time is the signature dictionary's /M).
    pub fn pades() -> Self {
        SignOptions {
            content_type: ID_DATA,
            signing_time: None,
        }
    }
}

/// ESSCertIDv2 (RFC 5035); hashAlgorithm DEFAULT id-sha256, so absent for SHA-256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// IssuerSerial (RFC 5035).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// SigningCertificateV2 (RFC 5035); policies are not used.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Vec<Any>>,
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, PkiError> {
    let values = SetOfVec::try_from(vec![value]).map_err(der_err("attribute"))?;
    Ok(Attribute { oid, values })
}

fn any_of<T: Encode>(value: &T) -> Result<Any, PkiError> {
    let der = value.to_der().map_err(der_err("attribute value"))?;
    Any::from_der(&der).map_err(der_err("attribute value"))
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

fn signature_alg(scheme: SignatureScheme) -> AlgorithmIdentifierOwned {
    match scheme {
        SignatureScheme::RsaPkcs1Sha256 => AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        SignatureScheme::EcdsaP256Sha256 => AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
    }
}

fn signing_time(t: OffsetDateTime) -> Result<x509_cert::time::Time, PkiError> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| err("a time before 1970"))?;
    let d = std::time::Duration::from_secs(secs);
    // UTCTime through 2049, GeneralizedTime after (RFC 5652 §11.3).
    if t.year() < 2050 {
        der::asn1::UtcTime::from_unix_duration(d)
            .map(x509_cert::time::Time::UtcTime)
            .map_err(der_err("signing time"))
    } else {
        der::asn1::GeneralizedTime::from_unix_duration(d)
            .map(x509_cert::time::Time::GeneralTime)
            .map_err(der_err("signing time"))
    }
}

fn signing_certificate_v2(cert: &Certificate, cert_der: &[u8]) -> Result<Any, PkiError> {
    let id = EssCertIdV2 {
        hash_algorithm: None,
        cert_hash: OctetString::new(Sha256::digest(cert_der).to_vec())
            .map_err(der_err("certificate hash"))?,
        issuer_serial: Some(IssuerSerial {
            issuer: vec![GeneralName::DirectoryName(
                cert.tbs_certificate.issuer.clone(),
            )],
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
    };
    any_of(&SigningCertificateV2 {
        certs: vec![id],
        policies: None,
    })
}

fn parse_cert(der: &[u8]) -> Result<Certificate, PkiError> {
    Certificate::from_der(der).map_err(|e| PkiError::Certificate(e.to_string()))
}

/// Makes a CMS SignedData with one signer: `signer` (whose certificate is `cert_der`, DER),
/// `chain` (DER CA certificates, carried after it), over `content`. Returns the DER
/// `ContentInfo`. The signer is asked to sign once; its own error is kept
/// ([`PkiError::Signer`]).
pub fn sign(
    signer: &dyn KeySigner,
    cert_der: &[u8],
    chain: &[Vec<u8>],
    content: Content<'_>,
    options: &SignOptions,
) -> Result<Vec<u8>, PkiError> {
    let cert = parse_cert(cert_der)?;
    let cert_spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(der_err("certificate key"))?;
    if cert_spki != signer.public_key_spki() {
        return Err(err("the certificate does not carry the signer's key"));
    }
    let mut attrs = vec![
        attribute(ID_CONTENT_TYPE, any_of(&options.content_type)?)?,
        attribute(
            ID_MESSAGE_DIGEST,
            any_of(&OctetString::new(content.digest().to_vec()).map_err(der_err("digest"))?)?,
        )?,
        attribute(
            ID_SIGNING_CERTIFICATE_V2,
            signing_certificate_v2(&cert, cert_der)?,
        )?,
    ];
    if let Some(t) = options.signing_time {
        attrs.push(attribute(ID_SIGNING_TIME, any_of(&signing_time(t)?)?)?);
    }
    let signed_attrs = SetOfVec::try_from(attrs).map_err(der_err("signed attributes"))?;
    // The signature covers the DER of the attributes as a SET (RFC 5652 §5.4).
    let to_sign = signed_attrs
        .to_der()
        .map_err(der_err("signed attributes"))?;
    let signature = signer.sign(&to_sign)?;

    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signature_alg(signer.scheme()),
        signature: OctetString::new(signature).map_err(der_err("signature"))?,
        unsigned_attrs: None,
    };
    let mut certs = vec![CertificateChoices::Certificate(cert)];
    for c in chain.iter().filter(|c| c.as_slice() != cert_der) {
        certs.push(CertificateChoices::Certificate(parse_cert(c)?));
    }
    let econtent = match content {
        Content::Attached(b) => {
            Some(Any::new(Tag::OctetString, b.to_vec()).map_err(der_err("content"))?)
        }
        Content::Detached(_) | Content::DetachedDigest(_) => None,
    };
    let signed_data = SignedData {
        // v1: X.509 certificates only, signer by issuer and serial, id-data content;
        // v3 for any other content type (RFC 5652 §5.1).
        version: if options.content_type == ID_DATA {
            CmsVersion::V1
        } else {
            CmsVersion::V3
        },
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()])
            .map_err(der_err("digest algorithms"))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: options.content_type,
            econtent,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(certs).map_err(der_err("certificates"))?,
        )),
        crls: None,
        signer_infos: SignerInfos(
            SetOfVec::try_from(vec![signer_info]).map_err(der_err("signer infos"))?,
        ),
    };
    let info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: any_of(&signed_data)?,
    };
    info.to_der().map_err(der_err("content info"))
}

/// The content a detached signature is checked against.
#[derive(Debug, Clone, Copy)]
pub enum Detached<'a> {
    /// The content's bytes.
    Content(&'a [u8]),
    /// The SHA-256 digest of the content.
    Digest([u8; 32]),
}

/// What a signature that verified says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's certificate, DER.
    pub signer_cert: Vec<u8>,
    /// The other certificates carried, DER, in the order carried.
    pub other_certs: Vec<Vec<u8>>,
    /// The signing-time attribute, when present.
    pub signing_time: Option<OffsetDateTime>,
    /// The content carried inside, when attached.
    pub content: Option<Vec<u8>>,
    /// `eContentType`, dotted.
    pub content_type: String,
    /// Whether an ESS signing-certificate-v2 attribute named the signer's certificate (it
    /// must, when present; `false` means it was absent).
    pub signing_certificate_v2: bool,
    /// The scheme the signature is in.
    pub scheme: SignatureScheme,
}

fn attr_value(
    attrs: &SetOfVec<Attribute>,
    oid: ObjectIdentifier,
) -> Result<Option<&Any>, PkiError> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(a) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() || a.values.len() != 1 {
        return Err(err(format!(
            "attribute {oid} must appear once with one value"
        )));
    }
    Ok(a.values.iter().next())
}

fn decode_any<T: for<'a> Decode<'a>>(any: &Any, what: &str) -> Result<T, PkiError> {
    let der = any.to_der().map_err(der_err(what))?;
    T::from_der(&der).map_err(der_err(what))
}

/// Checks a DER CMS `ContentInfo` holding SignedData with one signer (see the module docs).
/// `detached` is the content when it is not carried inside; giving it for an attached
/// signature is an error, as is leaving it out for a detached one.
pub fn verify(cms_der: &[u8], detached: Option<Detached<'_>>) -> Result<Verified, PkiError> {
    let info = ContentInfo::from_der(cms_der).map_err(der_err("ContentInfo"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(err(format!("not SignedData but {}", info.content_type)));
    }
    let sd: SignedData = decode_any(&info.content, "SignedData")?;
    let mut signers = sd.signer_infos.0.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(err("expected exactly one signer"));
    };
    if si.digest_alg.oid != ID_SHA256 {
        return Err(err(format!(
            "unsupported digest algorithm {}",
            si.digest_alg.oid
        )));
    }
    let scheme = match si.signature_algorithm.oid {
        RSA_ENCRYPTION | SHA256_WITH_RSA => SignatureScheme::RsaPkcs1Sha256,
        ECDSA_WITH_SHA256 => SignatureScheme::EcdsaP256Sha256,
        other => return Err(err(format!("unsupported signature algorithm {other}"))),
    };
    // The certificates carried, and the signer's among them.
    let mut certs = Vec::new();
    if let Some(set) = &sd.certificates {
        for c in set.0.iter() {
            if let CertificateChoices::Certificate(c) = c {
                certs.push((c.to_der().map_err(der_err("certificate"))?, c));
            }
        }
    }
    let signer_at = certs
        .iter()
        .position(|(_, c)| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                c.tbs_certificate.issuer == ias.issuer
                    && c.tbs_certificate.serial_number == ias.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => c
                .tbs_certificate
                .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                .ok()
                .flatten()
                .is_some_and(|(_, k)| k == *ski),
        })
        .ok_or_else(|| err("the signer's certificate is not in the signature"))?;

    // The content and its digest.
    let econtent = match &sd.encap_content_info.econtent {
        Some(any) => Some(
            decode_any::<OctetString>(any, "eContent")?
                .as_bytes()
                .to_vec(),
        ),
        None => None,
    };
    let digest: [u8; 32] = match (&econtent, detached) {
        (Some(c), None) => Sha256::digest(c).into(),
        (None, Some(Detached::Content(c))) => Sha256::digest(c).into(),
        (None, Some(Detached::Digest(d))) => d,
        (Some(_), Some(_)) => return Err(err("the content is attached; none is to be given")),
        (None, None) => return Err(err("a detached signature needs its content")),
    };

    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| err("no signed attributes"))?;
    let ct = attr_value(attrs, ID_CONTENT_TYPE)?.ok_or_else(|| err("no content-type"))?;
    if decode_any::<ObjectIdentifier>(ct, "content-type")? != sd.encap_content_info.econtent_type {
        return Err(err(
            "the content-type attribute differs from the content's type",
        ));
    }
    let md = attr_value(attrs, ID_MESSAGE_DIGEST)?.ok_or_else(|| err("no message-digest"))?;
    if decode_any::<OctetString>(md, "message-digest")?.as_bytes() != digest.as_slice() {
        return Err(PkiError::Signature(
            "the content differs from what was signed (message-digest)".into(),
        ));
    }
    let signer_der = certs[signer_at].0.clone();
    let signer_cert = certs[signer_at].1;
    let signing_certificate_v2 = match attr_value(attrs, ID_SIGNING_CERTIFICATE_V2)? {
        None => false,
        Some(v) => {
            let scv2: SigningCertificateV2 = decode_any(v, "signing-certificate-v2")?;
            let first = scv2
                .certs
                .first()
                .ok_or_else(|| err("signing-certificate-v2 names no certificate"))?;
            if first
                .hash_algorithm
                .as_ref()
                .is_some_and(|a| a.oid != ID_SHA256)
            {
                return Err(err("signing-certificate-v2 with a hash other than SHA-256"));
            }
            if first.cert_hash.as_bytes() != Sha256::digest(&signer_der).as_slice() {
                return Err(PkiError::Signature(
                    "signing-certificate-v2 names another certificate".into(),
                ));
            }
            true
        }
    };
    let signing_time = match attr_value(attrs, ID_SIGNING_TIME)? {
        None => None,
        Some(v) => {
            let t: x509_cert::time::Time = decode_any(v, "signing-time")?;
            let secs = i64::try_from(t.to_unix_duration().as_secs())
                .map_err(|_| err("signing-time out of range"))?;
            Some(
                OffsetDateTime::from_unix_timestamp(secs)
                    .map_err(|_| err("signing-time out of range"))?,
            )
        }
    };
    let signed = attrs.to_der().map_err(der_err("signed attributes"))?;
    let spki = signer_cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(der_err("signer's key"))?;
    crate::verify::verify(&spki, scheme, &signed, si.signature.as_bytes())?;

    let other_certs = certs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != signer_at)
        .map(|(_, (d, _))| d.clone())
        .collect();
    Ok(Verified {
        signer_cert: signer_der,
        other_certs,
        signing_time,
        content: econtent,
        content_type: sd.encap_content_info.econtent_type.to_string(),
        signing_certificate_v2,
        scheme,
    })
}
