//! Schema-driven fuzzing of the CA service: schemathesis (PyPI) reads the service's own
//! OpenAPI document and sends every operation generated, malformed and boundary requests;
//! no answer may be a server error. The service runs in sandbox mode with an issued,
//! activated key, and `xtask/apifuzz/keyward_hooks.py` gives each request what its route's
//! rule asks for (the key's signature over the bytes sent, a business's secret, the staff
//! token), so the handlers behind the rules are fuzzed too. Bounded: a fixed number of
//! examples per operation on a loopback port, the service stopped afterwards.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{run, target_dir};

const PORT: u16 = 18760;

struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn schemathesis() -> Result<()> {
    let present = Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let signs = Command::new("python3")
        .args(["-c", "import cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present || !signs {
        eprintln!(
            "Installing schemathesis and cryptography (PyPI) for the CA's schema-driven fuzzing"
        );
        run(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "schemathesis",
            "cryptography",
        ]))?;
    }
    Ok(())
}

/// Runs the CA's API fuzzing with `examples` generated requests per operation at most.
pub fn run_api_fuzz(examples: u32) -> Result<()> {
    schemathesis()?;
    let dir = target_dir().join("api-fuzz");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let service = Service(
        Command::new(target_dir().join("debug").join("keyward-ca"))
            .args([
                "serve",
                "--plain-http",
                "--listen",
                &format!("127.0.0.1:{PORT}"),
                "--sandbox-payments",
                "--sandbox-sms",
                // One loopback client sends thousands of requests: limits a network-facing
                // service would set would only answer rate_limited.
                "--rate-per-address",
                "100000",
                "--burst-per-address",
                "100000",
                "--rate-overall",
                "100000",
                "--burst-overall",
                "100000",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting keyward-ca (build it first)")?,
    );
    let mut service = service;
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() || !dir.join("admin.token").exists() {
        if let Ok(Some(status)) = service.0.try_wait() {
            bail!(
                "keyward-ca stopped before the API fuzzing could start ({status}); is port {PORT} taken?"
            );
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("keyward-ca did not start for the API fuzzing");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let token = std::fs::read_to_string(dir.join("admin.token")).context("the admin token")?;
    let hooks = crate::root().join("xtask").join("apifuzz");
    let status = Command::new("python3")
        .env("PYTHONPATH", &hooks)
        .env("SCHEMATHESIS_HOOKS", "keyward_hooks")
        .env("KEYWARD_FUZZ_BASE", format!("http://127.0.0.1:{PORT}"))
        .env("KEYWARD_FUZZ_TOKEN", token.trim())
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("http://127.0.0.1:{PORT}/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error",
            "--max-examples",
            &examples.to_string(),
        ])
        .args(["--workers", "2", "--seed", "20261121"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", token.trim()))
        .status()
        .context("running schemathesis")?;
    drop(service);
    if !status.success() {
        bail!("schemathesis found server errors in the CA service ({status})");
    }
    Ok(())
}
