//! A session on one key: the login guard, PIN changes, objects, keys and signatures.
//!
//! The login guard is the heart of the PIN promises. Before every login or PIN change it
//! reads the token's flags (a login moments after its session was opened, with no PIN
//! presented to the key by this process in between, takes them from the answer the
//! opening's identity check read: one C_GetTokenInfo per workflow step); a locked PIN is refused without a call that could spend a try;
//! at the final try it needs the caller's explicit confirmation; it never retries by itself;
//! and logins to one key are serialised, so two windows cannot race each other into a lock.

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::TokenInfo;
use cryptoki::types::AuthPin;
use keyward_pki::cert::CertNames;
use keyward_pki::csr::{SHA256_DIGEST_INFO_PREFIX, ecdsa_raw_to_der};
use keyward_pki::{HashAlg, KeySigner, Pin, PinPolicy, PkiError, SignatureScheme};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{PinRole, Result, TokenError};
use crate::info::{PinState, PinStatus};
use crate::module::{Module, TokenRef, lock_mutex};
use keyward_pki::der;

/// Whether the caller has confirmed spending the last PIN try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalTry {
    /// Refuse to try when only one try is left (the default for every caller).
    Refuse,
    /// The operator saw the warning and chose to try anyway.
    Confirmed,
}

/// Key pairs Keyward generates on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeySpec {
    /// RSA, 2048-bit modulus, exponent 65537.
    Rsa2048,
    /// ECDSA on NIST P-256.
    EcP256,
}

impl KeySpec {
    /// The signature scheme a key of this kind signs with.
    pub fn scheme(self) -> SignatureScheme {
        match self {
            KeySpec::Rsa2048 => SignatureScheme::RsaPkcs1Sha256,
            KeySpec::EcP256 => SignatureScheme::EcdsaP256Sha256,
        }
    }
}

/// A certificate object on a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertObject {
    /// CKA_ID, which ties it to its key pair.
    #[serde(serialize_with = "hex_bytes")]
    pub id: Vec<u8>,
    /// CKA_LABEL.
    pub label: String,
    /// The certificate, DER.
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// A private key on a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyObject {
    /// CKA_ID.
    #[serde(serialize_with = "hex_bytes")]
    pub id: Vec<u8>,
    /// CKA_LABEL.
    pub label: String,
    /// What it signs with, when Keyward knows the kind.
    pub scheme: Option<SignatureScheme>,
}

fn hex_bytes<S: serde::Serializer>(b: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode_upper(b))
}

/// P-256's OID as DER, the CKA_EC_PARAMS of every EC key Keyward makes.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// An open session on one key.
pub struct TokenSession {
    module: Arc<Module>,
    token: TokenRef,
    session: Session,
    sha256_rsa: OnceCell<bool>,
    /// What each private key (by handle) signs with, read once per session.
    schemes: std::cell::RefCell<std::collections::HashMap<u64, SignatureScheme>>,
    /// The token info the session was opened with: when it was read, and the key's PIN
    /// count then. The first login guard takes it if it is still fresh.
    opened_with: std::cell::RefCell<Option<(Instant, u64, TokenInfo)>>,
}

/// How long the token info read when a session is opened serves its first login guard. A
/// login follows the opening within microseconds in every workflow step; anything later
/// asks the key again. PINs presented by this process in between are seen through the
/// key's PIN count and always force a new read.
const OPENED_INFO_FRESH: Duration = Duration::from_millis(200);

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

fn text_attr(attrs: &[Attribute], t: AttributeType) -> String {
    attrs
        .iter()
        .find_map(|a| match (a, t) {
            (Attribute::Label(v), AttributeType::Label) => {
                Some(String::from_utf8_lossy(v).into_owned())
            }
            _ => None,
        })
        .unwrap_or_default()
}

