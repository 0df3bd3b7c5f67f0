//! Helpers shared by the token tests.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo target folder the test binary was built into (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/debug/deps/test-hash → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

/// A cdylib built by the workspace, with a clear message when it is missing.
pub fn built_module(file: &str, package: &str) -> PathBuf {
    let p = target_dir().join(file);
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p {package}` (cargo xtask test does)",
        p.display()
    );
    p
}

/// Runs a program, returning stdout; panics with its stderr when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a PEM file from DER.
pub fn write_pem(path: &Path, label: &str, der: &[u8]) {
    std::fs::write(path, softhsm_fixtures::pem(label, der)).expect("write pem");
}

/// keyward-sim, the module every SoftHSM key is reached through in tests.
pub use softhsm_fixtures::sim_module;
