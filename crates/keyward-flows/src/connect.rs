//! Reaching the CA service: every front end makes its client here, from the same small
//! [`CaSettings`], so the pinned root, the timeouts and the transport rules are the same
//! whichever window or command the operator uses.
//!
//! The root is read once per client, from a PEM text or a file of at most
//! [`ROOT_FILE_MAX_BYTES`] holding exactly one certificate ([`read_root`]); the client then
//! trusts that root alone for TLS and checks what the CA issues against it. Plain `http://`
//! is refused unless it names this computer (the client's own rule).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keyward_ca_client::ClientConfig;
pub use keyward_ca_client::{CaClient, ClientError, PinnedRoot, ROOT_FILE_MAX_BYTES};

use crate::journal::Journal;
use crate::{Env, FlowError};

/// How long one request to the CA may take before it counts as unanswered.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the CA's root certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    /// A PEM file, read when the client is made (`--ca-root`, the desktop's pinned copy).
    File(PathBuf),
    /// PEM text already in hand (tests, a root the CA service handed over in a demo).
    Pem(String),
}

/// Everything a front end decides about the CA client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSettings {
    /// The service's base address, e.g. `https://ca.example.cn:8443`.
    pub url: String,
    /// The one root trusted for TLS and for what the CA issues; required for https.
    pub root: Option<RootSource>,
    /// Per-request timeout (the connection itself gets at most 10 s of it).
    pub timeout: Duration,
    /// A new connection for every request instead of kept-alive ones (tests that cut
    /// connections one request at a time).
    pub fresh_connections: bool,
}

impl CaSettings {
    /// The service at `url` under `root`, with the default timeout and kept-alive
    /// connections.
    pub fn new(url: impl Into<String>, root: Option<RootSource>) -> Self {
        CaSettings {
            url: url.into(),
            root,
            timeout: DEFAULT_TIMEOUT,
            fresh_connections: false,
        }
    }
}

/// Why a root file cannot be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootProblem {
    /// It cannot be read, is not text, holds no certificate, or its certificate does not
    /// parse.
    Unreadable,
    /// It is larger than one certificate can be ([`ROOT_FILE_MAX_BYTES`]).
    TooLarge,
    /// It holds this many certificates: a chain or a bundle, not one root.
    Bundle(usize),
}

impl std::fmt::Display for RootProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootProblem::Unreadable => f.write_str("not a readable certificate"),
            RootProblem::TooLarge => write!(
                f,
                "larger than {} KiB, so not one certificate",
                ROOT_FILE_MAX_BYTES / 1024
            ),
            RootProblem::Bundle(n) => write!(f, "{n} certificates, not one root"),
        }
    }
}

fn refused(path: &Path, problem: RootProblem) -> FlowError {
    FlowError::CaRoot {
        path: path.to_owned(),
        problem,
    }
}

/// Reads a root file: its PEM text and its one certificate. A file over
/// [`ROOT_FILE_MAX_BYTES`] is refused before more is read, whatever size the file system
/// declares (a pipe or a device declares none).
pub fn read_root_file(path: &Path) -> Result<(String, PinnedRoot), FlowError> {
    let file = std::fs::File::open(path).map_err(|_| refused(path, RootProblem::Unreadable))?;
    let limit = ROOT_FILE_MAX_BYTES as u64;
    if file.metadata().map(|m| m.len()).unwrap_or(0) > limit {
        return Err(refused(path, RootProblem::TooLarge));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| refused(path, RootProblem::Unreadable))?;
    if bytes.len() as u64 > limit {
        return Err(refused(path, RootProblem::TooLarge));
    }
    let text = String::from_utf8(bytes).map_err(|_| refused(path, RootProblem::Unreadable))?;
    match text.matches("-----BEGIN CERTIFICATE-----").count() {
        0 => return Err(refused(path, RootProblem::Unreadable)),
        1 => {}
        n => return Err(refused(path, RootProblem::Bundle(n))),
    }
    let root = PinnedRoot::from_pem(&text).map_err(|e| {
        tracing::info!(file = %path.display(), error = %e, "not a usable root");
        refused(path, RootProblem::Unreadable)
    })?;
    Ok((text, root))
}

