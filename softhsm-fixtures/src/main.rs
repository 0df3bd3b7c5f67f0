//! `keyward-fixtures DIR [--module PATH] [STATE…]`: builds a fixture folder for the demo
//! and for tests that drive binaries, and prints its manifest as JSON. The keys are written
//! through keyward-sim when it sits beside this binary, SoftHSM directly otherwise.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use softhsm_fixtures::{FixtureSet, KeyState, SOFTHSM_MODULE};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    // keyward-sim when it was built beside this binary, as every Keyward test reaches keys.
    let beside = std::env::current_exe()?.with_file_name("libkeyward_sim.so");
    let mut module = if beside.exists() {
        beside
    } else {
        PathBuf::from(SOFTHSM_MODULE)
    };
    let mut states = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--module" => module = PathBuf::from(args.next().context("--module needs a path")?),
            "-h" | "--help" => {
                println!(
                    "usage: keyward-fixtures DIR [--module PATH] [STATE…]\nstates: blank issued-rsa issued-ec near-expiry expired with-data sealed (default: all)"
                );
                return Ok(());
            }
            s if dir.is_none() => dir = Some(PathBuf::from(s)),
            s => states.push(
                serde_json::from_value::<KeyState>(serde_json::Value::String(s.to_owned()))
                    .with_context(|| format!("unknown state {s:?}"))?,
            ),
        }
    }
    let Some(dir) = dir else {
        bail!("usage: keyward-fixtures DIR [--module PATH] [STATE…]")
    };
    if dir
        .join("tokens")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        bail!(
            "{} already holds tokens; give an empty folder",
            dir.display()
        );
    }
    if states.is_empty() {
        states = KeyState::ALL.to_vec();
    }
    let set = FixtureSet::at(&dir)?;
    // This process loads the module itself, so it needs the set's environment from the start:
    // run again as a child that has it, rather than change our own environment.
    if std::env::var_os("SOFTHSM2_CONF").as_deref() != Some(set.softhsm_conf().as_os_str()) {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .envs(set.env())
            .status()?;
        std::process::exit(status.code().unwrap_or(1));
    }
    set.create_tokens(&states)?;
    let module = keyward_token::Module::open(&module)?;
    let manifest = set.populate(&module, &states)?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(())
}
