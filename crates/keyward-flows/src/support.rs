//! The support bundle: one `.tar.gz` an operator sends to the CA's support, holding what
//! support needs to see and nothing an operator must keep to themselves.
//!
//! Inside `keyward-support/`: `README.txt`; `doctor.json` (the environment check);
//! `versions.json` (Keyward, the OS, the architecture); `modules.json` (every module
//! discovery tried, with its `CK_INFO` or why it failed); `tokens.json` (each key's token
//! info and flags); `journal.json` (each pending workflow's flow, key and step — never the
//! entry itself, which may hold a business's secret or a code's ticket); `logs/` (the log
//! files of the last days, every line scrubbed).
//!
//! Never in it: a PIN (none is ever written anywhere), an SMS code, a business secret, a
//! code ticket, a private key, a full ID number. Log lines are scrubbed of values named like
//! secrets (`pin=…`, `"secret": "…"`, …) and of anything shaped like a resident ID number
//! (the first 6 and the last character are kept), in case a line ever carries one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::doctor::DoctorReport;
use crate::journal::{FlowKind, Journal};
use crate::keys::Keys;

/// What goes into a bundle besides what the keys say.
#[derive(Debug)]
pub struct BundleInput<'a> {
    /// The keys (modules are tried again for `modules.json`).
    pub keys: &'a Keys,
    /// The environment check, already run.
    pub doctor: &'a DoctorReport,
    /// The workflows' journal.
    pub journal: &'a Journal,
    /// Folders holding log files.
    pub log_dirs: Vec<PathBuf>,
    /// Log files changed in the last this many days are included.
    pub log_days: u64,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct BundleSummary {
    /// The archive.
    pub path: PathBuf,
    /// The files in it, by name.
    pub files: Vec<String>,
    /// Its size in bytes.
    pub bytes: u64,
}

#[derive(Serialize)]
struct Versions {
    keyward: &'static str,
    os: Option<String>,
    kernel: Option<String>,
    arch: String,
}

#[derive(Serialize)]
struct JournalState {
    flow: FlowKind,
    file: String,
    step: Option<String>,
    modified_unix: Option<u64>,
}

fn os_name() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

