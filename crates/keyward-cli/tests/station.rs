//! A key issued by the station command (`keyward-ca issue`) is listed by `keyward` with its
//! organisation certificate, and awaits activation at the CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use keyward_ca::{Config, Server};
use serde_json::Value;
use softhsm_fixtures::{FixtureSet, KeyState, SO_PIN, sim_module};

#[test]
fn keyward_ca_issue_provisions_a_key_that_keyward_lists() {
    let (set, _module, manifest) = FixtureSet::build(&[KeyState::Blank], &sim_module()).unwrap();
    let serial = manifest.tokens[0].serial.clone();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(Server::start(Config::sandbox(dir.path().join("ca"))))
        .unwrap();
    std::fs::write(dir.path().join("root.pem"), server.root_pem()).unwrap();
    std::fs::write(dir.path().join("admin.token"), server.admin_token()).unwrap();
    let station = sim_module().with_file_name("keyward-ca");
    assert!(
        station.exists(),
        "{} is missing: cargo build -p keyward-ca",
        station.display()
    );

    let uscc = keyward_pki::uscc::with_check_character("91310000MA1K00001").unwrap();
    let mut child = Command::new(&station)
        .args([
            "issue",
            "--url",
            &server.base_url(),
            "--token",
            &serial,
            "--key",
            "rsa",
            "--years",
            "2",
        ])
        .arg("--root")
        .arg(dir.path().join("root.pem"))
        .arg("--token-file")
        .arg(dir.path().join("admin.token"))
        .arg("--module")
        .arg(sim_module())
        .args([
            "--org-name",
            "上海市发证测试有限公司",
            "--uscc",
            &uscc,
            "--address",
            "上海市浦东新区示例路 3 号",
        ])
        .args([
            "--handler-name",
            "赵经办",
            "--id-number",
            &softhsm_fixtures::resident_id("31011519800101001"),
        ])
        .args(["--phone", "13700137000"])
        .envs(set.env())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Should the station fail before reading the PIN, its exit code says so below.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{SO_PIN}\n").as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registered: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(registered["status"]["state"], "awaiting_activation");
    // The issue business's secret is printed for the organisation, once.
    assert_eq!(registered["issue"]["business"]["kind"], "issue");
    assert_eq!(
        registered["issue"]["secret"].as_str().map(str::len),
        Some(64)
    );

    let shown = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(["cert", "show", "--json", "--token", &serial])
        .envs(set.env())
        .env("KEYWARD_PKCS11_MODULE", sim_module())
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let v: Value = serde_json::from_slice(&shown.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&shown.stdout)));
    let org = &v["certificates"][0];
    assert_eq!(org["role"], "organisation");
    assert_eq!(org["summary"]["organization"], "上海市发证测试有限公司");
    assert_eq!(org["summary"]["credit_code"], uscc.as_str());
    assert_eq!(org["summary"]["key"]["type"], "rsa");
    assert_eq!(
        v["certificates"].as_array().unwrap().len(),
        3,
        "certificate and its two-level chain"
    );
    // `keyward tokens` shows the key as Home does: the key alone raises no flag; with the
    // CA named, the CA's word that it waits for activation decides the next step.
    let tokens = |with_ca: bool| -> Value {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
        cmd.args(["tokens", "--json"])
            .envs(set.env())
            .env("KEYWARD_PKCS11_MODULE", sim_module())
            .env_remove("KEYWARD_CA_URL")
            .env_remove("KEYWARD_CA_ROOT");
        if with_ca {
            cmd.env("KEYWARD_CA_URL", server.base_url())
                .env("KEYWARD_CA_ROOT", dir.path().join("root.pem"));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let alone = tokens(false);
    assert_eq!(alone[0]["token"]["serial"], serial.as_str());
    assert_eq!(alone[0]["next"]["action"], "nothing");
    assert!(alone[0]["standing"].is_null());
    let asked = tokens(true);
    assert_eq!(asked[0]["standing"]["state"], "awaiting_activation");
    assert_eq!(asked[0]["next"]["action"], "activate");
    assert_eq!(
        asked[0]["certificate"]["organization"],
        "上海市发证测试有限公司"
    );

    // The station replaced the factory SO PIN with the escrowed one (seen by a fresh
    // process: SoftHSM keeps a loaded token's PINs as they were when it loaded).
    let so_login = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(sim_module())
        .args([
            "--token-label",
            "kw-blank",
            "--init-pin",
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            SO_PIN,
            "--new-pin",
            "Never#2026pin",
        ])
        .envs(set.env())
        .output()
        .unwrap();
    assert!(
        !so_login.status.success(),
        "the factory SO PIN still opens the key"
    );
    assert!(
        String::from_utf8_lossy(&so_login.stderr).contains("CKR_PIN_INCORRECT"),
        "{}",
        String::from_utf8_lossy(&so_login.stderr)
    );
}
