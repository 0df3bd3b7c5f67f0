//! Which architecture a module file was built for, read from its ELF header before it is
//! loaded: a driver for aarch64 on an x86_64 computer fails to load with a loader message
//! nobody understands, so it is named instead.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

/// What an ELF header says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    /// The architecture, named as [`host_arch`] names this machine's (`x86_64`, `aarch64`,
    /// `mips64el`, `loongarch64`, …).
    pub arch: String,
    /// 64-bit?
    pub is_64: bool,
}

/// This machine's architecture: Rust's name, except `mips64el` for little-endian mips64 (as
/// Debian names it).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "mips64" if cfg!(target_endian = "little") => "mips64el",
        "x86" => "i386",
        a => a,
    }
}

/// The ELF header of a file; `None` when it is not an ELF file (a Windows DLL, a Mach-O,
/// a script) or cannot be read.
pub fn elf_info(path: &Path) -> Option<ElfInfo> {
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if head[..4] != *b"\x7fELF" {
        return None;
    }
    let is_64 = head[4] == 2;
    let little = head[5] == 1;
    let machine = if little {
        u16::from_le_bytes([head[18], head[19]])
    } else {
        u16::from_be_bytes([head[18], head[19]])
    };
    let arch = match (machine, is_64, little) {
        (62, true, _) => "x86_64".to_owned(),
        (3, false, _) => "i386".to_owned(),
        (183, true, _) => "aarch64".to_owned(),
        (40, false, _) => "arm".to_owned(),
        (8, true, true) => "mips64el".to_owned(),
        (8, true, false) => "mips64".to_owned(),
        (8, false, true) => "mipsel".to_owned(),
        (8, false, false) => "mips".to_owned(),
        (258, true, _) => "loongarch64".to_owned(),
        (243, true, _) => "riscv64".to_owned(),
        (21, true, _) => "powerpc64".to_owned(),
        (22, true, _) => "s390x".to_owned(),
        (m, _, _) => format!("ELF machine {m}"),
    };
    Some(ElfInfo { arch, is_64 })
}

/// `Err(module_arch)` when the file is an ELF file for another architecture than this
/// machine's; `Ok` otherwise (including files that are not ELF: the loader judges them).
pub fn check_arch(path: &Path) -> Result<(), String> {
    match elf_info(path) {
        Some(info) if info.arch != host_arch() => Err(info.arch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0];
        h.resize(16, 0);
        h.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
        let m = if data == 1 {
            machine.to_le_bytes()
        } else {
            machine.to_be_bytes()
        };
        h.extend_from_slice(&m);
        h.resize(64, 0);
        h
    }

    #[test]
    fn headers_name_their_architecture() {
        let d = tempfile::tempdir().expect("tmp");
        let cases = [
            (elf(2, 1, 62), "x86_64"),
            (elf(2, 1, 183), "aarch64"),
            (elf(2, 1, 8), "mips64el"),
            (elf(2, 1, 258), "loongarch64"),
            (elf(1, 1, 3), "i386"),
        ];
        for (i, (bytes, arch)) in cases.iter().enumerate() {
            let p = d.path().join(format!("lib{i}.so"));
            std::fs::write(&p, bytes).expect("write");
            assert_eq!(elf_info(&p).expect("elf").arch, *arch);
            assert_eq!(check_arch(&p).is_ok(), *arch == host_arch(), "{arch}");
        }
        let dll = d.path().join("x.dll");
        std::fs::write(&dll, b"MZ\x90\x00 not an ELF file at all").expect("write");
        assert_eq!(elf_info(&dll), None);
        assert!(check_arch(&dll).is_ok());
        // This very test binary is for this machine.
        let me = std::env::current_exe().expect("exe");
        assert_eq!(elf_info(&me).expect("elf").arch, host_arch());
    }
}
