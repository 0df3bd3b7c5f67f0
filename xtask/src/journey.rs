//! The demo's journey with the CA: the reference CA service on SQLite, a blank simulated key
//! issued by the station, then the operator's path through the `keyward` CLI — activation,
//! a PIN change, a lockout and the unlock wizard, and (the CA restarted "300 days later" on
//! the same data) renewal with the install-certificate step — and the progress list.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const PORT: u16 = 18750;
const PIN: &str = "Demo#2026pin";

/// A running keyward-ca, stopped when dropped.
pub struct Ca(Child);

/// The CA the journey leaves running, for the desktop window to use.
pub struct RunningCa {
    _ca: Ca,
    /// Its address.
    pub url: String,
    /// Its root certificate, to pin.
    pub root: PathBuf,
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Journey {
    bin: PathBuf,
    keys: PathBuf,
    ca_dir: PathBuf,
    client_dir: PathBuf,
    serial: String,
}

fn url() -> String {
    format!("https://localhost:{PORT}")
}

impl Journey {
    fn start_ca(&self, clock_offset_days: i64) -> Result<Ca> {
        let log = std::fs::File::create(self.ca_dir.with_extension("log"))?;
        let child = Command::new(self.bin.join("keyward-ca"))
            .args(["serve", "--listen", &format!("127.0.0.1:{PORT}")])
            .arg("--data-dir")
            .arg(&self.ca_dir)
            // The demo's stand-ins for a payment provider and the handler's phone.
            .args(["--sandbox-payments", "--sandbox-sms"])
            .arg(format!("--clock-offset-days={clock_offset_days}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting keyward-ca")?;
        let ca = Ca(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "keyward-ca did not start; see {}",
                    self.ca_dir.with_extension("log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(ca)
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("SOFTHSM2_CONF", self.keys.join("softhsm2.conf"))
            .env("KEYWARD_SIM_CONF", self.keys.join("keyward-sim.toml"))
            .env("KEYWARD_PKCS11_MODULE", self.bin.join("libkeyward_sim.so"))
            .env("KEYWARD_CA_URL", url())
            .env("KEYWARD_CA_ROOT", self.ca_dir.join("ca").join("root.crt"))
            .env("KEYWARD_CA_DATA_DIR", &self.ca_dir)
            .env("KEYWARD_DATA_DIR", &self.client_dir)
            .env("RUST_LOG", "warn");
    }

    fn run(&self, program: &str, args: &[&str], stdin: &str) -> Result<(i32, String)> {
        println!("\n$ {program} {}", args.join(" "));
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
        self.env(&mut cmd);
        let mut child = cmd.spawn().with_context(|| format!("starting {program}"))?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{text}");
        let code = out.status.code().unwrap_or(-1);
        println!("(exit {code})");
        Ok((code, text))
    }

    fn keyward(&self, args: &[&str], stdin: &str) -> Result<i32> {
        Ok(self.run("keyward", args, stdin)?.0)
    }

    /// The newest code the CA texted about the demo key.
    fn sms_code(&self) -> Result<String> {
        let mut cmd = Command::new(self.bin.join("keyward-ca"));
        cmd.args(["sms", "--json", "--url", &url()]);
        self.env(&mut cmd);
        let out = cmd.output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("the SMS outbox")?;
        let text = v["messages"]
            .as_array()
            .and_then(|m| {
                m.iter().rev().find(|m| {
                    m["key_serial"] == self.serial.as_str()
                        && m["text"].as_str().is_some_and(|t| t.contains("编号"))
                })
            })
            .and_then(|m| m["text"].as_str())
            .context("no SMS for the demo key")?
            .to_owned();
        println!("\n[SMS to the handler] {text}");
        let after = text.split("验证码").nth(1).context("no code in the SMS")?;
        Ok(after
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect())
    }
}

/// Runs the journey on the blank key of the demo's fixtures.
pub fn run(bin: &Path, keys: &Path, blank_serial: &str) -> Result<RunningCa> {
    let root = keys.parent().context("demo folder")?.to_owned();
    let j = Journey {
        bin: bin.to_owned(),
        keys: keys.to_owned(),
        ca_dir: root.join("ca"),
        client_dir: root.join("client"),
        serial: blank_serial.to_owned(),
    };
    for d in [&j.ca_dir, &j.client_dir] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
    }
    println!("\n== The CA online service: keyward-ca on SQLite, 300 days ago by its clock ==");
    let ca = j.start_ca(-300)?;
    println!("\n-- 发证: the station provisions the blank key for an organisation --");
    j.run(
        "keyward-ca",
        &[
            "issue",
            "--token",
            blank_serial,
            "--org-name",
            "广州市演示科技有限公司",
            "--uscc",
            "91440101MA5DM00032",
            "--address",
            "广州市天河区演示路 8 号",
            "--handler-name",
            "王经办",
            "--id-number",
            "44010119900307123X",
            "--phone",
            "13800138000",
        ],
        &format!("{}\n", softhsm_so_pin()),
    )?;
    println!("\n-- 激活证书: the SMS code and a PIN of the operator's own --");
    j.keyward(&["activate", "--send-code", "--token", blank_serial], "")?;
    let code = j.sms_code()?;
    j.keyward(
        &[
            "activate",
            "--token",
            blank_serial,
            "--code",
            &code,
            "--pin-fd",
            "0",
        ],
        &format!("{PIN}\n"),
    )?;
    println!("\n-- 修改密码: a weak PIN is refused before the key sees it --");
    j.keyward(
        &["pin", "change", "--token", blank_serial, "--pin-fd", "0"],
        &format!("{PIN}\nweak\n"),
    )?;
    println!(
        "\n-- Ten wrong PINs: the ninth leaves one try, the tenth needs confirmation and locks --"
    );
    for _ in 0..9 {
        j.keyward(
            &["pin", "change", "--token", blank_serial, "--pin-fd", "0"],
            "Wrong#0000x\nOther#2026x\n",
        )?;
    }
    j.keyward(&["pin", "status", "--token", blank_serial], "")?;
    j.keyward(
        &["pin", "change", "--token", blank_serial, "--pin-fd", "0"],
        "Wrong#0000x\nOther#2026x\n",
    )?;
    j.keyward(
        &[
            "pin",
            "change",
            "--confirm-final-try",
            "--token",
            blank_serial,
            "--pin-fd",
            "0",
        ],
        "Wrong#0000x\nOther#2026x\n",
    )?;
    println!("\n-- 忘记密码: the handler of record is approved at once --");
    j.keyward(
        &[
            "unlock",
            "apply",
            "--token",
            blank_serial,
            "--name",
            "王经办",
            "--id-number",
            "44010119900307123X",
            "--phone",
            "13800138000",
        ],
        "",
    )?;
    let code = j.sms_code()?;
    j.keyward(
        &[
            "unlock",
            "finish",
            "--token",
            blank_serial,
            "--code",
            &code,
            "--pin-fd",
            "0",
        ],
        &format!("{PIN}\n"),
    )?;
    j.keyward(&["pin", "status", "--token", blank_serial], "")?;
    drop(ca);

    println!("\n== 300 days later: the same CA data, today's clock ==");
    let ca = j.start_ca(0)?;
    println!("\n-- 证书续期: apply (signed by the key), pay (sandbox), 安装证书 --");
    j.keyward(&["renew", "status", "--token", blank_serial], "")?;
    j.keyward(
        &[
            "renew",
            "apply",
            "--token",
            blank_serial,
            "--years",
            "2",
            "--email",
            "finance@example.com",
            "--pin-fd",
            "0",
        ],
        &format!("{PIN}\n"),
    )?;
    j.keyward(&["renew", "pay", "--sandbox", "--token", blank_serial], "")?;
    j.keyward(
        &["renew", "install", "--token", blank_serial, "--pin-fd", "0"],
        &format!("{PIN}\n"),
    )?;
    j.keyward(&["cert", "show", "--token", blank_serial], "")?;
    println!(
        "\n-- 申请印章: the seal's name and kind, and the stamped scan, for the CA's review --"
    );
    let scan = root.join("stamp-scan.png");
    std::fs::write(&scan, seal_scan_png())?;
    let scan_arg = scan.display().to_string();
    j.keyward(
        &[
            "seal",
            "apply",
            "--token",
            blank_serial,
            "--name",
            "广州市演示科技有限公司",
            "--kind",
            "official",
            &scan_arg,
            "--pin-fd",
            "0",
        ],
        &format!("{PIN}\n"),
    )?;
    let (_, status) = j.run(
        "keyward",
        &["seal", "status", "--json", "--token", blank_serial],
        "",
    )?;
    let business: serde_json::Value = serde_json::from_str(&status).context("seal status")?;
    let id = business["id"]
        .as_str()
        .context("the seal business id")?
        .to_owned();
    println!("\n-- The CA's reviewer approves; the CA makes the GM/T 0031 seal --");
    j.run("keyward-ca", &["review", "list"], "")?;
    j.run(
        "keyward-ca",
        &["review", "approve", &id, "--note", "印模清晰"],
        "",
    )?;
    println!("\n-- 安装印章: verified, then written to the key --");
    j.keyward(
        &["seal", "install", "--token", blank_serial, "--pin-fd", "0"],
        &format!("{PIN}\n"),
    )?;
    let image = root.join("seal-on-the-key.png").display().to_string();
    j.keyward(
        &[
            "seal",
            "show",
            "--token",
            blank_serial,
            "--export-image",
            &image,
        ],
        "",
    )?;
    println!("\n-- 办理进度查询: the CA shows a key's businesses to the key alone --");
    j.keyward(
        &["progress", "--token", blank_serial, "--pin-fd", "0"],
        &format!("{PIN}\n"),
    )?;
    Ok(RunningCa {
        _ca: ca,
        url: url(),
        root: j.ca_dir.join("ca").join("root.crt"),
    })
}

/// The factory SO PIN of the fixture keys (softhsm-fixtures' SO_PIN).
fn softhsm_so_pin() -> &'static str {
    "SoFixture#2026"
}

/// A stamped scan for the demo: a red ring and star on a transparent 160×160 PNG.
fn seal_scan_png() -> Vec<u8> {
    const N: usize = 160;
    let c = N as f64 / 2.0;
    // The star's outline: ten points alternating between the outer and inner radius.
    let star: Vec<(f64, f64)> = (0..10)
        .map(|i| {
            let r = if i % 2 == 0 { 34.0 } else { 14.0 };
            let a = std::f64::consts::PI * (i as f64 / 5.0 - 0.5);
            (c + r * a.cos(), c + r * a.sin())
        })
        .collect();
    let inside = |x: f64, y: f64| {
        let mut hit = false;
        for k in 0..star.len() {
            let (x1, y1) = star[k];
            let (x2, y2) = star[(k + 1) % star.len()];
            if (y1 > y) != (y2 > y) && x < x1 + (y - y1) * (x2 - x1) / (y2 - y1) {
                hit = !hit;
            }
        }
        hit
    };
    let mut raw = Vec::with_capacity(N * (N * 4 + 1));
    for y in 0..N {
        raw.push(0); // filter: none
        for x in 0..N {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let r = ((px - c).powi(2) + (py - c).powi(2)).sqrt();
            let red = (66.0..76.0).contains(&r) || inside(px, py);
            raw.extend_from_slice(if red {
                &[200, 16, 32, 255]
            } else {
                &[0, 0, 0, 0]
            });
        }
    }
    png(N as u32, N as u32, &raw)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG of RGBA rows (each led by its filter byte), stored uncompressed in zlib.
fn png(width: u32, height: u32, raw: &[u8]) -> Vec<u8> {
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}
