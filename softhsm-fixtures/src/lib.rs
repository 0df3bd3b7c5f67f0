//! Throw-away SoftHSM keys in every state Keyward's tests and demo need.
//!
//! A [`FixtureSet`] is a folder holding a SoftHSM configuration, its token store, a
//! keyward-sim configuration and state folder, and `fixtures.json`, the manifest that says
//! which key is in which state with which PINs. Nothing is written outside that folder.
//!
//! Building happens in two halves, because SoftHSM only sees tokens that existed when it was
//! initialised: tokens are created by `softhsm2-util` in child processes first, then this
//! process loads the module (SoftHSM directly, or keyward-sim in front of it) and generates
//! key pairs on the keys, has the test CA certify them from CSRs signed on the keys, and
//! writes certificates, chains and data objects.
//!
//! The process environment must name the set's SoftHSM configuration (and the simulator's)
//! before any PKCS#11 module is loaded: call [`FixtureSet::export_env`] first thing in a test
//! (nextest runs each test in its own process), or give [`FixtureSet::env`] to a child.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keyward_pki::csr::build_csr;
use keyward_pki::seal::{CertList, Picture, SealInfo, SealMakerKey};
use keyward_pki::{OrgSubject, Pin, uscc};
use keyward_token::{FinalTry, KeySpec, Module};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// The SoftHSM module Debian installs.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// User PIN of every fixture key.
pub const USER_PIN: &str = "Fixture#2026";
/// SO PIN of every fixture key.
pub const SO_PIN: &str = "SoFixture#2026";
/// CKA_ID of the organisation key pair and certificate.
pub const KEY_ID: &[u8] = &[0x01];
/// CKA_ID of the CA certificates of the chain.
pub const CHAIN_ID: &[u8] = &[0xCA];
/// Application of the fixture data object.
pub const DATA_APPLICATION: &str = "keyward";
/// Label of the fixture data object.
pub const DATA_LABEL: &str = "fixture-note";
/// CKA_APPLICATION of a key's seal object (keyward-flows' `seal::SEAL_APPLICATION`).
pub const SEAL_APPLICATION: &str = "keyward";
/// CKA_LABEL of a key's seal object (keyward-flows' `seal::SEAL_LABEL`).
pub const SEAL_LABEL: &str = "electronic-seal";

/// The states a fixture key can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Initialised with SO and user PIN, no objects.
    Blank,
    /// RSA-2048 key pair, organisation certificate and chain.
    IssuedRsa,
    /// EC P-256 key pair, organisation certificate and chain.
    IssuedEc,
    /// Issued, certificate expiring in 30 days (inside the renewal window).
    NearExpiry,
    /// Issued, certificate expired 10 days ago.
    Expired,
    /// Issued (EC) with a data object besides.
    WithData,
    /// Issued (RSA) with an installed electronic seal bound to its certificate: made by the
    /// set's SM2 seal maker (certified by the test root), written as the key's seal object.
    Sealed,
}

impl KeyState {
    /// Every state, in a stable order.
    pub const ALL: [KeyState; 7] = [
        KeyState::Blank,
        KeyState::IssuedRsa,
        KeyState::IssuedEc,
        KeyState::NearExpiry,
        KeyState::Expired,
        KeyState::WithData,
        KeyState::Sealed,
    ];

