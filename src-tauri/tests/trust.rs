//! The trust model as the window meets it, through Tauri's IPC (the mock runtime): the CA
//! root is pinned only after the fingerprint shown in Keyward's window was confirmed; a
//! bundle, a file too large or a file changed after its inspection is refused; the pinned
//! copy lives in the config folder, so replacing the original later changes nothing; a
//! plain-http CA address to another computer is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keyward_desktop::Desktop;
use keyward_desktop::keys::Keys;
use serde_json::{Value, json};
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
