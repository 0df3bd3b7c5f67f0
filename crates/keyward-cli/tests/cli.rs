//! The `keyward` binary against SoftHSM fixture keys: JSON for scripts, exit codes, text
//! for people, and a PIN change checked afterwards by OpenSC's pkcs11-tool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use softhsm_fixtures::{FixtureSet, KeyState, Manifest, USER_PIN};

fn sim() -> String {
    softhsm_fixtures::sim_module().display().to_string()
}

fn fixtures(states: &[KeyState]) -> (FixtureSet, Manifest) {
    let (set, _module, manifest) = FixtureSet::build(states, Path::new(&sim())).unwrap();
    (set, manifest)
}

fn keyward(set: &FixtureSet, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .envs(set.env())
        .env("KEYWARD_PKCS11_MODULE", sim())
        // No CA here: what the keys say themselves.
        .env_remove("KEYWARD_CA_URL")
        .env_remove("KEYWARD_CA_ROOT")
        .env_remove("LANG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        // A command that fails before reading its input closes the pipe: its exit code
        // tells, not the write.
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn tokens_json_describes_every_fixture_key() {
    let (set, manifest) = fixtures(&KeyState::ALL);
    let out = keyward(&set, &["tokens", "--json"], None);
    assert!(out.status.success());
    let list = json(&out);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), manifest.tokens.len());
    for fx in &manifest.tokens {
        // The key as every front end shows it: the token, its certificate, what is next.
        let k = list
            .iter()
            .find(|k| k["token"]["serial"] == fx.serial.as_str())
            .expect("listed");
        let t = &k["token"];
        assert_eq!(t["label"], fx.label.as_str());
        assert_eq!(t["pin"]["user"], "ok");
        assert!(
            t["uri"]
                .as_str()
                .unwrap()
                .contains(&format!("serial={}", fx.serial))
        );
        assert_eq!(
            k["certificate"]["organization"].as_str(),
            fx.organization.as_deref()
        );
        let next = match fx.state {
            KeyState::Blank => "no_certificate",
            KeyState::Expired => "apply_new",
            KeyState::NearExpiry => "renew",
            _ => "nothing",
        };
        assert_eq!(k["next"]["action"], next, "{}", fx.label);
        let seal = if fx.state == KeyState::Sealed {
            "present"
        } else {
            "none"
        };
        assert_eq!(k["seal"]["state"], seal, "{}", fx.label);
        assert!(k["standing"].is_null(), "no CA named, none asked");
    }
}

