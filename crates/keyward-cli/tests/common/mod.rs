//! The world of the CLI's workflow tests: a blank simulator key issued by the station, the
//! CA service over TLS on a loopback port, and the `keyward` binary run against both.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use keyward_ca::{Config, Server, ServerHandle};
use keyward_ca_api::{Handler, Organisation, OrganisationKind, Secret};
use keyward_flows::connect::{CaClient, CaSettings, RootSource, connect};
use keyward_flows::station::{StationOrder, issue};
use keyward_flows::{KeySpec, Module};
use keyward_pki::Pin;
use serde_json::Value;
use softhsm_fixtures::{FixtureSet, KeyState, SO_PIN, sim_module as sim};

pub const PIN: &str = "Operator#2026";

pub fn handler() -> Handler {
    Handler {
        name: "李经办".into(),
        id_number: softhsm_fixtures::resident_id("44010619850505432"),
        phone: "13912345678".into(),
    }
}

pub struct World {
    pub set: FixtureSet,
    pub _module: Arc<Module>,
    pub _rt: tokio::runtime::Runtime,
    pub server: ServerHandle,
    pub admin: CaClient,
    pub serial: String,
    pub dir: tempfile::TempDir,
}

impl World {
    /// A blank simulator key issued by the station for `org` (its credit code from
    /// `uscc17`), the CA on a loopback port; `days_ago` moves the CA's clock back for the issue.
    pub fn new(org: &str, uscc17: &str, days_ago: i64) -> World {
        let (set, module, manifest) = FixtureSet::build(&[KeyState::Blank], &sim()).unwrap();
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
        let admin = connect(&CaSettings::new(
            server.base_url(),
            Some(RootSource::Pem(server.root_pem().to_owned())),
        ))
        .unwrap()
        .with_admin(Secret::new(server.admin_token()));
        if days_ago != 0 {
            server.clock().advance(time::Duration::days(-days_ago));
        }
        let token = module.find(None).unwrap();
        let order = StationOrder {
            organisation: Organisation {
                name: org.into(),
                uscc: keyward_pki::uscc::with_check_character(uscc17).unwrap(),
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

    pub fn keyward(&self, args: &[&str], stdin: &str) -> Output {
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

    pub fn ok(&self, args: &[&str], stdin: &str) -> Value {
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

    pub fn sms_code(&self) -> String {
        let outbox = self.admin.sms_outbox().unwrap();
        let msg = outbox
            .messages
            .iter()
            .filter(|m| m.key_serial.as_deref() == Some(&self.serial) && m.text.contains("编号"))
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
            .unwrap();
        let after = msg.text.split("验证码").nth(1).unwrap();
        after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
    }
}
