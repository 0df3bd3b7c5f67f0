//! What the fault matrices require of a key after a workflow, and what the CA holds.

use std::process::Command;

use keyward_pki::CertSummary;
use keyward_token::{FinalTry, TokenRef, TokenSession};

use super::{World, pin, sim_module};

/// The message every check signs on the key.
const PROBE: &[u8] = b"still mine";

/// The key works: it logs in with `pin_text`; every certificate object on it is a
/// certificate that parses (`pkcs11-tool` counts the objects, so an object of another type or
/// one Keyward does not list is seen too); exactly one is an organisation certificate; the
/// only key pair on the key is that certificate's (its public key is the certificate's); and
/// a signature made on the key verifies against the certificate's public key. Returns the
/// organisation certificate.
pub fn key_works(w: &World, t: &TokenRef, pin_text: &str) -> CertSummary {
    let on_key = certificate_objects(t);
    let s = w.module.session(t).unwrap();
    s.login(&pin(pin_text), FinalTry::Refuse).unwrap();
    let certs = s.certificates().unwrap();
    assert_eq!(
        certs.len(),
        on_key,
        "every certificate object on the key is an X.509 certificate Keyward lists"
    );
    let mut organisation = Vec::new();
    for c in &certs {
        let summary = CertSummary::from_der(&c.der, w.env.now())
            .unwrap_or_else(|e| panic!("certificate object {:?} does not parse: {e}", c.label));
        if !summary.is_ca {
            organisation.push((c, summary));
        }
    }
    assert_eq!(organisation.len(), 1, "one organisation certificate");
    let (cert, summary) = organisation.pop().unwrap();
    let keys = s.keys().unwrap();
    assert_eq!(keys.len(), 1, "no stray key pair: {keys:?}");
    assert_eq!(keys[0].id, cert.id, "the key pair is the certificate's");
    let spki = CertSummary::spki_der(&cert.der).unwrap();
    assert_eq!(
        s.public_key_spki(&cert.id).unwrap(),
        spki,
        "the key pair's public key is the certificate's"
    );
    assert_signs_for(&s, &cert.id, &spki);
    s.logout().unwrap();
    summary
}

/// At least one organisation certificate on the key has its key pair, and a signature by
/// that pair verifies against the certificate (the state a key must be in at every instant of
/// an interrupted renewal). The session must be logged in.
pub fn holds_a_usable_pair(w: &World, s: &TokenSession) -> bool {
    let ids = keyward_flows::identity::identities(s, w.env.now()).unwrap();
    ids.iter().any(|id| {
        let Ok(spki) = CertSummary::spki_der(&id.cert_der) else {
            return false;
        };
        let (Ok(scheme), Ok(sig)) = (s.key_scheme(&id.key_id), s.sign(&id.key_id, PROBE)) else {
            return false;
        };
        keyward_pki::verify::verify(&spki, scheme, PROBE, &sig).is_ok()
    })
}

fn assert_signs_for(s: &TokenSession, id: &[u8], spki: &[u8]) {
    let scheme = s.key_scheme(id).unwrap();
    let sig = s.sign(id, PROBE).unwrap();
    keyward_pki::verify::verify(spki, scheme, PROBE, &sig)
        .unwrap_or_else(|e| panic!("the key's signature does not verify: {e}"));
}

/// Certificate objects of every kind on key `t`, as `pkcs11-tool` lists them.
fn certificate_objects(t: &TokenRef) -> usize {
    let out = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(sim_module())
        .args([
            "--token-label",
            &t.label,
            "--list-objects",
            "--type",
            "cert",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pkcs11-tool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("Certificate Object"))
        .count()
}

/// What the CA's own records say of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSide {
    /// The key's state (`active`, …).
    pub key_state: String,
    /// The serial of the certificate the CA counts as the key's current one, lower-case hex
    /// without leading zero bytes.
    pub current_cert: String,
    /// Every business of the key as `(kind, state)`, oldest first.
    pub businesses: Vec<(String, String)>,
}

impl CaSide {
    /// How many businesses of `kind` the key has had.
    pub fn count(&self, kind: &str) -> usize {
        self.businesses.iter().filter(|(k, _)| k == kind).count()
    }

    /// How many businesses of `kind` are in `state`.
    pub fn count_in(&self, kind: &str, state: &str) -> usize {
        self.businesses
            .iter()
            .filter(|(k, s)| k == kind && s == state)
            .count()
    }

    /// The newest business of `kind`, by state.
    pub fn newest(&self, kind: &str) -> Option<&str> {
        self.businesses
            .iter()
            .rev()
            .find(|(k, _)| k == kind)
            .map(|(_, s)| s.as_str())
    }
}

/// A certificate serial as hex, comparable with [`CaSide::current_cert`].
pub fn serial_hex(serial: &str) -> String {
    let s = serial.to_ascii_lowercase();
    let mut s = s.as_str();
    while s.len() > 2 && s.starts_with("00") {
        s = &s[2..];
    }
    s.to_owned()
}

/// The CA's records of `key_serial`, read straight from the service's SQLite database in its
/// data folder (read-only), so the check does not depend on the service's read API.
pub fn ca_side(w: &World, key_serial: &str) -> CaSide {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{Connection, Row};
    let path = w.server.data_dir().join("keyward-ca.sqlite");
    assert!(path.exists(), "no database at {}", path.display());
    w.runtime.block_on(async {
        let mut db = sqlx::SqliteConnection::connect_with(
            &SqliteConnectOptions::new().filename(&path).read_only(true),
        )
        .await
        .unwrap();
        let key = sqlx::query("SELECT state, current_cert FROM keys WHERE key_serial = ?")
            .bind(key_serial)
            .fetch_one(&mut db)
            .await
            .unwrap();
        let businesses = sqlx::query(
            "SELECT kind, state FROM businesses WHERE key_serial = ? ORDER BY created_at, rowid",
        )
        .bind(key_serial)
        .fetch_all(&mut db)
        .await
        .unwrap();
        CaSide {
            key_state: key.get("state"),
            current_cert: serial_hex(key.get::<&str, _>("current_cert")),
            businesses: businesses
                .iter()
                .map(|r| (r.get("kind"), r.get("state")))
                .collect(),
        }
    })
}
