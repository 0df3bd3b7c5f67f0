//! The trust model as the window meets it, through Tauri's IPC (the mock runtime):
//!
//! - the CA root is pinned only after the fingerprint shown in Keyward's window was
//!   confirmed; a bundle, a file too large or a file changed after its inspection is
//!   refused; the pinned copy lives in the config folder, so replacing the original later
//!   changes nothing; a plain-http CA address to another computer is refused;
//! - against the reference CA (in process, TLS under its own root, pinned through the
//!   window): activation asks for the code first and names its 编号, 办理进度查询 needs the
//!   PIN, another requester's unlock is named and never taken over — and no answer the
//!   window receives carries a secret or a ticket the journal holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_ca_api::{Handler, Organisation, OrganisationKind, Secret};
use keyward_desktop::Desktop;
use keyward_flows::KeySpec;
use keyward_flows::connect::{CaClient, CaSettings, RootSource, connect};
use keyward_flows::keys::Keys;
use keyward_flows::station::{StationOrder, issue};
use keyward_pki::Pin;
use serde_json::{Value, json};
use softhsm_fixtures::{FixtureSet, KeyState, SO_PIN};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{WebviewWindow, WebviewWindowBuilder};

fn window(dir: &Path) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let desktop = Desktop::new(
        Keys::with_module(&softhsm_fixtures::sim_module()),
        dir,
        dir.join("logs"),
    );
    let app = mock_builder()
        .manage(desktop)
        .invoke_handler(keyward_desktop::commands())
        .build(mock_context(noop_assets()))
        .unwrap();
    let w = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, w)
}

