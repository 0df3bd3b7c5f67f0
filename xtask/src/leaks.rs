//! The desktop app's part of the PIN-leak check: after the end-to-end run, no PIN the run
//! typed and no SMS code the CA sent it may be found in what the app left behind (its log
//! folder, journal and settings, and its standard error) — as text, in hex, in base64 or as a
//! list of byte values. The library's own check is `crates/keyward-flows/tests/leaks.rs`.

use std::path::Path;

use anyhow::{Result, bail};

/// Every PIN `tests/desktop/desktop.e2e.mjs` types (its constants and the wrong PINs it runs
/// a key down with). The weak PIN it types is never sent: the dialog holds it back.
pub fn e2e_pins() -> Vec<String> {
    let mut pins: Vec<String> = [
        "Fixture#2026",
        "SoFixture#2026",
        "Keyward#2026ok",
        "Unlocked#2027ok",
        "Better#2027pin",
        "Wrong#2026",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    pins.extend((1000..=1010).map(|n| format!("Wrong#{n}")));
    // The wrong PINs tests/desktop/bridge.e2e.mjs types in the bridge's confirmations.
    pins.extend(
        (2101..=2102)
            .chain(2111..=2119)
            .map(|n| format!("Wrong#{n}")),
    );
    pins
}

/// The SMS codes in the CA's database files under `ca_dir` (SQLite keeps the outbox's text
/// as UTF-8, so each code follows `验证码` in the file's bytes).
pub fn sms_codes(ca_dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    files_under(ca_dir, &mut files);
    let marker = "验证码".as_bytes();
    let mut codes = Vec::new();
    for (name, bytes) in files {
        if !name.contains(".sqlite") {
            continue;
        }
        let mut from = 0;
        while let Some(at) = find(&bytes[from..], marker) {
            let start = from + at + marker.len();
            let digits: String = bytes[start..]
                .iter()
                .take(16)
                .skip_while(|b| !b.is_ascii_digit())
                .take_while(|b| b.is_ascii_digit())
                .map(|&b| char::from(b))
                .collect();
            if digits.len() >= 4 && !codes.contains(&digits) {
                codes.push(digits);
            }
            from = start;
        }
    }
    codes
}

/// Looks for every secret and code in every file under `dirs` and in `files`.
pub fn check(dirs: &[&Path], files: &[&Path], pins: &[String], codes: &[String]) -> Result<()> {
    let mut places = Vec::new();
    for d in dirs {
        files_under(d, &mut places);
    }
    for f in files {
        if let Ok(bytes) = std::fs::read(f) {
            places.push((f.display().to_string(), bytes));
        }
    }
    if places.is_empty() {
        bail!("the leak check found nothing to search");
    }
    let mut found = Vec::new();
    for (name, bytes) in &places {
        for pin in pins {
            for form in forms(pin.as_bytes()) {
                if find(bytes, form.as_bytes()).is_some() {
                    found.push(format!("the PIN {pin} ({form}) is in {name}"));
                }
            }
        }
        let scrubbed = without_second_fractions(bytes);
        for code in codes {
            for (i, form) in forms(code.as_bytes()).into_iter().enumerate() {
                let hit = if i == 0 {
                    find_number(&scrubbed, form.as_bytes())
                } else {
                    find(bytes, form.as_bytes()).is_some()
                };
                if hit {
                    found.push(format!("the SMS code {code} ({form}) is in {name}"));
                }
            }
        }
    }
    if !found.is_empty() {
        bail!(
            "secrets in what the desktop app left:\n{}",
            found.join("\n")
        );
    }
    eprintln!(
        "PIN-leak check: {} PINs and {} SMS codes in no file of {} the desktop app left",
        pins.len(),
        codes.len(),
        places.len()
    );
    Ok(())
}

fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p.display().to_string(), bytes));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `needle` as a whole number: no digit right before or after it.
fn find_number(hay: &[u8], needle: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = find(&hay[from..], needle).map(|i| i + from) {
        let before = i.checked_sub(1).is_some_and(|j| hay[j].is_ascii_digit());
        let after = hay.get(i + needle.len()).is_some_and(u8::is_ascii_digit);
        if !before && !after {
            return true;
        }
        from = i + 1;
    }
    false
}

/// Timestamps' fractions of seconds (`09:03:48.123456`) blanked: six digits, like a code.
fn without_second_fractions(hay: &[u8]) -> Vec<u8> {
    let mut out = hay.to_vec();
    let mut i = 0;
    while i + 9 <= out.len() {
        let t = &out[i..i + 9];
        let digit = |k: usize| t[k].is_ascii_digit();
        if digit(0)
            && digit(1)
            && t[2] == b':'
            && digit(3)
            && digit(4)
            && t[5] == b':'
            && digit(6)
            && digit(7)
            && t[8] == b'.'
        {
            let mut j = i + 9;
            while j < out.len() && out[j].is_ascii_digit() {
                out[j] = b'x';
                j += 1;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The text, hex in both cases, base64 at the three alignments it can have inside a longer
/// encoding (only the characters the secret alone decides), and the bytes as numbers.
fn forms(b: &[u8]) -> Vec<String> {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let numbers: Vec<String> = b.iter().map(u8::to_string).collect();
    let mut out = vec![
        String::from_utf8_lossy(b).into_owned(),
        hex.to_ascii_uppercase(),
        hex,
        numbers.join(", "),
        numbers.join(","),
    ];
    for k in 0..3usize {
        let mut padded = vec![0u8; k];
        padded.extend_from_slice(b);
        let enc = base64(&padded);
        let (start, end) = ((8 * k).div_ceil(6), (8 * (k + b.len())) / 6);
        if end > start + 4 {
            out.push(enc[start..end].to_owned());
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_found_in_every_form() {
        let dir = std::env::temp_dir().join(format!("keyward-leaks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let pins = vec!["Fixture#2026".to_owned()];
        for (i, written) in [
            "x Fixture#2026 y".to_owned(),
            "46697874757265233230323".to_owned() + "6",
            format!("{:?}", b"Fixture#2026"),
            format!("blob {} end", base64(b"zzFixture#2026zz")),
        ]
        .iter()
        .enumerate()
        {
            let f = dir.join(format!("{i}.log"));
            std::fs::write(&f, written).unwrap_or_default();
            assert!(check(&[], &[&f], &pins, &[]).is_err(), "{written}");
        }
        let f = dir.join("clean.log");
        std::fs::write(&f, "at 09:03:48.123456 nothing").unwrap_or_default();
        assert!(check(&[], &[&f], &pins, &["123456".to_owned()]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
