//! The electronic seal through the `keyward` binary: 申请印章 with a scan file, the CA's
//! reviewer approves, `keyward resume` installs it, `keyward seal show` exports its image.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{PIN, World};
use keyward_ca_api::ReviewDecision;
use serde_json::Value;

const ORG: &str = "深圳市印章命令行测试有限公司";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR stamped seal scan";

#[test]
fn seal_apply_review_resume_install_and_show_from_the_command_line() {
    let w = World::new(ORG, "91440300MA5E00002", 0);
    let pin_line = format!("{PIN}\n");
    w.ok(&["activate", "--send-code", "--json"], "");
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
            &ReviewDecision { note: "ok".into() },
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
    // Installed: nothing is left to follow on this computer.
    assert_eq!(w.ok(&["seal", "status", "--json"], ""), Value::Null);
}