fn call(w: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        w,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

fn self_signed(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.to_owned());
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn inspect(w: &WebviewWindow<MockRuntime>, file: &Path) -> Result<Value, Value> {
    call(w, "ca_root_inspect", json!({ "path": file }))
}

/// The settings as they are now, with `change` applied.
fn settings_with(w: &WebviewWindow<MockRuntime>, change: Value) -> Value {
    let mut s = call(w, "settings_get", json!({})).unwrap();
    for (k, v) in change.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

#[test]
fn a_root_is_pinned_only_as_confirmed_and_as_a_copy_in_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let (_app, w) = window(&config);
    let elsewhere = dir.path().join("from-the-ca");
    std::fs::create_dir_all(&elsewhere).unwrap();

    // A plain-http address to another computer is refused, and nothing is saved.
    call(
        &w,
        "settings_set",
        json!({ "settings": settings_with(&w, json!({ "language": "zh-CN" })) }),
    )
    .unwrap();
    let e = call(
        &w,
        "settings_set",
        json!({ "settings": settings_with(&w, json!({ "ca_url": "http://ca.example.cn:8750" })) }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "ca_url_insecure");
    assert!(e["message"].as_str().unwrap().contains("https"), "{e}");
    assert_eq!(
        call(&w, "settings_get", json!({})).unwrap()["ca_url"],
        Value::Null
    );
    let ok = call(
        &w,
        "settings_set",
        json!({ "settings": settings_with(&w, json!({ "ca_url": " https://ca.example.cn:8443 " })) }),
    )
    .unwrap();
    assert_eq!(ok["ca_url"], "https://ca.example.cn:8443");

    // A bundle and a huge file are refused when inspected, with words in the language set.
    let one = self_signed("Keyward Pin Test Root A");
    let bundle = elsewhere.join("bundle.pem");
    std::fs::write(&bundle, format!("{one}{}", self_signed("Another Root"))).unwrap();
    let e = inspect(&w, &bundle).unwrap_err();
    assert_eq!(e["code"], "ca_root_bundle");
    assert!(e["message"].as_str().unwrap().contains("2 张证书"), "{e}");
    let huge = elsewhere.join("huge.pem");
    std::fs::write(&huge, format!("{one}{}", "#".repeat(70 * 1024))).unwrap();
    assert_eq!(inspect(&w, &huge).unwrap_err()["code"], "ca_root_too_large");
    // ... and so are they if sent straight to settings_set with a fingerprint.
    let e = call(
        &w,
        "settings_set",
        json!({ "settings": settings_with(&w, json!({ "ca_root": bundle })), "rootSha256": "AB" }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "ca_root_bundle");

    // Inspecting shows subject and fingerprint and changes nothing.
    let original = elsewhere.join("root.pem");
    std::fs::write(&original, &one).unwrap();
    let a = inspect(&w, &original).unwrap();
    assert!(
        a["subject"]
            .as_str()
            .unwrap()
            .contains("Keyward Pin Test Root A")
    );
    let fp_a = a["sha256"].as_str().unwrap().to_owned();
    assert_eq!(fp_a.len(), 95, "{fp_a}");
    assert_eq!(call(&w, "ca_root_show", json!({})).unwrap(), Value::Null);

    // Without the confirmed fingerprint: refused.
    let e = call(
        &w,
        "settings_set",
        json!({ "settings": settings_with(&w, json!({ "ca_root": original })) }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "ca_root_unconfirmed");

    // The file replaced after it was inspected: refused, nothing pinned.
    std::fs::write(&original, self_signed("Keyward Pin Test Root B")).unwrap();
    let e = call(
        &w,
        "settings_set",
        json!({ "settings": settings_with(&w, json!({ "ca_root": original })), "rootSha256": fp_a }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "ca_root_changed");
    assert_eq!(call(&w, "ca_root_show", json!({})).unwrap(), Value::Null);

    // Inspected again and confirmed: pinned, as a copy in the config folder.
    let b = inspect(&w, &original).unwrap();
    let fp_b = b["sha256"].as_str().unwrap().to_owned();
    let saved = call(
        &w,
        "settings_set",
        json!({
            "settings": settings_with(&w, json!({ "ca_root": original })),
            "rootSha256": fp_b.to_lowercase(),
        }),
    )
    .unwrap();
    let copy = PathBuf::from(saved["ca_root"].as_str().unwrap());
    assert_eq!(copy.parent(), Some(config.as_path()), "{saved}");
    assert_eq!(saved["ca_root_origin"], json!(original));
    let shown = call(&w, "ca_root_show", json!({})).unwrap();
    assert_eq!(shown["sha256"], fp_b.as_str());
    assert_eq!(shown["copied_from"], json!(original));

    // Replacing the original later changes nothing.
    std::fs::write(&original, self_signed("Keyward Pin Test Root C")).unwrap();
    assert_eq!(
        call(&w, "ca_root_show", json!({})).unwrap()["sha256"],
        fp_b.as_str()
    );
    // Saving other settings keeps the pin without asking again.
    let again = call(
        &w,
        "settings_set",
        json!({ "settings": settings_with(&w, json!({ "language": "en" })) }),
    )
    .unwrap();
    assert_eq!(again["ca_root"], saved["ca_root"]);
    assert_eq!(again["ca_root_origin"], json!(original));

    // Another root, confirmed: pinned in its place; the old copy is gone.
    let c = inspect(&w, &original).unwrap();
    let replaced = call(
        &w,
        "settings_set",
        json!({
            "settings": settings_with(&w, json!({ "ca_root": original })),
            "rootSha256": c["sha256"],
        }),
    )
    .unwrap();
    assert_ne!(replaced["ca_root"], saved["ca_root"]);
    assert!(!copy.exists(), "the replaced copy stays behind");
    assert_eq!(
        call(&w, "ca_root_show", json!({})).unwrap()["sha256"],
        c["sha256"]
    );
}

/// A root the settings file names (the operator's explicit choice, like KEYWARD_CA_ROOT)
/// is read where it is; when it stops being a certificate, flows say so with their code.
#[test]
fn a_named_root_that_breaks_gets_its_own_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(
        &root,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        serde_json::to_vec(
            &json!({ "language": "en", "ca_url": "https://127.0.0.1:1", "ca_root": root }),
        )
        .unwrap(),
    )
    .unwrap();
    let (_app, w) = window(dir.path());
    let e = call(&w, "ca_root_show", json!({})).unwrap_err();
    assert_eq!(e["code"], "ca_root");
    let e = call(&w, "seal_status", json!({ "serial": "nope" })).unwrap_err();
    assert_eq!(e["code"], "ca_root");
}

// ---- against the reference CA ----

fn handler() -> Handler {
    Handler {
        name: "张经办".into(),
        id_number: softhsm_fixtures::resident_id("44010119900101123"),
        phone: "13800138000".into(),
    }
}

fn stranger(n: u8) -> Handler {
    Handler {
        name: ["王一", "王二"][usize::from(n - 1)].into(),
        id_number: softhsm_fixtures::resident_id(&format!("4401011990020{n}123")),
        phone: format!("1390013800{n}"),
    }
}

/// Every string the journal files in `dir` hold under `secret` or `ticket`.
fn journaled_secrets(dir: &Path, into: &mut Vec<String>) {
    fn walk(v: &Value, into: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("secret" | "ticket", Value::String(s)) => into.push(s.clone()),
                        _ => walk(v, into),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, into)),
            _ => {}
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if let Ok(text) = std::fs::read_to_string(e.path())
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            walk(&v, into);
        }
    }
    into.sort();
    into.dedup();
}

/// The reference CA's binary (built beside keyward-sim by `cargo xtask test`), serving a
/// data folder on a loopback port with its sandbox SMS outbox and payments.
struct Ca {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
    admin: CaClient,
}

impl Ca {
    fn start(dir: &Path, clock_offset_days: i64) -> Ca {
        let bin = softhsm_fixtures::sim_module()
            .parent()
            .unwrap()
            .join("keyward-ca");
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p keyward-ca`",
            bin.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(bin)
            .args(["serve", "--sandbox-sms", "--sandbox-payments"])
            .args([
                "--rate-per-address",
                "10000",
                "--burst-per-address",
                "10000",
            ])
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--clock-offset-days={clock_offset_days}"))
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "keyward-ca did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let token = std::fs::read_to_string(dir.join("admin.token")).unwrap();
        let admin = connect(&CaSettings::new(
            format!("https://127.0.0.1:{port}"),
            Some(RootSource::File(dir.join("ca").join("root.crt"))),
        ))
        .unwrap()
        .with_admin(Secret::new(token.trim()));
        Ca {
            child,
            dir: dir.to_owned(),
            port,
            admin,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn root_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("ca").join("root.crt")).unwrap()
    }

    /// The same CA on another clock.
    fn restart(mut self, clock_offset_days: i64) -> Ca {
        self.stop();
        Ca::start(&self.dir.clone(), clock_offset_days)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The code of the SMS about `serial` that carries `编号 reference`.
    fn code(&self, serial: &str, reference: &str) -> String {
        let outbox = self.admin.sms_outbox().unwrap();
        let tag = format!("编号 {reference}");
        let msg = outbox
            .messages
            .iter()
            .rev()
            .find(|m| m.key_serial.as_deref() == Some(serial) && m.text.contains(&tag))
            .unwrap_or_else(|| panic!("no SMS with {tag}: {outbox:?}"));
        msg.text
            .split("验证码")
            .nth(1)
            .unwrap()
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect()
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn against_the_ca_the_window_asks_first_signs_with_the_pin_and_never_sees_a_secret() {
    let (set, module, _) =
        FixtureSet::build(&[KeyState::Blank], &softhsm_fixtures::sim_module()).unwrap();
    let dirs = tempfile::tempdir().unwrap();
    // Issued 300 days ago by the CA's clock, so the renewal window is open today.
    let ca = Ca::start(&dirs.path().join("ca"), -300);
    let token = module.tokens().unwrap().remove(0);
    let serial = token.serial.clone();
    let org = Organisation {
        name: "广州市信任测试有限公司".into(),
        uscc: keyward_pki::uscc::with_check_character("91440101MA5D00777").unwrap(),
        kind: OrganisationKind::Enterprise,
        legal_address: "广州市天河区示例路 1 号".into(),
    };
    issue(
        &ca.admin,
        &module,
        &token,
        &Pin::new(SO_PIN.to_owned()),
        &StationOrder {
            organisation: org.clone(),
            handler: handler(),
            years: 1,
            spec: KeySpec::EcP256,
        },
        None,
    )
    .unwrap();
    let ca = ca.restart(0);

    let config = dirs.path().join("desktop");
    let journal = config.join("journal");
    let (_app, w) = window(&config);
    let mut answers: Vec<(String, Value)> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();
    let mut keep = |what: &str, v: &Value, secrets: &mut Vec<String>| {
        journaled_secrets(&journal, secrets);
        answers.push((what.to_owned(), v.clone()));
    };

    // The CA and its root, as the operator sets them in the window.
    let root_file = dirs.path().join("ca-root-from-the-ca.pem");
    std::fs::write(&root_file, ca.root_pem()).unwrap();
    let inspected = inspect(&w, &root_file).unwrap();
    let pinned = keyward_flows::connect::PinnedRoot::from_pem(&ca.root_pem()).unwrap();
    assert_eq!(inspected["sha256"], pinned.fingerprint.as_str());
    call(
        &w,
        "settings_set",
        json!({
            "settings": settings_with(&w, json!({ "ca_url": ca.url(), "ca_root": root_file })),
            "rootSha256": inspected["sha256"],
        }),
    )
    .unwrap();
    std::fs::remove_file(&root_file).unwrap();

    // 激活证书: without a code asked for from this computer, refused.
    const PIN: &str = "Operator#2026";
    let activate = |code: &str| {
        call(
            &w,
            "activate",
            json!({
                "serial": serial, "code": code, "newPin": PIN, "newPinAgain": PIN,
                "progress": "__CHANNEL__:7",
            }),
        )
    };
    let e = activate("123456").unwrap_err();
    assert_eq!(e["code"], "code_not_requested", "{e}");
    keep("activate, not asked", &e, &mut secrets);
    let sent = call(&w, "activate_send_code", json!({ "serial": serial })).unwrap();
    keep("activate_send_code", &sent, &mut secrets);
    assert!(!secrets.is_empty(), "the ticket is journaled");
    let reference = sent["reference"].as_str().unwrap().to_owned();
    assert_eq!(reference.len(), 2, "{sent}");
    assert!(sent["phone_masked"].as_str().unwrap().contains("****"));
    let done = activate(&ca.code(&serial, &reference)).unwrap();
    keep("activate", &done, &mut secrets);

    // 办理进度查询: signed by the key, so the PIN; a wrong one costs a try and says so.
    let progress = |pin: &str| {
        call(
            &w,
            "progress_list",
            json!({ "serial": serial, "pin": pin, "confirmFinalTry": false }),
        )
    };
    let wrong = progress("Wrong#2026").unwrap_err();
    assert_eq!(wrong["code"], "pin_incorrect", "{wrong}");
    assert_eq!(wrong["pin"]["user_tries_left"], 9);
    let list = progress(PIN).unwrap();
    assert!(!list["businesses"].as_array().unwrap().is_empty(), "{list}");
    keep("progress_list", &list, &mut secrets);

    // 证书续期: applied; its secret is journaled, the window gets the step.
    let applied = call(
        &w,
        "renew_apply",
        json!({
            "serial": serial, "years": 1, "invoiceTitle": org.name, "taxId": org.uscc,
            "email": "caiwu@example.cn", "pin": PIN, "confirmFinalTry": false,
        }),
    )
    .unwrap();
    keep("renew_apply", &applied, &mut secrets);
    let state = call(&w, "renew_status", json!({ "serial": serial })).unwrap();
    assert_eq!(state["pending"]["step"], "applied", "{state}");
    keep("renew_status", &state, &mut secrets);

    // 忘记密码: someone else's unlock, applied for on another computer, is named and never
    // taken over; the handler of record's own application goes through.
    let other_journal = dirs.path().join("other-computer");
    let other_env = keyward_flows::Env::new(
        Arc::clone(&module),
        connect(&CaSettings::new(
            ca.url(),
            Some(RootSource::Pem(ca.root_pem())),
        ))
        .unwrap(),
        keyward_flows::Journal::new(&other_journal),
    );
    keyward_flows::unlock::apply(&other_env, &serial, &stranger(1)).unwrap();
    let unlock = |who: &Handler| {
        call(
            &w,
            "unlock_apply",
            json!({ "serial": serial, "name": who.name, "idNumber": who.id_number, "phone": who.phone }),
        )
    };
    let by_other = unlock(&stranger(2)).unwrap_err();
    assert_eq!(by_other["code"], "unlock_by_other", "{by_other}");
    assert_eq!(by_other["open_business"]["phone_masked"], "139****8001");
    assert!(
        by_other["message"]
            .as_str()
            .unwrap()
            .contains("139****8001")
    );
    keep("unlock_apply by another", &by_other, &mut secrets);
    let approved = unlock(&handler()).unwrap();
    assert_eq!(approved["state"], "approved", "{approved}");
    keep("unlock_apply", &approved, &mut secrets);
    let status = call(&w, "unlock_status", json!({ "serial": serial })).unwrap();
    keep("unlock_status", &status, &mut secrets);
    // Approved with its first code sent: another one waits for the cooldown.
    let resend = call(&w, "unlock_send_code", json!({ "serial": serial })).unwrap_err();
    assert_eq!(resend["code"], "ca_code_cooldown", "{resend}");
    keep("unlock_send_code", &resend, &mut secrets);

    for cmd in ["flow_pending", "token_list"] {
        let v = call(&w, cmd, json!({ "serial": serial })).unwrap();
        keep(cmd, &v, &mut secrets);
    }
    let pending = call(&w, "flow_pending", json!({ "serial": serial })).unwrap();
    assert_eq!(pending, json!(["unlock", "renew"]));

    // The journal held a ticket, then the renewal's and the unlock's secrets; none of it
    // reached the window, under any name.
    journaled_secrets(&other_journal, &mut secrets);
    assert!(secrets.len() >= 4, "{secrets:?}");
    for (what, v) in &answers {
        let text = v.to_string();
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{what} carries a secret: {text}"
            );
        }
        for name in ["\"secret\"", "\"ticket\"", "transport_pin", "so_pin"] {
            assert!(!text.contains(name), "{what} carries {name}: {text}");
        }
        assert!(!text.contains(PIN), "{what} carries the PIN");
    }
    drop(set);
}