    /// The token label used for this state.
    pub fn label(self) -> &'static str {
        match self {
            KeyState::Blank => "kw-blank",
            KeyState::IssuedRsa => "kw-issued-rsa",
            KeyState::IssuedEc => "kw-issued-ec",
            KeyState::NearExpiry => "kw-near-expiry",
            KeyState::Expired => "kw-expired",
            KeyState::WithData => "kw-with-data",
            KeyState::Sealed => "kw-sealed",
        }
    }

    fn key_spec(self) -> Option<KeySpec> {
        match self {
            KeyState::Blank => None,
            KeyState::IssuedRsa | KeyState::NearExpiry | KeyState::Expired | KeyState::Sealed => {
                Some(KeySpec::Rsa2048)
            }
            KeyState::IssuedEc | KeyState::WithData => Some(KeySpec::EcP256),
        }
    }

    /// Validity of the organisation certificate, relative to `now`.
    fn validity(self, now: OffsetDateTime) -> (OffsetDateTime, OffsetDateTime) {
        match self {
            KeyState::NearExpiry => (now - Duration::days(335), now + Duration::days(30)),
            KeyState::Expired => (now - Duration::days(375), now - Duration::days(10)),
            _ => (now - Duration::days(30), now + Duration::days(335)),
        }
    }
}

/// Token labels for `states`: the state's label, numbered when a state appears more than once.
pub fn labels(states: &[KeyState]) -> Vec<String> {
    states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if states.iter().filter(|o| *o == s).count() > 1 {
                format!("{}-{}", s.label(), i + 1)
            } else {
                s.label().to_owned()
            }
        })
        .collect()
}

/// One fixture key as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixtureToken {
    /// Its state.
    pub state: KeyState,
    /// Token label.
    pub label: String,
    /// Token serial, as SoftHSM assigned it.
    pub serial: String,
    /// Organisation on the certificate, when issued.
    pub organization: Option<String>,
    /// Unified social credit code on the certificate, when issued.
    pub credit_code: Option<String>,
    /// Certificate expiry, when issued.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
}

/// The manifest of a fixture folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The module the keys were written through.
    pub module: PathBuf,
    /// The keys.
    pub tokens: Vec<FixtureToken>,
    /// The test CA's root certificate, PEM.
    pub root_pem: String,
    /// The test CA's issuing certificate, PEM.
    pub issuing_pem: String,
    /// The test CA's SM2 seal maker certificate (under the root), PEM.
    #[serde(default)]
    pub seal_maker_pem: String,
}

/// A fixture folder.
#[derive(Debug)]
pub struct FixtureSet {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn write_softhsm_conf(dir: &Path) -> Result<PathBuf> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = true\n",
            tokens.display()
        ),
    )?;
    Ok(conf)
}

fn write_sim_conf(dir: &Path) -> Result<PathBuf> {
    let state = dir.join("sim-state");
    std::fs::create_dir_all(&state)?;
    let conf = dir.join("keyward-sim.toml");
    std::fs::write(
        &conf,
        format!(
            "module = \"{SOFTHSM_MODULE}\"\nstate_dir = \"{}\"\nuser_pin_tries = 10\nso_pin_tries = 10\nlog_file = \"{}\"\n",
            state.display(),
            dir.join("keyward-sim.log").display()
        ),
    )?;
    Ok(conf)
}

