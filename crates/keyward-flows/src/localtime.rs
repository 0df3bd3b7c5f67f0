//! The operator's clock: instants shown, and dates counted, in the computer's own time zone.
//!
//! The zone is the one the C library would use: `TZ` when set (a zone name such as
//! `Asia/Shanghai`, read from the system's zone files, or a POSIX rule), else
//! `/etc/localtime`; UTC when neither can be read. chrono's `Local` reads both on every call
//! that needs them, so a changed `TZ` is seen by the next call.

use chrono::{Offset, TimeZone};
use time::{OffsetDateTime, UtcOffset};

/// The operator's offset from UTC at `at`.
pub fn offset_at(at: OffsetDateTime) -> UtcOffset {
    let seconds = match chrono::Local.timestamp_opt(at.unix_timestamp(), 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.offset().fix().local_minus_utc()
        }
        chrono::LocalResult::None => 0,
    };
    UtcOffset::from_whole_seconds(seconds).unwrap_or(UtcOffset::UTC)
}

/// `at` on the operator's clock: the same instant, in the operator's offset.
pub fn local(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(offset_at(at))
}

/// Now, on the operator's clock.
pub fn now() -> OffsetDateTime {
    local(OffsetDateTime::now_utc())
}

/// The operator's date of `at`: what "有效期至" shows.
pub fn date(at: OffsetDateTime) -> time::Date {
    local(at).date()
}

/// `at` to the minute on the operator's clock: `2026-10-23 01:30`.
pub fn minute(at: OffsetDateTime) -> String {
    let t = local(at);
    format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Runs the ignored test `name` of this binary again in a child process with `TZ` set to
    /// `zone` (the environment of this process is left alone), and says whether it passed.
    fn in_zone(zone: &str, name: &str) {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                name,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TZ", zone)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name} under TZ={zone}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("1 passed"),
            "{name} did not run under TZ={zone}: {text}"
        );
    }

    #[test]
    fn the_tz_variable_is_followed() {
        in_zone("Asia/Shanghai", "localtime::tests::beijing");
        in_zone("UTC", "localtime::tests::utc");
        // A POSIX rule rather than a zone name: eight hours east, no summer time.
        in_zone("CST-8", "localtime::tests::beijing");
    }

    fn sample_ending(not_after: OffsetDateTime) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["example.test".to_owned()]).unwrap();
        params.not_before = not_after - time::Duration::days(365);
        params.not_after = not_after;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    #[ignore = "run by the_tz_variable_is_followed with TZ=Asia/Shanghai"]
    fn beijing() {
        // 17:30 UTC on 22 October is 01:30 on the 23rd in Beijing.
        let at = datetime!(2026-10-22 17:30 UTC);
        assert_eq!(offset_at(at), UtcOffset::from_hms(8, 0, 0).unwrap());
        assert_eq!(minute(at), "2026-10-23 01:30");
        assert_eq!(date(at).to_string(), "2026-10-23");
        assert_eq!(local(at), at);
        // A certificate ending then, read at 10:00 Beijing time on the 22nd: one day left.
        let s = keyward_pki::CertSummary::from_der(
            &sample_ending(at),
            local(datetime!(2026-10-22 02:00 UTC)),
        )
        .unwrap();
        assert_eq!(s.days_left, 1);
    }

    #[test]
    #[ignore = "run by the_tz_variable_is_followed with TZ=UTC"]
    fn utc() {
        let at = datetime!(2026-10-22 17:30 UTC);
        assert_eq!(offset_at(at), UtcOffset::UTC);
        assert_eq!(minute(at), "2026-10-22 17:30");
        assert_eq!(date(at).to_string(), "2026-10-22");
        let s = keyward_pki::CertSummary::from_der(
            &sample_ending(at),
            local(datetime!(2026-10-22 02:00 UTC)),
        )
        .unwrap();
        assert_eq!(s.days_left, 0);
    }
}
