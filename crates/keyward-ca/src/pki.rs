//! The CA hierarchy (root → issuing CA, plus the SM2 seal-making key) and issuance of
//! organisation certificates.
//!
//! The seal maker: an SM2 key (kept in `ca/seal-maker-sm2.key`) with a certificate issued
//! directly under the root (`ca/seal-maker-sm2.crt`). rcgen cannot put an SM2 key in a
//! certificate, so its TBSCertificate is built by hand here and signed by the root's
//! P-256 key (ecdsa-with-SHA256); clients check it against the root they pin. Data
//! directories from before keep their P-256 `seal-maker.*` files, unused.
//!
//! Profile of an organisation certificate: subject `C=CN, O=<name>, CN=<name>,
//! organizationIdentifier (2.5.4.97)=NTRCN-<USCC>`; keyUsage digitalSignature and
//! nonRepudiation (critical); not a CA; authority key identifier set.

use crate::config::Clock;
use crate::crypto::{self, VerifyKey};
use crate::error::{CaError, CaResult, reject};
use keyward_ca_api::ErrorCode;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, SubjectPublicKeyInfo,
};
use std::path::Path;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

/// OID of organizationIdentifier (X.520).
pub const OID_ORGANIZATION_IDENTIFIER: &[u64] = &[2, 5, 4, 97];

/// The CA's keys and certificates, loaded from (or first generated into) `<data>/ca/`.
pub struct CaMaterial {
    pub root_pem: String,
    pub issuing_pem: String,
    pub seal_maker_pem: String,
    seal_maker: SealMaker,
    issuer: Issuer<'static, KeyPair>,
    issuing_spki: VerifyKey,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial").finish_non_exhaustive()
    }
}

pub(crate) fn ca_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CN");
    dn.push(DnType::OrganizationName, "Keyward Reference CA");
    dn.push(DnType::CommonName, cn);
    dn
}

pub(crate) fn random_serial() -> CaResult<SerialNumber> {
    let mut bytes = [0u8; 16];
    crypto::random(&mut bytes)?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte to strip
    Ok(SerialNumber::from_slice(&bytes))
}

/// The root CA's certificate: self-signed, valid `years` from `now`.
pub(crate) fn root_params(now: OffsetDateTime, years: i64) -> CaResult<CertificateParams> {
    let mut root = CertificateParams::default();
    root.distinguished_name = ca_dn("Keyward Reference Root CA");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = now - Duration::hours(1);
    root.not_after = now + Duration::days(365 * years);
    root.serial_number = Some(random_serial()?);
    Ok(root)
}

/// The issuing CA's certificate (pathlen 0), valid `years` from `now`.
pub(crate) fn issuing_params(now: OffsetDateTime, years: i64) -> CaResult<CertificateParams> {
    let mut issuing = CertificateParams::default();
    issuing.distinguished_name = ca_dn("Keyward Organisation Issuing CA");
    issuing.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    issuing.use_authority_key_identifier_extension = true;
    issuing.not_before = now - Duration::hours(1);
    issuing.not_after = now + Duration::days(365 * years);
    issuing.serial_number = Some(random_serial()?);
    Ok(issuing)
}

/// The files an instance serves from: `ca/` of a secrets directory.
pub const SERVING_FILES: &[&str] = &[
    "root.crt",
    "issuing.crt",
    "issuing.key",
    "seal-maker-sm2.crt",
    "seal-maker-sm2.key",
];

/// Makes the SM2 seal maker in `ca_dir` unless it is there, certified by the root whose
/// key is `root_dir/root.key` (the offline root's folder, or a data directory's `ca/`).
pub fn ensure_seal_maker(
    ca_dir: &Path,
    root_dir: &Path,
    root_pem: &str,
    clock: &Clock,
) -> CaResult<()> {
    SealMaker::load_or_create(ca_dir, root_dir, root_pem, clock).map(|_| ())
}

impl CaMaterial {
    /// Loads the hierarchy from `<dir>/ca` without making anything, as an instance serving
    /// from a secrets directory does: the root's key is not needed, and not wanted there.
    pub fn load(dir: &Path, clock: &Clock) -> CaResult<Self> {
        let ca = dir.join("ca");
        if let Some(missing) = SERVING_FILES.iter().find(|f| !ca.join(f).exists()) {
            return Err(CaError::Config(format!(
                "{} is missing: make the issuing CA with `keyward-ca root issue`",
                ca.join(missing).display()
            )));
        }
        // Everything is there, so nothing is made.
        Self::load_or_create(dir, clock, 1)
    }