impl FixtureSet {
    /// A new empty set in a temporary folder removed on drop.
    pub fn temp() -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("keyward-fixtures-")
            .tempdir()?;
        let dir = temp.path().to_owned();
        write_softhsm_conf(&dir)?;
        write_sim_conf(&dir)?;
        Ok(FixtureSet {
            dir,
            _temp: Some(temp),
        })
    }

    /// A set in `dir` (created if needed, kept afterwards), for the demo.
    pub fn at(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        write_softhsm_conf(dir)?;
        write_sim_conf(dir)?;
        Ok(FixtureSet {
            dir: dir.to_owned(),
            _temp: None,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The SoftHSM configuration file.
    pub fn softhsm_conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// The keyward-sim configuration file.
    pub fn sim_conf(&self) -> PathBuf {
        self.dir.join("keyward-sim.toml")
    }

    /// The keyward-sim state folder (counters, presence, faults).
    pub fn sim_state(&self) -> PathBuf {
        self.dir.join("sim-state")
    }

    /// The environment a process needs to reach these keys.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("SOFTHSM2_CONF", self.softhsm_conf()),
            ("KEYWARD_SIM_CONF", self.sim_conf()),
        ]
    }

    /// Puts [`env`](Self::env) into this process's environment. Call it before any module
    /// is loaded and before the test starts threads of its own.
    #[allow(unsafe_code)]
    pub fn export_env(&self) {
        for (k, v) in self.env() {
            // SAFETY: called at the start of a test process (nextest: one test per process),
            // before any other thread of the process reads or writes the environment.
            unsafe { std::env::set_var(k, v) };
        }
    }

    /// Creates the tokens with `softhsm2-util`, one per state, in child processes.
    pub fn create_tokens(&self, states: &[KeyState]) -> Result<()> {
        for label in labels(states) {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", self.softhsm_conf())
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    &label,
                    "--so-pin",
                    SO_PIN,
                    "--pin",
                    USER_PIN,
                ])
                .output()
                .context(
                    "running softhsm2-util (install the softhsm2 package: cargo xtask setup)",
                )?;
            if !out.status.success() {
                bail!(
                    "softhsm2-util --init-token {} failed: {}",
                    label,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }

    /// Fills the tokens created by [`create_tokens`](Self::create_tokens) through `module`,
    /// which must already see them, and writes the manifest.
    pub fn populate(&self, module: &Arc<Module>, states: &[KeyState]) -> Result<Manifest> {
        let ca = TestCa::new()?;
        let now = OffsetDateTime::now_utc();
        let user_pin = Pin::new(USER_PIN.to_owned());
        let mut tokens = Vec::new();
        for (i, (&state, label)) in states.iter().zip(labels(states)).enumerate() {
            let found = module
                .tokens()?
                .into_iter()
                .find(|t| t.label == label)
                .with_context(|| format!("token {label} is not visible through the module"))?;
            let mut record = FixtureToken {
                state,
                label: found.label.clone(),
                serial: found.serial.clone(),
                organization: None,
                credit_code: None,
                not_after: None,
            };
            if let Some(spec) = state.key_spec() {
                let session = module.session(&found)?;
                session.login(&user_pin, FinalTry::Refuse)?;
                session.generate_key_pair(spec, KEY_ID, "organisation key")?;
                let org = OrgSubject {
                    organization: format!("广州市示例科技第{}有限公司", i + 1),
                    credit_code: uscc::with_check_character(&format!("91440101MA5C{:05}", i + 1))
                        .context("credit code")?,
                };
                let csr = build_csr(&org, &session.signer(KEY_ID)?)?;
                let (not_before, not_after) = state.validity(now);
                let cert = ca.certify(&csr, not_before, not_after, i as u64 + 1)?;
                session.write_certificate(&cert, KEY_ID, &org.organization)?;
                session.write_certificate(&ca.issuing_der, CHAIN_ID, "Keyward Test Issuing CA")?;
                session.write_certificate(&ca.root_der, &[0xCA, 0x00], "Keyward Test Root CA")?;
                if state == KeyState::Sealed {
                    let seal = ca.make_seal(&org.organization, &cert, now)?;
                    session.write_data(SEAL_APPLICATION, SEAL_LABEL, &seal, false)?;
                }
                if state == KeyState::WithData {
                    session.write_data(
                        DATA_APPLICATION,
                        DATA_LABEL,
                        "示例数据".as_bytes(),
                        false,
                    )?;
                }
                session.logout()?;
                record.organization = Some(org.organization);
                record.credit_code = Some(org.credit_code);
                record.not_after = Some(not_after);
            }
            tokens.push(record);
        }
        let manifest = Manifest {
            module: module.info().path.clone(),
            tokens,
            root_pem: pem("CERTIFICATE", &ca.root_der),
            issuing_pem: pem("CERTIFICATE", &ca.issuing_der),
            seal_maker_pem: pem("CERTIFICATE", &ca.seal_maker_der),
        };
        std::fs::write(
            self.dir.join("fixtures.json"),
            serde_json::to_vec_pretty(&manifest)?,
        )?;
        std::fs::write(self.dir.join("root.pem"), &manifest.root_pem)?;
        std::fs::write(self.dir.join("issuing.pem"), &manifest.issuing_pem)?;
        Ok(manifest)
    }

    /// Creates, loads and fills in one go: the whole fixture for a test.
    /// Exports the environment, so call it first thing.
    pub fn build(states: &[KeyState], module_path: &Path) -> Result<(Self, Arc<Module>, Manifest)> {
        let set = FixtureSet::temp()?;
        set.export_env();
        set.create_tokens(states)?;
        let module = Module::open(module_path)?;
        let manifest = set.populate(&module, states)?;
        Ok((set, module, manifest))
    }

    /// Reads the manifest of a built set.
    pub fn manifest(&self) -> Result<Manifest> {
        let bytes = std::fs::read(self.dir.join("fixtures.json"))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// PEM-encodes DER.
pub fn pem(label: &str, der: &[u8]) -> String {
    keyward_pki::pem::encode(label, der)
}

/// A two-level test CA (root → issuing) made fresh for each fixture set, with an SM2 seal
/// maker certified by the root.
pub struct TestCa {
    issuing: Issuer<'static, KeyPair>,
    seal_maker: SealMakerKey,
    /// Root certificate, DER.
    pub root_der: Vec<u8>,
    /// Issuing CA certificate, DER.
    pub issuing_der: Vec<u8>,
    /// The seal maker's certificate, DER.
    pub seal_maker_der: Vec<u8>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

fn ca_params(cn: &str, path_len: u8) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CountryName, "CN");
    p.distinguished_name
        .push(DnType::OrganizationName, "Keyward Test CA");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(800);
    p.not_after = now + Duration::days(3650);
    p
}

impl TestCa {
    /// Generates a root and an issuing CA.
    pub fn new() -> Result<Self> {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let root_params = ca_params("Keyward Test Root CA", 1);
        let root_cert = root_params.self_signed(&root_key)?;
        let root = Issuer::new(root_params, root_key);
        let issuing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let issuing_params = ca_params("Keyward Test Issuing CA", 0);
        let issuing_cert = issuing_params.signed_by(&issuing_key, &root)?;
        let seal_maker = SealMakerKey::generate(|buf| {
            getrandom(buf).map_err(|e| keyward_pki::PkiError::Seal(e.to_string()))
        })?;
        let (_, root_x509) = x509_parser::parse_x509_certificate(root_cert.der())
            .map_err(|e| anyhow::anyhow!("root: {e}"))?;
        let now = OffsetDateTime::now_utc();
        let root_key = root.key();
        let seal_maker_der = keyward_pki::seal::maker_certificate(
            root_x509.subject().as_raw(),
            "Keyward Test CA",
            &seal_maker.public_key_spki(),
            &[0x5e, 0xa1],
            now - Duration::days(800),
            now + Duration::days(3650),
            &|tbs| {
                rcgen::SigningKey::sign(root_key, tbs)
                    .map_err(|e| keyward_pki::PkiError::Seal(e.to_string()))
            },
        )?;
        Ok(TestCa {
            issuing: Issuer::new(issuing_params, issuing_key),
            seal_maker,
            root_der: root_cert.der().to_vec(),
            issuing_der: issuing_cert.der().to_vec(),
            seal_maker_der,
        })
    }

    /// A GB/T 38540 seal (official seal, 40 mm, a drawn red stamp as its PNG picture) bound
    /// to `cert_der`, signed by the seal maker.
    pub fn make_seal(
        &self,
        organisation: &str,
        cert_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let info = SealInfo {
            version: keyward_pki::seal::SEAL_VERSION,
            vid: "keyward-fixtures".into(),
            es_id: format!("KW-FIXTURE-{}", now.unix_timestamp()),
            seal_type: keyward_pki::seal::SEAL_TYPE_OFFICIAL,
            name: organisation.to_owned(),
            cert_list: CertList::Certs(vec![cert_der.to_vec()]),
            created: now,
            valid_start: now - Duration::days(1),
            valid_end: now + Duration::days(335),
            picture: Picture {
                kind: "PNG".into(),
                data: seal_png(),
                width: 40,
                height: 40,
            },
            ext_datas: None,
        };
        Ok(keyward_pki::seal::build(
            &info,
            &self.seal_maker_der,
            &self.seal_maker,
        )?)
    }

    /// Issues an organisation certificate for a CSR, keeping the CSR's subject.
    pub fn certify(
        &self,
        csr_der: &[u8],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        serial: u64,
    ) -> Result<Vec<u8>> {
        let mut req = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())?;
        req.params.not_before = not_before;
        req.params.not_after = not_after;
        req.params.serial_number = Some(serial.to_be_bytes().to_vec().into());
        req.params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        req.params.use_authority_key_identifier_extension = true;
        Ok(req.signed_by(&self.issuing)?.der().to_vec())
    }
}

fn getrandom(buf: &mut [u8]) -> std::result::Result<(), String> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| "no system randomness".to_owned())
}