#[test]
fn cert_show_json_gives_organisation_code_validity_and_renewal() {
    let states = [
        KeyState::IssuedRsa,
        KeyState::IssuedEc,
        KeyState::NearExpiry,
        KeyState::Expired,
        KeyState::Blank,
    ];
    let (set, manifest) = fixtures(&states);
    for fx in &manifest.tokens {
        // Named by serial, and by PKCS#11 URI.
        let uri = format!("pkcs11:token={}", fx.label);
        for sel in [fx.serial.as_str(), uri.as_str()] {
            let out = keyward(&set, &["cert", "show", "--json", "--token", sel], None);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v = json(&out);
            assert_eq!(v["token"]["serial"], fx.serial.as_str());
            let certs = v["certificates"].as_array().unwrap();
            if fx.state == KeyState::Blank {
                assert!(certs.is_empty());
                continue;
            }
            assert_eq!(certs.len(), 3);
            let org = &certs[0];
            assert_eq!(org["role"], "organisation");
            assert_eq!(
                org["summary"]["organization"],
                fx.organization.as_deref().unwrap()
            );
            assert_eq!(
                org["summary"]["credit_code"],
                fx.credit_code.as_deref().unwrap()
            );
            let not_after = time::OffsetDateTime::parse(
                org["summary"]["not_after"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert_eq!(
                not_after.unix_timestamp(),
                fx.not_after.unwrap().unix_timestamp()
            );
            let expected = match fx.state {
                KeyState::NearExpiry => "open",
                KeyState::Expired => "expired",
                _ => "not_yet",
            };
            assert_eq!(
                org["summary"]["renewal"]["status"], expected,
                "{}",
                fx.label
            );
            assert_eq!(certs[1]["role"], "chain");
        }
    }
}

#[test]
fn text_output_speaks_chinese_first_and_the_other_languages_on_request() {
    let (set, manifest) = fixtures(&[KeyState::NearExpiry]);
    let serial = &manifest.tokens[0].serial;
    let zh = keyward(&set, &["cert", "show", "--token", serial], None);
    let zh = String::from_utf8(zh.stdout).unwrap();
    assert!(
        zh.contains("统一社会信用代码: ") && zh.contains("可续期"),
        "{zh}"
    );
    let tw = String::from_utf8(keyward(&set, &["--lang", "zh-TW", "cert", "show"], None).stdout)
        .unwrap();
    assert!(
        tw.contains("統一社會信用代碼") && tw.contains("可續期"),
        "{tw}"
    );
    let en =
        String::from_utf8(keyward(&set, &["--lang", "en", "pin", "status"], None).stdout).unwrap();
    assert!(en.contains(": OK"), "{en}");
}

#[test]
fn pin_change_from_a_descriptor_is_checked_first_and_seen_by_pkcs11_tool() {
    let (set, manifest) = fixtures(&[KeyState::IssuedEc]);
    let serial = manifest.tokens[0].serial.as_str();
    // A weak new PIN: refused before the key sees it.
    let out = keyward(
        &set,
        &[
            "pin", "change", "--json", "--token", serial, "--pin-fd", "0",
        ],
        Some(&format!("{USER_PIN}\nweak\n")),
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(json(&out)["error"]["code"], "pin_policy");
    // A wrong current PIN: exit 4.
    let out = keyward(
        &set,
        &["pin", "change", "--token", serial, "--pin-fd", "0"],
        Some("Wrong#00001\nStrong#2026x\n"),
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("密码错误"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only one line given: a usage error, nothing sent.
    let out = keyward(
        &set,
        &["pin", "change", "--token", serial, "--pin-fd", "0"],
        Some(USER_PIN),
    );
    assert_eq!(out.status.code(), Some(2));
    // The real change.
    let out = keyward(
        &set,
        &[
            "pin", "change", "--json", "--token", serial, "--pin-fd", "0",
        ],
        Some(&format!("{USER_PIN}\nStrong#2026x\n")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["changed"], true);
    // OpenSC agrees: the new PIN logs in, the old does not.
    let login = |p: &str| {
        Command::new("pkcs11-tool")
            .args([
                "--module",
                &sim(),
                "--token-label",
                "kw-issued-ec",
                "--login",
                "--pin",
                p,
                "--list-objects",
                "--type",
                "privkey",
            ])
            .envs(set.env())
            .output()
            .unwrap()
    };
    let ok = login("Strong#2026x");
    assert!(
        ok.status.success() && String::from_utf8_lossy(&ok.stdout).contains("Private Key Object")
    );
    assert!(!login(USER_PIN).status.success());
}

#[test]
fn selection_and_module_errors_have_their_exit_codes() {
    let (set, _) = fixtures(&[KeyState::Blank, KeyState::IssuedEc]);
    let out = keyward(&set, &["cert", "show"], None);
    assert_eq!(out.status.code(), Some(3), "two keys: name one");
    let out = keyward(&set, &["cert", "show", "--json", "--token", "nope"], None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["error"]["code"], "no_such_key");
    let out = keyward(
        &set,
        &["--module", "/nonexistent/libvendor.so", "tokens"],
        None,
    );
    assert_eq!(out.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/libvendor.so"));
    let out = keyward(
        &set,
        &["cert", "show", "--token", "pkcs11:token=x?pin-value=1"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let out = keyward(&set, &["no-such-command"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_cli_stops_at_the_final_try_and_reports_the_lock() {
    let (set, manifest) = fixtures(&[KeyState::IssuedRsa]);
    let serial = manifest.tokens[0].serial.as_str();
    let wrong = "Wrong#00001\nStrong#2026x\n";
    for n in 1..=9 {
        let out = keyward(
            &set,
            &["pin", "change", "--token", serial, "--pin-fd", "0"],
            Some(wrong),
        );
        assert_eq!(out.status.code(), Some(4), "attempt {n}");
    }
    let status = json(&keyward(&set, &["pin", "status", "--json"], None));
    assert_eq!(
        (status["user"].as_str(), status["user_tries_left"].as_u64()),
        (Some("final_try"), Some(1))
    );
    // Not confirmed: refused before any PIN is read or sent.
    let out = keyward(
        &set,
        &["pin", "change", "--token", serial, "--pin-fd", "0"],
        Some(wrong),
    );
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("忘记密码"));
    let out = keyward(
        &set,
        &[
            "pin",
            "change",
            "--confirm-final-try",
            "--token",
            serial,
            "--pin-fd",
            "0",
        ],
        Some(wrong),
    );
    assert_eq!(out.status.code(), Some(5), "the tenth wrong PIN locks");
    assert_eq!(
        json(&keyward(&set, &["pin", "status", "--json"], None))["user"],
        "locked"
    );
    let out = keyward(
        &set,
        &[
            "--json", "pin", "change", "--token", serial, "--pin-fd", "0",
        ],
        Some(&format!("{USER_PIN}\nStrong#2026x\n")),
    );
    assert_eq!(out.status.code(), Some(5), "locked even for the right PIN");
    assert_eq!(json(&out)["error"]["code"], "pin_locked");
}
