//! `cargo xtask …`: Keyward's automation. Each command installs what it needs first, so
//! the README's two commands work on a fresh Debian machine with only Rust installed.
//!
//! - `setup`: the Debian packages and cargo tools the project needs, installed when missing.
//! - `demo`: builds the keys in every state and walks them through the `keyward` CLI.
//! - `test`: formatting, lints, every test of the workspace (the portal SDK's too), and the
//!   desktop app end to end.
//! - `e2e [--docs]`: the desktop app under Xvfb, driven through WebDriver over simulated keys.
//! - `fixtures DIR`: a fixture folder of simulated keys, for trying things by hand.
//! - `package [--debug] [--install-test]`: the operator's `.deb` and the CA's `.deb`
//!   (`package.rs`), and with `--install-test` the install tests `test` runs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod apifuzz;
mod bench;
mod bench_desktop;
mod fuzz;
mod journey;
mod layers;
mod leaks;
mod package;
mod sdk;
mod ui;

/// Debian packages and why each is needed.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("softhsm2", "the software token behind the simulated keys"),
    (
        "opensc",
        "pkcs11-tool, the outside check of what Keyward writes",
    ),
    ("gnutls-bin", "p11tool, a second outside check"),
    (
        "openssl",
        "verifies certificates, chains, CSRs and signatures in tests",
    ),
    (
        "libssl-dev",
        "kryoptic (the second software token) links the system OpenSSL",
    ),
    ("pkg-config", "finds libssl for kryoptic's build"),
    (
        "clang",
        "kryoptic's OpenSSL bindings are generated at build time",
    ),
    (
        "libclang-dev",
        "kryoptic's OpenSSL bindings are generated at build time",
    ),
    ("keyutils", "a kernel keyring session for the keyring tests"),
    (
        "pcscd",
        "the PC/SC service 环境检测 lists readers and ATRs from (and libpcsclite)",
    ),
    (
        "vsmartcard-vpcd",
        "a virtual reader for pcscd, with a card the doctor test answers for",
    ),
    ("postgresql", "the CA service's PostgreSQL tests"),
    (
        "nginx",
        "the balancer in front of three CA instances in the CA's multi-instance tests",
    ),
    ("jq", "reads JSON in the demo and by hand"),
    (
        "nodejs",
        "builds and tests the desktop UI (Vite, Vitest); 20.19 or newer",
    ),
    (
        "libwebkit2gtk-4.1-dev",
        "the desktop app's web view (Tauri on Linux)",
    ),
    ("libgtk-3-dev", "the desktop app's window toolkit"),
    ("librsvg2-dev", "the desktop app's SVG icons"),
    (
        "libayatana-appindicator3-dev",
        "the desktop app's tray icon",
    ),
    (
        "xvfb",
        "a virtual display for the desktop app's end-to-end tests",
    ),
    (
        "webkit2gtk-driver",
        "WebKitWebDriver, which tauri-driver drives the desktop app through",
    ),
    (
        "dbus-daemon",
        "a private session bus for the desktop app's end-to-end tests",
    ),
    (
        "dunst",
        "a notification server the end-to-end tests read the expiry reminders back from",
    ),
    (
        "fonts-noto-cjk",
        "Chinese text in the desktop app and its screenshots",
    ),
    (
        "poppler-utils",
        "pdfsig, the outside check of the PDF signatures Keyward makes",
    ),
    (
        "libnss3-tools",
        "certutil, a trust store for pdfsig holding the test root",
    ),
    (
        "chromium",
        "the browser the portal tests drive: the SDK and the sample portal, end to end",
    ),
    (
        "chromium-driver",
        "chromedriver, which the portal tests drive Chromium through (WebDriver)",
    ),
    (
        "python3-pip",
        "installs the Python checkers below when they are missing",
    ),
    (
        "x11-utils",
        "xwininfo: the package test sees the installed app's window map",
    ),
    ("curl", "the package test asks the installed CA's /healthz"),
    (
        "linux-perf",
        "perf, which samples the CA under load for the flame graph of `cargo xtask bench --flamegraph`",
    ),
    (
        "desktop-file-utils",
        "desktop-file-validate checks the package's desktop entries",
    ),
    (
        "adduser",
        "the CA package makes its system user when installed",
    ),
];

