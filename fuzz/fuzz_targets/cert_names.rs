//! The subject, issuer and serial Keyward writes beside a certificate on the key.
#![no_main]

use keyward_pki::cert::CertNames;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = CertNames::from_der(data);
});
