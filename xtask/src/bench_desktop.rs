//! The desktop figures of `cargo xtask bench`: Keyward's release build against a minimal
//! Tauri 2 app (`benches/minimal-tauri`) built in the same run with the same Tauri and
//! WebKitGTK, side by side: launch to window mapped and to the page ready, memory (Pss of
//! the app and its WebKit processes), and the `.deb` each makes with its installed size.
//!
//! The minimal app is its own workspace, built into this workspace's target folder with
//! this workspace's lock file, so the Tauri and WebKitGTK crates it compiles are Keyward's
//! own versions and most of them are shared with Keyward's release build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::ui::{Desktop, free_port};
use super::{cargo, fixtures, root, run, target_dir};

/// Start within this factor of the minimal app's.
pub const START_FACTOR: f64 = 1.2;
/// Memory within the minimal app's plus this, in MB.
pub const MEMORY_MARGIN_MB: f64 = 40.0;

fn minimal_dir() -> PathBuf {
    root().join("benches").join("minimal-tauri")
}

fn release() -> PathBuf {
    target_dir().join("release")
}

pub fn keyward_binary() -> PathBuf {
    release().join("keyward-desktop")
}

pub fn minimal_binary() -> PathBuf {
    release().join("keyward-minimal-tauri")
}

/// The minimal app's build, with this workspace's lock file and target folder.
fn minimal_cargo(args: &[&str]) -> Command {
    let mut c = cargo();
    c.args(args)
        .arg("--manifest-path")
        .arg(minimal_dir().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir());
    c
}

/// Builds both release apps (the UI first: Keyward embeds it).
pub fn build() -> Result<()> {
    super::ui::build()?;
    run(cargo().args(["build", "--release", "-p", "keyward-desktop"]))?;
    // The same versions as Keyward's: the lock file copied over (cargo drops what the
    // minimal app does not use).
    std::fs::copy(root().join("Cargo.lock"), minimal_dir().join("Cargo.lock"))?;
    run(&mut minimal_cargo(&["build", "--release"]))?;
    Ok(())
}

