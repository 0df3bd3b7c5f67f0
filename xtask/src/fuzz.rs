//! `cargo xtask fuzz [--seconds N] [TARGET…]`: runs each cargo-fuzz target of `fuzz/` for a
//! bounded time (default 60 s a target), starting from the committed seeds.
//!
//! - cargo-fuzz needs a nightly compiler: the installed `nightly` toolchain when there is one,
//!   otherwise the stable one with `RUSTC_BOOTSTRAP=1`.
//! - cargo-fuzz is installed (`cargo install cargo-fuzz --locked`) when missing.
//! - The committed seeds in `fuzz/corpus/<target>/` are read, never written: what libFuzzer
//!   finds goes to `<target dir>/fuzz/corpus/<target>/`, kept between runs.
//! - Builds with debug assertions (overflow checks) and no sanitizer: the targets are safe
//!   Rust, where a panic is the failure to find.
//! - A crash input is copied into the owning crate's `tests/fuzz-regressions/<target>/`, whose
//!   plain `#[test]` replays every file there in the normal test suite, and the command fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{root, run, show, target_dir};

/// Each fuzz target and the crate folder whose regression test replays its crashes.
const TARGETS: &[(&str, &str)] = &[
    ("cert_summary", "crates/keyward-pki"),
    ("cert_names", "crates/keyward-pki"),
    ("seal", "crates/keyward-pki"),
    ("pkcs11_uri", "crates/keyward-token"),
    ("ca_answer", "crates/keyward-ca-api"),
];

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("nightly"))
        })
}

/// `cargo` able to build cargo-fuzz targets.
fn nightly_cargo(nightly: bool) -> Command {
    let mut c = Command::new("cargo");
    if nightly {
        c.arg("+nightly");
    } else {
        c.env("RUSTC_BOOTSTRAP", "1");
    }
    c.current_dir(root().join("fuzz"));
    c
}

/// Entry point of `cargo xtask fuzz`.
pub fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--seconds takes a number")?;
            }
            t if TARGETS.iter().any(|(name, _)| *name == t) => only.push(t.to_owned()),
            other => bail!(
                "usage: cargo xtask fuzz [--seconds N] [TARGET…]; unknown {other:?} (targets: {})",
                TARGETS
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    let nightly = has_nightly();
    if !nightly {
        eprintln!("No nightly toolchain: building the fuzz targets with RUSTC_BOOTSTRAP=1");
    }
    let installed = nightly_cargo(nightly)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("Installing cargo-fuzz");
        run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let fuzz_target_dir = target_dir().join("fuzz");
    let mut crashed = Vec::new();
    for (target, owner) in TARGETS {
        if !only.is_empty() && !only.iter().any(|t| t == target) {
            continue;
        }
        let seeds = root().join("fuzz").join("corpus").join(target);
        let work = fuzz_target_dir.join("corpus").join(target);
        let artifacts = fuzz_target_dir.join("artifacts").join(target);
        std::fs::create_dir_all(&work)?;
        if artifacts.exists() {
            std::fs::remove_dir_all(&artifacts)?;
        }
        std::fs::create_dir_all(&artifacts)?;
        let mut cmd = nightly_cargo(nightly);
        cmd.args(["fuzz", "run", "--sanitizer", "none", "--debug-assertions"])
            .arg("--target-dir")
            .arg(&fuzz_target_dir)
            .arg(target)
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048")
            .arg("-timeout=10")
            .arg(format!("-artifact_prefix={}/", artifacts.display()));
        eprintln!("» {}", show(&cmd));
        let status = cmd
            .status()
            .with_context(|| format!("cannot start {}", show(&cmd)))?;
        let found = keep_crashes(&artifacts, &root().join(owner), target)?;
        if !status.success() || !found.is_empty() {
            crashed.push(format!(
                "{target} ({status}){}",
                found
                    .iter()
                    .map(|p| format!("\n    kept {}", p.display()))
                    .collect::<String>()
            ));
        } else {
            eprintln!("{target}: clean for {seconds} s");
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzzing found failures; each input is kept as a regression test in its crate \
             (fix the code, then commit the file):\n  {}",
            crashed.join("\n  ")
        );
    }
    Ok(())
}

/// Copies crash, timeout and out-of-memory inputs into the owner's regression folder.
fn keep_crashes(artifacts: &Path, owner: &Path, target: &str) -> Result<Vec<PathBuf>> {
    let mut kept = Vec::new();
    let Ok(entries) = std::fs::read_dir(artifacts) else {
        return Ok(kept);
    };
    let dest = owner.join("tests").join("fuzz-regressions").join(target);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ["crash-", "timeout-", "oom-", "leak-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            std::fs::create_dir_all(&dest)?;
            let to = dest.join(&name);
            std::fs::copy(e.path(), &to)
                .with_context(|| format!("copying {} to {}", name, to.display()))?;
            kept.push(to);
        }
    }
    Ok(kept)
}
