//! The desktop app's front end (`ui/`) and its end-to-end run.
//!
//! `keyward-desktop` embeds `ui/dist` when it compiles (`tauri::generate_context!`), so the
//! front end is installed from its lock file and built before any cargo build of the
//! workspace. Both steps are skipped when nothing they read has changed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

use super::{cargo, fixtures, root, run, target_dir};

/// The app's log filter in the end-to-end run: Keyward's crates at trace level.
const APP_LOG: &str = "info,keyward_desktop=trace,keyward_flows=trace,keyward_token=trace,\
                       keyward_ca_client=trace,keyward_pki=trace";

/// Node.js older than this cannot run Vite 7.
const NODE_MIN: (u32, u32) = (20, 19);

fn ui_dir() -> PathBuf {
    root().join("ui")
}

fn npm() -> Command {
    npm_in(&ui_dir())
}

/// npm in `dir`, quiet about updates, funding and audits.
pub(crate) fn npm_in(dir: &Path) -> Command {
    let mut c = Command::new("npm");
    c.current_dir(dir)
        .env("npm_config_update_notifier", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_audit", "false");
    c
}

pub(crate) fn check_node() -> Result<()> {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .context("Node.js is needed to build the UI: install Node.js 20.19 or newer")?;
    let v = String::from_utf8_lossy(&out.stdout);
    let mut parts = v.trim().trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < NODE_MIN {
        bail!(
            "Node.js {} is too old for the UI's build (Vite 7 needs {}.{} or newer)",
            v.trim(),
            NODE_MIN.0,
            NODE_MIN.1
        );
    }
    Ok(())
}

/// The newest modification time under `path` (a file or a folder, recursively).
pub(crate) fn newest(path: &Path) -> SystemTime {
    let mut best = SystemTime::UNIX_EPOCH;
    let Ok(meta) = std::fs::metadata(path) else {
        return best;
    };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                best = best.max(newest(&e.path()));
            }
        }
    } else if let Ok(m) = meta.modified() {
        best = m;
    }
    best
}

pub(crate) fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The packages of the npm project in `dir` from its committed lock file, when
/// `node_modules` is missing or older than it.
pub(crate) fn install(dir: &Path) -> Result<()> {
    check_node()?;
    let lock = dir.join("package-lock.json");
    let stamp = dir.join("node_modules").join(".package-lock.json");
    if modified(&stamp).is_none_or(|s| modified(&lock).is_some_and(|l| l > s)) {
        let t = Instant::now();
        // Exactly the lock file: it names every platform's optional packages (the Tauri
        // CLI's, rollup's), so npm ci takes it on any machine.
        run(npm_in(dir).arg("ci"))?;
        eprintln!(
            "npm packages of {} installed in {:.1?}",
            dir.display(),
            t.elapsed()
        );
    }
    Ok(())
}

/// The packages from the committed lock file when `node_modules` is missing or older than it,
/// then `vite build` (after type-checking) when any source is newer than `ui/dist`.
pub fn build() -> Result<()> {
    let ui = ui_dir();
    install(&ui)?;
    let built = modified(&ui.join("dist").join("index.html"));
    let sources = [
        "src",
        "public",
        "index.html",
        "vite.config.ts",
        "tsconfig.json",
        "package-lock.json",
    ]
    .iter()
    .map(|p| newest(&ui.join(p)))
    .max()
    .unwrap_or(SystemTime::UNIX_EPOCH);
    if built.is_none_or(|b| sources > b) {
        let t = Instant::now();
        run(npm().args(["run", "build"]))?;
        eprintln!("UI built in {:.1?}", t.elapsed());
    }
    Ok(())
}

/// The UI's unit tests (Vitest, with Tauri's IPC mocked).
pub fn test() -> Result<()> {
    run(npm().args(["test"]))
}

/// The built desktop binary.
fn desktop_binary() -> PathBuf {
    target_dir().join("debug").join("keyward-desktop")
}

/// Environment that points the app (or anything else) at a fixture folder's keys.
fn key_env(cmd: &mut Command, keys: &Path) {
    let bin = target_dir().join("debug");
    cmd.env("SOFTHSM2_CONF", keys.join("softhsm2.conf"))
        .env("KEYWARD_SIM_CONF", keys.join("keyward-sim.toml"))
        .env("KEYWARD_PKCS11_MODULE", bin.join("libkeyward_sim.so"));
}

/// Is there a display to open a window on?
pub fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()))
}

