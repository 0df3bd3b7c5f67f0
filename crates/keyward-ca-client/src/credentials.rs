//! The service credential in the OS keyring.
//!
//! Keyward keeps one kind of secret at rest: the admin token of a CA service, used by the
//! issuing station, the reviewer tools and the demo. It lives in the OS keyring under the
//! service `keyward-ca-admin` and the service's base URL. On Linux the kernel keyring
//! (keyutils) is used, which needs no desktop session; elsewhere the platform's own store.
//! PINs are never stored here or anywhere else.

use keyward_ca_api::Secret;

use crate::ClientError;

/// The keyring service name of the admin token.
pub const ADMIN_SERVICE: &str = "keyward-ca-admin";

fn err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Credentials(e.to_string())
}

/// Makes the OS keyring the store for this process (idempotent). Tests may install another
/// store with `keyring_core::set_default_store` instead.
pub fn use_os_keyring() -> Result<(), ClientError> {
    #[cfg(target_os = "linux")]
    {
        if keyring_core::get_default_store().is_none() {
            let store = linux_keyutils_keyring_store::Store::new().map_err(err)?;
            keyring_core::set_default_store(store);
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn entry(base_url: &str) -> Result<keyring_core::Entry, ClientError> {
    keyring_core::Entry::new(ADMIN_SERVICE, base_url).map_err(err)
}

#[cfg(not(target_os = "linux"))]
fn entry(base_url: &str) -> Result<keyring::Entry, ClientError> {
    keyring::Entry::new(ADMIN_SERVICE, base_url).map_err(err)
}

/// Stores the admin token of the service at `base_url`.
pub fn save_admin_token(base_url: &str, token: &Secret) -> Result<(), ClientError> {
    entry(base_url)?.set_password(token.expose()).map_err(err)
}

/// The stored admin token of the service at `base_url`, if any.
pub fn load_admin_token(base_url: &str) -> Result<Option<Secret>, ClientError> {
    match entry(base_url)?.get_password() {
        Ok(t) => Ok(Some(Secret::new(t))),
        Err(keyring_core::Error::NoEntry) => Ok(None),
        Err(e) => Err(err(e)),
    }
}

/// Forgets the admin token of the service at `base_url`; `false` when there was none.
pub fn delete_admin_token(base_url: &str) -> Result<bool, ClientError> {
    match entry(base_url)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring_core::Error::NoEntry) => Ok(false),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_a_keyring_store() {
        // The keyring crate's in-memory store: same interface, no kernel session needed.
        keyring_core::set_default_store(keyring_core::mock::Store::new().expect("mock store"));
        let url = "https://ca.test:8443";
        assert!(load_admin_token(url).expect("load").is_none());
        save_admin_token(url, &Secret::new("tok-123")).expect("save");
        assert_eq!(
            load_admin_token(url)
                .expect("load")
                .map(|s| s.expose().to_owned()),
            Some("tok-123".into())
        );
        assert!(
            load_admin_token("https://other.test")
                .expect("load")
                .is_none(),
            "per service"
        );
        assert!(delete_admin_token(url).expect("delete"));
        assert!(!delete_admin_token(url).expect("delete again"));
    }
}
