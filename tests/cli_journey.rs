//! The operator's journey through the `keyward` binary against the CA service over TLS and
//! simulator keys: activate, renew with install — interrupted by a pulled key and resumed —
//! lock out, unlock, and follow the progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::cli::CliWorld;
use common::{PIN, handler};
use keyward_sim::control::{self, Effect, Fault};
use serde_json::Value;

/// Every string the journal holds under a name like a secret (business secrets, code
/// tickets): what the support bundle must never carry.
fn journal_secrets(data_dir: &Path, into: &mut Vec<String>) {
    fn walk(v: &Value, name: &str, into: &mut Vec<String>) {
        match v {
            Value::String(s)
                if ["secret", "ticket", "code"]
                    .iter()
                    .any(|n| name.contains(n))
                    && s.len() >= 4 =>
            {
                into.push(s.clone());
            }
            Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, k, into)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, name, into)),
            _ => {}
        }
    }
    for e in std::fs::read_dir(data_dir.join("journal"))
        .into_iter()
        .flatten()
    {
        let e = e.unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(e.path()).unwrap()) {
            walk(&v, "", into);
        }
    }
}

/// `keyward support-bundle`, then the archive — unpacked by tar, and its raw bytes —
/// searched for every secret.
fn bundle_holds_none_of(w: &CliWorld, name: &str, secrets: &[String]) {
    let out = w.dir.path().join(name);
    let v = w.ok(
        &[
            "support-bundle",
            "--json",
            "--output",
            out.to_str().unwrap(),
        ],
        "",
    );
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for want in [
        "doctor.json",
        "versions.json",
        "modules.json",
        "tokens.json",
        "journal.json",
    ] {
        assert!(
            files.contains(&format!("keyward-support/{want}").as_str()),
            "{files:?}"
        );
    }
    let raw = Command::new("gzip").arg("-dc").arg(&out).output().unwrap();
    assert!(raw.status.success());
    let unpacked = w.dir.path().join(format!("{name}.d"));
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(&out)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(tar.success());
    let tokens = std::fs::read_to_string(unpacked.join("keyward-support/tokens.json")).unwrap();
    assert!(
        tokens.contains(&w.serial),
        "the key's info is there: {tokens}"
    );
    for secret in secrets {
        assert!(
            !raw.stdout
                .windows(secret.len())
                .any(|win| win == secret.as_bytes()),
            "{secret:?} is in the support bundle {name}"
        );
    }
}