/// `cargo xtask demo` with a display: the desktop app over the demo keys.
pub fn open_desktop(keys: &Path, ca: Option<(&str, &Path)>) -> Result<()> {
    build()?;
    run(cargo().args(["build", "-p", "keyward-desktop"]))?;
    let mut cmd = Command::new(desktop_binary());
    key_env(&mut cmd, keys);
    if let Some((url, root)) = ca {
        cmd.env("KEYWARD_CA_URL", url).env("KEYWARD_CA_ROOT", root);
    }
    cmd.env(
        "KEYWARD_DESKTOP_DIR",
        target_dir().join("demo").join("desktop"),
    );
    eprintln!(
        "Opening Keyward over the demo keys in {}. Try, in another terminal:\n  {} --state-dir {} remove <serial>",
        keys.display(),
        target_dir().join("debug").join("keyward-sim").display(),
        keys.join("sim-state").display()
    );
    run(&mut cmd)
}

/// A child process, leading its own process group, stopped with everything it started
/// (tauri-driver starts WebKitWebDriver, which starts the app) when dropped.
pub(crate) struct Guard(Child, &'static str);

impl Guard {
    pub(crate) fn spawn(cmd: &mut Command, name: &'static str) -> Result<Guard> {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Guard(child, name))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
        eprintln!("stopped {}", self.1);
    }
}

pub(crate) fn tauri_driver() -> Result<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let path = cargo_home.join("bin").join("tauri-driver");
    let on_path = Command::new("tauri-driver")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return Ok(PathBuf::from("tauri-driver"));
    }
    if !path.exists() {
        eprintln!("Installing tauri-driver (drives the desktop app over WebDriver)");
        run(cargo().args(["install", "tauri-driver", "--locked", "--version", "^2.0"]))?;
    }
    Ok(path)
}

/// A TCP port nothing listens on now, so runs by several engineers on one machine do not
/// collide.
pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A virtual display and a private session bus of one run; both end when it is dropped.
pub(crate) struct Desktop {
    /// `DISPLAY` for the apps.
    pub(crate) display: String,
    /// `DBUS_SESSION_BUS_ADDRESS` for the apps.
    pub(crate) bus_address: String,
    /// The display's framebuffer, an XWD file Xvfb keeps up to date (`-fbdir`, in shared
    /// memory): what is on the screen, read without the app's or WebKit's help. `None` for
    /// a display started without one.
    pub(crate) framebuffer: Option<PathBuf>,
    _xvfb: Guard,
    _dbus: Guard,
}

