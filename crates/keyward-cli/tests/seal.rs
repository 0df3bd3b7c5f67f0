//! The electronic seal through the `keyward` binary: 申请印章 with a scan file, the CA's
//! reviewer approves, `keyward resume` installs it, `keyward seal show` exports its image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use keyward_ca::{Config, Server, ServerHandle};
use keyward_ca_api::{Handler, Organisation, OrganisationKind, ReviewDecision, Secret};
use keyward_ca_client::{CaClient, ClientConfig};
use keyward_flows::station::{StationOrder, issue};
use keyward_pki::Pin;
use keyward_token::{KeySpec, Module};
use serde_json::Value;
use softhsm_fixtures::{FixtureSet, KeyState, SO_PIN, sim_module as sim};

const ORG: &str = "深圳市印章命令行测试有限公司";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR stamped seal scan";

const PIN: &str = "Operator#2026";

fn handler() -> Handler {
    Handler {
        name: "李经办".into(),
        id_number: softhsm_fixtures::resident_id("44010619850505432"),
        phone: "13912345678".into(),
    }
}

struct World {
    set: FixtureSet,
    _module: Arc<Module>,
    _rt: tokio::runtime::Runtime,
    server: ServerHandle,
    admin: CaClient,
    serial: String,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let (set, module, manifest) = FixtureSet::build(&[KeyState::Blank], &sim()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(Server::start(Config::new(dir.path().join("ca"))))
            .unwrap();
        std::fs::write(dir.path().join("root.pem"), server.root_pem()).unwrap();
        let admin = CaClient::new(&ClientConfig::new(
            server.base_url(),
            Some(server.root_pem().to_owned()),
        ))
        .unwrap()
        .with_admin(Secret::new(server.admin_token()));
        let token = module.find(None).unwrap();
        let order = StationOrder {
            organisation: Organisation {
                name: ORG.into(),
                uscc: keyward_pki::uscc::with_check_character("91440300MA5E00002").unwrap(),
                kind: OrganisationKind::Enterprise,
                legal_address: "深圳市南山区示例路 2 号".into(),
            },
            handler: handler(),
            years: 1,
            spec: KeySpec::Rsa2048,
        };
        issue(
            &admin,
            &module,
            &token,
            &Pin::new(SO_PIN.into()),
            &order,
            None,
        )
        .unwrap();
        let serial = manifest.tokens[0].serial.clone();
        World {
            set,
            _module: module,
            _rt: rt,
            server,
            admin,
            serial,
            dir,
        }
    }

    fn keyward(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(args)
            .envs(self.set.env())
            .env("KEYWARD_PKCS11_MODULE", sim())
            .env("KEYWARD_CA_URL", self.server.base_url())
            .env("KEYWARD_CA_ROOT", self.dir.path().join("root.pem"))
            .env("KEYWARD_DATA_DIR", self.dir.path().join("client"))
            .env_remove("LANG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that fails before reading its input closes the pipe: that is its answer,
        // not the test's failure.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: &str) -> Value {
        let out = self.keyward(args, stdin);
        assert!(
            out.status.success(),
            "keyward {args:?} → {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    fn sms_code(&self) -> String {
        let outbox = self.admin.sms_outbox().unwrap();
        let msg = outbox
            .messages
            .iter()
            .filter(|m| m.key_serial.as_deref() == Some(&self.serial))
            .max_by_key(|m| m.created_at)
            .unwrap();
        let after = msg.text.split("验证码").nth(1).unwrap();
        after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
    }
}

#[test]
fn seal_apply_review_resume_install_and_show_from_the_command_line() {
    let w = World::new();
    let pin_line = format!("{PIN}\n");
    let code = w.sms_code();
    w.ok(
        &["activate", "--json", "--code", &code, "--pin-fd", "0"],
        &pin_line,
    );
    assert_eq!(w.ok(&["seal", "status", "--json"], ""), Value::Null);
    let scan = w.dir.path().join("scan.png");
    std::fs::write(&scan, PNG).unwrap();
    let scan = scan.to_str().unwrap();

    let bad = w.keyward(
        &[
            "seal", "apply", "--name", ORG, "--kind", "finance", "--pin-fd", "0", scan,
        ],
        &pin_line,
    );
    assert!(!bad.status.success());
    let b = w.ok(
        &[
            "seal", "apply", "--json", "--name", ORG, "--kind", "official", "--pin-fd", "0", scan,
        ],
        &pin_line,
    );
    assert_eq!(b["state"], "under_review", "{b}");
    let early = w.keyward(&["seal", "install", "--pin-fd", "0"], &pin_line);
    assert_eq!(
        early.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    w.admin
        .approve(
            b["id"].as_str().unwrap(),
            &ReviewDecision {
                reviewer: "王审核".into(),
                note: "ok".into(),
            },
        )
        .unwrap();

    // The journal remembers the application: resume installs the seal.
    let v = w.ok(&["resume", "--json", "--pin-fd", "0"], &pin_line);
    assert_eq!(v["name"], ORG, "{v}");
    assert_eq!(v["verified"], true);

    let image = w.dir.path().join("seal.png");
    let v = w.ok(
        &[
            "seal",
            "show",
            "--json",
            "--export-image",
            image.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(v["name"], ORG);
    assert_eq!(v["kind"], "official");
    assert_eq!(v["image_type"], "PNG");
    assert_eq!(std::fs::read(&image).unwrap(), PNG);
    let text = w.keyward(&["seal", "show"], "");
    assert!(String::from_utf8_lossy(&text.stdout).contains("公章"));
    let s = w.ok(&["seal", "status", "--json"], "");
    assert_eq!(s["state"], "completed");
}