/// A round red stamp with a star, 240 × 240 pixels on transparency: the picture of the
/// fixture seals.
pub fn seal_png() -> Vec<u8> {
    stamp_png([206, 17, 38])
}

/// The same drawing in another colour (`rgb`): a picture that is not the seal's.
pub fn stamp_png(rgb: [u8; 3]) -> Vec<u8> {
    let size = 240u32;
    let c = f64::from(size) / 2.0;
    // The star: ten vertices alternating outer and inner radius, point up.
    let star: Vec<(f64, f64)> = (0..10)
        .map(|i| {
            let r = if i % 2 == 0 { 0.42 * c } else { 0.17 * c };
            let a = -std::f64::consts::FRAC_PI_2 + f64::from(i) * std::f64::consts::PI / 5.0;
            (c + r * a.cos(), c + r * a.sin())
        })
        .collect();
    let inside = |x: f64, y: f64| {
        let mut odd = false;
        for i in 0..star.len() {
            let (x1, y1) = star[i];
            let (x2, y2) = star[(i + 1) % star.len()];
            if (y1 > y) != (y2 > y) && x < x1 + (y - y1) * (x2 - x1) / (y2 - y1) {
                odd = !odd;
            }
        }
        odd
    };
    let mut data = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            let (px, py) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let r = ((px - c).powi(2) + (py - c).powi(2)).sqrt();
            let on = (c - 14.0..c - 3.0).contains(&r) || inside(px, py);
            data.extend([rgb[0], rgb[1], rgb[2], if on { 235 } else { 0 }]);
        }
    }
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, size, size);
    e.set_color(png::ColorType::Rgba);
    e.set_depth(png::BitDepth::Eight);
    if let Ok(mut w) = e.write_header() {
        let _ = w.write_image_data(&data);
    }
    out
}

/// keyward-sim as the workspace builds it, found from a test binary
/// (`target/<profile>/deps/<test>` → `target/<profile>/libkeyward_sim.so`). `cargo xtask test`
/// builds the whole workspace first; the message says what to run when it is missing.
pub fn sim_module() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("libkeyward_sim.so"))
        })
        .unwrap_or_else(|| PathBuf::from("libkeyward_sim.so"));
    assert!(
        beside.exists(),
        "{} is missing: build it with `cargo build -p keyward-sim`",
        beside.display()
    );
    beside
}

/// A resident identity card number (GB 11643) with a valid check character, for test data.
pub fn resident_id(first17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b.wrapping_sub(b'0')) * w)
        .sum();
    format!(
        "{first17}{}",
        char::from(b"10X98765432"[(sum % 11) as usize])
    )
}
