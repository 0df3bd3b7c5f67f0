//! The client trusts one root, the one it pins, and nothing else: tried against a real CA
//! service over TLS on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward_ca_client::{CaClient, ClientConfig, ClientError};

fn other_root() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Keyward Reference Root CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn a_server_outside_the_pinned_root_is_refused() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = runtime
        .block_on(keyward_ca::Server::start(keyward_ca::Config::sandbox(
            dir.path().join("ca"),
        )))
        .unwrap();
    let url = server.base_url();

    // The CA's own root: the service answers.
    let pinned = CaClient::new(&ClientConfig::new(
        url.clone(),
        Some(server.root_pem().to_owned()),
    ))
    .unwrap();
    assert_eq!(pinned.health().unwrap().status, "ok");
    assert_eq!(
        pinned.pinned_root().unwrap().fingerprint,
        keyward_ca_client::fingerprint(
            &keyward_pki::pem::decode(server.root_pem(), "CERTIFICATE").unwrap()
        )
    );

    // Another root, even one with the same name: the handshake fails and nothing is sent.
    let stranger = CaClient::new(&ClientConfig::new(url.clone(), Some(other_root()))).unwrap();
    match stranger.health() {
        Err(ClientError::Tls(_)) => {}
        other => panic!("a server outside the pinned root was trusted: {other:?}"),
    }
    match stranger.standing("K1") {
        Err(ClientError::Tls(_)) => {}
        other => panic!("{other:?}"),
    }

    // A file holding the right root and another: refused, not trusted both.
    let bundle = format!("{}{}", server.root_pem(), other_root());
    match CaClient::new(&ClientConfig::new(url.clone(), Some(bundle))) {
        Err(ClientError::Config(m)) => assert!(m.contains("exactly one"), "{m}"),
        other => panic!("{other:?}"),
    }

    // No root at all for https, and plain http to a host that is not this computer.
    assert!(matches!(
        CaClient::new(&ClientConfig::new(url, None)),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        CaClient::new(&ClientConfig::new("http://ca.example:8750", None)),
        Err(ClientError::Config(_))
    ));
    runtime.block_on(server.shutdown());
}
