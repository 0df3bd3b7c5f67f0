//! Replays, in the normal test suite, every input the certificate and seal fuzz targets
//! start from (`fuzz/corpus/<target>/`) and every input that once broke them
//! (`tests/fuzz-regressions/<target>/`, where `cargo xtask fuzz` puts a crash): each gets an
//! answer, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keyward_pki::CertSummary;
use keyward_pki::cert::CertNames;
use keyward_pki::seal::Seal;
use time::OffsetDateTime;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = [
        crate_dir.join("../../fuzz/corpus").join(target),
        crate_dir.join("tests/fuzz-regressions").join(target),
    ];
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_file() {
                out.push((p.clone(), std::fs::read(&p).expect("read input")));
            }
        }
    }
    out
}

#[test]
fn certificate_summary_inputs_get_an_answer() {
    let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
    let inputs = inputs("cert_summary");
    assert!(!inputs.is_empty(), "the seed corpus is missing");
    for (path, bytes) in inputs {
        eprintln!("{}", path.display());
        let _ = CertSummary::from_der(&bytes, now);
    }
}

#[test]
fn certificate_names_inputs_get_an_answer() {
    let inputs = inputs("cert_names");
    assert!(!inputs.is_empty(), "the seed corpus is missing");
    for (path, bytes) in inputs {
        eprintln!("{}", path.display());
        let _ = CertNames::from_der(&bytes);
    }
}

#[test]
fn seal_inputs_get_an_answer() {
    let inputs = inputs("seal");
    assert!(!inputs.is_empty(), "the seed corpus is missing");
    let mut parsed = 0;
    for (path, bytes) in inputs {
        eprintln!("{}", path.display());
        if let Ok(seal) = Seal::from_der(&bytes) {
            let _ = seal.summary();
            let _ = seal.verify_signature();
            parsed += 1;
        }
    }
    assert!(parsed > 0, "no seed seal parses: the seeds are stale");
}