/// The journal's entries as flow, file and step only.
fn journal_states(journal: &Journal) -> Vec<JournalState> {
    let Ok(entries) = std::fs::read_dir(journal.dir()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let Some(flow) = FlowKind::ALL
            .into_iter()
            .find(|k| stem.starts_with(&format!("{}-", flow_name(*k))))
        else {
            continue;
        };
        let step = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| match v.get("step") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                _ => None,
            });
        let modified_unix = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        out.push(JournalState {
            flow,
            file: name,
            step,
            modified_unix,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

fn flow_name(k: FlowKind) -> &'static str {
    match k {
        FlowKind::Activate => "activate",
        FlowKind::Unlock => "unlock",
        FlowKind::Renew => "renew",
        FlowKind::Seal => "seal",
    }
}

/// Names whose values are never shown.
const SECRET_NAMES: [&str; 9] = [
    "pin",
    "secret",
    "code",
    "ticket",
    "password",
    "token",
    "authorization",
    "phone",
    "id_number",
];

/// One log line with secret-named values and ID-number-shaped runs masked.
pub fn scrub_line(line: &str) -> String {
    let masked = mask_id_numbers(line);
    mask_named_values(&masked)
}

fn mask_id_numbers(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let boundary_before = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        if boundary_before && i + 18 <= chars.len() {
            let run = &chars[i..i + 18];
            let shaped = run[..17].iter().all(char::is_ascii_digit)
                && (run[17].is_ascii_digit() || run[17] == 'X' || run[17] == 'x');
            let boundary_after = chars.get(i + 18).is_none_or(|c| !c.is_ascii_alphanumeric());
            if shaped && boundary_after {
                out.extend(&run[..6]);
                out.push_str("***********");
                out.push(run[17]);
                i += 18;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn mask_named_values(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    'outer: while i < bytes.len() {
        for name in SECRET_NAMES {
            if lower[i..].starts_with(name)
                && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
                && lower.is_char_boundary(i + name.len())
            {
                // name, optional closing quote, then `=` or `:` and spaces, optional quote.
                let mut j = i + name.len();
                while j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'_') {
                    j += 1;
                }
                if j < bytes.len() && (bytes[j] == b'=' || bytes[j] == b':') {
                    j += 1;
                    while j < bytes.len() && bytes[j] == b' ' {
                        j += 1;
                    }
                    let quoted = j < bytes.len() && bytes[j] == b'"';
                    if quoted {
                        j += 1;
                    }
                    let start = j;
                    while j < bytes.len() {
                        let b = bytes[j];
                        if (quoted && b == b'"') || (!quoted && (b == b' ' || b == b',')) {
                            break;
                        }
                        j += 1;
                    }
                    if j > start {
                        out.push_str(&s[i..start]);
                        out.push_str("<redacted>");
                        i = j;
                        continue 'outer;
                    }
                }
            }
        }
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// A minimal ustar writer: regular files only.
struct Tar<W: Write> {
    out: W,
    names: Vec<String>,
}

impl<W: Write> Tar<W> {
    fn add(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let mut h = [0u8; 512];
        let name_bytes = name.as_bytes();
        let n = name_bytes.len().min(99);
        h[..n].copy_from_slice(&name_bytes[..n]);
        let octal = |field: &mut [u8], v: u64| {
            let s = format!("{:0w$o}\0", v, w = field.len() - 1);
            field.copy_from_slice(s.as_bytes());
        };
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        octal(&mut h[136..148], now);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        let pad = (512 - data.len() % 512) % 512;
        self.out.write_all(&vec![0u8; pad])?;
        self.names.push(name.to_owned());
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(W, Vec<String>)> {
        self.out.write_all(&[0u8; 1024])?;
        Ok((self.out, self.names))
    }
}

fn json_bytes<T: Serialize>(v: &T) -> std::io::Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(std::io::Error::other)
}

const README: &str = "Keyward 支持包 / support bundle\n\n\
doctor.json   环境检测 / the environment check\n\
versions.json 版本 / versions\n\
modules.json  驱动及其 CK_INFO / the PKCS#11 modules and their CK_INFO\n\
tokens.json   USB Key 信息与标志 / each key's token info and flags\n\
journal.json  未完成业务的步骤 / the step of each unfinished workflow\n\
logs/         近期日志（已脱敏）/ recent logs, scrubbed\n\n\
不含 PIN、短信验证码、业务密钥、私钥或完整身份证号。\n\
No PIN, SMS code, business secret, private key or full ID number is included.\n";

/// Writes the bundle to `output` (a `.tar.gz`).
pub fn write_bundle(output: &Path, input: &BundleInput<'_>) -> std::io::Result<BundleSummary> {
    let file = std::fs::File::create(output)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = Tar {
        out: gz,
        names: Vec::new(),
    };
    let root = "keyward-support";
    tar.add(&format!("{root}/README.txt"), README.as_bytes())?;
    tar.add(&format!("{root}/doctor.json"), &json_bytes(input.doctor)?)?;
    let versions = Versions {
        keyward: env!("CARGO_PKG_VERSION"),
        os: os_name(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_owned()),
        arch: input.doctor.arch.clone(),
    };
    tar.add(&format!("{root}/versions.json"), &json_bytes(&versions)?)?;
    let modules = match input.keys.drivers() {
        Ok(m) => json_bytes(&m)?,
        Err(e) => json_bytes(&serde_json::json!({ "error": e.to_string() }))?,
    };
    tar.add(&format!("{root}/modules.json"), &modules)?;
    let tokens = match input.keys.modules() {
        Ok(ms) => {
            let mut list = Vec::new();
            for m in ms {
                for t in m.tokens().unwrap_or_default() {
                    if let Ok(d) = m.describe(&t) {
                        list.push(d);
                    }
                }
            }
            json_bytes(&list)?
        }
        Err(e) => json_bytes(&serde_json::json!({ "error": e.to_string() }))?,
    };
    tar.add(&format!("{root}/tokens.json"), &tokens)?;
    tar.add(
        &format!("{root}/journal.json"),
        &json_bytes(&journal_states(input.journal))?,
    )?;
    let horizon = SystemTime::now()
        .checked_sub(Duration::from_secs(input.log_days * 86_400))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for dir in &input.log_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.metadata()
                    .is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t >= horizon))
            })
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            let Ok(bytes) = std::fs::read(&f) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let scrubbed: String = text.lines().map(|l| scrub_line(l) + "\n").collect();
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            tar.add(&format!("{root}/logs/{name}"), scrubbed.as_bytes())?;
        }
    }
    let (gz, files) = tar.finish()?;
    gz.finish()?.sync_all()?;
    let bytes = std::fs::metadata(output)?.len();
    Ok(BundleSummary {
        path: output.to_owned(),
        files,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_lose_secrets_and_id_numbers() {
        let line = r#"2026-12-01T10:00:00Z INFO applicant 11010119900307001X applied, pin=12345678 "secret": "s3cr3t-value", code: 654321 serial=ABC123"#;
        let s = scrub_line(line);
        for gone in ["11010119900307001X", "12345678", "s3cr3t-value", "654321"] {
            assert!(!s.contains(gone), "{s}");
        }
        assert!(s.contains("110101***********X"), "{s}");
        assert!(s.contains("serial=ABC123"), "{s}");
        assert!(s.contains("2026-12-01T10:00:00Z"), "{s}");
        // A longer digit run is no ID number; Chinese text passes through.
        assert_eq!(
            scrub_line("编号 1234567890123456789 完成"),
            "编号 1234567890123456789 完成"
        );
    }

    #[test]
    fn the_archive_is_a_tar_that_outside_tools_read() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t.tar.gz");
        let file = std::fs::File::create(&path).unwrap();
        let mut tar = Tar {
            out: flate2::write::GzEncoder::new(file, flate2::Compression::default()),
            names: Vec::new(),
        };
        tar.add("a/one.txt", "第一\n".as_bytes()).unwrap();
        tar.add("a/two.bin", &[7u8; 1000]).unwrap();
        let (gz, names) = tar.finish().unwrap();
        gz.finish().unwrap();
        assert_eq!(names.len(), 2);
        let listing = std::process::Command::new("tar")
            .arg("-tzvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(listing.status.success(), "{listing:?}");
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(
            text.contains("a/one.txt") && text.contains("1000"),
            "{text}"
        );
        let out = std::process::Command::new("tar")
            .args(["-xzOf"])
            .arg(&path)
            .arg("a/one.txt")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "第一\n");
    }
}
