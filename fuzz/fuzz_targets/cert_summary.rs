//! The certificate summary the operator sees, over arbitrary bytes: an error, never a panic.
#![no_main]

use keyward_pki::CertSummary;
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    // A fixed "now" keeps runs repeatable; renewal status and days left are computed from it.
    let now =
        OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let _ = CertSummary::from_der(data, now);
});