    /// Loads the hierarchy from `<data_dir>/ca`, generating it on first start with an
    /// issuing CA valid `issuing_years` (the root ten years more).
    pub fn load_or_create(data_dir: &Path, clock: &Clock, issuing_years: i64) -> CaResult<Self> {
        let dir = data_dir.join("ca");
        let files = ["root.crt", "issuing.crt", "issuing.key"];
        if !files.iter().all(|f| dir.join(f).exists()) {
            Self::generate(&dir, clock, issuing_years.max(1))?;
        }
        let read = |name: &str| -> CaResult<String> {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| CaError::io(&p, e))
        };
        let root_pem = read("root.crt")?;
        let issuing_pem = read("issuing.crt")?;
        let seal_maker = SealMaker::load_or_create(&dir, &dir, &root_pem, clock)?;
        let seal_maker_pem = keyward_pki::pem::encode("CERTIFICATE", &seal_maker.cert_der);
        let issuing_key = KeyPair::from_pem(&crypto::read_private(&dir.join("issuing.key"))?)?;
        let issuer = Issuer::from_ca_cert_pem(&issuing_pem, issuing_key)?;
        let issuing_der = pem_to_der(&issuing_pem, "CERTIFICATE")
            .ok_or_else(|| CaError::Corrupt("issuing.crt is not a PEM certificate".into()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&issuing_der)
            .map_err(|_| CaError::Corrupt("issuing.crt does not parse".into()))?;
        let issuing_spki = VerifyKey::from_spki(cert.public_key())
            .map_err(|_| CaError::Corrupt("issuing key type".into()))?;
        Ok(CaMaterial {
            root_pem,
            issuing_pem,
            seal_maker_pem,
            seal_maker,
            issuer,
            issuing_spki,
        })
    }

    fn generate(dir: &Path, clock: &Clock, issuing_years: i64) -> CaResult<()> {
        std::fs::create_dir_all(dir).map_err(|e| CaError::io(dir, e))?;
        let now = clock.now();

        let root_key = KeyPair::generate()?;
        let root = root_params(now, issuing_years + 10)?;
        let root_cert = root.self_signed(&root_key)?;
        let root_issuer = Issuer::new(root, &root_key);

        let issuing_key = KeyPair::generate()?;
        let issuing = issuing_params(now, issuing_years)?;
        let issuing_cert = issuing.signed_by(&issuing_key, &root_issuer)?;

        crypto::write_private(&dir.join("root.key"), root_key.serialize_pem().as_bytes())?;
        crypto::write_private(
            &dir.join("issuing.key"),
            issuing_key.serialize_pem().as_bytes(),
        )?;
        crypto::write_private(&dir.join("issuing.crt"), issuing_cert.pem().as_bytes())?;
        // root.crt last: its presence marks a complete hierarchy.
        crypto::write_private(&dir.join("root.crt"), root_cert.pem().as_bytes())?;
        tracing::info!(dir = %dir.display(), "generated a new CA hierarchy");
        Ok(())
    }

