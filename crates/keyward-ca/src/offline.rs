//! What is done away from the serving instances: the root CA, kept offline, certifies the
//! issuing CA and the seal maker into a secrets directory (`keyward-ca root …`); the
//! secrets directory gets its escrow key and tokens (`keyward-ca secrets init`); a
//! balancer in front of the instances gets its TLS certificate (`keyward-ca tls-cert`).
//!
//! Layout of the offline root's folder: `root.key` (P-256, PEM, mode 0600) and `root.crt`.
//! Layout of a secrets directory: as a data directory's secret part — `ca/root.crt`,
//! `ca/issuing.crt`, `ca/issuing.key`, `ca/seal-maker-sm2.crt`, `ca/seal-maker-sm2.key`,
//! `escrow*.key`, and optionally `admin.token` and `payment-sandbox.key`. Never `root.key`.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, Issuer, KeyPair};
use time::OffsetDateTime;

use crate::config::Clock;
use crate::crypto;
use crate::error::{CaError, CaResult};
use crate::pki;

fn create_private_dir(dir: &Path) -> CaResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| CaError::io(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CaError::io(dir, e))?;
    }
    Ok(())
}

fn read_text(path: &Path) -> CaResult<String> {
    std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))
}

struct Root {
    key: KeyPair,
    pem: String,
    not_after: OffsetDateTime,
}