#[test]
fn activate_renew_through_a_pulled_key_lock_out_and_unlock_from_the_command_line() {
    // Issued 300 days ago by the CA's clock: renewal opens in the last 90.
    let w = CliWorld::new("深圳市命令行测试有限公司", "91440300MA5E00001", 300);
    let pin_line = format!("{PIN}\n");

    // 激活证书, on the day of issue: without asking for a code here first there is no ticket
    // to redeem it with; asked for, the SMS says where it went and under which 编号.
    let early = w.keyward(
        &["activate", "--json", "--code", "123456", "--pin-fd", "0"],
        &pin_line,
    );
    assert_eq!(
        early.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );
    let said = String::from_utf8_lossy(&early.stdout).into_owned()
        + &String::from_utf8_lossy(&early.stderr);
    assert!(said.contains("code_not_requested"), "{said}");
    let sent = w.ok(&["activate", "--send-code", "--json"], "");
    assert_eq!(sent["phone_masked"].as_str().map(str::len), Some(11));
    assert!(
        sent.get("ticket").is_none(),
        "the ticket stays in the journal"
    );
    let mut secrets: Vec<String> = Vec::new();
    journal_secrets(&w.dir.path().join("client"), &mut secrets);
    let code = w.sms_code();
    let first_code = code.clone();
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
    w.ca.advance_days(300);
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
    journal_secrets(&w.dir.path().join("client"), &mut secrets);
    let unpaid = w.keyward(&["renew", "install", "--pin-fd", "0"], &pin_line);
    assert_eq!(unpaid.status.code(), Some(11));
    w.ok(&["renew", "pay", "--json", "--sandbox"], "");

    // 安装证书, with the key pulled out as the certificate is written.
    control::arm_fault(
        w.keys.sim_state(),
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
    control::insert(w.keys.sim_state(), &w.serial).unwrap();
    // A support bundle while the renewal waits in the journal with its secret.
    journal_secrets(&w.dir.path().join("client"), &mut secrets);
    assert!(
        !secrets.is_empty(),
        "the journal holds the renewal's secret"
    );
    let mut now: Vec<String> = secrets.clone();
    now.extend([PIN.to_owned(), first_code.clone()]);
    bundle_holds_none_of(&w, "mid.tar.gz", &now);
    let progress = w.ok(&["progress", "--json", "--pin-fd", "0"], &pin_line);
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
    journal_secrets(&w.dir.path().join("client"), &mut secrets);
    let code = w.sms_code();
    let unlock_code = code.clone();
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

    // 办理进度查询: issue, renewal and unlock, all completed; the key shows them to itself.
    let progress = w.ok(&["progress", "--json", "--pin-fd", "0"], "Unlocked#2026\n");
    let kinds: Vec<(&str, &str)> = progress["businesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["kind"].as_str().unwrap(), b["state"].as_str().unwrap()))
        .collect();
    for kind in ["issue", "renewal", "unlock"] {
        assert!(kinds.contains(&(kind, "completed")), "{kinds:?}");
    }

    // 支持包 after the whole journey: a log line that carries an ID number and a PIN (as a
    // careless line might) is scrubbed, and no PIN, SMS code, business secret, ticket or
    // ID number the journey used is anywhere in the archive.
    let logs = w.dir.path().join("client/logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("keyward.log"),
        format!(
            "INFO unlock applied for {} ({}) pin={PIN} phone={}\n",
            h.name, h.id_number, h.phone
        ),
    )
    .unwrap();
    let mut all = secrets;
    all.extend([
        PIN.to_owned(),
        "Unlocked#2026".to_owned(),
        "Wrong#00001".to_owned(),
        "Next#2026xx".to_owned(),
        first_code,
        unlock_code,
        h.id_number.clone(),
        h.phone.clone(),
        softhsm_fixtures::USER_PIN.to_owned(),
        softhsm_fixtures::SO_PIN.to_owned(),
    ]);
    bundle_holds_none_of(&w, "end.tar.gz", &all);
    let log = std::fs::read_to_string(
        w.dir
            .path()
            .join("end.tar.gz.d/keyward-support/logs/keyward.log"),
    )
    .unwrap();
    assert!(
        log.contains(&h.id_number[..6]) && log.contains("<redacted>"),
        "{log}"
    );
}

/// `keyward tokens` in text shows the expiry date on the operator's calendar: a certificate
/// ending at 17:30 UTC ends on the next day in Beijing. The JSON keeps the instant in RFC 3339.
#[test]
fn text_output_shows_dates_in_the_operator_time_zone() {
    use time::format_description::well_known::Rfc3339;
    let keys = common::Keys::blank(1);
    let ca = common::Ca::start();
    // The CA's clock to 17:30 UTC today, so that the certificate it issues ends at that time.
    let now = time::OffsetDateTime::now_utc();
    let mut target = now.replace_time(time::macros::time!(17:30));
    if target > now {
        target -= time::Duration::days(1);
    }
    ca.advance(target - now);
    let token = keys.tokens().remove(0);
    common::keys::issue(
        &ca,
        &keys.module,
        &token,
        &common::named_organisation("广州时区测试有限公司", "91440101MA5TX0001"),
        keyward_flows::KeySpec::Rsa2048,
    );
    let dir = tempfile::tempdir().unwrap();
    let run = |tz: &str, json: bool| {
        let mut cmd = common::cli::command(&keys, None, dir.path());
        cmd.env("TZ", tz);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.args(["cert", "show"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Value = serde_json::from_str(&run("Asia/Shanghai", true)).unwrap();
    let text = json.to_string();
    let not_after =
        find_key(&json, "not_after").unwrap_or_else(|| panic!("no not_after in {text}"));
    let at = time::OffsetDateTime::parse(&not_after, &Rfc3339).unwrap();
    assert_eq!((at.hour(), at.minute()), (17, 30), "{not_after}");
    let utc_day = at.date().to_string();
    let beijing_day = (at + time::Duration::hours(8)).date().to_string();
    let beijing = run("Asia/Shanghai", false);
    assert!(beijing.contains(&format!("— {beijing_day}")), "{beijing}");
    assert!(!beijing.contains(&format!("— {utc_day}")), "{beijing}");
    let utc = run("UTC", false);
    assert!(utc.contains(&format!("— {utc_day}")), "{utc}");
}

/// The first string value under `key` anywhere in `v`.
fn find_key(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::Object(m) => m
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}
