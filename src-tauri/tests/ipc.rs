//! The commands as the window calls them: through Tauri's IPC (the mock runtime), over
//! simulated keys. What crosses the IPC is pinned here: the JSON of a key, and an error
//! as `{code, message}` with the PIN status — and never a PIN.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keyward_desktop::Desktop;
use keyward_flows::keys::Keys;
use serde_json::{Value, json};
use softhsm_fixtures::{FixtureSet, KeyState, USER_PIN};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{WebviewWindow, WebviewWindowBuilder};

fn sim_module() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("libkeyward_sim.so");
    assert!(
        p.exists(),
        "build keyward-sim first (cargo xtask test does)"
    );
    p
}

fn window(dir: &Path) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let desktop = Desktop::new(Keys::with_module(&sim_module()), dir, dir.join("logs"));
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

/// A file command as the window sends it: the bytes as the raw body, the other arguments
/// as percent-encoded JSON in the `keyward-args` header.
fn call_file(
    w: &WebviewWindow<MockRuntime>,
    cmd: &str,
    args: Value,
    bytes: &[u8],
) -> Result<Value, Value> {
    let encoded: String = percent_encoding::utf8_percent_encode(
        &args.to_string(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let mut headers = tauri::http::HeaderMap::new();
    headers.insert(
        keyward_desktop::flows::ARGS_HEADER,
        encoded.parse().unwrap(),
    );
    get_ipc_response(
        w,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Raw(bytes.to_vec()),
            headers,
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

#[test]
fn the_window_lists_keys_and_gets_a_code_and_tries_left_for_a_wrong_pin() {
    let (set, _module, manifest) = FixtureSet::build(&[KeyState::IssuedEc], &sim_module()).unwrap();
    let (_app, w) = window(set.dir());
    let serial = manifest.tokens[0].serial.clone();

    let list = call(&w, "token_list", json!({})).unwrap();
    assert_eq!(list[0]["token"]["serial"], serial.as_str());
    assert_eq!(list[0]["next"]["action"], "nothing");
    assert!(list[0]["certificate"]["organization"].is_string());

    let wrong = call(
        &w,
        "pin_change",
        json!({
            "serial": serial,
            "oldPin": "Wrong#2026",
            "newPin": "Better#2027pin",
            "newPinAgain": "Better#2027pin",
            "confirmFinalTry": false,
        }),
    )
    .unwrap_err();
    assert_eq!(wrong["code"], "pin_incorrect");
    assert_eq!(wrong["pin"]["user_tries_left"], 9);
    assert!(wrong["message"].as_str().unwrap().contains('9'));
    let text = wrong.to_string();
    assert!(!text.contains("Wrong#2026") && !text.contains("Better#2027pin"));

    let mismatch = call(
        &w,
        "pin_change",
        json!({
            "serial": serial,
            "oldPin": USER_PIN,
            "newPin": "Better#2027pin",
            "newPinAgain": "Better#2027pim",
            "confirmFinalTry": false,
        }),
    )
    .unwrap_err();
    assert_eq!(mismatch["code"], "pin_mismatch");

    let status = call(
        &w,
        "pin_change",
        json!({
            "serial": serial,
            "oldPin": USER_PIN,
            "newPin": "Better#2027pin",
            "newPinAgain": "Better#2027pin",
            "confirmFinalTry": false,
        }),
    )
    .unwrap();
    assert_eq!(status["user"], "ok");
}

#[test]
fn settings_round_trip_through_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (_app, w) = window(dir.path());
    let saved = call(
        &w,
        "settings_set",
        json!({ "settings": { "language": "en" } }),
    )
    .unwrap();
    assert_eq!(saved["language"], "en");
    assert_eq!(
        call(&w, "settings_get", json!({})).unwrap()["language"],
        "en"
    );
    let info = call(&w, "app_info", json!({})).unwrap();
    // The one version line: the workspace version and the commit, as keyward --version says.
    assert_eq!(info["version"], keyward_version::VERSION_LINE);
    assert!(
        keyward_version::VERSION_LINE.starts_with(env!("CARGO_PKG_VERSION")),
        "{}",
        keyward_version::VERSION_LINE
    );
    // Without its configuration the simulator does not load: a coded error, in the
    // language just chosen, with the detail support staff need.
    let e = call(&w, "cert_show", json!({ "serial": "nope" })).unwrap_err();
    assert_eq!(e["code"], "module_load");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("The USB key driver")
    );
    assert!(e["detail"].as_str().unwrap().contains("libkeyward_sim.so"));
}

/// The workflow commands check their arguments before touching the key or the CA, and fail
/// with coded errors: no CA set, years out of range, a scan that is not an image, PINs
/// typed differently — and never echo a PIN.
#[test]
fn workflow_commands_check_their_arguments_and_say_what_is_missing() {
    let (set, _module, manifest) = FixtureSet::build(&[KeyState::IssuedEc], &sim_module()).unwrap();
    let (_app, w) = window(set.dir());
    let serial = manifest.tokens[0].serial.clone();

    // Nothing journaled yet; this needs neither the key nor the CA.
    assert_eq!(
        call(&w, "flow_pending", json!({ "serial": serial })).unwrap(),
        json!([])
    );
    assert_eq!(call(&w, "ca_root_show", json!({})).unwrap(), Value::Null);

    let saved = call(
        &w,
        "settings_set",
        json!({ "settings": { "language": "zh-CN", "ca_url": null, "ca_root": null } }),
    )
    .unwrap();
    assert_eq!(saved["ca_url"], Value::Null);
    let e = call(
        &w,
        "progress_list",
        json!({ "serial": serial, "pin": USER_PIN, "confirmFinalTry": false }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "ca_not_set");
    assert!(!e.to_string().contains(USER_PIN));
    assert!(e["message"].as_str().unwrap().contains("设置"));

    let mismatch = call(
        &w,
        "activate",
        json!({
            "serial": serial,
            "code": "123456",
            "newPin": "Better#2027pin",
            "newPinAgain": "Better#2027pim",
            "progress": "__CHANNEL__:7",
        }),
    )
    .unwrap_err();
    assert_eq!(mismatch["code"], "pin_mismatch");
    assert!(!mismatch.to_string().contains("Better#2027"));

    let years = call(
        &w,
        "renew_apply",
        json!({
            "serial": serial, "years": 6, "invoiceTitle": "某某公司", "taxId": "",
            "email": "a@b.cn", "pin": USER_PIN, "confirmFinalTry": false,
        }),
    )
    .unwrap_err();
    assert_eq!(years["code"], "bad_argument");
    assert!(years["message"].as_str().unwrap().contains("1 至 5"));
    assert!(!years.to_string().contains(USER_PIN));

    let seal = |kind: &str, scan: Vec<u8>| {
        call_file(
            &w,
            "seal_apply",
            json!({
                "serial": serial, "name": "某某公司", "kind": kind, "change": false,
                "pin": USER_PIN, "confirmFinalTry": false,
            }),
            &scan,
        )
        .unwrap_err()
    };
    assert_eq!(
        seal("round", b"\x89PNG\r\n\x1a\n".to_vec())["code"],
        "bad_argument"
    );
    let pdf = seal("official", b"%PDF-1.7".to_vec());
    assert_eq!(pdf["code"], "bad_argument");
    assert!(pdf["message"].as_str().unwrap().contains("PNG"));
    assert_eq!(seal("official", Vec::new())["code"], "bad_argument");
    // A real PNG goes as far as the CA, which is not set.
    assert_eq!(
        seal("official", b"\x89PNG\r\n\x1a\n....".to_vec())["code"],
        "ca_not_set"
    );

    let attach = call_file(
        &w,
        "unlock_attach",
        json!({ "serial": serial, "kind": "selfie" }),
        &[0xFF, 0xD8, 0xFF],
    )
    .unwrap_err();
    assert_eq!(attach["code"], "bad_argument");
    // A 5 MB JPEG crosses as bytes and is checked (then stopped: no CA is set); one byte
    // more is refused; a file sent as a JSON array, or without its arguments, is refused.
    let mut jpeg = vec![0u8; keyward_desktop::flows::MAX_UPLOAD];
    jpeg[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
    let args = json!({ "serial": serial, "kind": "id_card" });
    assert_eq!(
        call_file(&w, "unlock_attach", args.clone(), &jpeg).unwrap_err()["code"],
        "ca_not_set"
    );
    jpeg.push(0);
    let big = call_file(&w, "unlock_attach", args.clone(), &jpeg).unwrap_err();
    assert!(big["message"].as_str().unwrap().contains("5 MB"), "{big}");
    let as_json = call(
        &w,
        "unlock_attach",
        json!({ "serial": serial, "kind": "id_card", "bytes": [0xFF, 0xD8, 0xFF] }),
    )
    .unwrap_err();
    assert_eq!(as_json["code"], "bad_argument");
    let no_args = get_ipc_response(
        &w,
        InvokeRequest {
            cmd: "unlock_attach".into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Raw(vec![0xFF, 0xD8, 0xFF]),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
    .unwrap_err();
    assert_eq!(no_args["code"], "bad_argument");
    let who = call(
        &w,
        "unlock_apply",
        json!({ "serial": serial, "name": " ", "idNumber": "1", "phone": "1" }),
    )
    .unwrap_err();
    assert_eq!(who["code"], "bad_argument");
}

/// A CA that is set but cannot be reached. (A root that is not a certificate: tests/trust.rs.)
#[test]
fn an_unreachable_ca_gets_its_own_code() {
    let (set, _module, manifest) = FixtureSet::build(&[KeyState::IssuedEc], &sim_module()).unwrap();
    let (_app, w) = window(set.dir());
    let serial = manifest.tokens[0].serial.clone();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    call(
        &w,
        "settings_set",
        json!({ "settings": { "language": "en", "ca_url": format!("http://127.0.0.1:{port}") } }),
    )
    .unwrap();
    // Eligibility is read from the key alone: no CA call before a renewal is under way.
    let renew = call(&w, "renew_status", json!({ "serial": serial })).unwrap();
    assert_eq!(renew["certificate"]["renewal"]["status"], "not_yet");
    assert_eq!(renew["fee_per_year_fen"], 20000);
    let e = call(
        &w,
        "progress_list",
        json!({ "serial": serial, "pin": USER_PIN, "confirmFinalTry": false }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "ca_offline", "{e}");
}

/// A plain PDF of `pages` A4 pages, written by hand.
fn plain_pdf(pages: usize) -> Vec<u8> {
    let mut objects = vec![
        "<</Type/Catalog/Pages 2 0 R>>".to_owned(),
        format!(
            "<</Type/Pages/Count {pages}/Kids[{}]>>",
            (0..pages)
                .map(|i| format!("{} 0 R", 3 + 2 * i))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ];
    for i in 0..pages {
        let content = format!("0 0 1 rg {} 700 50 50 re f", 100 + i);
        objects.push(format!(
            "<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents {} 0 R>>",
            4 + 2 * i
        ));
        objects.push(format!(
            "<</Length {}>>stream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (n, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n{o}\nendobj\n", n + 1).bytes());
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        pdf.extend(format!("{o:010} 00000 n \n").bytes());
    }
    pdf.extend(
        format!(
            "trailer\n<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    pdf
}

/// 签章 through the window: the pages and the seal before any PIN, the refusals before the
/// PIN (no try spent, no file written), the stamp into a new file beside the untouched
/// original, and its check against the pinned root.
#[test]
fn the_window_stamps_a_pdf_into_a_new_file_and_checks_it() {
    let (set, _module, manifest) =
        FixtureSet::build(&[KeyState::Sealed, KeyState::IssuedEc], &sim_module()).unwrap();
    let root = set.dir().join("root.pem");
    std::fs::write(
        set.dir().join("settings.json"),
        json!({ "language": "zh-CN", "ca_root": root }).to_string(),
    )
    .unwrap();
    let (_app, w) = window(set.dir());
    let sealed = manifest.tokens[0].serial.clone();
    let plain = manifest.tokens[1].serial.clone();
    let docs = tempfile::tempdir().unwrap();
    let input = docs.path().join("投标书.pdf");
    let original = plain_pdf(2);
    std::fs::write(&input, &original).unwrap();
    let path = input.to_str().unwrap();

    let view = call(
        &w,
        "stamp_preview",
        json!({ "serial": sealed, "path": path }),
    )
    .unwrap();
    assert_eq!(view["pages"].as_array().unwrap().len(), 2);
    let width = view["pages"][0]["width_mm"].as_f64().unwrap();
    assert!((width - 209.9).abs() < 0.2, "{width}");
    assert!(
        view["seal_image_url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/")
    );
    assert_eq!(
        view["organization"],
        manifest.tokens[0].organization.clone().unwrap().as_str()
    );
    let suggested = docs.path().join("投标书-已盖章.pdf");
    assert_eq!(view["suggested_output"], suggested.to_str().unwrap());

    // A key without a seal, a damaged file: refused before any PIN.
    let e = call(
        &w,
        "stamp_preview",
        json!({ "serial": plain, "path": path }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "no_seal");
    let junk = docs.path().join("junk.pdf");
    std::fs::write(&junk, b"%PDF-1.4 not really").unwrap();
    let e = call(
        &w,
        "stamp_preview",
        json!({ "serial": sealed, "path": junk.to_str().unwrap() }),
    )
    .unwrap_err();
    assert_eq!(e["code"], "pdf_damaged");

    let stamp = |place: Value, output: &std::path::Path, pin: &str| {
        call(
            &w,
            "stamp_file",
            json!({
                "serial": sealed,
                "path": path,
                "output": output.to_str().unwrap(),
                "place": place,
                "pin": pin,
                "confirmFinalTry": false,
                "progress": "__CHANNEL__:1",
            }),
        )
    };
    let at = json!({ "kind": "at", "page": 1, "x_mm": 100.0, "y_mm": 60.0 });
    // Refused before the PIN: the original as output, a page that does not exist, a place
    // off the page; a wrong PIN answers with the tries left.
    assert_eq!(
        stamp(at.clone(), &input, "Wrong#3001").unwrap_err()["code"],
        "output_is_input"
    );
    let e = stamp(
        json!({ "kind": "at", "page": 3, "x_mm": 100.0, "y_mm": 60.0 }),
        &suggested,
        "Wrong#3001",
    )
    .unwrap_err();
    assert_eq!(e["code"], "page_out_of_range");
    let e = stamp(
        json!({ "kind": "at", "page": 1, "x_mm": 1.0, "y_mm": 60.0 }),
        &suggested,
        "Wrong#3001",
    )
    .unwrap_err();
    assert_eq!(e["code"], "seal_off_page");
    let tries = |serial: &str| {
        call(&w, "pin_status", json!({ "serial": serial })).unwrap()["status"]["user_tries_left"]
            .clone()
    };
    assert_eq!(tries(&sealed), 10, "a refusal cost a PIN try");
    let e = stamp(at.clone(), &suggested, "Wrong#3001").unwrap_err();
    assert_eq!(e["code"], "pin_incorrect");
    assert_eq!(e["pin"]["user_tries_left"], 9);
    assert!(!e.to_string().contains("Wrong#3001"));
    assert!(!suggested.exists());

    let done = stamp(at.clone(), &suggested, USER_PIN).unwrap();
    assert_eq!(done["output"], suggested.to_str().unwrap());
    assert_eq!(done["pages"], json!([1]));
    assert!(done.get("document").is_none());
    assert!(!done.to_string().contains(USER_PIN));
    assert_eq!(std::fs::read(&input).unwrap(), original);
    let stamped = std::fs::read(&suggested).unwrap();
    assert!(stamped.starts_with(&original));

    // An existing output is refused and left as it was.
    let e = stamp(at, &suggested, USER_PIN).unwrap_err();
    assert_eq!(e["code"], "output_exists");
    assert_eq!(std::fs::read(&suggested).unwrap(), stamped);

    let report = call(
        &w,
        "stamp_verify",
        json!({ "path": suggested.to_str().unwrap() }),
    )
    .unwrap();
    assert_eq!(report["all_valid"], true, "{report}");
    let s = &report["signatures"][0];
    assert_eq!(s["organization"], view["organization"]);
    assert_eq!(
        s["credit_code"],
        manifest.tokens[0].credit_code.clone().unwrap().as_str()
    );
    assert_eq!(s["chain_trusted"], true);
    assert_eq!(s["seal"]["bound_to_signer"], true);
    // The original has no stamp.
    let report = call(&w, "stamp_verify", json!({ "path": path })).unwrap();
    assert_eq!(report["signatures"], json!([]));
    assert_eq!(report["all_valid"], false);
}

/// 导出证书 through the window: the organisation certificate as PEM and as DER, each read
/// back by openssl and matching the fingerprint 我的证书 shows; an existing file is never
/// replaced, and an empty path is refused before the key is asked.
#[test]
fn the_window_exports_the_certificate_as_pem_and_der() {
    let (set, _module, manifest) =
        FixtureSet::build(&[KeyState::IssuedRsa], &sim_module()).unwrap();
    let (_app, w) = window(set.dir());
    let serial = manifest.tokens[0].serial.clone();
    let shown = call(&w, "cert_show", json!({ "serial": serial })).unwrap();
    let sha256 = shown["certificates"][0]["summary"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tempfile::tempdir().unwrap();
    let suggested = call(
        &w,
        "cert_export_path",
        json!({ "serial": serial, "format": "pem" }),
    )
    .unwrap();
    assert!(
        suggested.as_str().unwrap().ends_with("-证书.pem"),
        "{suggested}"
    );

    for (format, inform, name) in [("pem", "PEM", "证书.pem"), ("der", "DER", "证书.cer")] {
        let path = out.path().join(name);
        let done = call(
            &w,
            "cert_export",
            json!({ "serial": serial, "format": format, "path": path }),
        )
        .unwrap();
        assert!(done["bytes"].as_u64().unwrap() > 100, "{done}");
        let printed = std::process::Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-fingerprint",
                "-sha256",
                "-inform",
                inform,
                "-in",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(printed.status.success(), "{printed:?}");
        let text = String::from_utf8(printed.stdout).unwrap();
        assert_eq!(
            text.trim().split('=').nth(1).unwrap().replace(':', ""),
            sha256,
            "{format}"
        );
        // Again to the same name: refused, the file as it was.
        let before = std::fs::read(&path).unwrap();
        let again = call(
            &w,
            "cert_export",
            json!({ "serial": serial, "format": format, "path": path }),
        )
        .unwrap_err();
        assert_eq!(again["code"], "output_exists", "{again}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
    let empty = call(
        &w,
        "cert_export",
        json!({ "serial": serial, "format": "pem", "path": " " }),
    )
    .unwrap_err();
    assert_eq!(empty["code"], "bad_argument", "{empty}");
}

/// The bridge's window side, for a host no page talks to.
struct NoWindow;

impl keyward_desktop::bridge::Window for NoWindow {
    fn prompts(&self, _prompts: Vec<keyward_desktop::bridge::PromptView>, _raise: bool) {}
    fn ended(&self, _id: u64, _reason: keyward_desktop::bridge::Ended) {}
    fn navigate(&self, _to: keyward_desktop::deeplink::Navigate) {}
}

/// 绑定 offered after activation opens only a portal the operator allowed (始终允许): any other
/// address the page names — another host, a look-alike, a path, another scheme — is refused
/// before anything is started.
#[test]
fn portal_open_refuses_an_origin_the_grants_do_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let granted = "https://www.ggzy.gov.cn";
    let mut grants = keyward_bridge::consent::Grants::load(
        Some(dir.path().join("bridge-grants.json")),
        Vec::new(),
    )
    .unwrap();
    grants
        .grant(
            &keyward_bridge::parse_origin(Some(granted), false).unwrap(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let desktop = Desktop::new(
        Keys::with_module(&sim_module()),
        dir.path(),
        dir.path().join("logs"),
    );
    let host = keyward_desktop::bridge::BridgeHost::at(
        dir.path(),
        dir.path(),
        Box::new(NoWindow),
        "127.0.0.1:0".parse().unwrap(),
        std::time::Duration::from_secs(5),
    );
    let app = mock_builder()
        .manage(desktop)
        .manage(host)
        .invoke_handler(keyward_desktop::commands())
        .build(mock_context(noop_assets()))
        .unwrap();
    let w = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    // The grant is there, as 设置 · 网页调用 lists it.
    let info = call(&w, "bridge_status", json!({})).unwrap();
    assert_eq!(info["grants"][0]["origin"]["origin"], granted);
    for origin in [
        "https://evil.example.cn",
        "https://www.ggzy.gov.cn.evil.cn",
        "https://www.ggzy.gov.cn/bind",
        "http://www.ggzy.gov.cn",
        "file:///etc/passwd",
        "--help",
    ] {
        let e = call(&w, "portal_open", json!({ "origin": origin })).unwrap_err();
        assert_eq!(e["code"], "bad_argument", "{origin}: {e}");
    }
}
