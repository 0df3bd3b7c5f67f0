//! 环境检测 (`keyward doctor`) as an operator's computer shows it: a key plugged in whose
//! driver is missing, the fixture keys healthy with the CA, a driver that hangs in
//! C_Initialize, a driver built for another architecture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keyward_flows::doctor::plant_device;
use keyward_sim::control::{self, Effect, Fault};
use serde_json::Value;
use softhsm_fixtures::KeyState;

use common::{Ca, Keys, binary, cli};

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == code)
        .collect()
}

/// A Longmai GM3000 planted in a fake sysfs, on a computer without its driver: the verdict
/// names the key, its USB ID and the driver file, and the finding carries them as fields.
#[test]
fn a_plugged_key_without_its_driver_is_named_with_the_missing_driver() {
    let sys = tempfile::tempdir().unwrap();
    plant_device(
        sys.path(),
        "1-1",
        "055c:e618",
        "Longmai",
        "mToken GM3000",
        false,
    )
    .unwrap();
    // An unknown mouse is no key, and says nothing.
    plant_device(
        sys.path(),
        "1-2",
        "046d:c077",
        "Logitech",
        "USB Optical Mouse",
        false,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(binary("keyward"))
            .args(args)
            .env("KEYWARD_SYSFS_USB", sys.path())
            .env("KEYWARD_DATA_DIR", data.path())
            .env_remove("KEYWARD_PKCS11_MODULE")
            .env_remove("KEYWARD_CA_URL")
            .env_remove("KEYWARD_CA_ROOT")
            .env_remove("LANG")
            .output()
            .unwrap()
    };
    let out = run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a problem exits 1");
    let report = json(&out);
    assert_eq!(report["healthy"], false);
    let missing = findings(&report, "driver_missing");
    assert_eq!(missing.len(), 1, "{report:#}");
    let d = &missing[0]["detail"];
    assert_eq!(d["vendor"], "龙脉");
    assert_eq!(d["model"], "mToken GM3000");
    assert_eq!(d["usb_id"], "055c:e618");
    assert_eq!(d["module"], "libgm3000_pkcs11.so");
    assert_eq!(missing[0]["severity"], "problem");
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with(
            "已插入 龙脉 mToken GM3000（055c:e618），但未安装其驱动 libgm3000_pkcs11.so"
        ),
        "{verdict}"
    );
    assert_eq!(report["usb_keys"].as_array().unwrap().len(), 1);
    assert!(
        !report.to_string().contains("046d:c077\",\"profile"),
        "the mouse matched no profile"
    );

    // The same in English and in text; a bad flag is a usage error.
    let out = run(&["doctor", "--lang", "en"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().next().unwrap().contains(
            "Longmai mToken GM3000 (055c:e618) is plugged in, but its driver libgm3000_pkcs11.so is not installed"
        ),
        "{text}"
    );
    assert!(text.contains("[driver_missing]"), "{text}");
    assert_eq!(run(&["doctor", "--no-such-flag"]).status.code(), Some(2));

    // Unplugged: no key at all is a problem too, with its own code.
    std::fs::remove_dir_all(sys.path().join("1-1")).unwrap();
    let report = json(&run(&["doctor", "--json"]));
    assert!(findings(&report, "driver_missing").is_empty());
    if findings(&report, "keys_found").is_empty() {
        assert_eq!(findings(&report, "no_key").len(), 1, "{report:#}");
    }
}