/// Launches both apps `runs` times each under Xvfb through tauri-driver, Keyward over two
/// simulated keys, and writes `<results>/desktop-start.json`.
pub fn measure(results: &Path, runs: usize) -> Result<()> {
    let dir = target_dir().join("bench-desktop");
    let keys = dir.join("keys");
    let manifest = fixtures(&keys)?;
    // Two keys plugged in, as on the Home the figure names.
    let keep = ["issued-ec", "issued-rsa"];
    let sim = target_dir().join("debug").join("keyward-sim");
    for t in manifest["tokens"].as_array().into_iter().flatten() {
        let (Some(state), Some(serial)) = (t["state"].as_str(), t["serial"].as_str()) else {
            continue;
        };
        if !keep.contains(&state) {
            run(Command::new(&sim)
                .arg("--state-dir")
                .arg(keys.join("sim-state"))
                .args(["remove", serial]))?;
        }
    }
    let app_dir = dir.join("desktop");
    if app_dir.exists() {
        std::fs::remove_dir_all(&app_dir)?;
    }
    if !Path::new("/usr/bin/WebKitWebDriver").exists() {
        bail!("WebKitWebDriver is missing: install the Debian package webkit2gtk-driver");
    }
    let desk = Desktop::start(&dir, false)?;
    let display = desk.display.clone();
    let (port, native_port) = (free_port()?, free_port()?);
    let mut drv = desk.driver(port, native_port, &app_dir)?;
    // The window as it ships: drawn without WebKit's compositing.
    drv.env_remove("KEYWARD_WEBVIEW_COMPOSITING")
        // The bridge on a port of this run, not the machine's 28231.
        .env(
            "KEYWARD_BRIDGE_LISTEN",
            format!("127.0.0.1:{}", free_port()?),
        )
        .env("SOFTHSM2_CONF", keys.join("softhsm2.conf"))
        .env("KEYWARD_SIM_CONF", keys.join("keyward-sim.toml"))
        .env("KEYWARD_PKCS11_MODULE", release().join("libkeyward_sim.so"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("tauri-driver.log"))?);
    let _driver = super::ui::spawn_driver(&mut drv, port)?;
    // The minimal app once more, drawn as Keyward draws on Linux (without compositing,
    // through WebKitGTK's own switch): the memory that is Keyward's own, beside the figure
    // the target is set against.
    let alike = dir.join("minimal-drawn-alike.sh");
    std::fs::write(
        &alike,
        format!(
            "#!/bin/sh\nWEBKIT_DISABLE_COMPOSITING_MODE=1 exec '{}' \"$@\"\n",
            minimal_binary().display()
        ),
    )?;
    std::fs::set_permissions(&alike, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let apps = json!([
        {
            "name": "minimal",
            "binary": minimal_binary(),
            "ready": "text",
            "title": "Minimal Tauri",
        },
        {
            "name": "minimal_alike",
            "binary": alike,
            "exe": minimal_binary(),
            "ready": "text",
            "title": "Minimal Tauri",
        },
        {
            "name": "keyward",
            "binary": keyward_binary(),
            "ready": "keys",
            "title": "Keyward",
        },
    ]);
    std::fs::create_dir_all(results)?;
    run(Command::new("node")
        .arg(root().join("benches").join("desktop").join("start.mjs"))
        .env(
            "KEYWARD_BENCH_WEBDRIVER",
            format!("http://127.0.0.1:{port}"),
        )
        .env("KEYWARD_BENCH_APPS", apps.to_string())
        .env("KEYWARD_BENCH_RUNS", runs.to_string())
        .env("KEYWARD_BENCH_DISPLAY", &display)
        .env("KEYWARD_BENCH_OUT", results.join("desktop-start.json")))?;
    Ok(())
}

/// Size of a `.deb` and the installed size its control file declares (KiB).
fn deb_sizes(deb: &Path) -> Result<Value> {
    let bytes = std::fs::metadata(deb)?.len();
    let out = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg("Installed-Size")
        .output()
        .context("dpkg-deb")?;
    let installed_kb: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Ok(json!({
        "file": deb.file_name().map(|n| n.to_string_lossy().into_owned()),
        "bytes": bytes,
        "installed_kb": installed_kb,
    }))
}

/// Keyward's release `.deb` (`cargo xtask package`) and the minimal app's, made by the same
/// bundler; writes `<results>/packages.json`.
pub fn packages(results: &Path) -> Result<()> {
    let keyward = super::package::package(false)?;
    let keyward_sizes = deb_sizes(&keyward.desktop)?;
    // The minimal app bundled by the same Tauri bundler, with nothing added.
    let work = release().join("package-minimal");
    std::fs::create_dir_all(&work)?;
    let icons = minimal_dir().join("icons");
    let config = json!({
        "bundle": {
            "active": true,
            "targets": ["deb"],
            "icon": [
                icons.join("32x32.png"),
                icons.join("128x128.png"),
                icons.join("icon.png"),
            ],
        }
    });
    let config_path = work.join("tauri.package.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let out_dir = release().join("bundle").join("deb");
    let keep = work.join(
        keyward
            .desktop
            .file_name()
            .context("a package without a name")?,
    );
    std::fs::copy(&keyward.desktop, &keep)?;
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir)?;
    }
    run(Command::new(
        root()
            .join("ui")
            .join("node_modules")
            .join(".bin")
            .join("tauri"),
    )
    .current_dir(minimal_dir())
    .env("CARGO_TARGET_DIR", target_dir())
    .args(["bundle", "--bundles", "deb", "--ci", "--config"])
    .arg(&config_path))?;
    let minimal = std::fs::read_dir(&out_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("Tauri's bundler left no .deb in {}", out_dir.display()))?;
    let minimal_sizes = deb_sizes(&minimal)?;
    // Keyward's package back where `cargo xtask package` leaves it.
    std::fs::copy(&keep, out_dir.join(keep.file_name().unwrap_or_default()))?;
    let binary = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    std::fs::create_dir_all(results)?;
    std::fs::write(
        results.join("packages.json"),
        serde_json::to_vec_pretty(&json!({
            "keyward": keyward_sizes,
            "minimal": minimal_sizes,
            "keyward_binary_bytes": binary(&keyward_binary()),
            "cli_binary_bytes": binary(&release().join("keyward")),
            "minimal_binary_bytes": binary(&minimal_binary()),
        }))?,
    )?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "pass" } else { "**over**" }
}

/// One figure of every run of one app.
fn figure(runs: &[Value], f: impl Fn(&Value) -> Option<f64>) -> Vec<f64> {
    runs.iter().filter_map(f).collect()
}

