//! The CA's support contacts as the operator's computer gets them: the reference CA serves
//! its configured profile on a public route over TLS, the client fetches it under the pinned
//! root and keeps it, and with the CA stopped the kept copy is what is shown — for that CA
//! only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use keyward_flows::connect::{CaSettings, RootSource, connect};
use keyward_flows::contacts::{CACHE_FILE, support_contacts};

use common::Ca;

#[test]
fn the_placeholder_profile_says_it_is_an_example() {
    let ca = Ca::start();
    let p = connect(&ca.settings()).unwrap().profile().unwrap();
    for field in [&p.display_name, &p.hotline, &p.online, &p.office_hours] {
        assert!(field.contains("示例"), "{field}");
    }
    assert!(p.website.contains(".invalid"), "{}", p.website);
    assert!(
        p.new_application.contains("新申请"),
        "{}",
        p.new_application
    );
    assert!(p.replacement.contains("补办"), "{}", p.replacement);
    // Public: no credential, and a stranger's plain client gets the same answer.
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.root_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let raw: serde_json::Value = client
        .get(format!("{}/v1/ca/profile", ca.url()))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(raw["hotline"], p.hotline.as_str());
    let doc: serde_json::Value = client
        .get(format!("{}/openapi.json", ca.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        doc["paths"]["/v1/ca/profile"]["get"]["x-keyward-access"],
        "public"
    );
}

#[test]
fn the_configured_contacts_are_kept_and_shown_while_the_ca_is_down() {
    let ca = Ca::start_with(|c| {
        c.profile.display_name = "测试 CA".into();
        c.profile.hotline = "020-0000-1234".into();
    });
    let data = tempfile::tempdir().unwrap();
    // As a front end makes it, the root pinned in PEM (the CA's folder goes with it).
    let settings = CaSettings::new(ca.url(), Some(RootSource::Pem(ca.root_pem().to_owned())));

    let fresh = support_contacts(Some(&settings), data.path()).unwrap();
    assert!(fresh.fresh);
    assert_eq!(fresh.profile.display_name, "测试 CA");
    assert_eq!(fresh.profile.hotline, "020-0000-1234");
    assert!(
        fresh.profile.online.contains("示例"),
        "what is not set stays a placeholder"
    );
    assert!(data.path().join(CACHE_FILE).is_file());

    // Another root pinned: TLS fails, nothing new is believed, the kept copy is shown.
    let other = Ca::start();
    let wrong_root = CaSettings::new(ca.url(), Some(RootSource::Pem(other.root_pem().to_owned())));
    let kept = support_contacts(Some(&wrong_root), data.path()).unwrap();
    assert!(!kept.fresh);
    assert_eq!(kept.profile.hotline, "020-0000-1234");

    // The CA stopped: the kept copy, with when it was fetched.
    let url = ca.url();
    drop(ca);
    assert!(
        connect(&settings).unwrap().profile().is_err(),
        "the CA is down"
    );
    let started = std::time::Instant::now();
    let kept = support_contacts(Some(&settings), data.path()).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
    assert!(!kept.fresh);
    assert_eq!(kept.profile, fresh.profile);
    assert_eq!(kept.fetched_at, fresh.fetched_at);
    assert_eq!(kept.ca_url.trim_end_matches('/'), url.trim_end_matches('/'));
    // No CA set: the last copy still helps.
    assert!(!support_contacts(None, data.path()).unwrap().fresh);

    // Another CA's address: its own contacts, never the kept copy of this one.
    let elsewhere = CaSettings::new(
        "https://127.0.0.1:9/",
        Some(RootSource::Pem(other.root_pem().to_owned())),
    );
    assert!(support_contacts(Some(&elsewhere), data.path()).is_none());
    let theirs = support_contacts(Some(&other.settings()), data.path()).unwrap();
    assert!(theirs.fresh);
    assert!(theirs.profile.display_name.contains("示例"));
}
