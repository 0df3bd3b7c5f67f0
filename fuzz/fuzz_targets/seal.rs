//! Electronic seals (GM/T 0031 SES_Seal) as found in the wild: the lenient decoder answers
//! with a seal or an error, never a panic, and so do the summary and the signature check
//! over the bytes as received.
#![no_main]

use keyward_pki::seal::Seal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(seal) = Seal::from_der(data) {
        let _ = seal.summary();
        let _ = seal.verify_signature();
    }
});