/// The root in a file, as the client would pin it.
pub fn read_root(path: &Path) -> Result<PinnedRoot, FlowError> {
    read_root_file(path).map(|(_, root)| root)
}

/// A client of the CA service as `settings` describe it.
pub fn connect(settings: &CaSettings) -> Result<CaClient, FlowError> {
    let root_pem = match &settings.root {
        None => None,
        Some(RootSource::Pem(text)) => Some(text.clone()),
        Some(RootSource::File(path)) => Some(read_root_file(path)?.0),
    };
    let config = ClientConfig {
        timeout: settings.timeout,
        fresh_connections: settings.fresh_connections,
        ..ClientConfig::new(settings.url.clone(), root_pem)
    };
    CaClient::new(&config).map_err(FlowError::Ca)
}

impl Env {
    /// What the workflows need for a key reached through `module`: the CA client as
    /// `settings` describe it, and the journal in `journal`.
    pub fn from_settings(
        module: Arc<crate::Module>,
        settings: &CaSettings,
        journal: Journal,
    ) -> Result<Env, FlowError> {
        Ok(Env::new(module, connect(settings)?, journal))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn self_signed(cn: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_root_file_is_one_certificate_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("root.pem");
        std::fs::write(&one, self_signed("Root")).unwrap();
        let (text, root) = read_root_file(&one).unwrap();
        assert_eq!(PinnedRoot::from_pem(&text).unwrap(), root);

        let problem = |name: &str, body: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            match read_root(&p) {
                Err(FlowError::CaRoot { path, problem }) => {
                    assert_eq!(path, p);
                    problem
                }
                other => panic!("{name}: {other:?}"),
            }
        };
        let two = self_signed("A") + &self_signed("B");
        assert_eq!(problem("two.pem", two.as_bytes()), RootProblem::Bundle(2));
        assert_eq!(
            problem("big.pem", &vec![b'A'; ROOT_FILE_MAX_BYTES + 1]),
            RootProblem::TooLarge
        );
        assert_eq!(problem("none.pem", b"hello"), RootProblem::Unreadable);
        assert_eq!(problem("bin.pem", &[0xFF, 0xFE]), RootProblem::Unreadable);
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            read_root(&missing),
            Err(FlowError::CaRoot {
                problem: RootProblem::Unreadable,
                ..
            })
        ));
    }

    #[test]
    fn the_client_is_made_from_the_settings_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("root.pem");
        let pem = self_signed("Root");
        std::fs::write(&file, &pem).unwrap();
        for root in [RootSource::File(file.clone()), RootSource::Pem(pem.clone())] {
            let ca = connect(&CaSettings::new("https://ca.example:8443/", Some(root))).unwrap();
            assert_eq!(ca.base_url(), "https://ca.example:8443");
            assert!(ca.pinned_root().is_some());
        }
        // https without a root, and plain http to another computer, are refused.
        assert!(matches!(
            connect(&CaSettings::new("https://ca.example", None)),
            Err(FlowError::Ca(ClientError::Config(_)))
        ));
        assert!(matches!(
            connect(&CaSettings::new("http://ca.example", None)),
            Err(FlowError::Ca(ClientError::Config(_)))
        ));
        assert!(connect(&CaSettings::new("http://127.0.0.1:1", None)).is_ok());
        // A root file that went bad is named as such.
        std::fs::write(&file, pem.repeat(2)).unwrap();
        assert!(matches!(
            connect(&CaSettings::new(
                "https://ca.example",
                Some(RootSource::File(file))
            )),
            Err(FlowError::CaRoot {
                problem: RootProblem::Bundle(2),
                ..
            })
        ));
    }
}