    /// Issues an organisation certificate for `public_key` valid over [not_before, not_after).
    pub fn issue_organisation_certificate(
        &self,
        org_name: &str,
        uscc: &str,
        spki_der: &[u8],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> CaResult<IssuedCert> {
        let public_key = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|_| CaError::rejected(ErrorCode::InvalidCsr, "unsupported public key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "CN");
        dn.push(
            DnType::OrganizationName,
            DnValue::Utf8String(org_name.to_owned()),
        );
        dn.push(DnType::CommonName, DnValue::Utf8String(org_name.to_owned()));
        dn.push(
            DnType::CustomDnType(OID_ORGANIZATION_IDENTIFIER.to_vec()),
            DnValue::Utf8String(format!("NTRCN-{uscc}")),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        let cert = params.signed_by(&public_key, &self.issuer)?;
        Ok(IssuedCert {
            serial: serial_hex,
            pem: cert.pem(),
            spki_sha256: crypto::sha256_hex(spki_der),
            not_before,
            not_after,
        })
    }

    /// A server certificate for the service itself (serverAuth), for `names` (DNS names or
    /// IP addresses), valid 30 days from `now`. Returns the DER chain (leaf, issuing CA) and
    /// the PKCS#8 key; nothing is written to disk.
    pub fn issue_service_certificate(
        &self,
        names: &[String],
        now: OffsetDateTime,
    ) -> CaResult<(Vec<Vec<u8>>, Vec<u8>)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = ca_dn("Keyward CA online service");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(30);
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, &self.issuer)?;
        let issuing = pem_to_der(&self.issuing_pem, "CERTIFICATE")
            .ok_or_else(|| CaError::Corrupt("issuing.crt is not PEM".into()))?;
        Ok((vec![cert.der().to_vec(), issuing], key.serialize_der()))
    }

    /// The seal maker's certificate, DER.
    pub fn seal_maker_cert(&self) -> &[u8] {
        &self.seal_maker.cert_der
    }

    /// Builds and signs a `SES_Seal` (GM/T 0031) with the seal maker's SM2 key.
    pub fn make_seal(&self, info: &keyward_pki::seal::SealInfo) -> CaResult<Vec<u8>> {
        keyward_pki::seal::build(info, &self.seal_maker.cert_der, &self.seal_maker.key)
            .map_err(|e| CaError::Corrupt(format!("seal: {e}")))
    }

    /// Issuing CA first, then the root.
    pub fn chain(&self) -> Vec<String> {
        vec![self.issuing_pem.clone(), self.root_pem.clone()]
    }

    /// Parses a certificate and checks it was signed by the issuing CA.
    pub fn check_issued_by_us(&self, pem: &str) -> CaResult<ParsedCert> {
        let der = pem_to_der(pem, "CERTIFICATE").ok_or_else(|| {
            CaError::rejected(ErrorCode::InvalidCertificate, "not a PEM certificate")
        })?;
        let (rest, cert) = x509_parser::parse_x509_certificate(&der).map_err(|_| {
            CaError::rejected(
                ErrorCode::InvalidCertificate,
                "the certificate does not parse",
            )
        })?;
        if !rest.is_empty() {
            return reject(
                ErrorCode::InvalidCertificate,
                "trailing bytes after the certificate",
            );
        }
        let tbs = cert.tbs_certificate.as_ref();
        if !self.issuing_spki.verify(tbs, &cert.signature_value.data) {
            return reject(
                ErrorCode::InvalidCertificate,
                "the certificate was not issued by this CA",
            );
        }
        ParsedCert::from_x509(&cert)
    }
}

/// A certificate the CA has just issued.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub serial: String,
    pub pem: String,
    pub spki_sha256: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// What the service needs to know of a certificate.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    pub serial: String,
    pub spki_sha256: String,
    pub key: VerifyKey,
    /// The subject's O.
    pub organization: Option<String>,
    pub organization_identifier: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl ParsedCert {
    fn from_x509(cert: &x509_parser::certificate::X509Certificate<'_>) -> CaResult<Self> {
        let org_id = cert
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type().to_id_string() == "2.5.4.97")
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned);
        let organization = cert
            .subject()
            .iter_organization()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned);
        Ok(ParsedCert {
            serial: hex::encode(cert.raw_serial()),
            spki_sha256: crypto::sha256_hex(cert.public_key().raw),
            key: VerifyKey::from_spki(cert.public_key())?,
            organization,
            organization_identifier: org_id,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
        })
    }

    /// Parses a PEM certificate without checking who issued it.
    pub fn from_pem(pem: &str) -> CaResult<Self> {
        let der = pem_to_der(pem, "CERTIFICATE")
            .ok_or_else(|| CaError::Corrupt("stored certificate is not PEM".into()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|_| CaError::Corrupt("stored certificate does not parse".into()))?;
        Self::from_x509(&cert)
    }
}

/// A CSR whose self-signature verified.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    pub spki_der: Vec<u8>,
    pub spki_sha256: String,
}

/// Parses a PKCS#10 CSR (PEM) and verifies its signature with its own key.
pub fn check_csr(pem: &str) -> CaResult<CheckedCsr> {
    let der = pem_to_der(pem, "CERTIFICATE REQUEST")
        .or_else(|| pem_to_der(pem, "NEW CERTIFICATE REQUEST"))
        .ok_or_else(|| CaError::rejected(ErrorCode::InvalidCsr, "not a PEM certificate request"))?;
    let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|_| CaError::rejected(ErrorCode::InvalidCsr, "the CSR does not parse"))?;
    if !rest.is_empty() {
        return reject(ErrorCode::InvalidCsr, "trailing bytes after the CSR");
    }
    let info = &csr.certification_request_info;
    let key = VerifyKey::from_spki(&info.subject_pki).map_err(|e| match e {
        CaError::Rejected { message, .. } => CaError::rejected(ErrorCode::InvalidCsr, message),
        other => other,
    })?;
    let alg = csr.signature_algorithm.algorithm.to_id_string();
    let expected = match key {
        VerifyKey::Rsa(_) => "1.2.840.113549.1.1.11", // sha256WithRSAEncryption
        VerifyKey::P256(_) => "1.2.840.10045.4.3.2",  // ecdsa-with-SHA256
    };
    if alg != expected {
        return reject(
            ErrorCode::InvalidCsr,
            format!("the CSR must be signed with SHA-256 ({expected}), not {alg}"),
        );
    }
    if !key.verify(info.raw, &csr.signature_value.data) {
        return reject(
            ErrorCode::CsrSignatureInvalid,
            "the CSR's signature does not verify",
        );
    }
    let spki_der = info.subject_pki.raw.to_vec();
    Ok(CheckedCsr {
        spki_sha256: crypto::sha256_hex(&spki_der),
        spki_der,
    })
}

