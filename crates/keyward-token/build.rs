//! Embeds every driver profile of `drivers/profiles/` (a new profile is a new file there).
//! A release build leaves out the profiles of the test modules — the simulator and kryoptic —
//! so what ships looks for real drivers only.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dir = manifest.join("../../drivers/profiles");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => panic!("drivers/profiles cannot be read: {e}"),
    };
    files.sort();
    // Profiles of modules that exist only for tests, left out of release builds.
    const TEST_ONLY: &[&str] = &["keyward-sim.toml", "kryoptic.toml"];
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        files.retain(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| !TEST_ONLY.contains(&n))
        });
    }
    let mut out = String::from(
        "/// Every profile file: its name and text.\npub(super) const PROFILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let abs = f.canonicalize().unwrap_or_else(|_| f.clone());
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out_dir.join("profiles.rs"), out) {
        panic!("cannot write the embedded profile list: {e}");
    }
}