fn bytes_attr(attrs: &[Attribute], t: AttributeType) -> Option<Vec<u8>> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::Id(v), AttributeType::Id)
        | (Attribute::Value(v), AttributeType::Value)
        | (Attribute::Modulus(v), AttributeType::Modulus)
        | (Attribute::PublicExponent(v), AttributeType::PublicExponent)
        | (Attribute::EcPoint(v), AttributeType::EcPoint)
        | (Attribute::EcParams(v), AttributeType::EcParams) => Some(v.clone()),
        _ => None,
    })
}

impl TokenSession {
    pub(crate) fn new(
        module: Arc<Module>,
        token: TokenRef,
        session: Session,
        opened_with: Option<(Instant, u64, TokenInfo)>,
    ) -> Self {
        TokenSession {
            module,
            token,
            session,
            sha256_rsa: OnceCell::new(),
            schemes: Default::default(),
            opened_with: std::cell::RefCell::new(opened_with),
        }
    }

    /// The token info for a login guard: the one the session was opened with when it is
    /// fresh and no PIN of this key was presented since (used once), else a new read, which
    /// also checks the slot still holds the same key.
    fn guard_info(&self) -> Result<TokenInfo> {
        let opened = self.opened_with.borrow_mut().take();
        if let Some((read_at, epoch, info)) = opened
            && read_at.elapsed() <= OPENED_INFO_FRESH
            && epoch == self.module.pin_epoch(&self.token.serial)
        {
            return Ok(info);
        }
        self.module.token_info(&self.token)
    }

    /// The key this session is on.
    pub fn token(&self) -> &TokenRef {
        &self.token
    }

    /// The module behind it.
    pub fn module(&self) -> &Arc<Module> {
        &self.module
    }

    /// The PIN status now.
    pub fn pin_status(&self) -> Result<PinStatus> {
        self.module.pin_status(&self.token)
    }

    /// `base` narrowed by this key's own PIN length limits.
    pub fn policy(&self, base: &PinPolicy) -> Result<PinPolicy> {
        let info = self.module.token_info(&self.token)?;
        Ok(base
            .clone()
            .with_token_limits(info.min_pin_length(), info.max_pin_length()))
    }

    fn guard(&self, role: PinRole, confirm: FinalTry) -> Result<()> {
        // The flags decide; the exact count (a vendor call) is not needed here.
        let status = PinStatus::from_info(&self.guard_info()?, None);
        let state = match role {
            PinRole::User => status.user,
            PinRole::So => status.so,
        };
        match state {
            // A C_InitPIN this process made is newer than a lock flag that may lag it; the
            // key itself answers CKR_PIN_LOCKED if it really is locked.
            PinState::Locked
                if role == PinRole::User && self.module.pin_was_reset(&self.token.serial) =>
            {
                Ok(())
            }
            PinState::Locked => Err(TokenError::PinLocked { role }),
            PinState::FinalTry if confirm == FinalTry::Refuse => {
                Err(TokenError::FinalTryUnconfirmed { role })
            }
            _ => Ok(()),
        }?;
        // A PIN is about to be presented: token info read before now no longer counts.
        self.module.bump_pin_epoch(&self.token.serial);
        Ok(())
    }

    /// Maps the outcome of a call that presented a PIN.
    fn pin_outcome(&self, role: PinRole, r: std::result::Result<(), CkError>) -> Result<()> {
        self.module.bump_pin_epoch(&self.token.serial);
        match r {
            Ok(()) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                let status = self.pin_status()?;
                let locked = match role {
                    PinRole::User => status.user,
                    PinRole::So => status.so,
                } == PinState::Locked;
                tracing::warn!(serial = %self.token.serial, ?role, "wrong PIN presented");
                if locked {
                    Err(TokenError::PinLocked { role })
                } else {
                    Err(TokenError::PinIncorrect { role, status })
                }
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(TokenError::PinLocked { role }),
            Err(e) => Err(e.into()),
        }
    }

