//! PKCS#11 URIs (RFC 7512) as an IT admin types them: parsing never panics, and whatever
//! parses prints to a URI that parses back to the same thing.
#![no_main]

use keyward_token::Pkcs11Uri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = Pkcs11Uri::parse(s) {
        let printed = uri.to_string();
        match Pkcs11Uri::parse(&printed) {
            Ok(again) => assert_eq!(again, uri, "{s:?} printed as {printed:?}"),
            Err(e) => panic!("{s:?} printed as {printed:?}, which does not parse: {e}"),
        }
    }
});
