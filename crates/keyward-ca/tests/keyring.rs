//! The admin token through the real OS keyring: the kernel's keyutils store, in a session
//! keyring of its own (`keyctl session -`). `keyward-ca login` stores the token, `keyctl`
//! finds it in the kernel, and another `keyward-ca` process reads it back to reach the admin
//! API, with no token file it could have used instead. Without a token in the keyring the
//! tools fall back to `<data dir>/admin.token`, and say so. The CA runs with its SMS sandbox,
//! whose outbox is the admin call made here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use keyward_ca::{Config, Server};

const TOOL: &str = env!("CARGO_BIN_EXE_keyward-ca");

/// Runs `script` with `sh` in a new session keyring; `$KW` is the `keyward-ca` binary.
fn in_keyring_session(script: &str, env: &[(&str, &str)]) -> Output {
    let out = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", script])
        .env("KW", TOOL)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("keyctl (Debian package keyutils; cargo xtask setup installs it)");
    eprintln!(
        "{script}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn login_stores_the_admin_token_in_the_kernel_keyring_and_the_tools_read_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(Server::start(Config::sandbox(dir.path().join("ca"))))
        .unwrap();
    // The port makes the URL, and so the keyring entry, this run's own.
    let url = server.base_url();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, server.root_pem()).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, server.admin_token()).unwrap();
    // A data folder with no admin.token: whatever succeeds there used the keyring.
    let empty = dir.path().join("no-token-here");
    std::fs::create_dir(&empty).unwrap();
    let description = format!("keyring:{url}@keyward-ca-admin");
    let p = |p: &Path| p.display().to_string();
    let (root_s, token_s, empty_s, ca_s) =
        (p(&root), p(&token_file), p(&empty), p(server.data_dir()));
    let env = [
        ("URL", url.as_str()),
        ("ROOT", root_s.as_str()),
        ("TOKEN", token_s.as_str()),
        ("EMPTY", empty_s.as_str()),
        ("CADATA", ca_s.as_str()),
        ("DESC", description.as_str()),
    ];

    // Nothing in the keyring yet: the token file is the fallback, and a warning says so.
    let out = in_keyring_session(
        r#"exec "$KW" sms --json --url "$URL" --root "$ROOT" --data-dir "$CADATA""#,
        &env,
    );
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("WARN") && stderr.contains("no admin token in the OS keyring"),
        "{stderr}"
    );
    // Nor in an empty data folder: refused, naming the file it looked for.
    let out = in_keyring_session(
        r#"exec "$KW" sms --json --url "$URL" --root "$ROOT" --data-dir "$EMPTY""#,
        &env,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("admin.token"));

    // One session: login, the kernel holds the token, a second process reads it back.
    let out = in_keyring_session(
        r#"set -e
"$KW" login --url "$URL" --token-file "$TOKEN" --data-dir "$EMPTY"
id=$(keyctl search @s user "$DESC")
echo "in the kernel: $(keyctl pipe "$id")"
"$KW" sms --json --url "$URL" --root "$ROOT" --data-dir "$EMPTY""#,
        &env,
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("stored in the OS keyring"),
        "login said where: {stdout}"
    );
    assert!(
        stdout.contains(&format!("in the kernel: {}", server.admin_token())),
        "keyctl found the token under {description}: {stdout}"
    );
    assert!(
        stderr.contains("admin token from the OS keyring"),
        "the tool said where its token came from: {stderr}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
    let json = stdout
        .find('{')
        .map(|i| &stdout[i..])
        .expect("the outbox as JSON");
    let outbox: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(outbox["messages"].is_array(), "{outbox}");

    // The kernel keeps the key in the user's persistent keyring: take it out again.
    let out = in_keyring_session(
        r#"keyctl get_persistent @s >/dev/null 2>&1; id=$(keyctl search @s user "$DESC") && keyctl invalidate "$id""#,
        &env,
    );
    assert!(out.status.success());
}