/// Decodes the first PEM block with the given label.
pub fn pem_to_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map_while(Result::ok)
        .find(|p| p.label == label)
        .map(|p| p.contents)
}

/// The SM2 key that signs electronic seals, and its certificate under the root.
struct SealMaker {
    key: keyward_pki::seal::SealMakerKey,
    cert_der: Vec<u8>,
}

impl SealMaker {
    fn load_or_create(
        dir: &Path,
        root_key_dir: &Path,
        root_pem: &str,
        clock: &Clock,
    ) -> CaResult<Self> {
        let key_path = dir.join("seal-maker-sm2.key");
        let cert_path = dir.join("seal-maker-sm2.crt");
        if key_path.exists() && cert_path.exists() {
            let hex_key = crypto::read_private(&key_path)?;
            let secret = zeroize::Zeroizing::new(
                hex::decode(hex_key.trim())
                    .map_err(|_| CaError::Corrupt("seal-maker-sm2.key".into()))?,
            );
            let key = keyward_pki::seal::SealMakerKey::from_bytes(&secret)
                .map_err(|_| CaError::Corrupt("seal-maker-sm2.key".into()))?;
            let pem =
                std::fs::read_to_string(&cert_path).map_err(|e| CaError::io(&cert_path, e))?;
            let cert_der = pem_to_der(&pem, "CERTIFICATE")
                .ok_or_else(|| CaError::Corrupt("seal-maker-sm2.crt".into()))?;
            return Ok(SealMaker { key, cert_der });
        }
        // First start, or a data directory from before SM2 seals: add the SM2 maker.
        let key = keyward_pki::seal::SealMakerKey::generate(|buf| {
            crypto::random(buf).map_err(|_| keyward_pki::PkiError::Seal("random".into()))
        })
        .map_err(|_| CaError::Crypto("SM2 key generation failed"))?;
        let root_key_path = root_key_dir.join("root.key");
        let root_key_pem =
            std::fs::read_to_string(&root_key_path).map_err(|e| CaError::io(&root_key_path, e))?;
        let root_key = KeyPair::from_pem(&root_key_pem)?;
        let root_der = pem_to_der(root_pem, "CERTIFICATE")
            .ok_or_else(|| CaError::Corrupt("root.crt is not a PEM certificate".into()))?;
        let (_, root) = x509_parser::parse_x509_certificate(&root_der)
            .map_err(|_| CaError::Corrupt("root.crt does not parse".into()))?;
        let now = clock.now();
        let cert_der = sm2_maker_certificate(
            &root_key,
            root.subject().as_raw(),
            &key.public_key_spki(),
            now - Duration::hours(1),
            now + Duration::days(365 * 10),
        )?;
        crypto::write_private(&key_path, hex::encode(key.to_bytes().as_slice()).as_bytes())?;
        crypto::write_private(
            &cert_path,
            keyward_pki::pem::encode("CERTIFICATE", &cert_der).as_bytes(),
        )?;
        tracing::info!(dir = %dir.display(), "generated the SM2 seal maker");
        Ok(SealMaker { key, cert_der })
    }
}

/// An X.509 v3 certificate for the SM2 seal maker, signed by the root's P-256 key.
fn sm2_maker_certificate(
    root_key: &KeyPair,
    issuer_name: &[u8],
    spki: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CaResult<Vec<u8>> {
    let mut serial = [0u8; 16];
    crypto::random(&mut serial)?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    keyward_pki::seal::maker_certificate(
        issuer_name,
        "Keyward Reference CA",
        spki,
        &serial,
        not_before,
        not_after,
        &|tbs| {
            rcgen::SigningKey::sign(root_key, tbs)
                .map_err(|e| keyward_pki::PkiError::Seal(format!("root signature: {e}")))
        },
    )
    .map_err(|e| CaError::Corrupt(format!("seal maker certificate: {e}")))
}