    fn login_as(&self, role: PinRole, pin: &Pin, confirm: FinalTry) -> Result<()> {
        let lock = self.module.login_lock(&self.token.serial);
        let _serial = lock_mutex(&lock);
        self.guard(role, confirm)?;
        let user_type = match role {
            PinRole::User => UserType::User,
            PinRole::So => UserType::So,
        };
        let auth = AuthPin::new(pin.expose().into());
        let r = match self.session.login(user_type, Some(&auth)) {
            // Login state belongs to the whole application: another session of this process
            // logged in, and the key took no PIN from this call at all. Being logged in is
            // not proof of this PIN, so log out and present it.
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                tracing::debug!(serial = %self.token.serial, ?role, "already logged in; logging out to check the PIN");
                self.logout()?;
                self.session.login(user_type, Some(&auth))
            }
            other => other,
        };
        self.pin_outcome(role, r)?;
        if role == PinRole::User {
            self.module.mark_pin_reset(&self.token.serial, false);
        }
        tracing::info!(serial = %self.token.serial, ?role, "logged in");
        Ok(())
    }

    /// Logs the user in, through the guard.
    pub fn login(&self, pin: &Pin, confirm: FinalTry) -> Result<()> {
        self.login_as(PinRole::User, pin, confirm)
    }

    /// Logs the security officer in, through the guard.
    pub fn login_so(&self, so_pin: &Pin, confirm: FinalTry) -> Result<()> {
        self.login_as(PinRole::So, so_pin, confirm)
    }

    /// Logs out (a session that is not logged in is fine).
    pub fn logout(&self) -> Result<()> {
        match self.session.logout() {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes the user PIN (C_SetPIN). The new PIN is checked against `policy` and the key's
    /// limits first; a rejected PIN never reaches the key, so it costs no try.
    pub fn change_pin(
        &self,
        old: &Pin,
        new: &Pin,
        policy: &PinPolicy,
        confirm: FinalTry,
    ) -> Result<()> {
        self.policy(policy)?
            .check_change(old, new)
            .map_err(TokenError::PinPolicy)?;
        let lock = self.module.login_lock(&self.token.serial);
        let _serial = lock_mutex(&lock);
        self.guard(PinRole::User, confirm)?;
        let (o, n) = (
            AuthPin::new(old.expose().into()),
            AuthPin::new(new.expose().into()),
        );
        self.pin_outcome(PinRole::User, self.session.set_pin(&o, &n))?;
        tracing::info!(serial = %self.token.serial, "user PIN changed");
        Ok(())
    }

    /// Sets a new user PIN from an SO session (C_InitPIN), which also clears a user lock.
    pub fn init_pin(&self, new: &Pin, policy: &PinPolicy) -> Result<()> {
        self.policy(policy)?
            .check(new)
            .map_err(TokenError::PinPolicy)?;
        let n = AuthPin::new(new.expose().into());
        self.session.init_pin(&n)?;
        self.module.mark_pin_reset(&self.token.serial, true);
        tracing::info!(serial = %self.token.serial, "user PIN set by the security officer");
        Ok(())
    }

    /// Changes the SO PIN in an SO session (C_SetPIN), through the guard: a locked SO PIN
    /// is refused without a call, the final try needs `FinalTry::Confirmed`, and it is
    /// serialised with every other login to the key.
    pub fn change_so_pin(&self, old: &Pin, new: &Pin, confirm: FinalTry) -> Result<()> {
        let lock = self.module.login_lock(&self.token.serial);
        let _serial = lock_mutex(&lock);
        self.guard(PinRole::So, confirm)?;
        let (o, n) = (
            AuthPin::new(old.expose().into()),
            AuthPin::new(new.expose().into()),
        );
        self.pin_outcome(PinRole::So, self.session.set_pin(&o, &n))?;
        tracing::info!(serial = %self.token.serial, "SO PIN changed");
        Ok(())
    }

    /// Random bytes from the key's own generator (C_GenerateRandom).
    pub fn random(&self, len: usize) -> Result<Vec<u8>> {
        let len = u32::try_from(len)
            .map_err(|_| TokenError::Unsupported("that much randomness".into()))?;
        Ok(self.session.generate_random_vec(len)?)
    }

    fn find(&self, template: &[Attribute]) -> Result<Vec<ObjectHandle>> {
        Ok(self.session.find_objects(template)?)
    }

    fn find_one(&self, class: ObjectClass, id: &[u8], what: &str) -> Result<ObjectHandle> {
        self.find(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?
            .into_iter()
            .next()
            .ok_or_else(|| {
                TokenError::ObjectNotFound(format!("{what} with id {}", hex::encode_upper(id)))
            })
    }

    /// Every X.509 certificate on the key.
    pub fn certificates(&self) -> Result<Vec<CertObject>> {
        let handles = self.find(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
        ])?;
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            let attrs = self.session.get_attributes(
                h,
                &[
                    AttributeType::Id,
                    AttributeType::Label,
                    AttributeType::Value,
                ],
            )?;
            out.push(CertObject {
                id: bytes_attr(&attrs, AttributeType::Id).unwrap_or_default(),
                label: text_attr(&attrs, AttributeType::Label),
                der: bytes_attr(&attrs, AttributeType::Value).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Writes a certificate with its subject, issuer and serial, tied to key pair `id`.
    pub fn write_certificate(&self, der: &[u8], id: &[u8], label: &str) -> Result<CertObject> {
        let names = CertNames::from_der(der)?;
        self.session.create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Subject(names.subject),
            Attribute::Issuer(names.issuer),
            Attribute::SerialNumber(names.serial),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Value(der.to_vec()),
        ])?;
        tracing::info!(serial = %self.token.serial, label, "certificate written");
        Ok(CertObject {
            id: id.to_vec(),
            label: label.to_owned(),
            der: der.to_vec(),
        })
    }

    /// Deletes the certificates with CKA_ID `id`; returns how many there were.
    pub fn delete_certificate(&self, id: &[u8]) -> Result<usize> {
        let handles = self.find(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(id.to_vec()),
        ])?;
        if handles.is_empty() {
            return Err(TokenError::ObjectNotFound(format!(
                "certificate with id {}",
                hex::encode_upper(id)
            )));
        }
        for h in &handles {
            self.session.destroy_object(*h)?;
        }
        Ok(handles.len())
    }

    fn data_handles(&self, application: &str, label: &str) -> Result<Vec<ObjectHandle>> {
        self.find(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Application(application.as_bytes().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
    }

    /// Reads a data object by application and label.
    pub fn read_data(&self, application: &str, label: &str) -> Result<Option<Vec<u8>>> {
        let Some(h) = self.data_handles(application, label)?.into_iter().next() else {
            return Ok(None);
        };
        let attrs = self.session.get_attributes(h, &[AttributeType::Value])?;
        Ok(bytes_attr(&attrs, AttributeType::Value))
    }

    /// Writes a data object, replacing any with the same application and label. The new
    /// object is created before the old ones are destroyed: a key pulled in between holds
    /// both complete values, never neither.
    pub fn write_data(
        &self,
        application: &str,
        label: &str,
        value: &[u8],
        private: bool,
    ) -> Result<()> {
        let old = self.data_handles(application, label)?;
        self.session.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Application(application.as_bytes().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Value(value.to_vec()),
        ])?;
        for h in old {
            self.session.destroy_object(h)?;
        }
        Ok(())
    }

    /// Deletes a data object; `false` when there was none.
    pub fn delete_data(&self, application: &str, label: &str) -> Result<bool> {
        let handles = self.data_handles(application, label)?;
        for h in &handles {
            self.session.destroy_object(*h)?;
        }
        Ok(!handles.is_empty())
    }

    /// Generates a key pair on the key; the private half never leaves it.
    pub fn generate_key_pair(&self, spec: KeySpec, id: &[u8], label: &str) -> Result<Vec<u8>> {
        let common = |private: bool| {
            let mut v = vec![
                Attribute::Token(true),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            if private {
                v.extend([
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                ]);
            } else {
                v.extend([Attribute::Private(false), Attribute::Verify(true)]);
            }
            v
        };
        let (mech, mut public) = match spec {
            KeySpec::Rsa2048 => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                ],
            ),
            KeySpec::EcP256 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(P256_PARAMS.to_vec())],
            ),
        };
        public.extend(common(false));
        self.session
            .generate_key_pair(&mech, &public, &common(true))?;
        tracing::info!(serial = %self.token.serial, ?spec, label, "key pair generated on the key");
        self.public_key_spki(id)
    }

    /// The public key of pair `id` as DER SubjectPublicKeyInfo.
    pub fn public_key_spki(&self, id: &[u8]) -> Result<Vec<u8>> {
        let h = self.find_one(ObjectClass::PUBLIC_KEY, id, "public key")?;
        let kt = self.session.get_attributes(h, &[AttributeType::KeyType])?;
        let key_type = kt.iter().find_map(|a| match a {
            Attribute::KeyType(k) => Some(*k),
            _ => None,
        });
        match key_type {
            Some(KeyType::RSA) => {
                let a = self
                    .session
                    .get_attributes(h, &[AttributeType::Modulus, AttributeType::PublicExponent])?;
                let n = bytes_attr(&a, AttributeType::Modulus)
                    .ok_or_else(|| TokenError::Unsupported("RSA key without modulus".into()))?;
                let e = bytes_attr(&a, AttributeType::PublicExponent)
                    .ok_or_else(|| TokenError::Unsupported("RSA key without exponent".into()))?;
                Ok(der::rsa_spki(&n, &e))
            }
            Some(KeyType::EC) => {
                let a = self
                    .session
                    .get_attributes(h, &[AttributeType::EcParams, AttributeType::EcPoint])?;
                let params = bytes_attr(&a, AttributeType::EcParams)
                    .ok_or_else(|| TokenError::Unsupported("EC key without parameters".into()))?;
                let point = bytes_attr(&a, AttributeType::EcPoint)
                    .ok_or_else(|| TokenError::Unsupported("EC key without point".into()))?;
                Ok(der::ec_spki(&params, &der::unwrap_ec_point(&point)))
            }
            other => Err(TokenError::Unsupported(format!("key type {other:?}"))),
        }
    }

    /// The scheme the private key `id` signs with.
    pub fn key_scheme(&self, id: &[u8]) -> Result<SignatureScheme> {
        let h = self.find_one(ObjectClass::PRIVATE_KEY, id, "private key")?;
        self.scheme_of(h)
    }

    fn scheme_of(&self, h: ObjectHandle) -> Result<SignatureScheme> {
        if let Some(s) = self.schemes.borrow().get(&h.handle()) {
            return Ok(*s);
        }
        let scheme = self.read_scheme(h)?;
        self.schemes.borrow_mut().insert(h.handle(), scheme);
        Ok(scheme)
    }

    fn read_scheme(&self, h: ObjectHandle) -> Result<SignatureScheme> {
        let a = self
            .session
            .get_attributes(h, &[AttributeType::KeyType, AttributeType::EcParams])?;
        let key_type = a.iter().find_map(|a| match a {
            Attribute::KeyType(k) => Some(*k),
            _ => None,
        });
        match key_type {
            Some(KeyType::RSA) => Ok(SignatureScheme::RsaPkcs1Sha256),
            Some(KeyType::EC)
                if bytes_attr(&a, AttributeType::EcParams).as_deref() == Some(&P256_PARAMS[..]) =>
            {
                Ok(SignatureScheme::EcdsaP256Sha256)
            }
            other => Err(TokenError::Unsupported(format!(
                "signing with key type {other:?}"
            ))),
        }
    }

    /// Every private key on the key (needs a login on most keys).
    pub fn keys(&self) -> Result<Vec<KeyObject>> {
        let handles = self.find(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
        let mut out = Vec::new();
        for h in handles {
            let attrs = self
                .session
                .get_attributes(h, &[AttributeType::Id, AttributeType::Label])?;
            out.push(KeyObject {
                id: bytes_attr(&attrs, AttributeType::Id).unwrap_or_default(),
                label: text_attr(&attrs, AttributeType::Label),
                scheme: self.scheme_of(h).ok(),
            });
        }
        Ok(out)
    }

    /// Deletes both halves of key pair `id`.
    pub fn delete_key_pair(&self, id: &[u8]) -> Result<()> {
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            for h in self.find(&[Attribute::Class(class), Attribute::Id(id.to_vec())])? {
                self.schemes.borrow_mut().remove(&h.handle());
                self.session.destroy_object(h)?;
            }
        }
        Ok(())
    }

    fn has_sha256_rsa(&self) -> bool {
        // Asked for by name: listing every mechanism makes cryptoki log an error for each
        // vendor mechanism it has no name for.
        *self.sha256_rsa.get_or_init(|| {
            self.module
                .ctx
                .get_mechanism_info(self.token.slot, MechanismType::SHA256_RSA_PKCS)
                .is_ok()
        })
    }

    /// Signs `message` with private key `id`, hashing in software where the key has no
    /// combined mechanism. Returns the signature in its X.509 form (DER for ECDSA).
    pub fn sign(&self, id: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        let h = self.find_one(ObjectClass::PRIVATE_KEY, id, "private key")?;
        let scheme = self.scheme_of(h)?;
        self.sign_with(h, scheme, message)
    }

    fn sign_with(
        &self,
        h: ObjectHandle,
        scheme: SignatureScheme,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        match scheme {
            SignatureScheme::RsaPkcs1Sha256 if self.has_sha256_rsa() => {
                Ok(self.session.sign(&Mechanism::Sha256RsaPkcs, h, message)?)
            }
            SignatureScheme::RsaPkcs1Sha256 => {
                let mut di = SHA256_DIGEST_INFO_PREFIX.to_vec();
                di.extend_from_slice(&Sha256::digest(message));
                Ok(self.session.sign(&Mechanism::RsaPkcs, h, &di)?)
            }
            SignatureScheme::EcdsaP256Sha256 => {
                let raw = self
                    .session
                    .sign(&Mechanism::Ecdsa, h, &Sha256::digest(message))?;
                Ok(ecdsa_raw_to_der(&raw)?)
            }
        }
    }

    /// Signs `digest`, made by `alg` elsewhere, with private key `id`: an RSA key as
    /// PKCS#1 v1.5 over the digest's DigestInfo (CKM_RSA_PKCS), an EC key as ECDSA over the
    /// digest itself (CKM_ECDSA). Returns the key's scheme and the signature as the key made
    /// it: the RSA signature block, or ECDSA's fixed-length `r‖s`. A digest of the wrong
    /// length for `alg` is refused before the key is asked.
    pub fn sign_prehashed(
        &self,
        id: &[u8],
        alg: HashAlg,
        digest: &[u8],
    ) -> Result<(SignatureScheme, Vec<u8>)> {
        alg.check(digest)?;
        let h = self.find_one(ObjectClass::PRIVATE_KEY, id, "private key")?;
        let scheme = self.scheme_of(h)?;
        let signature = match scheme {
            SignatureScheme::RsaPkcs1Sha256 => {
                self.session
                    .sign(&Mechanism::RsaPkcs, h, &alg.digest_info(digest)?)?
            }
            SignatureScheme::EcdsaP256Sha256 => self.session.sign(&Mechanism::Ecdsa, h, digest)?,
        };
        Ok((scheme, signature))
    }

    /// A signer over key pair `id`, for building CSRs and proofs of possession.
    pub fn signer(&self, id: &[u8]) -> Result<TokenSigner<'_>> {
        let handle = self.find_one(ObjectClass::PRIVATE_KEY, id, "private key")?;
        Ok(TokenSigner {
            session: self,
            handle,
            scheme: self.scheme_of(handle)?,
            spki: self.public_key_spki(id)?,
        })
    }
}

/// A key pair on a token seen as a [`KeySigner`].
#[derive(Debug)]
pub struct TokenSigner<'a> {
    session: &'a TokenSession,
    handle: ObjectHandle,
    scheme: SignatureScheme,
    spki: Vec<u8>,
}

impl KeySigner for TokenSigner<'_> {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, PkiError> {
        self.session
            .sign_with(self.handle, self.scheme, message)
            .map_err(|e| PkiError::Signer(Box::new(e)))
    }
}
