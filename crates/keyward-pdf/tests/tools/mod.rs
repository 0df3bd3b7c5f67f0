//! The outside checkers of Keyward's stamped PDFs, shared by the tests that stamp:
//! poppler's `pdfsig` (with an NSS store trusting only the given root) and pyHanko
//! (`pyhanko sign validate` with the root as its one trust anchor).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// An NSS certificate store in `dir` that trusts `root_pem` (a file) and nothing else.
pub fn nss_store(dir: &Path, root_pem: &Path) -> PathBuf {
    let db = dir.join("nssdb");
    if db.join("cert9.db").exists() {
        return db;
    }
    std::fs::create_dir_all(&db).unwrap();
    let sql = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let o = Command::new("timeout")
            .arg("60")
            .arg("certutil")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("certutil (cargo xtask setup installs libnss3-tools)");
        assert!(
            o.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["-N", "-d", &sql, "--empty-password"]);
    run(&[
        "-A",
        "-d",
        &sql,
        "-n",
        "Keyward test root",
        "-t",
        "CT,C,C",
        "-i",
        &root_pem.display().to_string(),
    ]);
    db
}

/// `pdfsig`'s report on `pdf`, trusting what `nss` trusts.
pub fn pdfsig(pdf: &Path, nss: &Path) -> String {
    let o = Command::new("timeout")
        .args(["60", "pdfsig", "-nssdir"])
        .arg(format!("sql:{}", nss.display()))
        .arg(pdf)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("pdfsig (cargo xtask setup installs poppler-utils)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The sections of pdfsig's report, one per signature.
pub fn pdfsig_signatures(report: &str) -> Vec<String> {
    report
        .split("\nSignature #")
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// pyHanko's validation of `pdf` with `root_pem` as its one trust anchor: (exit success,
/// its pretty-printed report).
pub fn pyhanko(pdf: &Path, root_pem: &Path) -> (bool, String) {
    let o = Command::new("pyhanko")
        .args([
            "sign",
            "validate",
            "--pretty-print",
            "--no-revocation-check",
            "--trust-replace",
            "--trust",
        ])
        .arg(root_pem)
        .arg(pdf)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("pyhanko (cargo xtask setup installs pyhanko-cli)");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Checks one section of pdfsig's report: the signature valid, signed by `signer` (its
/// certificate's common name), ETSI.CAdES.detached, and its certificate trusted. `first`
/// is whether it is the document's first signature: pdfsig 22.12 judges the certificate of
/// every later signature whose CMS carries no signing-time attribute as "Unknown issue with
/// Certificate or corrupted data" (the same documents with that attribute pass; PAdES
/// baseline signatures must not carry it, the time is the dictionary's /M). For those only
/// a verdict of distrust fails the check; pyHanko's validation judges their trust.
pub fn assert_pdfsig_signature(section: &str, signer: &str, first: bool, report: &str) {
    assert!(
        section.contains("Signature Validation: Signature is Valid."),
        "{report}"
    );
    assert!(
        section.contains(&format!("Signer Certificate Common Name: {signer}")),
        "{report}"
    );
    assert!(
        section.contains("Signature Type: ETSI.CAdES.detached"),
        "{report}"
    );
    if first {
        assert!(
            section.contains("Certificate Validation: Certificate is Trusted."),
            "{report}"
        );
    } else {
        assert!(
            section.contains("Certificate Validation: Certificate is Trusted.")
                || section.contains("Certificate Validation: Unknown issue with Certificate"),
            "{report}"
        );
    }
}
