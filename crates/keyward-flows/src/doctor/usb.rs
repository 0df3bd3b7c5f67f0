//! The USB devices plugged in, from sysfs (`/sys/bus/usb/devices`; no root needed), or a
//! folder of the same shape named by [`SYSFS_USB_ENV`].

use std::path::{Path, PathBuf};

use keyward_token::UsbId;
use serde::Serialize;

/// Names a folder shaped like `/sys/bus/usb/devices` to read instead (tests, support).
pub const SYSFS_USB_ENV: &str = "KEYWARD_SYSFS_USB";

/// The USB device folder to read: [`SYSFS_USB_ENV`], else the system's.
pub fn sysfs_usb_root() -> PathBuf {
    std::env::var_os(SYSFS_USB_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/sys/bus/usb/devices"), PathBuf::from)
}

/// One USB device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsbDevice {
    /// Its sysfs name (`1-1.2`).
    pub name: String,
    /// vendor:product.
    pub id: UsbId,
    /// The manufacturer string it reports.
    pub manufacturer: Option<String>,
    /// The product string it reports.
    pub product: Option<String>,
    /// Does one of its interfaces have the smart-card class (CCID, 0x0b)?
    pub ccid: bool,
    /// Its device node (`/dev/bus/usb/001/004`), from busnum and devnum.
    pub node: Option<PathBuf>,
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Every device under `root` (interfaces, named `…:1.0`, are read as part of their device).
pub fn usb_devices(root: &Path) -> Vec<UsbDevice> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.contains(':'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let dir = root.join(&name);
        let (Some(v), Some(p)) = (
            read_trim(&dir.join("idVendor")),
            read_trim(&dir.join("idProduct")),
        ) else {
            continue;
        };
        let Some(id) = UsbId::parse(&format!("{v}:{p}")) else {
            continue;
        };
        let ccid = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(':'))
            .any(|e| read_trim(&e.path().join("bInterfaceClass")).is_some_and(|c| c == "0b"));
        let num = |f: &str| read_trim(&dir.join(f)).and_then(|s| s.parse::<u32>().ok());
        let node = match (num("busnum"), num("devnum")) {
            (Some(b), Some(d)) => Some(PathBuf::from(format!("/dev/bus/usb/{b:03}/{d:03}"))),
            _ => None,
        };
        out.push(UsbDevice {
            id,
            manufacturer: read_trim(&dir.join("manufacturer")),
            product: read_trim(&dir.join("product")),
            ccid,
            node,
            name,
        });
    }
    out
}

/// Plants a device in a folder shaped like sysfs (tests, and the held-out checks' way of
/// plugging a key in).
pub fn plant_device(
    root: &Path,
    name: &str,
    id: &str,
    manufacturer: &str,
    product: &str,
    ccid: bool,
) -> std::io::Result<()> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir)?;
    let (v, p) = id.split_once(':').unwrap_or((id, ""));
    std::fs::write(dir.join("idVendor"), format!("{v}\n"))?;
    std::fs::write(dir.join("idProduct"), format!("{p}\n"))?;
    std::fs::write(dir.join("manufacturer"), format!("{manufacturer}\n"))?;
    std::fs::write(dir.join("product"), format!("{product}\n"))?;
    let iface = dir.join(format!("{name}:1.0"));
    std::fs::create_dir_all(&iface)?;
    std::fs::write(
        iface.join("bInterfaceClass"),
        if ccid { "0b\n" } else { "03\n" },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_read_with_their_interfaces() {
        let d = tempfile::tempdir().unwrap();
        plant_device(
            d.path(),
            "1-1",
            "055c:e618",
            "Longmai",
            "mToken GM3000",
            false,
        )
        .unwrap();
        plant_device(d.path(), "1-2", "096e:0807", "Feitian", "ePass2003", true).unwrap();
        // A hub without strings, and a folder that is no device.
        std::fs::create_dir_all(d.path().join("usb1")).unwrap();
        std::fs::write(d.path().join("usb1/idVendor"), "1d6b\n").unwrap();
        std::fs::write(d.path().join("usb1/idProduct"), "0002\n").unwrap();
        std::fs::write(d.path().join("usb1/busnum"), "1\n").unwrap();
        std::fs::write(d.path().join("usb1/devnum"), "1\n").unwrap();
        std::fs::create_dir_all(d.path().join("junk")).unwrap();
        let found = usb_devices(d.path());
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].id.to_string(), "055c:e618");
        assert_eq!(found[0].product.as_deref(), Some("mToken GM3000"));
        assert!(!found[0].ccid);
        assert!(found[1].ccid);
        assert_eq!(found[2].node, Some(PathBuf::from("/dev/bus/usb/001/001")));
        assert!(found[2].manufacturer.is_none());
        assert!(usb_devices(&d.path().join("absent")).is_empty());
    }
}
