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

/// A connection the network closes during the TLS handshake is a network failure the client
/// may try again, not a certificate the operator must be warned about.
#[test]
fn a_connection_closed_mid_handshake_is_offline_not_a_certificate_problem() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hellos = Arc::new(AtomicUsize::new(0));
    let seen = hellos.clone();
    // Each connection: the ClientHello is read, then the connection closed mid-handshake.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            // The whole ClientHello record is read, so closing sends a clean end of stream
            // rather than a reset.
            let mut header = [0u8; 5];
            if stream.read_exact(&mut header).is_ok() && header[0] == 0x16 {
                let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
                if stream.read_exact(&mut body).is_ok() {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    let client = CaClient::new(&ClientConfig::new(
        format!("https://localhost:{port}"),
        Some(other_root()),
    ))
    .unwrap();
    let e = client.health().unwrap_err();
    assert!(
        matches!(e, ClientError::Offline { .. }) && e.is_transient(),
        "{e:?}"
    );
    // The idempotent request was tried again, each time reaching the handshake.
    assert!(hellos.load(Ordering::SeqCst) >= 2, "{hellos:?}");
}