/// Python packages (PyPI), the module each is imported as, and why each is needed.
const PYTHON_PACKAGES: &[(&str, &str, &str)] = &[
    (
        "asn1tools",
        "asn1tools",
        "decodes seals by the ASN.1 of GB/T 38540, a decoder Keyward did not write",
    ),
    (
        "pyHanko",
        "pyhanko",
        "validates the PDF signatures Keyward makes against the test root",
    ),
    (
        "cryptography",
        "cryptography",
        "checks the bridge's Web eID tokens with a verifier written from the format",
    ),
    (
        "pyhanko-cli",
        "pyhanko.cli",
        "the `pyhanko sign validate` command the tests run",
    ),
    (
        "gmssl",
        "gmssl",
        "a second SM2 verifier of seals, pure Python, beside OpenSSL",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("demo") => setup().and_then(|()| demo()),
        Some("test") => setup().and_then(|()| test(&args[1..])),
        Some("e2e") => setup().and_then(|()| ui::e2e(&args[1..])),
        Some("bench") => setup().and_then(|()| bench::bench(&args[1..])),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("package") => setup().and_then(|()| {
            let p = package::package(args[1..].iter().any(|a| a == "--debug"))?;
            if args[1..].iter().any(|a| a == "--install-test") {
                package::install_tests(&p)?;
            }
            Ok(())
        }),
        Some("fuzz-api") => setup().and_then(|()| {
            run(cargo().args(["build", "-p", "keyward-ca"]))?;
            apifuzz::run_api_fuzz(100)
        }),
        Some("fixtures") => match args.get(1) {
            Some(dir) => setup().and_then(|()| fixtures(Path::new(dir)).map(|_| ())),
            None => Err(anyhow::anyhow!("usage: cargo xtask fixtures DIR")),
        },
        _ => {
            eprintln!(
                "usage: cargo xtask <setup | demo | test [nextest filters…] | e2e [--docs] | bench [--quick] [--only SECTIONS] [--report-only] [--flamegraph] | fuzz [--seconds N] | fuzz-api | fixtures DIR | package [--debug] [--install-test]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("» {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", show(cmd));
    }
    Ok(())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt(args: &[&str]) -> Command {
    let mut c = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
    c
}

/// Installs what is missing, and nothing when everything is there.
fn setup() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !installed(p))
        .collect();
    if !missing.is_empty() {
        if Command::new("dpkg-query")
            .arg("--version")
            .output()
            .is_err()
        {
            bail!(
                "not a Debian system; install by hand: {}",
                missing.join(" ")
            );
        }
        eprintln!("Installing Debian packages: {}", missing.join(" "));
        run(&mut apt(&["update", "-qq"]))?;
        let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
        install.args(&missing);
        run(&mut install)?;
    }
    let python_missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(_, module, _)| {
            !Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(package, _, _)| *package)
        .collect();
    if !python_missing.is_empty() {
        eprintln!("Installing Python packages: {}", python_missing.join(" "));
        let mut pip = Command::new("python3");
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]);
        // Debian's own Python refuses user packages without this; a venv'd one ignores it.
        pip.env("PIP_BREAK_SYSTEM_PACKAGES", "1");
        pip.args(&python_missing);
        run(&mut pip)?;
    }
    let nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nextest {
        eprintln!("Installing cargo-nextest (each token test runs in its own process)");
        run(cargo().args(["install", "cargo-nextest", "--locked"]))?;
    }
    // The portal SDK's packages (TypeScript, Vitest), from its lock file.
    sdk::install_packages()?;
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Formatting, lints, every crate built (the PKCS#11 modules too), every test.
fn test(filters: &[String]) -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    // One version for the workspace, the UI and the packages.
    package::check_versions()?;
    // The front ends reach the key and the CA through keyward-flows only.
    layers::check()?;
    // keyward-desktop embeds ui/dist at compile time: the UI is built before any cargo build.
    ui::build()?;
    ui::test()?;
    // The portal SDK: its tests, and sdk/dist, which the browser tests load into Chromium.
    sdk::build()?;
    sdk::test()?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["build", "--workspace"]))?;
    if filters.is_empty() {
        // The CA under schema-driven fuzzing of its own OpenAPI document: no 5xx.
        apifuzz::run_api_fuzz(15)?;
        // Every cargo-fuzz target for a short time box (`cargo xtask fuzz` runs long ones).
        fuzz::fuzz(&["--seconds".to_owned(), "10".to_owned()])?;
        // The desktop app end to end (under a minute).
        ui::e2e(&[])?;
        // Both packages from the debug build just made, installed, used and removed.
        let packages = package::package(true)?;
        package::install_tests(&packages)?;
    }
    // Last, so its summary closes the run.
    let mut nextest = cargo();
    nextest
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .args(filters)
        // setup installed PostgreSQL and nginx: their tests must run, never skip.
        .env("KEYWARD_REQUIRE_POSTGRES", "1");
    run(&mut nextest)
}

