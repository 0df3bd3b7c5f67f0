//! The CA's issuing station: provisions a blank key for an organisation.
//!
//! The key comes from the factory with a known SO PIN. The station draws a random SO PIN
//! and a random one-time transport PIN from the key's own generator, sets the transport PIN,
//! generates the key pair on the key, has the CA certify a CSR signed on the key, writes the
//! certificate and its chain, and registers the key with the CA — which escrows both PINs,
//! encrypted, marks the key "issued, awaiting activation" and sends the activation SMS.
//! Only then is the factory SO PIN replaced by the escrowed one: an interruption before that
//! leaves a key the station can still open with the factory PIN.

use std::sync::Arc;

use keyward_ca_api::{
    CertifyRequest, Handler, Organisation, RegisterKeyRequest, RegisteredKey, Secret,
};
use keyward_ca_client::CaClient;
use keyward_pki::csr::build_csr;
use keyward_pki::{OrgSubject, Pin, PinPolicy};
use keyward_token::{FinalTry, KeySpec, Module, TokenRef, TokenSession};

use crate::{FlowError, OnProgress, Step, report};

/// What the station is asked to issue.
#[derive(Debug, Clone)]
pub struct StationOrder {
    /// The organisation the certificate names.
    pub organisation: Organisation,
    /// Its handler (经办人), who receives the activation SMS.
    pub handler: Handler,
    /// Validity, 1 to 5 years.
    pub years: u8,
    /// The key pair to generate.
    pub spec: KeySpec,
}

/// CKA_ID of the organisation key pair the station writes.
pub const ORG_KEY_ID: &[u8] = &[0x01];

/// A random PIN from the key's generator that meets the PIN policy: letters, digits and a
/// symbol from each class, `len` characters.
fn random_pin(session: &TokenSession, len: usize) -> Result<Pin, FlowError> {
    const CLASSES: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"#%+=@!",
    ];
    let bytes = session.random(len * 2)?;
    let mut out = String::with_capacity(len);
    for (i, pair) in bytes.chunks(2).enumerate().take(len) {
        let class = CLASSES[i % CLASSES.len()];
        let v = (usize::from(pair[0]) << 8 | usize::from(pair[1])) % class.len();
        out.push(char::from(class[v]));
    }
    let pin = Pin::new(out);
    PinPolicy::recommended()
        .check(&pin)
        .map_err(FlowError::PinPolicy)?;
    Ok(pin)
}

/// Provisions `token` for `order`. `ca` must carry the admin credential.
pub fn issue(
    ca: &CaClient,
    module: &Arc<Module>,
    token: &TokenRef,
    factory_so_pin: &Pin,
    order: &StationOrder,
    mut progress: Option<OnProgress<'_>>,
) -> Result<RegisteredKey, FlowError> {
    const TOTAL: u8 = 6;
    report(&mut progress, Step::ReadingKey, 1, TOTAL);
    let session = module.session(token)?;
    let so_pin = random_pin(&session, 16)?;
    let transport = random_pin(&session, 12)?;

    report(&mut progress, Step::SettingPin, 2, TOTAL);
    session.login_so(factory_so_pin, FinalTry::Refuse)?;
    session.init_pin(&transport, &PinPolicy::recommended())?;
    session.logout()?;

    report(&mut progress, Step::GeneratingKey, 3, TOTAL);
    session.login(&transport, FinalTry::Refuse)?;
    for c in session.certificates()? {
        session.delete_certificate(&c.id)?;
    }
    session.delete_key_pair(ORG_KEY_ID)?;
    session.generate_key_pair(order.spec, ORG_KEY_ID, "organisation key")?;
    let subject = OrgSubject {
        organization: order.organisation.name.clone(),
        credit_code: order.organisation.uscc.clone(),
    };
    let csr = build_csr(&subject, &session.signer(ORG_KEY_ID)?)?;

    report(&mut progress, Step::Issuing, 4, TOTAL);
    let issued = ca.certify(&CertifyRequest {
        organisation: order.organisation.clone(),
        csr_pem: keyward_pki::pem::encode("CERTIFICATE REQUEST", &csr),
        years: order.years,
        keep_validity_of: None,
    })?;

    report(&mut progress, Step::Writing, 5, TOTAL);
    let cert = keyward_pki::pem::decode(&issued.certificate_pem, "CERTIFICATE")?;
    session.write_certificate(&cert, ORG_KEY_ID, &order.organisation.name)?;
    for (i, pem) in issued.chain_pem.iter().enumerate() {
        let der = keyward_pki::pem::decode(pem, "CERTIFICATE")?;
        let name = keyward_pki::CertSummary::from_der(&der, time::OffsetDateTime::now_utc())?
            .common_name
            .unwrap_or_else(|| "CA".into());
        session.write_certificate(&der, &[0xCA, i as u8 + 1], &name)?;
    }
    session.logout()?;

    report(&mut progress, Step::Confirming, 6, TOTAL);
    let registered = ca.register_key(&RegisterKeyRequest {
        key_serial: token.serial.clone(),
        organisation: order.organisation.clone(),
        handler: order.handler.clone(),
        certificate_pem: issued.certificate_pem.clone(),
        so_pin: Secret::new(so_pin.expose()),
        transport_pin: Secret::new(transport.expose()),
    })?;
    session.login_so(factory_so_pin, FinalTry::Refuse)?;
    session.change_so_pin(factory_so_pin, &so_pin, FinalTry::Refuse)?;
    session.logout()?;
    tracing::info!(serial = %token.serial, "key issued, awaiting activation");
    Ok(registered)
}
