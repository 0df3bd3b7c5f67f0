//! Challenges: a nonce the portal issues to one browser session and takes back once, with the
//! token that answers it.
//!
//! A nonce is 32 bytes (256 bits) from the system's generator, base64 (44 characters). It is
//! taken at most once: a second token for the same nonce is `nonce_reused`, a nonce this store
//! never issued `nonce_unknown`, one older than the store's limit (five minutes unless told
//! otherwise) `nonce_expired`. The portal keeps which nonce it gave to which session and passes
//! that one, never the one a request claims.

use std::collections::HashMap;
use std::sync::Mutex;

use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::{Rule, VerifyError};

/// The default longest time between issuing a nonce and taking it.
pub const MAX_AGE: Duration = Duration::minutes(5);

/// A nonce as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The nonce, base64: what the page passes to `keyward.authenticate`.
    pub nonce: String,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
}

/// Issued and spent nonces, in memory.
#[derive(Debug)]
pub struct Nonces {
    max_age: Duration,
    rng: SystemRandom,
    issued: Mutex<HashMap<String, OffsetDateTime>>,
    spent: Mutex<HashMap<String, OffsetDateTime>>,
}

impl Default for Nonces {
    fn default() -> Self {
        Nonces::new(MAX_AGE)
    }
}

impl Nonces {
    /// A store whose nonces live at most `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Nonces {
            max_age,
            rng: SystemRandom::new(),
            issued: Mutex::new(HashMap::new()),
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a fresh nonce at `now`.
    pub fn issue(&self, now: OffsetDateTime) -> Result<Challenge, VerifyError> {
        let mut bytes = [0u8; 32];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| VerifyError::new(Rule::NonceUnknown, "the system's generator failed"))?;
        let nonce = keyward_pki::pem::base64(&bytes);
        self.prune(now);
        lock(&self.issued).insert(nonce.clone(), now);
        Ok(Challenge {
            nonce,
            issued_at: now,
        })
    }

    /// Takes `nonce` at `now`: it is spent whatever the outcome.
    pub fn take(&self, nonce: &str, now: OffsetDateTime) -> Result<(), VerifyError> {
        if lock(&self.spent).contains_key(nonce) {
            return Err(VerifyError::new(
                Rule::NonceReused,
                "this nonce was already used",
            ));
        }
        let issued = lock(&self.issued).remove(nonce);
        let Some(issued_at) = issued else {
            return Err(VerifyError::new(
                Rule::NonceUnknown,
                "this nonce was not issued here",
            ));
        };
        lock(&self.spent).insert(nonce.to_owned(), issued_at);
        if now - issued_at > self.max_age {
            return Err(VerifyError::new(
                Rule::NonceExpired,
                format!("issued {} s ago", (now - issued_at).whole_seconds()),
            ));
        }
        Ok(())
    }

    /// Forgets what is too old to matter: unused nonces past their age, spent ones past it
    /// twice over (a token for one of those is refused as unknown instead).
    fn prune(&self, now: OffsetDateTime) {
        let age = self.max_age;
        lock(&self.issued).retain(|_, at| now - *at <= age);
        lock(&self.spent).retain(|_, at| now - *at <= age * 2);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_taken_once_and_only_while_fresh() {
        let store = Nonces::default();
        let now = OffsetDateTime::now_utc();
        let c = store.issue(now).unwrap();
        assert_eq!(c.nonce.len(), 44);
        assert_ne!(store.issue(now).unwrap().nonce, c.nonce);
        store.take(&c.nonce, now + Duration::seconds(10)).unwrap();
        assert_eq!(
            store.take(&c.nonce, now).unwrap_err().rule,
            Rule::NonceReused
        );
        assert_eq!(
            store
                .take("bm90IGlzc3VlZCBoZXJlIGF0IGFsbCwgbm90IGV2ZXIu", now)
                .unwrap_err()
                .rule,
            Rule::NonceUnknown
        );
        let stale = store.issue(now).unwrap();
        assert_eq!(
            store
                .take(&stale.nonce, now + MAX_AGE + Duration::seconds(1))
                .unwrap_err()
                .rule,
            Rule::NonceExpired
        );
        // Spent even so: it cannot be retried.
        assert_eq!(
            store.take(&stale.nonce, now).unwrap_err().rule,
            Rule::NonceReused
        );
    }
}