impl Desktop {
    /// Xvfb on a free display and `dbus-daemon --session` on a socket in `dir`; with
    /// `framebuffer`, the screen kept as a file too. The file is in /dev/shm: on disk, its
    /// writeback stalled the server while a run measuring speed polled it.
    pub(crate) fn start(dir: &Path, framebuffer: bool) -> Result<Desktop> {
        let display = free_display();
        let fb_dir = framebuffer.then(|| {
            PathBuf::from("/dev/shm").join(format!(
                "keyward-xvfb{}-{}",
                display.trim_start_matches(':'),
                std::process::id()
            ))
        });
        let mut xvfb = Command::new("Xvfb");
        xvfb.args([&display, "-screen", "0", "1280x860x24", "-nolisten", "tcp"]);
        if let Some(d) = &fb_dir {
            std::fs::create_dir_all(d)?;
            xvfb.arg("-fbdir").arg(d);
        }
        let xvfb = Guard::spawn(
            xvfb.stdout(Stdio::null()).stderr(Stdio::null()),
            "Xvfb (Debian package xvfb)",
        )?;
        // Ready once its socket accepts a connection: an app started before that cannot
        // open the display (GTK fails to initialise), which on a busy machine can take
        // longer than any fixed wait.
        let socket = format!("/tmp/.X11-unix/X{}", display.trim_start_matches(':'));
        wait_until(
            &format!("Xvfb never listened on {socket}"),
            Duration::from_secs(20),
            || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        )?;
        let bus = dir.join("session-bus");
        let _ = std::fs::remove_file(&bus);
        let bus_address = format!("unix:path={}", bus.display());
        let dbus = Guard::spawn(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--nopidfile"])
                .arg(format!("--address={bus_address}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "the session bus (Debian package dbus-daemon)",
        )?;
        wait_until(
            &format!("no session bus at {}", bus.display()),
            Duration::from_secs(10),
            || bus.exists(),
        )?;
        Ok(Desktop {
            display,
            bus_address,
            framebuffer: fb_dir.map(|d| d.join("Xvfb_screen0")),
            _xvfb: xvfb,
            _dbus: dbus,
        })
    }

    /// tauri-driver on `port` (WebKitWebDriver on `native_port`) for apps on this display
    /// and bus: no Wayland, no accessibility bus to wait for, the app's folders in
    /// `app_dir`, Chinese. Each run adds its own keys, CA and bridge port.
    pub(crate) fn driver(&self, port: u16, native_port: u16, app_dir: &Path) -> Result<Command> {
        let mut drv = Command::new(tauri_driver()?);
        drv.args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .env("DISPLAY", &self.display)
            .env_remove("WAYLAND_DISPLAY")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .env("NO_AT_BRIDGE", "1")
            .env("KEYWARD_DESKTOP_DIR", app_dir)
            .env("KEYWARD_LANG", "zh-CN");
        Ok(drv)
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        // The framebuffer file is in shared memory: it goes with the run.
        if let Some(dir) = self.framebuffer.as_ref().and_then(|f| f.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts a tauri-driver command made by [`Desktop::driver`], once it listens on `port`.
pub(crate) fn spawn_driver(drv: &mut Command, port: u16) -> Result<Guard> {
    let driver = Guard::spawn(drv, "tauri-driver")?;
    wait_until(
        &format!("nothing listens on port {port}"),
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )?;
    Ok(driver)
}

/// An X display number no server holds.
pub(crate) fn free_display() -> String {
    let n = (87..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .unwrap_or(87);
    format!(":{n}")
}

/// Polls `ready` until it holds, or fails saying what never became ready.
pub(crate) fn wait_until(what: &str, within: Duration, ready: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} after {within:?}")
}

/// `cargo xtask e2e`: the built app under Xvfb, driven by tauri-driver and WebKitWebDriver
/// against simulated keys; screenshots land in `target/e2e/screenshots`, and with
/// `--docs` the documentation's copies in `docs/screenshots` are refreshed too.
pub fn e2e(args: &[String]) -> Result<()> {
    let started = Instant::now();
    build()?;
    let dir = target_dir().join("e2e");
    let keys = dir.join("keys");
    let manifest = fixtures(&keys)?;
    // (fixtures() built keyward-ca too: the run activates, renews and installs a seal
    // against it.)
    run(cargo().args(["build", "-p", "keyward-desktop"]))?;
    if !Path::new("/usr/bin/WebKitWebDriver").exists() {
        bail!("WebKitWebDriver is missing: install the Debian package webkit2gtk-driver");
    }
    // Installed, if need be, before the run starts its services.
    tauri_driver()?;
    let shots = dir.join("screenshots");
    std::fs::create_dir_all(&shots)?;
    std::fs::write(
        dir.join("fixtures.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    let app_dir = dir.join("desktop");
    if app_dir.exists() {
        std::fs::remove_dir_all(&app_dir)?;
    }

    // A private X display, so the run never depends on (or disturbs) a desktop session.
    // The CA's data starts fresh; the run starts (and restarts) the service itself, with
    // the clock moved, so the app is pointed at it through the settings' defaults.
    let ca_dir = dir.join("ca");
    if ca_dir.exists() {
        std::fs::remove_dir_all(&ca_dir)?;
    }
    // The USB devices the app's 环境检测 sees: an empty folder shaped like sysfs, where the
    // run plants a key whose driver is missing.
    let sysfs_usb = dir.join("sysfs-usb");
    if sysfs_usb.exists() {
        std::fs::remove_dir_all(&sysfs_usb)?;
    }
    std::fs::create_dir_all(&sysfs_usb)?;
    let ca_port = free_port()?;
    let ca_url = format!("https://localhost:{ca_port}");
    let ca_root = ca_dir.join("ca").join("root.crt");

    // A private session bus with a notification server on it (dunst), so the expiry
    // reminders the app sends as desktop notifications can be read back by the test.
    let desk = Desktop::start(&dir, true)?;
    let (display, bus_address) = (desk.display.clone(), desk.bus_address.clone());
    if Command::new("dunst").arg("-v").output().is_err() {
        bail!("dunst is missing: install the Debian package dunst (cargo xtask setup does)");
    }
    let _dunst = Guard::spawn(
        Command::new("dunst")
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dunst.log"))?),
        "dunst (Debian package dunst)",
    )?;

    // The app's download folder (where 下载电子印章申请表 saves), fresh for the run and named
    // the way a desktop names it: an XDG user-dirs file in a config home of the run's own.
    let downloads = dir.join("下载");
    let xdg_config = dir.join("xdg-config");
    for d in [&downloads, &xdg_config] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(
        xdg_config.join("user-dirs.dirs"),
        format!("XDG_DOWNLOAD_DIR=\"{}\"\n", downloads.display()),
    )?;

    let (port, native_port) = (free_port()?, free_port()?);
    // The app's browser bridge on a port of this run (not the machine's 28231), with half a
    // minute to answer so the run can wait out a timeout.
    let bridge = format!("127.0.0.1:{}", free_port()?);
    let mut drv = desk.driver(port, native_port, &app_dir)?;
    drv.env("XDG_CONFIG_HOME", &xdg_config)
        // Beijing time, as on the operator's computer: every date and time shown is local.
        .env("TZ", "Asia/Shanghai")
        .env("KEYWARD_CA_URL", &ca_url)
        .env("KEYWARD_CA_ROOT", &ca_root)
        .env("KEYWARD_BRIDGE_LISTEN", &bridge)
        .env("KEYWARD_BRIDGE_USER_TIMEOUT", "30")
        .env("KEYWARD_SYSFS_USB", &sysfs_usb)
        // Keyward's own crates at their most detailed, for the PIN-leak check after the run.
        .env("KEYWARD_LOG", APP_LOG)
        // Not WEBKIT_DISABLE_COMPOSITING_MODE: without compositing, WebKitWebDriver's
        // screenshots wait for a repaint that a still page never makes. For the same reason
        // the app keeps WebKit's compositing here, which it otherwise turns off on Linux.
        .env_remove("WEBKIT_DISABLE_COMPOSITING_MODE")
        .env("KEYWARD_WEBVIEW_COMPOSITING", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("tauri-driver.log"))?);
    key_env(&mut drv, &keys);
    let _driver = spawn_driver(&mut drv, port)?;

    let docs = args.iter().any(|a| a == "--docs");
    let mut test = Command::new("node");
    test.arg(root().join("tests").join("desktop").join("desktop.e2e.mjs"))
        .current_dir(root())
        .env("KEYWARD_E2E_APP", desktop_binary())
        .env("KEYWARD_E2E_FIXTURES", dir.join("fixtures.json"))
        .env(
            "KEYWARD_E2E_SIM",
            target_dir().join("debug").join("keyward-sim"),
        )
        .env("KEYWARD_E2E_SIM_STATE", keys.join("sim-state"))
        .env("KEYWARD_E2E_SHOTS", &shots)
        .env("KEYWARD_E2E_WEBDRIVER", format!("http://127.0.0.1:{port}"))
        .env(
            "KEYWARD_E2E_CA",
            target_dir().join("debug").join("keyward-ca"),
        )
        .env("KEYWARD_E2E_CA_PORT", ca_port.to_string())
        .env("KEYWARD_E2E_BRIDGE", format!("ws://{bridge}/"))
        .env("KEYWARD_E2E_DISPLAY", &display)
        .env("KEYWARD_E2E_APP_DIR", &app_dir)
        .env("KEYWARD_E2E_SYSFS_USB", &sysfs_usb)
        .env("TZ", "Asia/Shanghai")
        .env("KEYWARD_E2E_DOWNLOADS", &downloads)
        .env("KEYWARD_CA_URL", &ca_url)
        .env("KEYWARD_CA_ROOT", &ca_root)
        .env("KEYWARD_CA_DATA_DIR", &ca_dir)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus_address);
    key_env(&mut test, &keys);
    if docs {
        test.env("KEYWARD_E2E_DOCS", root().join("docs").join("screenshots"));
    }
    run(&mut test)?;
    // The app has quit (its log flushed) once the driver is gone; then nothing it left may
    // hold a PIN the run typed or a code the CA sent.
    drop(_driver);
    crate::leaks::check(
        &[&app_dir],
        &[&dir.join("tauri-driver.log")],
        &crate::leaks::e2e_pins(),
        &crate::leaks::sms_codes(&ca_dir),
    )?;
    drawn_as_shipped(&desk, &app_dir, &keys, &shots)?;
    eprintln!(
        "End-to-end run passed in {:.1?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );
    Ok(())
}

/// The app started as it ships, without WebKit's compositing (which the main run keeps for
/// WebKitWebDriver's screenshots), and its window read back from the display's framebuffer:
/// `tests/desktop/drawn.e2e.mjs`.
fn drawn_as_shipped(desk: &Desktop, app_dir: &Path, keys: &Path, shots: &Path) -> Result<()> {
    let (port, native_port) = (free_port()?, free_port()?);
    let mut drv = desk.driver(port, native_port, app_dir)?;
    drv.env_remove("KEYWARD_WEBVIEW_COMPOSITING")
        .env_remove("WEBKIT_DISABLE_COMPOSITING_MODE")
        .env(
            "KEYWARD_BRIDGE_LISTEN",
            format!("127.0.0.1:{}", free_port()?),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(
            target_dir().join("e2e").join("tauri-driver-drawn.log"),
        )?);
    key_env(&mut drv, keys);
    let _driver = spawn_driver(&mut drv, port)?;
    run(Command::new("node")
        .arg(root().join("tests").join("desktop").join("drawn.e2e.mjs"))
        .env("KEYWARD_E2E_WEBDRIVER", format!("http://127.0.0.1:{port}"))
        .env("KEYWARD_E2E_APP", desktop_binary())
        .env("KEYWARD_E2E_DISPLAY", &desk.display)
        .env(
            "KEYWARD_E2E_FRAMEBUFFER",
            desk.framebuffer
                .as_ref()
                .context("the display was started without a framebuffer file")?,
        )
        .env("KEYWARD_E2E_SHOTS", shots))
}
