//! 环境检测 (`keyward doctor`) as an operator's computer shows it: a key plugged in whose
//! driver is missing, the fixture keys healthy with the CA, a driver that hangs in
//! C_Initialize, a driver built for another architecture, pcscd's readers and their ATRs.
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

/// A card in a virtual reader, as pcscd's vpcd driver expects one: it connects to the
/// driver's port and answers its commands (length-prefixed frames; one byte 0x04 asks for
/// the ATR, 0x00–0x02 power it off, on and reset; longer frames are APDUs).
fn virtual_card(port: u16, atr: Vec<u8>) -> std::thread::JoinHandle<()> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("vpcd never listened on {port}: {e}"),
            }
        };
        let send = |s: &mut std::net::TcpStream, data: &[u8]| {
            let len = u16::try_from(data.len()).unwrap().to_be_bytes();
            s.write_all(&len).and_then(|()| s.write_all(data))
        };
        let mut len = [0u8; 2];
        while s.read_exact(&mut len).is_ok() {
            let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut frame).is_err() {
                break;
            }
            let answer: Option<&[u8]> = match frame.as_slice() {
                [0x04] => Some(&atr),
                [_] => None,
                // Any APDU: "function not supported", as a card with no application says.
                _ => Some(&[0x6A, 0x81]),
            };
            if let Some(a) = answer
                && send(&mut s, a).is_err()
            {
                break;
            }
        }
    })
}

/// pcscd with the vpcd reader driver on `port`, in a mount namespace of its own so that its
/// fixed socket folder is a temporary one: this test's pcscd is nobody else's.
/// A free port below the system's ephemeral range (32768 up). vpcd binds its port only once
/// pcscd loads it; a port the kernel hands out for `bind(0)` may by then be another test's
/// outgoing connection, and vpcd would never listen. Ports below the range are given to no
/// connection unasked.
fn port_outside_the_ephemeral_range() -> u16 {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (start..32_000)
        .chain(20_000..start)
        .find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok())
        .expect("a free port between 20000 and 32000")
}

struct Pcscd {
    child: std::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pcscd {
    fn start(port: u16) -> Pcscd {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("reader.conf.d");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            conf.join("vpcd"),
            format!(
                "FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:{port}\n\
                 LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID {port}\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/pcscd").unwrap();
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(r#"mount --bind "$1" /run/pcscd && exec pcscd --foreground -c "$2""#)
            .arg("pcscd")
            .arg(&run)
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("pcscd (Debian packages pcscd and vsmartcard-vpcd, run as root)");
        let socket = run.join("pcscd.comm");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "pcscd made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pcscd {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        // `unshare` execs sh which execs pcscd: the child is pcscd itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PC/SC as pcscd shows it: a reader with a card gives its ATR, the second reader of the
/// same driver is empty, and nothing is connected to or reset. With no reader at all, the
/// check says so without calling it "no key"; without pcscd it says pcscd is not running.
#[test]
fn pcsc_readers_and_their_atrs_are_listed() {
    let port = port_outside_the_ephemeral_range();
    let pcscd = Pcscd::start(port);
    // The ATR of a CCID key's chip as a vendor might answer (made up for the test).
    let atr = vec![
        0x3B, 0x9F, 0x95, 0x81, 0x31, 0xFE, 0x9F, 0x00, 0x66, 0x46, 0x53,
    ];
    let _card = virtual_card(port, atr.clone());
    let sys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let doctor = |socket: &Path| {
        let out = Command::new(binary("keyward"))
            .args(["doctor", "--json"])
            .env("PCSCLITE_CSOCK_NAME", socket)
            .env("KEYWARD_SYSFS_USB", sys.path())
            .env("KEYWARD_DATA_DIR", data.path())
            .env_remove("KEYWARD_PKCS11_MODULE")
            .env_remove("KEYWARD_CA_URL")
            .env_remove("LANG")
            .output()
            .unwrap();
        json(&out)
    };
    // The card reaches pcscd a moment after it connects.
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let r = doctor(&pcscd.socket);
        if r["pcsc"]["survey"]["readers"][0]["card_present"] == true || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(report["pcsc"]["running"], true, "{report:#}");
    let readers = report["pcsc"]["survey"]["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 2, "{report:#}");
    assert_eq!(readers[0]["name"], "Virtual PCD 00 00");
    assert_eq!(readers[0]["atr"], hex::encode_upper(&atr));
    assert_eq!(readers[1]["card_present"], false);
    assert!(readers[1]["atr"].is_null());
    let listed = findings(&report, "pcsc_reader");
    assert_eq!(listed.len(), 2, "{report:#}");
    let with_card = listed[0]["message"].as_str().unwrap();
    assert!(
        with_card.contains("Virtual PCD 00 00") && with_card.contains(&hex::encode_upper(&atr)),
        "{with_card}"
    );
    assert_eq!(listed[0]["detail"]["atr"], hex::encode_upper(&atr));
    assert!(findings(&report, "pcsc_no_readers").is_empty());

    // pcscd gone: "not running", never a reader list.
    drop(pcscd);
    let report = doctor(&data.path().join("no-pcscd.comm"));
    assert_eq!(report["pcsc"]["running"], false, "{report:#}");
    assert_eq!(report["pcsc"]["survey"]["state"], "no_service");
    assert_eq!(
        findings(&report, "pcscd_not_running").len(),
        1,
        "{report:#}"
    );
    assert!(findings(&report, "pcsc_reader").is_empty());
}
