//! Answers from the CA online service, decoded as the client decodes them (serde_json into
//! keyward-ca-api's types): malformed bodies give an error, never a panic, and whatever
//! decodes encodes and decodes back to the same value.
#![no_main]

use keyward_ca_api as api;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let again: T = match serde_json::to_vec(&v).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(again)) => again,
            Ok(Err(e)) => panic!("{v:?} encodes to JSON that does not decode: {e}"),
            Err(e) => panic!("{v:?} does not encode: {e}"),
        };
        assert_eq!(again, v);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<api::ApiError>(data);
    round_trip::<api::Health>(data);
    round_trip::<api::CaChain>(data);
    round_trip::<api::CaProfile>(data);
    round_trip::<api::KeyStatus>(data);
    round_trip::<api::CertificateHistory>(data);
    round_trip::<api::CodeSent>(data);
    round_trip::<api::TransportPinRelease>(data);
    round_trip::<api::NonceGrant>(data);
    round_trip::<api::IssuedCertificate>(data);
    round_trip::<api::Business>(data);
    round_trip::<api::BusinessList>(data);
    round_trip::<api::PaymentRequest>(data);
    round_trip::<api::UnlockAuthorisation>(data);
    round_trip::<api::Invoice>(data);
});
