//! The operator's journey through the `keyward` binary against the CA service over TLS and
//! simulator keys: activate, renew with install — interrupted by a pulled key and resumed —
//! lock out, unlock, and follow the progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use keyward_ca::{Config, Server, ServerHandle};
use keyward_ca_api::{Handler, Organisation, OrganisationKind, Secret};
use keyward_ca_client::{CaClient, ClientConfig};
use keyward_flows::station::{StationOrder, issue};
use keyward_pki::Pin;
use keyward_sim::control::{self, Effect, Fault};
use keyward_token::{KeySpec, Module};
use serde_json::Value;
use softhsm_fixtures::{FixtureSet, KeyState, SO_PIN, sim_module as sim};

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
        // The key was issued 300 days ago, by the CA's clock; renewal opens in the last 90.
        server.clock().advance(time::Duration::days(-300));
        let token = module.find(None).unwrap();
        let order = StationOrder {
            organisation: Organisation {
                name: "深圳市命令行测试有限公司".into(),
                uscc: keyward_pki::uscc::with_check_character("91440300MA5E00001").unwrap(),
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
fn activate_renew_through_a_pulled_key_lock_out_and_unlock_from_the_command_line() {
    let w = World::new();
    let pin_line = format!("{PIN}\n");

    // 激活证书, on the day of issue.
    let code = w.sms_code();
    let v = w.ok(
        &["activate", "--json", "--code", &code, "--pin-fd", "0"],
        &pin_line,
    );
    assert_eq!(v["state"], "active");

    // 证书续期: the CA (still on the day of issue) refuses; 300 days on, it accepts.
    let early = w.keyward(
        &[
            "renew",
            "apply",
            "--email",
            "cw@example.com",
            "--pin-fd",
            "0",
        ],
        &pin_line,
    );
    assert_eq!(
        early.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("90 天"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    w.server.clock().advance(time::Duration::days(300));
    let v = w.ok(
        &[
            "renew",
            "apply",
            "--json",
            "--years",
            "3",
            "--email",
            "cw@example.com",
            "--pin-fd",
            "0",
        ],
        &pin_line,
    );
    assert_eq!(v["fee_fen"], 60000);
    let unpaid = w.keyward(&["renew", "install", "--pin-fd", "0"], &pin_line);
    assert_eq!(unpaid.status.code(), Some(11));
    w.ok(&["renew", "pay", "--json", "--sandbox"], "");

    // 安装证书, with the key pulled out as the certificate is written.
    control::arm_fault(
        w.set.sim_state(),
        Fault {
            function: "C_CreateObject",
            at_call: 1,
            effect: Effect::RemoveToken,
        },
    )
    .unwrap();
    let pulled = w.keyward(&["renew", "install", "--pin-fd", "0"], &pin_line);
    assert_eq!(
        pulled.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(String::from_utf8_lossy(&pulled.stderr).contains("已拔出"));
    control::insert(w.set.sim_state(), &w.serial).unwrap();
    let progress = w.ok(&["progress", "--json"], "");
    assert_eq!(progress["resumable"], serde_json::json!(["renew"]));
    let v = w.ok(&["resume", "--json", "--pin-fd", "0"], &pin_line);
    assert_eq!(v["organization"], "深圳市命令行测试有限公司");
    let cert = w.ok(&["cert", "show", "--json"], "");
    let orgs: Vec<&Value> = cert["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "organisation")
        .collect();
    assert_eq!(
        orgs.len(),
        1,
        "one organisation certificate after the renewal"
    );

    // Ten wrong PINs lock the key; 忘记密码 brings it back.
    for _ in 0..9 {
        let out = w.keyward(
            &["pin", "change", "--pin-fd", "0"],
            "Wrong#00001\nNext#2026xx\n",
        );
        assert_eq!(out.status.code(), Some(4));
    }
    let out = w.keyward(
        &["pin", "change", "--confirm-final-try", "--pin-fd", "0"],
        "Wrong#00001\nNext#2026xx\n",
    );
    assert_eq!(out.status.code(), Some(5));
    let h = handler();
    let v = w.ok(
        &[
            "unlock",
            "apply",
            "--json",
            "--name",
            &h.name,
            "--id-number",
            &h.id_number,
            "--phone",
            &h.phone,
        ],
        "",
    );
    assert_eq!(v["state"], "approved");
    let code = w.sms_code();
    w.ok(
        &[
            "unlock", "finish", "--json", "--code", &code, "--pin-fd", "0",
        ],
        "Unlocked#2026\n",
    );
    let status = w.ok(&["pin", "status", "--json"], "");
    assert_eq!(
        (status["user"].as_str(), status["user_tries_left"].as_u64()),
        (Some("ok"), Some(10))
    );

    // 办理进度查询: issue, renewal and unlock, all completed.
    let progress = w.ok(&["progress", "--json"], "");
    let kinds: Vec<(&str, &str)> = progress["businesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["kind"].as_str().unwrap(), b["state"].as_str().unwrap()))
        .collect();
    for kind in ["issue", "renewal", "unlock"] {
        assert!(kinds.contains(&(kind, "completed")), "{kinds:?}");
    }
}
