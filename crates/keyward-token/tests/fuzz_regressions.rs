//! Replays, in the normal test suite, the PKCS#11 URIs the `pkcs11_uri` fuzz target starts
//! from (`fuzz/corpus/pkcs11_uri/`) and every input that once broke it
//! (`tests/fuzz-regressions/pkcs11_uri/`, where `cargo xtask fuzz` puts a crash): parsing
//! gives a URI or an error, never a panic, and a parsed URI prints to one that parses back
//! to the same thing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keyward_token::Pkcs11Uri;

#[test]
fn pkcs11_uris_parse_or_fail_cleanly_and_round_trip() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in [
        crate_dir.join("../../fuzz/corpus/pkcs11_uri"),
        crate_dir.join("tests/fuzz-regressions/pkcs11_uri"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.path().is_file() {
                continue;
            }
            seen += 1;
            let bytes = std::fs::read(e.path()).expect("read input");
            let Ok(s) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if let Ok(uri) = Pkcs11Uri::parse(s) {
                let printed = uri.to_string();
                let again = Pkcs11Uri::parse(&printed)
                    .unwrap_or_else(|e| panic!("{s:?} printed as {printed:?}: {e}"));
                assert_eq!(again, uri, "{s:?} printed as {printed:?}");
            }
        }
    }
    assert!(seen > 0, "the seed corpus is missing");
}
