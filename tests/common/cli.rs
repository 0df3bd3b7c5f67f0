//! The `keyward` binary, run as an operator or a script runs it: against the world's keys,
//! the CA named by `KEYWARD_CA_URL` and `KEYWARD_CA_ROOT`, its journal in a folder of its own.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use keyward_flows::KeySpec;
use serde_json::Value;

use super::{Ca, Keys, binary, named_organisation};

/// `keyward` set up for `keys` and, when given, `ca`, its journal in `data_dir`; no LANG, so
/// it speaks zh-CN. Add the arguments and run it.
pub fn command(keys: &Keys, ca: Option<&Ca>, data_dir: &Path) -> Command {
    let mut cmd = Command::new(binary("keyward"));
    cmd.envs(keys.env())
        .env("KEYWARD_DATA_DIR", data_dir)
        .env_remove("KEYWARD_CA_URL")
        .env_remove("KEYWARD_CA_ROOT")
        .env_remove("LANG");
    if let Some(ca) = ca {
        cmd.env("KEYWARD_CA_URL", ca.url())
            .env("KEYWARD_CA_ROOT", ca.root_file());
    }
    cmd
}

/// One blank key issued by the station, the CA, and `keyward` run against both.
pub struct CliWorld {
    pub keys: Keys,
    pub ca: Ca,
    pub serial: String,
    pub dir: tempfile::TempDir,
}

impl CliWorld {
    /// A blank key issued for `org` (its credit code from `uscc17`) with the CA's clock
    /// `days_ago` days back.
    pub fn new(org: &str, uscc17: &str, days_ago: i64) -> CliWorld {
        let keys = Keys::blank(1);
        let ca = Ca::start();
        if days_ago != 0 {
            ca.advance_days(-days_ago);
        }
        let token = keys.tokens().remove(0);
        super::keys::issue(
            &ca,
            &keys.module,
            &token,
            &named_organisation(org, uscc17),
            KeySpec::Rsa2048,
        );
        CliWorld {
            serial: token.serial,
            keys,
            ca,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `keyward args…` with `stdin` as its input.
    pub fn keyward(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = command(&self.keys, Some(&self.ca), &self.dir.path().join("client"))
            .args(args)
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

    /// `keyward args…`, which must succeed; its JSON output (null when it prints none).
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

    /// The newest SMS code sent about the key.
    pub fn sms_code(&self) -> String {
        self.ca.sms_code(&self.serial)
    }
}
