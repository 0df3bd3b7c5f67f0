//! `cargo xtask package [--debug]`: the operator's `.deb` (the desktop app and the `keyward`
//! CLI) and the CA's `.deb`, then the checks every package must pass.
//!
//! The desktop package comes from Tauri's bundler (`tauri bundle`, over the binaries cargo
//! built), with the files Keyward adds given as a configuration merged at bundle time; the
//! CA's is laid out here and built with `dpkg-deb`. `--debug` packages the debug build the
//! tests already made, so CI does not build the release; without it the release is built.
//!
//! `install_tests` (part of `cargo xtask test`) installs both on this machine, runs what
//! they installed from the installed paths, removes them and checks nothing is left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{cargo, root, run, target_dir, ui};

/// The two packages a run made.
pub struct Packages {
    pub desktop: PathBuf,
    pub ca: PathBuf,
}

/// What the operator's package must never hold: the test parts of the repository.
/// Each is matched against every path in the package, lower-cased.
const TEST_PARTS: &[&str] = &[
    "keyward-sim",
    "keyward_sim",
    "kryoptic",
    "softhsm",
    "fixture",
    "keyward-ca",
    "keyward_ca",
    "portal",
    "keyward-e2e",
    "webeid",
];

/// Vendor profiles for software and test tokens: not shipped, nor their udev rules.
const TEST_PROFILES: &[&str] = &["keyward-sim", "kryoptic", "softhsm2"];

fn profile_dir(debug: bool) -> PathBuf {
    target_dir().join(if debug { "debug" } else { "release" })
}

/// The workspace version, which the UI, the app and both packages carry.
pub fn workspace_version() -> Result<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml"))?;
    let doc: toml::Table = text.parse().context("parsing Cargo.toml")?;
    doc.get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .context("Cargo.toml has no [workspace.package] version")
}

/// One version everywhere: the UI's package.json and the Tauri configuration agree with the
/// workspace (the configuration by leaving it out: Tauri then takes the crate's).
pub fn check_versions() -> Result<()> {
    let version = workspace_version()?;
    let ui: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("ui").join("package.json"))?)?;
    if ui["version"].as_str() != Some(version.as_str()) {
        bail!(
            "ui/package.json says version {} but the workspace is {version}: one version for all",
            ui["version"]
        );
    }
    let conf: serde_json::Value = serde_json::from_slice(&std::fs::read(
        root().join("src-tauri").join("tauri.conf.json"),
    )?)?;
    if let Some(v) = conf.get("version")
        && v.as_str() != Some(version.as_str())
    {
        bail!("src-tauri/tauri.conf.json says version {v} but the workspace is {version}");
    }
    Ok(())
}

/// What the real driver profiles ask of udev: the rules a profile carries (`[udev]`, file
/// name and rule, for keys whose vendor module opens the device itself), and the USB IDs of
/// the others, for one rule that lets the logged-in user reach them (TAG+="uaccess").
struct UdevNeeds {
    rules: Vec<(String, String)>,
    ids: BTreeSet<(String, String)>,
}

fn udev_needs() -> Result<UdevNeeds> {
    let mut ids = BTreeSet::new();
    let mut rules = Vec::new();
    let dir = root().join("drivers").join("profiles");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if TEST_PROFILES.contains(&stem) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let doc: toml::Table = text
            .parse()
            .with_context(|| format!("parsing {}", path.display()))?;
        if let Some(udev) = doc.get("udev") {
            let file = udev.get("file").and_then(|v| v.as_str());
            let rule = udev.get("rule").and_then(|v| v.as_str());
            let (Some(file), Some(rule)) = (file, rule) else {
                bail!("{}: [udev] needs file and rule", path.display());
            };
            if file.contains('/') || !file.ends_with(".rules") {
                bail!(
                    "{}: udev file {file:?} is not a rules file name",
                    path.display()
                );
            }
            rules.push((file.to_owned(), format!("{rule}\n")));
            continue;
        }
        for id in doc
            .get("usb")
            .and_then(|u| u.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            let Some((vendor, product)) = id.split_once(':') else {
                bail!("{}: USB id {id:?} is not vendor:product", path.display());
            };
            ids.insert((vendor.to_ascii_lowercase(), product.to_ascii_lowercase()));
        }
    }
    Ok(UdevNeeds { rules, ids })
}

