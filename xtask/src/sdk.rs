//! The portal SDK (`sdk/`, TypeScript): installed from its lock file, type-checked and built to
//! `sdk/dist` (the ES modules a portal's pages load, and the sample portal serves) when any
//! source is newer, and its unit tests (Vitest).

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::Result;

use super::ui::{install, modified, newest, npm_in};
use super::{root, run};

fn sdk_dir() -> PathBuf {
    root().join("sdk")
}

/// The SDK's packages, from its lock file when they are missing or older.
pub fn install_packages() -> Result<()> {
    install(&sdk_dir())
}

/// `sdk/dist` rebuilt when a source is newer than it.
pub fn build() -> Result<()> {
    let sdk = sdk_dir();
    install(&sdk)?;
    let built = modified(&sdk.join("dist").join("index.js"));
    let sources = [
        "src",
        "package-lock.json",
        "tsconfig.json",
        "tsconfig.build.json",
    ]
    .iter()
    .map(|p| newest(&sdk.join(p)))
    .max()
    .unwrap_or(SystemTime::UNIX_EPOCH);
    if built.is_none_or(|b| sources > b) {
        let t = Instant::now();
        run(npm_in(&sdk).args(["run", "build"]))?;
        eprintln!("portal SDK built in {:.1?}", t.elapsed());
    }
    Ok(())
}

/// The SDK's type check and unit tests (the SOF layer's among them).
pub fn test() -> Result<()> {
    run(npm_in(&sdk_dir()).args(["test"]))
}
