//! The simulator seen by OpenSC's `pkcs11-tool`, a client nobody here wrote.

mod common;

use common::*;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn pkcs11_tool_sees_the_lockout_and_the_so_unlock() {
    let sim = Sim::new();
    sim.add_token("T");
    for attempt in 1..=10 {
        let out = sim.pkcs11_tool(&[
            "--token-label",
            "T",
            "--login",
            "--pin",
            WRONG_PIN,
            "--list-objects",
        ]);
        assert!(!out.status.success(), "attempt {attempt} succeeded");
        assert!(
            text(&out).contains("CKR_PIN_INCORRECT"),
            "attempt {attempt}: {}",
            text(&out)
        );
    }
    let out = sim.pkcs11_tool(&[
        "--token-label",
        "T",
        "--login",
        "--pin",
        USER_PIN,
        "--list-objects",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("CKR_PIN_LOCKED"), "{}", text(&out));
    let out = sim.pkcs11_tool(&["--list-token-slots"]);
    assert!(text(&out).contains("user PIN locked"), "{}", text(&out));

    let out = sim.pkcs11_tool(&[
        "--token-label",
        "T",
        "--init-pin",
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        SO_PIN,
        "--new-pin",
        "24682468",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sim.pkcs11_tool(&["--list-token-slots"]);
    assert!(!text(&out).contains("user PIN locked"), "{}", text(&out));
    let out = sim.pkcs11_tool(&[
        "--token-label",
        "T",
        "--login",
        "--pin",
        "24682468",
        "--list-objects",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sim.control(&["tries", "T"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "user 10/10  so 10/10"
    );
}

#[test]
fn pkcs11_tool_self_test_passes_through_the_simulator() {
    let sim = Sim::new();
    sim.add_token("T");
    let login = ["--token-label", "T", "--login", "--pin", USER_PIN];
    let out = sim.pkcs11_tool(
        &[
            &login[..],
            &[
                "--keypairgen",
                "--key-type",
                "EC:prime256v1",
                "--label",
                "k",
                "--id",
                "01",
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = sim.pkcs11_tool(&[&login[..], &["--test"]].concat());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("No errors"), "{t}");
    let out = sim.pkcs11_tool(&["--show-info"]);
    assert!(
        text(&out).contains("Keyward USB key simulator"),
        "{}",
        text(&out)
    );

    // With an RSA key the self-test exercises signing, verification and
    // decryption; whatever SoftHSM answers directly, the simulator answers
    // the same (pkcs11-tool's OAEP check fails against SoftHSM itself).
    let out = sim.pkcs11_tool(
        &[
            &login[..],
            &[
                "--keypairgen",
                "--key-type",
                "rsa:1024",
                "--label",
                "r",
                "--id",
                "02",
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let through_sim = sim.pkcs11_tool(&[&login[..], &["--test"]].concat());
    let direct = std::process::Command::new("pkcs11-tool")
        .args(["--module", SOFTHSM])
        .args(login)
        .arg("--test")
        .output()
        .expect("pkcs11-tool");
    assert!(
        text(&through_sim).contains("RSA-PKCS: OK"),
        "{}",
        text(&through_sim)
    );
    assert_eq!(text(&through_sim), text(&direct));
    assert_eq!(through_sim.status.code(), direct.status.code());
}

#[test]
fn pkcs11_tool_without_configuration_gets_a_clear_error() {
    let sim = Sim::new();
    let out = std::process::Command::new("pkcs11-tool")
        .arg("--module")
        .arg(&sim.lib)
        .arg("--list-slots")
        .env_remove("KEYWARD_SIM_CONF")
        .output()
        .expect("pkcs11-tool");
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("KEYWARD_SIM_CONF"), "{t}");
    assert!(t.contains("CKR_GENERAL_ERROR"), "{t}");
    // Exited normally, not killed by a signal.
    assert!(out.status.code().is_some(), "{t}");
}