fn udev_rules(ids: &BTreeSet<(String, String)>) -> String {
    let mut s = String::from(
        "# USB keys Keyward's driver profiles know: the user at the seat may open them\n\
         # (the vendors' PKCS#11 drivers talk to the device directly).\n",
    );
    for (v, p) in ids {
        s.push_str(&format!(
            "SUBSYSTEM==\"usb\", ATTR{{idVendor}}==\"{v}\", ATTR{{idProduct}}==\"{p}\", TAG+=\"uaccess\"\n"
        ));
    }
    s
}

/// Builds both packages from the binaries of `debug` or release.
pub fn package(debug: bool) -> Result<Packages> {
    check_versions()?;
    ui::build()?;
    let mut build = cargo();
    build.args([
        "build",
        "-p",
        "keyward-desktop",
        "-p",
        "keyward-cli",
        "-p",
        "keyward-ca",
    ]);
    if !debug {
        build.arg("--release");
    }
    run(&mut build)?;
    if !debug {
        check_release_binaries()?;
    }
    let desktop = desktop_deb(debug)?;
    let ca = ca_deb(debug)?;
    check_desktop_contents(&desktop)?;
    eprintln!("packages:\n  {}\n  {}", desktop.display(), ca.display());
    Ok(Packages { desktop, ca })
}