/// The fixture keys through the simulator and the reference CA: everything is well, the
/// verdict says so, and the exit code is 0.
#[test]
fn the_fixture_keys_and_the_ca_are_reported_healthy() {
    let keys = Keys::fixtures(&[KeyState::IssuedRsa, KeyState::IssuedEc]);
    let ca = Ca::start();
    let sys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = cli::command(&keys, Some(&ca), data.path())
        .env("KEYWARD_SYSFS_USB", sys.path())
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["healthy"], true);
    let found = findings(&report, "keys_found");
    assert_eq!(found[0]["detail"]["count"], 2, "{report:#}");
    let module = findings(&report, "module_ok");
    assert_eq!(module.len(), 1);
    assert_eq!(module[0]["detail"]["keys"], 2);
    assert_eq!(report["modules"][0]["profile"], "keyward-sim");
    assert_eq!(report["modules"][0]["probe"]["outcome"], "loaded");
    let serials: Vec<&str> = report["modules"][0]["probe"]["answer"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["serial"].as_str().unwrap())
        .collect();
    for t in keys.tokens() {
        assert!(serials.contains(&t.serial.as_str()), "{serials:?}");
    }
    assert_eq!(findings(&report, "ca_ok").len(), 1, "{report:#}");
    assert!(findings(&report, "clock_skew").is_empty());
    assert!(
        report["verdict"]
            .as_str()
            .unwrap()
            .starts_with("环境检测通过：读到 2 个 USB Key"),
        "{report:#}"
    );

    // A CA that does not answer is a problem, named with its address.
    let out = cli::command(&keys, None, data.path())
        .env("KEYWARD_SYSFS_USB", sys.path())
        .env("KEYWARD_CA_URL", "http://127.0.0.1:9")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let down = findings(&report, "ca_unreachable");
    assert_eq!(down[0]["detail"]["url"], "http://127.0.0.1:9", "{report:#}");
}

/// A copy of the simulator under the Longmai driver's file name, whose C_Initialize hangs
/// for a minute: the doctor reports it after its timeout instead of waiting, and `keyward
/// tokens` (its profile says load-in-child) refuses it after the same test load.
#[test]
fn a_driver_that_hangs_in_c_initialize_is_reported_not_waited_on() {
    let keys = Keys::fixtures(&[KeyState::IssuedEc]);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("libgm3000_pkcs11.so");
    std::fs::copy(common::sim_module(), &copy).unwrap();
    let hang = || {
        control::arm_fault(
            keys.sim_state(),
            Fault {
                function: "C_Initialize",
                at_call: 1,
                effect: Effect::Hang(60),
            },
        )
        .unwrap()
    };
    let data = tempfile::tempdir().unwrap();
    let sys = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let started = Instant::now();
        let out = cli::command(&keys, None, data.path())
            .env("KEYWARD_SYSFS_USB", sys.path())
            .env("KEYWARD_PKCS11_MODULE", &copy)
            .args(args)
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    hang();
    let (out, took) = run(&["doctor", "--json"]);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let hung = findings(&report, "module_hangs");
    assert_eq!(hung.len(), 1, "{report:#}");
    assert_eq!(
        hung[0]["detail"]["module"],
        copy.display().to_string(),
        "{report:#}"
    );
    assert_eq!(report["modules"][0]["probe"]["outcome"], "timed_out");

    hang();
    let (out, took) = run(&["tokens"]);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(out.status.code(), Some(9), "module missing or broken");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("C_Initialize"), "{err}");

    // Not hanging any more, the same copy is a working driver.
    control::clear_faults(keys.sim_state()).unwrap();
    let (out, _) = run(&["tokens", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn foreign_copy(dir: &Path) -> (PathBuf, &'static str) {
    let mut bytes = std::fs::read(common::sim_module()).unwrap();
    let (machine, arch): (u16, &str) = if cfg!(target_arch = "x86_64") {
        (183, "aarch64")
    } else {
        (62, "x86_64")
    };
    bytes[18..20].copy_from_slice(&machine.to_le_bytes());
    let path = dir.join("libgm3000_pkcs11.so");
    std::fs::write(&path, bytes).unwrap();
    (path, arch)
}

/// A driver built for another architecture is named as such, with both architectures.
#[test]
fn a_driver_for_another_architecture_is_named_as_such() {
    let keys = Keys::fixtures(&[KeyState::IssuedEc]);
    let dir = tempfile::tempdir().unwrap();
    let (path, arch) = foreign_copy(dir.path());
    let data = tempfile::tempdir().unwrap();
    let sys = tempfile::tempdir().unwrap();
    let out = cli::command(&keys, None, data.path())
        .env("KEYWARD_SYSFS_USB", sys.path())
        .env("KEYWARD_PKCS11_MODULE", &path)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let wrong = findings(&report, "driver_wrong_arch");
    assert_eq!(wrong.len(), 1, "{report:#}");
    assert_eq!(wrong[0]["detail"]["module_arch"], arch);
    let verdict = report["verdict"].as_str().unwrap();
    assert!(verdict.contains(&format!("适用于 {arch}")), "{verdict}");
}
