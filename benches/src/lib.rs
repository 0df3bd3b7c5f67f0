//! Keyward's benchmarks, shared parts. `cargo xtask bench` runs the bench targets of this
//! crate in release mode and turns their results into `docs/benchmarks.md`.
//!
//! - [`token_path`]: the same PKCS#11 work through `keyward-token` and through bare cryptoki
//!   calls, on the same token of the same module in the same process, so their ratio is the
//!   overhead of Keyward's layer. The `token_softhsm` and `token_sim` targets run it on
//!   SoftHSM directly and through keyward-sim.
//! - [`latency`]: distributions (median, p95) that criterion's per-sample means would blur,
//!   such as the hot-plug latency of the `hotplug` target, written as JSON beside
//!   criterion's results.
//! - The `scaling` target measures a full refresh of 1, 4 and 16 keys and reading a key with
//!   many objects.
//! - The `ca_throughput` target drives the reference CA over loopback with a fixed number of
//!   concurrent clients (SQLite, and PostgreSQL on a throw-away cluster).
//!
//! Every token bench process builds one fixture set before any module is loaded, because SoftHSM
//! reads its configuration once, at C_Initialize.

use std::fmt::Display;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use criterion::Criterion;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;

pub mod latency;
pub mod paired;
pub mod token_path;

/// Aborts a measured loop on a failed call: a figure over failed calls would mean nothing.
pub fn must<T, E: Display>(what: &str, r: std::result::Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed during a benchmark: {e}"),
    }
}

/// The cargo profile folder the bench binary runs from (`target/release`).
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    // target/release/deps/<bench>-<hash> → target/release
    exe.parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_owned)
        .context("the bench binary has no profile folder")
}

/// keyward-sim as built by `cargo build --release -p keyward-sim` (or `KEYWARD_BENCH_SIM`).
pub fn sim_module() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KEYWARD_BENCH_SIM") {
        return Ok(PathBuf::from(p));
    }
    let p = profile_dir()?.join("libkeyward_sim.so");
    if !p.exists() {
        anyhow::bail!(
            "{} is missing: build it with `cargo build --release -p keyward-sim` (cargo xtask bench does)",
            p.display()
        );
    }
    Ok(p)
}

/// Debian's SoftHSM module.
pub fn softhsm_module() -> PathBuf {
    PathBuf::from(softhsm_fixtures::SOFTHSM_MODULE)
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Criterion as every Keyward bench uses it: bounded in time so the whole run fits in
/// minutes on two shared cores. `KEYWARD_BENCH_SECONDS` (measurement time per benchmark,
/// default 3) and `KEYWARD_BENCH_SAMPLES` (default 30) adjust it; command-line options and
/// filters given after `--` still apply.
pub fn criterion() -> Criterion {
    let seconds = env_number("KEYWARD_BENCH_SECONDS").unwrap_or(3).max(1);
    let samples = env_number("KEYWARD_BENCH_SAMPLES").unwrap_or(30).max(10);
    Criterion::default()
        .sample_size(usize::try_from(samples).unwrap_or(30))
        .measurement_time(Duration::from_secs(seconds))
        .warm_up_time(Duration::from_secs(1))
        .without_plots()
        .configure_from_args()
}

/// The same module loaded a second time for bare cryptoki calls. A PKCS#11 module is
/// loaded once per process, so this shares the library (and its tokens and login state)
/// with `keyward_token::Module`; C_Initialize answers "already initialised", which is fine.
#[derive(Debug)]
pub struct Bare {
    /// The bare cryptoki context.
    pub ctx: Pkcs11,
}

/// A key as a bare caller lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareToken {
    /// Its slot.
    pub slot: Slot,
    /// Its serial number.
    pub serial: String,
    /// Its label.
    pub label: String,
}

impl Bare {
    /// Loads the module at `path` (already loaded by Keyward, or not).
    pub fn open(path: &std::path::Path) -> Result<Bare> {
        let ctx = Pkcs11::new(path).with_context(|| format!("loading {}", path.display()))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(e).context("C_Initialize"),
        }
        Ok(Bare { ctx })
    }

    /// Initialised keys present, the least a caller does: C_GetSlotList(present) and one
    /// C_GetTokenInfo per slot.
    pub fn tokens(&self) -> std::result::Result<Vec<BareToken>, CkError> {
        let mut out = Vec::new();
        for slot in self.ctx.get_slots_with_token()? {
            let info = self.ctx.get_token_info(slot)?;
            if info.token_initialized() {
                out.push(BareToken {
                    slot,
                    serial: info.serial_number().trim().to_owned(),
                    label: info.label().trim().to_owned(),
                });
            }
        }
        Ok(out)
    }
}

/// Where benches write what criterion does not (`KEYWARD_BENCH_OUT`, else
/// `<target>/keyward-bench`).
pub fn out_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("KEYWARD_BENCH_OUT") {
        Some(d) => PathBuf::from(d),
        None => profile_dir()?
            .parent()
            .map(|t| t.join("keyward-bench"))
            .context("no target folder")?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
