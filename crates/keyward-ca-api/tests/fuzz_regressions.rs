//! Replays, in the normal test suite, the CA answers the `ca_answer` fuzz target starts from
//! (`fuzz/corpus/ca_answer/`) and every input that once broke it
//! (`tests/fuzz-regressions/ca_answer/`, where `cargo xtask fuzz` puts a crash): decoding
//! gives a value or an error, never a panic, and a decoded value survives encoding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keyward_ca_api as api;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<T>(data) else {
        return false;
    };
    let again: T = serde_json::from_slice(&serde_json::to_vec(&v).expect("encode"))
        .expect("what was decoded decodes again once encoded");
    assert_eq!(again, v);
    true
}

fn decode_all(data: &[u8]) -> usize {
    [
        round_trip::<api::ApiError>(data),
        round_trip::<api::Health>(data),
        round_trip::<api::CaChain>(data),
        round_trip::<api::CaProfile>(data),
        round_trip::<api::KeyStatus>(data),
        round_trip::<api::CertificateHistory>(data),
        round_trip::<api::CodeSent>(data),
        round_trip::<api::TransportPinRelease>(data),
        round_trip::<api::NonceGrant>(data),
        round_trip::<api::IssuedCertificate>(data),
        round_trip::<api::Business>(data),
        round_trip::<api::BusinessList>(data),
        round_trip::<api::PaymentRequest>(data),
        round_trip::<api::UnlockAuthorisation>(data),
        round_trip::<api::Invoice>(data),
    ]
    .into_iter()
    .filter(|ok| *ok)
    .count()
}

#[test]
fn ca_answers_decode_or_fail_cleanly() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    let mut decoded = 0;
    for dir in [
        crate_dir.join("../../fuzz/corpus/ca_answer"),
        crate_dir.join("tests/fuzz-regressions/ca_answer"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_file() {
                eprintln!("{}", e.path().display());
                decoded += decode_all(&std::fs::read(e.path()).expect("read input"));
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "the seed corpus is missing");
    assert!(
        decoded > 0,
        "no seed decodes as any answer: the seeds are stale"
    );
}