/// The median Pss (MB) of one kind of process across runs.
fn part_mb(runs: &[Value], what: &str) -> f64 {
    median(figure(runs, |r| {
        r["parts"].as_array().map(|parts| {
            parts
                .iter()
                .filter(|p| p["what"].as_str() == Some(what))
                .filter_map(|p| p["pss_kb"].as_f64())
                .sum::<f64>()
                / 1024.0
        })
    }))
}

fn part_field(runs: &[Value], what: &str, field: &str) -> f64 {
    median(figure(runs, |r| {
        r["parts"].as_array().and_then(|parts| {
            parts
                .iter()
                .find(|p| p["what"].as_str() == Some(what))
                .and_then(|p| p[field].as_f64())
        })
    }))
}

/// The desktop section of `docs/benchmarks.md`.
pub fn report(results: &Path, doc: &mut String) {
    use std::fmt::Write as _;
    doc.push_str("## Desktop app start and memory (release builds)\n\n");
    doc.push_str(
        "Keyward's release build against a minimal Tauri 2 app (`benches/minimal-tauri`: one \
         window, one line of Chinese text) built in the same run with the same Tauri and \
         WebKitGTK, both launched the same way under Xvfb by tauri-driver and WebKitWebDriver \
         (`benches/desktop/start.mjs`), taking turns; one warm-up launch each, not counted. \
         \"Mapped\" is launch to the window viewable on the display; \"ready\" is launch to the \
         page showing what it is for: the minimal app's line, Keyward's Home with both \
         fixture keys (keyward-sim). Memory is read two seconds after ready: the proportional \
         set size (Pss, `/proc/<pid>/smaps_rollup`) of the app and of the WebKit processes \
         it started. Medians over the runs, with the range. The two differ in one setting: \
         Keyward's web view draws without OpenGL compositing (WebKit's hardware acceleration \
         policy \"never\", set in `src-tauri/src/lib.rs`), while the minimal app keeps \
         WebKitGTK's default, which here, with no GPU, composites through Mesa's software \
         renderer. Keyward's tray icon is built 1.5 s after its start: after ready, before \
         the memory is read. `KEYWARD_BENCH_DUMP=<folder>` keeps each run's smaps, thread \
         names and page timeline there.\n\n",
    );
    let data: Option<Value> = std::fs::read(results.join("desktop-start.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(data) = data else {
        doc.push_str("Not measured in this run (`cargo xtask bench --only desktop`).\n\n");
        return;
    };
    let runs = |name: &str| data[name].as_array().cloned().unwrap_or_default();
    let (k, m) = (runs("keyward"), runs("minimal"));
    let ms = |runs: &[Value], f: &str| figure(runs, |r| r[f].as_f64());
    let mb = |runs: &[Value]| figure(runs, |r| r["pss_kb"].as_f64().map(|v| v / 1024.0));
    let _ = writeln!(
        doc,
        "| figure | Keyward (median, range) | minimal Tauri app (median, range) | target | result |\n\
         | --- | ---: | ---: | --- | --- |"
    );
    for (what, field) in [
        ("launch → window mapped", "mapped_ms"),
        ("launch → ready", "ready_ms"),
    ] {
        let (kv, mv) = (ms(&k, field), ms(&m, field));
        let (km, mm) = (median(kv.clone()), median(mv.clone()));
        let (klo, khi) = range(&kv);
        let (mlo, mhi) = range(&mv);
        let _ = writeln!(
            doc,
            "| {what} ({} runs) | {km:.0} ms ({klo:.0}–{khi:.0}) | {mm:.0} ms ({mlo:.0}–{mhi:.0}) | ≤ {START_FACTOR}× the minimal app ({:.0} ms) | {} ({:.2}×) |",
            kv.len(),
            mm * START_FACTOR,
            verdict(km <= mm * START_FACTOR),
            km / mm
        );
    }
    let (kv, mv) = (mb(&k), mb(&m));
    let (km, mm) = (median(kv.clone()), median(mv.clone()));
    let (klo, khi) = range(&kv);
    let (mlo, mhi) = range(&mv);
    let _ = writeln!(
        doc,
        "| memory, Pss of the app and its WebKit processes | {km:.0} MB ({klo:.0}–{khi:.0}) | {mm:.0} MB ({mlo:.0}–{mhi:.0}) | ≤ minimal + {MEMORY_MARGIN_MB:.0} MB ({:.0} MB) | {} ({:+.0} MB) |\n",
        mm + MEMORY_MARGIN_MB,
        verdict(km <= mm + MEMORY_MARGIN_MB),
        km - mm
    );
    let alike = runs("minimal_alike");
    if !alike.is_empty() {
        let av = mb(&alike);
        let am = median(av.clone());
        let (alo, ahi) = range(&av);
        let ready = median(ms(&alike, "ready_ms"));
        let _ = writeln!(
            doc,
            "Beside it, the minimal app drawn as Keyward draws, without compositing \
             (`WEBKIT_DISABLE_COMPOSITING_MODE=1`), launched in the same turns: {am:.0} MB \
             ({alo:.0}–{ahi:.0}) and ready in {ready:.0} ms. Against it Keyward is {:+.0} MB: \
             what Keyward's own code, page and keys take, with the drawing mode set aside. No \
             target is set on this one; the target's baseline is the minimal app as Tauri \
             makes it.\n",
            km - am
        );
    }
    doc.push_str(
        "Where the difference is (medians; Pss in MB, threads and shared objects of each \
         process, what the page holds):\n\n\
         | part | Keyward | minimal | difference |\n| --- | ---: | ---: | ---: |\n",
    );
    for (what, label) in [
        ("app", "the app process"),
        (
            "WebKitWebProcess",
            "WebKit web process (JavaScript, DOM, fonts)",
        ),
        ("WebKitNetworkProcess", "WebKit network process"),
    ] {
        let (a, b) = (part_mb(&k, what), part_mb(&m, what));
        let _ = writeln!(
            doc,
            "| {label}: Pss | {a:.1} MB | {b:.1} MB | {:+.1} MB |",
            a - b
        );
    }
    for (what, label) in [
        ("app", "the app process"),
        ("WebKitWebProcess", "web process"),
    ] {
        for (field, unit) in [("threads", "threads"), ("objects", "shared objects mapped")] {
            let (a, b) = (part_field(&k, what, field), part_field(&m, what, field));
            let _ = writeln!(doc, "| {label}: {unit} | {a:.0} | {b:.0} | {:+.0} |", a - b);
        }
    }
    let a = median(figure(&k, |r| r["page"]["dom_nodes"].as_f64()));
    let b = median(figure(&m, |r| r["page"]["dom_nodes"].as_f64()));
    let _ = writeln!(
        doc,
        "| page: DOM elements | {a:.0} | {b:.0} | {:+.0} |",
        a - b
    );
    doc.push('\n');
}

/// The package section of `docs/benchmarks.md`.
pub fn package_report(results: &Path, doc: &mut String) {
    use std::fmt::Write as _;
    doc.push_str("## Package size (release)\n\n");
    let data: Option<Value> = std::fs::read(results.join("packages.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(d) = data else {
        doc.push_str("Not measured in this run (`cargo xtask bench --only package`).\n\n");
        return;
    };
    doc.push_str(
        "Keyward's operator package (`cargo xtask package`: the desktop app, the `keyward` \
         CLI, desktop entries, udev rules) and the minimal Tauri app's, both made by Tauri's \
         bundler from release builds. Installed size is what the package's control file \
         declares. No target is set: the figures are there to be watched.\n\n\
         | what | Keyward | minimal Tauri app | difference |\n| --- | ---: | ---: | ---: |\n",
    );
    let mib = |v: &Value| v.as_f64().unwrap_or(f64::NAN) / 1024.0 / 1024.0;
    let (kd, md) = (mib(&d["keyward"]["bytes"]), mib(&d["minimal"]["bytes"]));
    let _ = writeln!(
        doc,
        "| `.deb` file | {kd:.1} MiB | {md:.1} MiB | {:+.1} MiB |",
        kd - md
    );
    let kib = |v: &Value| v.as_f64().unwrap_or(f64::NAN) / 1024.0;
    let (ki, mi) = (
        kib(&d["keyward"]["installed_kb"]),
        kib(&d["minimal"]["installed_kb"]),
    );
    let _ = writeln!(
        doc,
        "| installed size | {ki:.1} MiB | {mi:.1} MiB | {:+.1} MiB |",
        ki - mi
    );
    let (kb, mb) = (
        mib(&d["keyward_binary_bytes"]),
        mib(&d["minimal_binary_bytes"]),
    );
    let _ = writeln!(
        doc,
        "| the app's binary | {kb:.1} MiB | {mb:.1} MiB | {:+.1} MiB |",
        kb - mb
    );
    let _ = writeln!(
        doc,
        "| the `keyward` CLI's binary (Keyward only) | {:.1} MiB | — | — |\n",
        mib(&d["cli_binary_bytes"])
    );
}
