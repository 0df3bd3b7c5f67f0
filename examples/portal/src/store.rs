//! Accounts, bindings, bids and sessions, in memory. Passwords are kept as PBKDF2-HMAC-SHA256
//! with a salt of their own; sessions are random identifiers in an HttpOnly cookie.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use time::OffsetDateTime;

/// What 绑定 records of a certificate against an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The certificate's serial, upper-case hex.
    pub serial: String,
    /// The organisation's unified social credit code.
    pub credit_code: Option<String>,
    /// The organisation's name.
    pub organisation: Option<String>,
    /// The certificate, base64 DER: the page finds the bound key by it.
    pub certificate: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub bound_at: OffsetDateTime,
}

/// A bid as verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bid {
    /// The project (项目编号).
    pub project: String,
    /// The price, in yuan.
    pub amount: String,
    /// The text the server wrote and the key signed.
    pub text: String,
    /// The signer's certificate serial.
    pub signer_serial: String,
    /// The signing time the signature carries.
    #[serde(with = "time::serde::rfc3339::option")]
    pub signing_time: Option<OffsetDateTime>,
    /// The CMS, base64 DER, kept as evidence.
    pub cms: String,
}

struct Account {
    salt: [u8; 16],
    hash: [u8; 32],
    binding: Option<Binding>,
    bids: Vec<Bid>,
}

/// One browser's session.
#[derive(Debug, Default, Clone)]
pub(crate) struct Session {
    /// Logged in as.
    pub account: Option<String>,
    /// The last nonce issued to this session: the one its next token must answer.
    pub nonce: Option<String>,
    /// Bid texts written for this session, by draft id.
    pub drafts: HashMap<String, (String, String, String)>,
}

#[derive(Default)]
pub(crate) struct Store {
    accounts: Mutex<HashMap<String, Account>>,
    sessions: Mutex<HashMap<String, Session>>,
}

const ITERATIONS: u32 = 20_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// 32 bytes from the system's generator, base64url; `None` if the generator fails.
pub(crate) fn random_id() -> Option<String> {
    let mut b = [0u8; 32];
    SystemRandom::new().fill(&mut b).ok()?;
    Some(URL_SAFE_NO_PAD.encode(b))
}

fn derive(salt: &[u8], password: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

/// Why a store operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    AccountExists,
    BadPassword,
    AlreadyBound,
    CertificateTaken,
    NoSuchAccount,
    /// The system's random generator failed.
    Unavailable,
}

impl Store {
    pub(crate) fn register(&self, account: &str, password: &str) -> Result<(), Refused> {
        let mut accounts = lock(&self.accounts);
        if accounts.contains_key(account) {
            return Err(Refused::AccountExists);
        }
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Refused::Unavailable)?;
        accounts.insert(
            account.to_owned(),
            Account {
                salt,
                hash: derive(&salt, password),
                binding: None,
                bids: Vec::new(),
            },
        );
        Ok(())
    }

    pub(crate) fn check_password(&self, account: &str, password: &str) -> Result<(), Refused> {
        let accounts = lock(&self.accounts);
        let Some(a) = accounts.get(account) else {
            // Same work, same answer as a wrong password.
            let _ = derive(&[0u8; 16], password);
            return Err(Refused::BadPassword);
        };
        let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &a.salt,
            password.as_bytes(),
            &a.hash,
        )
        .map_err(|_| Refused::BadPassword)
    }

    pub(crate) fn bind(&self, account: &str, binding: Binding) -> Result<(), Refused> {
        let mut accounts = lock(&self.accounts);
        let taken = accounts.iter().any(|(name, a)| {
            name != account
                && a.binding
                    .as_ref()
                    .is_some_and(|b| b.issuer == binding.issuer && b.serial == binding.serial)
        });
        let a = accounts.get_mut(account).ok_or(Refused::NoSuchAccount)?;
        if a.binding.is_some() {
            return Err(Refused::AlreadyBound);
        }
        if taken {
            return Err(Refused::CertificateTaken);
        }
        a.binding = Some(binding);
        Ok(())
    }

    pub(crate) fn binding(&self, account: &str) -> Option<Binding> {
        lock(&self.accounts)
            .get(account)
            .and_then(|a| a.binding.clone())
    }

    /// The account a certificate (issuer and serial) is bound to.
    pub(crate) fn account_of(&self, issuer: &str, serial: &str) -> Option<String> {
        lock(&self.accounts)
            .iter()
            .find(|(_, a)| {
                a.binding
                    .as_ref()
                    .is_some_and(|b| b.issuer == issuer && b.serial == serial)
            })
            .map(|(name, _)| name.clone())
    }

    pub(crate) fn add_bid(&self, account: &str, bid: Bid) {
        if let Some(a) = lock(&self.accounts).get_mut(account) {
            a.bids.push(bid);
        }
    }

    pub(crate) fn bids(&self, account: &str) -> Vec<Bid> {
        lock(&self.accounts)
            .get(account)
            .map(|a| a.bids.clone())
            .unwrap_or_default()
    }

    pub(crate) fn session(&self, id: &str) -> Option<Session> {
        lock(&self.sessions).get(id).cloned()
    }

    /// A new session holding `session`; its id.
    pub(crate) fn new_session(&self, session: Session) -> Result<String, Refused> {
        let id = random_id().ok_or(Refused::Unavailable)?;
        lock(&self.sessions).insert(id.clone(), session);
        Ok(id)
    }

    pub(crate) fn end_session(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut Session)) {
        if let Some(s) = lock(&self.sessions).get_mut(id) {
            f(s);
        }
    }
}
