//! Hostile certificates on stable Rust: well-formed organisation certificates, mutated
//! (bytes changed, cut short, bytes inserted, length octets rewritten), never make the
//! certificate summary or the token-object names panic. The nightly fuzz targets
//! (`cargo xtask fuzz`) go further; this keeps hostile input in the normal test suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use keyward_pki::CertSummary;
use keyward_pki::cert::CertNames;
use proptest::prelude::*;
use rcgen::{CertificateParams, DnType, KeyPair};
use time::OffsetDateTime;

/// The organisation's unified social credit code in the seed.
fn code() -> String {
    keyward_pki::uscc::with_check_character("91440101MA5C00001").expect("credit code")
}

/// Two seeds: an organisation certificate (P-256) and a CA certificate.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut org = CertificateParams::default();
        org.distinguished_name.push(DnType::CountryName, "CN");
        org.distinguished_name
            .push(DnType::OrganizationName, "广州市示例科技有限公司");
        org.distinguished_name
            .push(DnType::CommonName, "广州市示例科技有限公司");
        org.distinguished_name.push(
            DnType::CustomDnType(vec![2, 5, 4, 97]),
            format!("NTRCN-{}", code()),
        );
        org.serial_number = Some(vec![0x01, 0x7f, 0x00, 0x42].into());
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "Keyward Test Root CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
        vec![
            org.self_signed(&key).expect("org").der().to_vec(),
            ca.self_signed(&key).expect("ca").der().to_vec(),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at (position mod length).
    Set(usize, u8),
    /// Cut the certificate at (position mod length).
    Truncate(usize),
    /// Insert bytes at (position mod length).
    Insert(usize, Vec<u8>),
    /// Rewrite a length octet (a byte after a 0x30 SEQUENCE tag) to a hostile value.
    Length(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (
            any::<usize>(),
            prop_oneof![Just(0x00), Just(0x7f), Just(0x80), Just(0x84), Just(0xff)]
        )
            .prop_map(|(i, b)| Mutation::Length(i, b)),
    ]
}

fn apply(der: &mut Vec<u8>, m: &Mutation) {
    if der.is_empty() {
        return;
    }
    match m {
        Mutation::Set(i, b) => {
            let n = der.len();
            der[i % n] = *b;
        }
        Mutation::Truncate(i) => {
            let n = der.len();
            der.truncate(i % n);
        }
        Mutation::Insert(i, v) => {
            let at = i % der.len();
            der.splice(at..at, v.iter().copied());
        }
        Mutation::Length(i, b) => {
            let tags: Vec<usize> = der
                .iter()
                .enumerate()
                .filter(|(j, t)| **t == 0x30 && j + 1 < der.len())
                .map(|(j, _)| j + 1)
                .collect();
            if !tags.is_empty() {
                der[tags[i % tags.len()]] = *b;
            }
        }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_certificates_never_panic(
        seed in 0usize..2,
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut der = seeds()[seed].clone();
        for m in &mutations {
            apply(&mut der, m);
        }
        // Either answer is fine; a panic fails the property.
        let _ = CertSummary::from_der(&der, now());
        let _ = CertNames::from_der(&der);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = CertSummary::from_der(&bytes, now());
        let _ = CertNames::from_der(&bytes);
    }
}

#[test]
fn the_seeds_themselves_parse() {
    for der in seeds() {
        CertNames::from_der(der).expect("names");
    }
    let s = CertSummary::from_der(&seeds()[0], now()).expect("summary");
    assert_eq!(s.credit_code, Some(code()));
}