/// Builds the fixture keys behind the simulator in `dir`, returning the manifest.
fn fixtures(dir: &Path) -> Result<serde_json::Value> {
    run(cargo().args([
        "build",
        "-p",
        "softhsm-fixtures",
        "-p",
        "keyward-sim",
        "-p",
        "keyward-cli",
        "-p",
        "keyward-ca",
    ]))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let bin = target_dir().join("debug");
    let sim = bin.join("libkeyward_sim.so");
    let out = Command::new(bin.join("keyward-fixtures"))
        .arg(dir)
        .arg("--module")
        .arg(&sim)
        .output()
        .context("running keyward-fixtures")?;
    if !out.status.success() {
        bail!(
            "keyward-fixtures failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("fixture manifest")?;
    eprintln!(
        "Fixture keys in {} (module {})",
        dir.display(),
        sim.display()
    );
    eprintln!(
        "  export SOFTHSM2_CONF={0}/softhsm2.conf KEYWARD_SIM_CONF={0}/keyward-sim.toml KEYWARD_PKCS11_MODULE={1}",
        dir.display(),
        sim.display()
    );
    Ok(manifest)
}

/// The journey so far: keys in every state, seen and handled through the CLI.
fn demo() -> Result<()> {
    // keyward-desktop embeds ui/dist at compile time: the UI is built before any cargo build.
    ui::build()?;
    let dir = target_dir().join("demo").join("keys");
    let manifest = fixtures(&dir)?;
    let bin = target_dir().join("debug");
    let keyward = |args: &[&str], stdin: Option<&str>| -> Result<()> {
        let mut cmd = Command::new(bin.join("keyward"));
        cmd.args(args)
            .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
            .env("KEYWARD_SIM_CONF", dir.join("keyward-sim.toml"))
            .env("KEYWARD_PKCS11_MODULE", bin.join("libkeyward_sim.so"));
        println!("\n$ keyward {}", args.join(" "));
        cmd.stdin(std::process::Stdio::piped());
        let mut child = cmd.spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            use std::io::Write;
            pipe.write_all(stdin.unwrap_or_default().as_bytes())?;
        }
        let status = child.wait()?;
        println!("(exit {})", status.code().unwrap_or(-1));
        Ok(())
    };
    let serial = |state: &str| -> String {
        manifest["tokens"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["state"] == state))
            .and_then(|t| t["serial"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    println!("== Keyward demo: simulated USB keys in every state ==");
    keyward(&["tokens"], None)?;
    for state in ["issued-rsa", "near-expiry", "expired"] {
        keyward(&["cert", "show", "--token", &serial(state)], None)?;
    }
    keyward(&["pin", "status", "--token", &serial("issued-ec")], None)?;
    println!("\n-- 修改密码: a weak new PIN is refused before the key sees it --");
    keyward(
        &[
            "pin",
            "change",
            "--token",
            &serial("issued-ec"),
            "--pin-fd",
            "0",
        ],
        Some("Fixture#2026\nweak\n"),
    )?;
    println!("\n-- 修改密码: a strong one is set --");
    keyward(
        &[
            "pin",
            "change",
            "--token",
            &serial("issued-ec"),
            "--pin-fd",
            "0",
        ],
        Some("Fixture#2026\nDemo#2026pin\n"),
    )?;
    keyward(
        &[
            "--lang",
            "en",
            "cert",
            "show",
            "--json",
            "--token",
            &serial("near-expiry"),
        ],
        None,
    )?;
    let ca = journey::run(&bin, &dir, &serial("blank"))?;
    println!(
        "\nThe keys stay in {} for trying things by hand.",
        dir.display()
    );
    // With a display, the operator's own window opens over the same keys and the same CA,
    // which keeps running until the window closes.
    if ui::has_display() {
        return ui::open_desktop(&dir, Some((&ca.url, &ca.root)));
    }
    Ok(())
}
