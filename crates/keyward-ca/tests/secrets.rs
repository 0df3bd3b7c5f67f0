//! Secrets kept apart from the data, and the offline root, tried from outside: through the
//! `keyward-ca` binary as an operator runs it, and over HTTPS against what it serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyward-ca"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = ca(args);
    assert!(
        out.status.success(),
        "keyward-ca {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// An offline root in `dir/root`, and a secrets directory `dir/secrets` certified by it.
fn offline_ca(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("root");
    let secrets = dir.join("secrets");
    ok(&["root", "--root-dir", p(&root), "init"]);
    ok(&[
        "root",
        "--root-dir",
        p(&root),
        "issue",
        "--secrets-dir",
        p(&secrets),
    ]);
    ok(&[
        "secrets",
        "init",
        "--secrets-dir",
        p(&secrets),
        "--admin-token",
        "--sandbox-payments",
    ]);
    (root, secrets)
}

/// Runs `serve` on a free loopback port with `extra` arguments until it prints that it
/// listens, or returns what it said when it stopped.
fn serve(extra: &[&str]) -> Result<(std::process::Child, u16), String> {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward-ca"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line.contains("listening") => {
            std::thread::spawn(move || for _ in lines {});
            Ok((child, port))
        }
        _ => {
            let out = child.wait_with_output().unwrap();
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

fn chain_root(port: u16, pinned: &str) -> String {
    let client = keyward_ca_client::CaClient::new(&keyward_ca_client::ClientConfig::new(
        format!("https://localhost:{port}"),
        Some(pinned.to_owned()),
    ))
    .unwrap();
    client.chain().unwrap().root_pem
}

#[test]
fn instances_serve_one_hierarchy_from_a_secrets_directory_without_the_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let (root, secrets) = offline_ca(dir.path());
    assert!(!secrets.join("ca").join("root.key").exists());
    let root_pem = std::fs::read_to_string(root.join("root.crt")).unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ca.sqlite").display()
    );
    // Two instances, each with a data directory of its own, one database: one CA, whose
    // root is the offline one. A client pinning it reaches both over TLS.
    let mut children = Vec::new();
    for n in 0..2 {
        let data = dir.path().join(format!("data{n}"));
        let (child, port) = serve(&[
            "--data-dir",
            p(&data),
            "--secrets-dir",
            p(&secrets),
            "--database-url",
            &db,
        ])
        .unwrap();
        assert_eq!(chain_root(port, &root_pem).trim(), root_pem.trim());
        children.push(child);
        // Nothing secret was made in the data directory.
        let made: Vec<String> = std::fs::read_dir(&data)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(made.is_empty(), "{made:?}");
    }
    for mut c in children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

#[test]
fn serve_refuses_the_root_key_among_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (root, secrets) = offline_ca(dir.path());
    std::fs::copy(root.join("root.key"), secrets.join("ca").join("root.key")).unwrap();
    let err = serve(&[
        "--data-dir",
        p(&dir.path().join("data")),
        "--secrets-dir",
        p(&secrets),
    ])
    .unwrap_err();
    assert!(err.contains("root CA's key"), "{err}");
}

#[test]
fn serve_makes_nothing_in_a_secrets_directory_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    ok(&["secrets", "init", "--secrets-dir", p(&secrets)]);
    let before: Vec<_> = std::fs::read_dir(&secrets).unwrap().collect();
    let err = serve(&[
        "--data-dir",
        p(&dir.path().join("data")),
        "--secrets-dir",
        p(&secrets),
    ])
    .unwrap_err();
    assert!(err.contains("root issue"), "{err}");
    assert!(!secrets.join("ca").exists(), "no hierarchy of its own");
    assert_eq!(std::fs::read_dir(&secrets).unwrap().count(), before.len());
}

#[test]
fn secrets_others_may_read_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (_, secrets) = offline_ca(dir.path());
    for file in ["escrow.key", "ca/issuing.key", "payment-sandbox.key"] {
        let path = secrets.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = serve(&[
            "--data-dir",
            p(&dir.path().join("data")),
            "--secrets-dir",
            p(&secrets),
            "--sandbox-payments",
        ])
        .unwrap_err();
        assert!(err.contains("chmod 600"), "{file}: {err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn a_second_hierarchy_cannot_serve_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("ca.sqlite").display()
    );
    let (mut first, _) = serve(&[
        "--data-dir",
        p(&dir.path().join("a")),
        "--database-url",
        &db,
    ])
    .unwrap();
    // A data directory of its own makes a root of its own: refused on this database.
    let err = serve(&[
        "--data-dir",
        p(&dir.path().join("b")),
        "--database-url",
        &db,
    ])
    .unwrap_err();
    assert!(err.contains("belongs to the CA whose root"), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn renewing_the_issuing_ca_keeps_its_key_and_what_it_issued() {
    let dir = tempfile::tempdir().unwrap();
    let (root, secrets) = offline_ca(dir.path());
    let issuing = |f: &str| std::fs::read_to_string(secrets.join("ca").join(f)).unwrap();
    let (key, crt) = (issuing("issuing.key"), issuing("issuing.crt"));
    ok(&[
        "root",
        "--root-dir",
        p(&root),
        "renew",
        "--secrets-dir",
        p(&secrets),
        "--years",
        "5",
    ]);
    assert_eq!(issuing("issuing.key"), key, "the same key");
    assert_ne!(issuing("issuing.crt"), crt, "a new certificate");
    // Both chain to the root, checked by openssl.
    let old = dir.path().join("old.crt");
    std::fs::write(&old, &crt).unwrap();
    for cert in [old, secrets.join("ca").join("issuing.crt")] {
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(root.join("root.crt"))
            .arg(&cert)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // A second issue refuses to replace the issuing CA unasked.
    let out = ca(&[
        "root",
        "--root-dir",
        p(&root),
        "issue",
        "--secrets-dir",
        p(&secrets),
    ]);
    assert!(!out.status.success());
}

#[test]
fn a_balancer_certificate_chains_to_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let (root, secrets) = offline_ca(dir.path());
    let (crt, key) = (dir.path().join("lb.crt"), dir.path().join("lb.key"));
    ok(&[
        "tls-cert",
        "--secrets-dir",
        p(&secrets),
        "--name",
        "localhost",
        "--cert",
        p(&crt),
        "--key",
        p(&key),
    ]);
    let pem = std::fs::read_to_string(&crt).unwrap();
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf and issuing CA"
    );
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(root.join("root.crt"))
        .arg("-untrusted")
        .arg(&crt)
        .arg(&crt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