fn load_root(root_dir: &Path) -> CaResult<Root> {
    let key = KeyPair::from_pem(&crypto::read_private(&root_dir.join("root.key"))?)?;
    let pem = read_text(&root_dir.join("root.crt"))?;
    let der = pki::pem_to_der(&pem, "CERTIFICATE")
        .ok_or_else(|| CaError::Corrupt("root.crt is not a PEM certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| CaError::Corrupt("root.crt does not parse".into()))?;
    Ok(Root {
        key,
        not_after: cert.validity().not_after.to_datetime(),
        pem,
    })
}

/// `keyward-ca root init`: a new root CA in `root_dir`, valid `years`.
pub fn init_root(root_dir: &Path, years: i64, now: OffsetDateTime) -> CaResult<PathBuf> {
    let crt = root_dir.join("root.crt");
    if crt.exists() || root_dir.join("root.key").exists() {
        return Err(CaError::Config(format!(
            "{} holds a root already",
            root_dir.display()
        )));
    }
    create_private_dir(root_dir)?;
    let key = KeyPair::generate()?;
    let cert = pki::root_params(now, years.max(1))?.self_signed(&key)?;
    crypto::write_private(&root_dir.join("root.key"), key.serialize_pem().as_bytes())?;
    crypto::write_private(&crt, cert.pem().as_bytes())?;
    tracing::info!(dir = %root_dir.display(), "made a root CA");
    Ok(crt)
}

fn certify_issuing(
    root: &Root,
    key: &KeyPair,
    years: i64,
    now: OffsetDateTime,
) -> CaResult<String> {
    let mut params: CertificateParams = pki::issuing_params(now, years.max(1))?;
    // Nothing outlives the root that vouches for it.
    if params.not_after > root.not_after {
        params.not_after = root.not_after;
    }
    let issuer = Issuer::from_ca_cert_pem(&root.pem, &root.key)?;
    Ok(params.signed_by(key, &issuer)?.pem())
}

/// `keyward-ca root issue`: a new issuing CA (a new key) in `secrets_dir/ca`, the root's
/// certificate beside it, and the seal maker if there is none. Refuses to replace an
/// issuing CA unless `replace`: certificates it issued chain to it.
pub fn issue_issuing_ca(
    root_dir: &Path,
    secrets_dir: &Path,
    years: i64,
    replace: bool,
    now: OffsetDateTime,
) -> CaResult<()> {
    let root = load_root(root_dir)?;
    let ca = secrets_dir.join("ca");
    if ca.join("issuing.key").exists() && !replace {
        return Err(CaError::Config(format!(
            "{} holds an issuing CA already: renew it (`root renew`), or pass --replace",
            ca.display()
        )));
    }
    create_private_dir(secrets_dir)?;
    create_private_dir(&ca)?;
    let key = KeyPair::generate()?;
    let pem = certify_issuing(&root, &key, years, now)?;
    crypto::write_private(&ca.join("issuing.key"), key.serialize_pem().as_bytes())?;
    crypto::write_private(&ca.join("issuing.crt"), pem.as_bytes())?;
    crypto::write_private(&ca.join("root.crt"), root.pem.as_bytes())?;
    let clock = Clock::system();
    pki::ensure_seal_maker(&ca, root_dir, &root.pem, &clock)?;
    tracing::info!(dir = %ca.display(), "issued the issuing CA under the offline root");
    Ok(())
}

/// `keyward-ca root renew`: a new certificate for the issuing CA's key, valid `years`
/// from now, so what it issued before keeps chaining.
pub fn renew_issuing_ca(
    root_dir: &Path,
    secrets_dir: &Path,
    years: i64,
    now: OffsetDateTime,
) -> CaResult<()> {
    let root = load_root(root_dir)?;
    let ca = secrets_dir.join("ca");
    let key = KeyPair::from_pem(&crypto::read_private(&ca.join("issuing.key"))?)?;
    let pem = certify_issuing(&root, &key, years, now)?;
    crypto::write_private(&ca.join("issuing.crt"), pem.as_bytes())?;
    crypto::write_private(&ca.join("root.crt"), root.pem.as_bytes())?;
    tracing::info!(dir = %ca.display(), "renewed the issuing CA under the offline root");
    Ok(())
}

/// What `keyward-ca secrets init` makes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecretsInit {
    /// A bootstrap `admin` staff token.
    pub admin_token: bool,
    /// The sandbox payment provider's key.
    pub sandbox_payments: bool,
}

/// `keyward-ca secrets init`: the escrow key (and the optional tokens) a secrets directory
/// lacks; what is there is kept. Returns the files made.
pub fn init_secrets(secrets_dir: &Path, what: SecretsInit) -> CaResult<Vec<PathBuf>> {
    create_private_dir(secrets_dir)?;
    let mut made = Vec::new();
    if crate::escrow::key_files(secrets_dir)?.is_empty() {
        let path = secrets_dir.join(crate::escrow::FIRST_KEY_FILE);
        crypto::create_secret(&path)?;
        made.push(path);
    }
    for (wanted, name) in [
        (what.admin_token, "admin.token"),
        (what.sandbox_payments, "payment-sandbox.key"),
    ] {
        let path = secrets_dir.join(name);
        if wanted && !path.exists() {
            crypto::create_secret(&path)?;
            made.push(path);
        }
    }
    Ok(made)
}

/// `keyward-ca tls-cert`: a server certificate for `names` under the issuing CA of
/// `secrets_dir`, for a balancer that terminates TLS in front of the instances. Writes the
/// chain (leaf, issuing CA) to `cert` and the key (PKCS#8, mode 0600) to `key`.
pub fn tls_certificate(
    secrets_dir: &Path,
    names: &[String],
    cert: &Path,
    key: &Path,
) -> CaResult<()> {
    let clock = Clock::system();
    let ca = pki::CaMaterial::load(secrets_dir, &clock)?;
    let (chain, key_der) = ca.issue_service_certificate(names, clock.now())?;
    let pem: String = chain
        .iter()
        .map(|der| keyward_pki::pem::encode("CERTIFICATE", der))
        .collect();
    let key_pem = zeroize::Zeroizing::new(keyward_pki::pem::encode("PRIVATE KEY", &key_der));
    crypto::write_private(key, key_pem.as_bytes())?;
    std::fs::write(cert, pem).map_err(|e| CaError::io(cert, e))?;
    Ok(())
}