fn desktop_deb(debug: bool) -> Result<PathBuf> {
    let bin = profile_dir(debug);
    let work = bin.join("package");
    std::fs::create_dir_all(&work)?;
    let packaging = root().join("packaging").join("deb");
    let udev = udev_needs()?;
    let mut files = serde_json::Map::new();
    files.insert(
        "/usr/bin/keyward".into(),
        bin.join("keyward").display().to_string().into(),
    );
    files.insert(
        "/usr/share/keyward/autostart/keyward.desktop".into(),
        packaging
            .join("keyward-autostart.desktop")
            .display()
            .to_string()
            .into(),
    );
    if !udev.ids.is_empty() {
        let rules = work.join("60-keyward-keys.rules");
        std::fs::write(&rules, udev_rules(&udev.ids))?;
        files.insert(
            "/usr/lib/udev/rules.d/60-keyward-keys.rules".into(),
            rules.display().to_string().into(),
        );
    }
    for (file, rule) in &udev.rules {
        let path = work.join(file);
        std::fs::write(&path, rule)?;
        files.insert(
            format!("/usr/lib/udev/rules.d/{file}"),
            path.display().to_string().into(),
        );
    }
    let icons = root().join("src-tauri").join("icons");
    let config = serde_json::json!({
        "bundle": {
            "active": true,
            "targets": ["deb"],
            "category": "Utility",
            "shortDescription": "Keyward: organisation certificates and seals on USB keys",
            "longDescription": "Activate, renew and use the organisation certificate and electronic seal on a CA's USB key; sign in to procurement portals through the browser bridge.",
            "icon": [
                icons.join("32x32.png").display().to_string(),
                icons.join("128x128.png").display().to_string(),
                icons.join("icon.png").display().to_string(),
            ],
            "linux": {
                "deb": {
                    "section": "utils",
                    "recommends": ["opensc", "pcscd"],
                    "desktopTemplate": packaging.join("keyward-desktop.desktop").display().to_string(),
                    "files": files,
                }
            }
        }
    });
    let config_path = work.join("tauri.package.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let out_dir = bin.join("bundle").join("deb");
    if out_dir.exists() {
        std::fs::remove_dir_all(&out_dir)?;
    }
    let mut bundle = Command::new(
        root()
            .join("ui")
            .join("node_modules")
            .join(".bin")
            .join("tauri"),
    );
    bundle
        .current_dir(root())
        .args(["bundle", "--bundles", "deb", "--ci", "--config"])
        .arg(&config_path);
    if debug {
        bundle.arg("--debug");
    }
    run(&mut bundle)?;
    let deb = std::fs::read_dir(&out_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("Tauri's bundler left no .deb in {}", out_dir.display()))?;
    Ok(deb)
}

fn ca_deb(debug: bool) -> Result<PathBuf> {
    let version = workspace_version()?;
    let bin = profile_dir(debug);
    let stage = bin.join("package").join("keyward-ca");
    if stage.exists() {
        std::fs::remove_dir_all(&stage)?;
    }
    let src = root().join("packaging").join("keyward-ca");
    let put = |from: &Path, to: &str, mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dest = stage.join(to.trim_start_matches('/'));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from, &dest)
            .with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    put(&bin.join("keyward-ca"), "/usr/bin/keyward-ca", 0o755)?;
    put(
        &src.join("keyward-ca.service"),
        "/usr/lib/systemd/system/keyward-ca.service",
        0o644,
    )?;
    put(
        &src.join("keyward-ca.env"),
        "/etc/keyward-ca/keyward-ca.env",
        0o640,
    )?;
    put(
        &root().join("crates").join("keyward-ca").join("README.md"),
        "/usr/share/doc/keyward-ca/README.md",
        0o644,
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        put(&src.join(script), &format!("/DEBIAN/{script}"), 0o755)?;
    }
    std::fs::write(
        stage.join("DEBIAN").join("conffiles"),
        "/etc/keyward-ca/keyward-ca.env\n",
    )?;
    let size_kb = dir_size(&stage)? / 1024;
    std::fs::write(
        stage.join("DEBIAN").join("control"),
        format!(
            "Package: keyward-ca\n\
             Version: {version}\n\
             Architecture: amd64\n\
             Maintainer: Keyward <keyward@localhost>\n\
             Section: net\n\
             Priority: optional\n\
             Installed-Size: {size_kb}\n\
             Depends: libc6, adduser\n\
             Suggests: postgresql, nginx\n\
             Description: Keyward reference CA online service\n \
             The CA service Keyward's clients talk to: issuance, activation codes, unlock\n \
             approvals, renewals, seals and progress, over SQLite or PostgreSQL. Runs as\n \
             the keyward-ca system user with its data in /var/lib/keyward-ca.\n"
        ),
    )?;
    let out = bin.join("bundle").join("keyward-ca");
    std::fs::create_dir_all(&out)?;
    let deb = out.join(format!("keyward-ca_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    Ok(deb)
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The release binaries look for real drivers only: no test module's profile is compiled
/// into them (debug builds keep them, for the tests).
fn check_release_binaries() -> Result<()> {
    let bin = profile_dir(false);
    for exe in ["keyward-desktop", "keyward"] {
        let data = std::fs::read(bin.join(exe))?;
        for needle in ["libkeyward_sim.so", "libkryoptic"] {
            if data.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                bail!("the release {exe} still carries the {needle} driver profile");
            }
        }
    }
    Ok(())
}

/// The paths a package installs, from `dpkg-deb --contents`.
fn contents(deb: &Path) -> Result<Vec<String>> {
    let out = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(deb)
        .output()
        .context("running dpkg-deb --contents")?;
    if !out.status.success() {
        bail!("dpkg-deb --contents {} failed", deb.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| {
            let p = p.trim_start_matches('.').trim_start_matches('/');
            format!("/{}", p.trim_end_matches('/'))
        })
        .collect())
}

/// The operator's package holds the app, the CLI, the desktop entries and the udev rule,
/// and none of the test parts.
fn check_desktop_contents(deb: &Path) -> Result<()> {
    let control = Command::new("dpkg-deb")
        .args(["--field"])
        .arg(deb)
        .args(["Depends", "Recommends"])
        .output()
        .context("running dpkg-deb --field")?;
    let control = String::from_utf8_lossy(&control.stdout);
    // Tauri's bundler declares what the app links; the rest is Keyward's.
    for dep in [
        "libwebkit2gtk-4.1-0",
        "libgtk-3-0",
        "libayatana-appindicator3-1",
        "opensc",
        "pcscd",
    ] {
        if !control.contains(dep) {
            bail!("{} does not declare {dep}: {control}", deb.display());
        }
    }
    let files = contents(deb)?;
    let bad: Vec<&String> = files
        .iter()
        .filter(|f| {
            let l = f.to_ascii_lowercase();
            TEST_PARTS.iter().any(|t| l.contains(t))
        })
        .collect();
    if !bad.is_empty() {
        bail!(
            "{} holds test parts of the repository: {bad:?}",
            deb.display()
        );
    }
    for needed in [
        "/usr/bin/keyward-desktop",
        "/usr/bin/keyward",
        "/usr/share/applications/Keyward.desktop",
        "/usr/share/keyward/autostart/keyward.desktop",
    ] {
        if !files.iter().any(|f| f == needed) {
            bail!("{} lacks {needed}; it holds {files:?}", deb.display());
        }
    }
    // Every udev rule a real driver profile carries, under its own name.
    for (file, _) in udev_needs()?.rules {
        let path = format!("/usr/lib/udev/rules.d/{file}");
        if !files.contains(&path) {
            bail!("{} lacks the udev rule {path}", deb.display());
        }
    }
    // The desktop entries as the desktop reads them, checked by desktop-file-utils.
    let unpacked = deb.with_extension("contents");
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    for entry in [
        "usr/share/applications/Keyward.desktop",
        "usr/share/keyward/autostart/keyward.desktop",
    ] {
        run(Command::new("desktop-file-validate").arg(unpacked.join(entry)))?;
    }
    let main_entry =
        std::fs::read_to_string(unpacked.join("usr/share/applications/Keyward.desktop"))?;
    for line in ["MimeType=x-scheme-handler/keyward;", "Name[zh_CN]="] {
        if !main_entry.contains(line) {
            bail!("the desktop entry lacks {line}");
        }
    }
    std::fs::remove_dir_all(&unpacked)?;
    Ok(())
}

fn dpkg(args: &[&str], deb: Option<&Path>) -> Result<()> {
    let mut c = Command::new("dpkg");
    c.args(args);
    if let Some(d) = deb {
        c.arg(d);
    }
    run(&mut c)
}

fn installed_files(package: &str) -> Vec<String> {
    Command::new("dpkg-query")
        .args(["-L", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Installs both packages on this machine (as root), uses what they installed, removes them
/// and checks nothing of them is left.
pub fn install_tests(p: &Packages) -> Result<()> {
    if !super::is_root() {
        bail!("the package install tests need root (dpkg -i); run cargo xtask test as root");
    }
    desktop_install_test(&p.desktop)?;
    ca_install_test(&p.ca)?;
    Ok(())
}

fn desktop_install_test(deb: &Path) -> Result<()> {
    let name = "keyward";
    dpkg(&["--purge", name], None).ok();
    dpkg(&["-i"], Some(deb))?;
    let files = installed_files(name);
    let result = (|| -> Result<()> {
        let out = Command::new("/usr/bin/keyward").arg("--version").output()?;
        let version = String::from_utf8_lossy(&out.stdout);
        let expected = workspace_version()?;
        if !out.status.success() || !version.contains(&expected) {
            bail!("installed keyward --version said {version:?}, not {expected}");
        }
        eprintln!("installed: {}", version.trim());
        // The desktop app from its installed path, under a private display, until its
        // window maps.
        let display = ui::free_display();
        let _xvfb = ui::Guard::spawn(
            Command::new("Xvfb")
                .args([&display, "-screen", "0", "1280x860x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "Xvfb for the installed app",
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let home = target_dir().join("package-test-home");
        if home.exists() {
            std::fs::remove_dir_all(&home)?;
        }
        std::fs::create_dir_all(&home)?;
        let app_log = home.join("keyward-desktop.log");
        let _app = ui::Guard::spawn(
            Command::new("/usr/bin/keyward-desktop")
                .env("DISPLAY", &display)
                .env("HOME", &home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .env("XDG_DATA_HOME", home.join(".local/share"))
                .env("XDG_CACHE_HOME", home.join(".cache"))
                .env_remove("KEYWARD_PKCS11_MODULE")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&app_log)?),
            "the installed keyward-desktop",
        )?;
        ui::wait_until(
            "the installed app's window never mapped",
            Duration::from_secs(120),
            || window_mapped(&display, "Keyward"),
        )
        .with_context(|| {
            format!(
                "its output:\n{}",
                std::fs::read_to_string(&app_log).unwrap_or_default()
            )
        })?;
        eprintln!("installed keyward-desktop mapped its window");
        Ok(())
    })();
    dpkg(&["--purge", name], None)?;
    result?;
    let left: Vec<&String> = files
        .iter()
        .filter(|f| {
            let p = Path::new(f);
            // Shared folders (/usr, /usr/bin, …) stay; the package's own files must go.
            p.is_file() || (p.is_dir() && f.contains("keyward"))
        })
        .collect();
    if !left.is_empty() {
        bail!("after dpkg --purge these are left: {left:?}");
    }
    Ok(())
}

fn window_mapped(display: &str, title: &str) -> bool {
    Command::new("xwininfo")
        .args(["-root", "-tree", "-display", display])
        .output()
        .ok()
        .is_some_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.contains(title) && !l.contains("has no name"))
        })
}

/// The systemd unit's `key=value` lines.
fn unit_value(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

fn ca_install_test(deb: &Path) -> Result<()> {
    let name = "keyward-ca";
    dpkg(&["--purge", name], None).ok();
    dpkg(&["-i"], Some(deb))?;
    let files = installed_files(name);
    let result = (|| -> Result<()> {
        let unit = std::fs::read_to_string("/usr/lib/systemd/system/keyward-ca.service")?;
        let user = unit_value(&unit, "User").context("the unit names no User")?;
        let exec = unit_value(&unit, "ExecStart").context("the unit has no ExecStart")?;
        let env_file = unit_value(&unit, "EnvironmentFile")
            .map(|f| f.trim_start_matches('-').to_owned())
            .context("the unit reads no EnvironmentFile")?;
        if Command::new("getent")
            .args(["passwd", &user])
            .output()?
            .stdout
            .is_empty()
        {
            bail!("the package made no {user} user");
        }
        // The unit's ExecStart as the unit would run it: as its user, with its environment,
        // listening on a free port for the test.
        let port = ui::free_port()?;
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &user, "--", "env"]);
        for line in std::fs::read_to_string(&env_file)?.lines() {
            let l = line.trim();
            if !l.is_empty() && !l.starts_with('#') && !l.starts_with("KEYWARD_CA_LISTEN=") {
                cmd.arg(l);
            }
        }
        cmd.arg(format!("KEYWARD_CA_LISTEN=127.0.0.1:{port}"));
        cmd.args(exec.split_whitespace());
        let _service = ui::Guard::spawn(
            cmd.stdout(Stdio::null()).stderr(Stdio::null()),
            "the installed keyward-ca",
        )?;
        let root_pem = Path::new("/var/lib/keyward-ca/ca/root.crt");
        let url = format!("https://localhost:{port}/healthz");
        ui::wait_until(
            "the installed CA never answered /healthz",
            Duration::from_secs(60),
            || {
                root_pem.exists()
                    && Command::new("curl")
                        .args(["-sf", "--cacert"])
                        .arg(root_pem)
                        .arg(&url)
                        .output()
                        .is_ok_and(|o| {
                            o.status.success()
                                && String::from_utf8_lossy(&o.stdout).contains("\"ok\"")
                        })
            },
        )?;
        eprintln!("installed keyward-ca answered {url}");
        // The data it made belongs to its user, not root.
        let owner = Command::new("stat")
            .args(["-c", "%U", "/var/lib/keyward-ca/ca/root.key"])
            .output()?;
        if String::from_utf8_lossy(&owner.stdout).trim() != user {
            bail!("the CA's data is not owned by {user}");
        }
        Ok(())
    })();
    dpkg(&["--purge", name], None)?;
    result?;
    let mut left: Vec<String> = files
        .into_iter()
        .filter(|f| Path::new(f).is_file())
        .collect();
    for p in ["/var/lib/keyward-ca", "/etc/keyward-ca"] {
        if Path::new(p).exists() {
            left.push(p.to_owned());
        }
    }
    if !Command::new("getent")
        .args(["passwd", "keyward-ca"])
        .output()?
        .stdout
        .is_empty()
    {
        left.push("the keyward-ca user".to_owned());
    }
    if !left.is_empty() {
        bail!("after dpkg --purge of keyward-ca these are left: {left:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_rules_name_each_id_once() {
        let ids: BTreeSet<_> = [("055c", "e618"), ("096e", "0807")]
            .iter()
            .map(|(v, p)| (v.to_string(), p.to_string()))
            .collect();
        let r = udev_rules(&ids);
        assert_eq!(r.matches("TAG+=\"uaccess\"").count(), 2);
        assert!(r.contains("ATTR{idVendor}==\"055c\", ATTR{idProduct}==\"e618\""));
    }

    #[test]
    fn the_versions_agree() {
        check_versions().unwrap();
    }
}
