//! A minimal initramfs for a Linux dom0: an uncompressed `newc` cpio archive (which Linux
//! unpacks as is; no compressor needed) holding Debian's static busybox and an `/init` script
//! that mounts `/proc` and `/sys`, writes [`INIT_MARKER`] plus the hypervisor type to
//! `/dev/kmsg` and powers off.
//!
//! The archive is written in Rust ([`NewcWriter`]); busybox comes from the `busybox-static`
//! package, fetched with [`crate::debian`]. The built image is cached as
//! `target/tests-qemu/initramfs/busybox-init.cpio` (rewritten only when its content changes).
//! It is the second multiboot module of a Linux dom0 boot, after the kernel.
//!
//! `newc` format: each entry is a 110-byte ASCII header (`070701` and 13 fields of 8 hex
//! digits: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
//! rdevminor, namesize including the NUL, check), the NUL-terminated name padded so that
//! header + name is a multiple of 4 bytes, then the data padded to a multiple of 4 bytes. The
//! archive ends with an entry named `TRAILER!!!`.

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::debian;
use crate::error::{Error, Result, ResultExt};
use crate::paths;

/// The magic of a `newc` header (no checksums).
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Size of a `newc` header.
pub const HEADER_LEN: usize = 110;
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of `st_mode`: a directory.
pub const S_IFDIR: u32 = 0o040000;
/// File type bits of `st_mode`: a character device.
pub const S_IFCHR: u32 = 0o020000;
/// File type bits of `st_mode`: a regular file.
pub const S_IFREG: u32 = 0o100000;

/// The Debian package with a statically linked busybox.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// What is extracted from [`BUSYBOX_PACKAGE`].
pub const BUSYBOX_MEMBERS: &[&str] = &["./bin/busybox"];

/// What `/init` writes to `/dev/kmsg`, followed by the content of `/sys/hypervisor/type`.
pub const INIT_MARKER: &str = "XENOLITH-INIT: /init running on";
/// [`INIT_MARKER`] as it appears on a Xen (or Xenolith) dom0.
pub const INIT_MARKER_XEN: &str = "XENOLITH-INIT: /init running on xen";

/// The `/init` script: run by busybox's shell; its console output goes through `/dev/kmsg`
/// (printk), and it ends with a forced poweroff (no init system to stop).
pub const INIT_SCRIPT: &str = "\
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo \"XENOLITH-INIT: /init running on $(/bin/busybox cat /sys/hypervisor/type)\" > /dev/kmsg
/bin/busybox sleep 1
/bin/busybox poweroff -f
";

/// What the shell `/init` prints on the console once the shell is about to start, followed by
/// the content of `/sys/hypervisor/type`.
pub const SHELL_MARKER: &str = "XENOLITH-SHELL: ready on";

/// The interactive `/init`: mounts proc, sysfs and devtmpfs, installs busybox's applets, says
/// it is ready (on the console, `hvc0`) and runs a shell on the console. `poweroff -f` ends it.
pub const SHELL_INIT_SCRIPT: &str = "\
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo \"XENOLITH-SHELL: ready on $(cat /sys/hypervisor/type)\"
exec setsid cttyhack sh
";

/// Which `/init` an image runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// [`INIT_SCRIPT`]: prints [`INIT_MARKER`] and powers off.
    Marker,
    /// [`SHELL_INIT_SCRIPT`]: an interactive shell on the console.
    Shell,
}

/// File name of the cached image under `target/tests-qemu/initramfs/`.
const IMAGE_NAME: &str = "busybox-init.cpio";

/// Writes a `newc` cpio archive in memory. Entries get consecutive inode numbers from 1, owner
/// root, mtime 0 (so the same inputs give the same bytes). Directories must be added before
/// what they contain; [`finish`](Self::finish) appends the trailer.
#[derive(Debug, Default)]
pub struct NewcWriter {
    buf: Vec<u8>,
    next_ino: u32,
}

impl NewcWriter {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory with permission bits `perm` (e.g. `0o755`).
    pub fn dir(&mut self, name: &str, perm: u32) -> &mut Self {
        self.entry(name, S_IFDIR | check_perm(perm), 2, (0, 0), &[])
    }

    /// Adds a character device node `major:minor` with permission bits `perm`.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.entry(name, S_IFCHR | check_perm(perm), 1, (major, minor), &[])
    }

    /// Adds a regular file with permission bits `perm` and content `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, S_IFREG | check_perm(perm), 1, (0, 0), data)
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(0, 0, 1, (0, 0), TRAILER, 0);
        self.buf
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> &mut Self {
        assert!(
            !name.is_empty() && !name.starts_with('/') && !name.contains('\0') && name != TRAILER,
            "bad cpio entry name {name:?}"
        );
        self.next_ino += 1;
        let size = u32::try_from(data.len()).expect("a cpio newc member is smaller than 4 GiB");
        self.header(self.next_ino, mode, nlink, rdev, name, size);
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// Header, name, NUL and the padding after them.
    fn header(&mut self, ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), name: &str, size: u32) {
        let namesize = u32::try_from(name.len() + 1).expect("short name");
        let (uid, gid, mtime, devmajor, devminor, check) = (0, 0, 0, 0, 0, 0);
        let fields = [
            ino, mode, uid, gid, nlink, mtime, size, devmajor, devminor, rdev.0, rdev.1, namesize,
            check,
        ];
        debug_assert_eq!(self.buf.len() % 4, 0);
        self.buf.extend_from_slice(NEWC_MAGIC);
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Zero bytes up to the next multiple of 4 (the archive starts 4-aligned).
    fn pad(&mut self) {
        let n = self.buf.len().next_multiple_of(4);
        self.buf.resize(n, 0);
    }
}

fn check_perm(perm: u32) -> u32 {
    assert_eq!(perm & !0o7777, 0, "{perm:#o} has more than permission bits");
    perm
}

/// The initramfs image: `dev/` with `dev/console` (5:1, which the kernel opens as init's stdio)
/// and `dev/kmsg` (1:11, where `/init` writes: nothing mounts devtmpfs on `/dev` when `/init`
/// comes from an initramfs), mount points `proc/` and `sys/`, `bin/busybox` and `init`
/// ([`INIT_SCRIPT`]).
pub fn image(busybox: &[u8]) -> Vec<u8> {
    image_with(busybox, Init::Marker)
}

/// [`image`] with the `/init` of `init`.
pub fn image_with(busybox: &[u8], init: Init) -> Vec<u8> {
    let script = match init {
        Init::Marker => INIT_SCRIPT,
        Init::Shell => SHELL_INIT_SCRIPT,
    };
    let mut w = NewcWriter::new();
    w.dir("dev", 0o755)
        .char_device("dev/console", 0o600, 5, 1)
        .char_device("dev/kmsg", 0o644, 1, 11)
        .dir("proc", 0o755)
        .dir("sys", 0o755)
        .dir("bin", 0o755)
        .file("bin/busybox", 0o755, busybox)
        .file("init", 0o755, script.as_bytes());
    w.finish()
}

/// Debian's static busybox (fetched once into `target/debian/busybox-static/`, then cached).
pub fn busybox() -> Result<PathBuf> {
    let root = debian::fetch(BUSYBOX_PACKAGE, BUSYBOX_MEMBERS)?;
    let bb = root.join("bin/busybox");
    if bb.is_file() {
        Ok(bb)
    } else {
        Err(Error::new(format!(
            "{BUSYBOX_PACKAGE} has no {}",
            bb.display()
        )))
    }
}

/// The busybox initramfs, `target/tests-qemu/initramfs/busybox-init.cpio`: built from
/// [`busybox`] and written (atomically) when missing or different. At most once per process.
pub fn busybox_initramfs() -> Result<PathBuf> {
    static IMAGE: OnceLock<Result<PathBuf>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build_cached(Init::Marker, IMAGE_NAME))
        .clone()
}

/// The interactive busybox initramfs ([`Init::Shell`]),
/// `target/tests-qemu/initramfs/busybox-shell.cpio`.
pub fn busybox_shell_initramfs() -> Result<PathBuf> {
    static IMAGE: OnceLock<Result<PathBuf>> = OnceLock::new();
    IMAGE
        .get_or_init(|| build_cached(Init::Shell, "busybox-shell.cpio"))
        .clone()
}

fn build_cached(init: Init, name: &str) -> Result<PathBuf> {
    let bb = busybox()?;
    let data = fs::read(&bb).ctx(|| format!("reading {}", bb.display()))?;
    let cpio = image_with(&data, init);
    let dir = paths::scratch_dir("initramfs")?;
    let path = dir.join(name);
    if fs::read(&path).is_ok_and(|old| old == cpio) {
        return Ok(path);
    }
    // A per-process temporary file renamed into place: concurrent builders never see a
    // partial image.
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    fs::write(&tmp, &cpio).ctx(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).ctx(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed entry: the 13 header fields, the name and the data.
    #[derive(Debug)]
    struct Parsed {
        fields: [u32; 13],
        name: String,
        data: Vec<u8>,
    }

    const INO: usize = 0;
    const MODE: usize = 1;
    const NLINK: usize = 4;
    const FILESIZE: usize = 6;
    const RDEVMAJOR: usize = 9;
    const RDEVMINOR: usize = 10;
    const NAMESIZE: usize = 11;

    /// A strict reader: checks the magic, the NUL, zero padding and alignment of each entry.
    fn parse(mut a: &[u8]) -> Vec<Parsed> {
        let total = a.len();
        let mut out = Vec::new();
        loop {
            let off = total - a.len();
            assert_eq!(off % 4, 0, "entry at {off} is not 4-aligned");
            assert_eq!(&a[..6], NEWC_MAGIC, "magic at {off}");
            let mut fields = [0u32; 13];
            for (i, f) in fields.iter_mut().enumerate() {
                let hex = std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap();
                assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex:?}");
                *f = u32::from_str_radix(hex, 16).unwrap();
            }
            let namesize = fields[NAMESIZE] as usize;
            let name_end = HEADER_LEN + namesize;
            assert_eq!(a[name_end - 1], 0, "name is NUL-terminated");
            let name = String::from_utf8(a[HEADER_LEN..name_end - 1].to_vec()).unwrap();
            let data_start = name_end.next_multiple_of(4);
            assert!(a[name_end..data_start].iter().all(|&b| b == 0));
            let data_end = data_start + fields[FILESIZE] as usize;
            let next = data_end.next_multiple_of(4);
            assert!(a[data_end..next].iter().all(|&b| b == 0));
            let data = a[data_start..data_end].to_vec();
            a = &a[next..];
            let done = name == TRAILER;
            out.push(Parsed { fields, name, data });
            if done {
                assert!(a.is_empty(), "{} bytes after the trailer", a.len());
                return out;
            }
        }
    }

    #[test]
    fn header_layout() {
        let mut w = NewcWriter::new();
        w.file("init", 0o755, b"abcde");
        let a = w.finish();
        let expected_header = "070701\
             00000001\
             000081ed\
             00000000\
             00000000\
             00000001\
             00000000\
             00000005\
             00000000\
             00000000\
             00000000\
             00000000\
             00000005\
             00000000";
        assert_eq!(expected_header.len(), HEADER_LEN);
        assert_eq!(&a[..HEADER_LEN], expected_header.as_bytes());
        // 110 + "init\0" = 115 -> padded to 116; data 5 -> padded to 8.
        assert_eq!(&a[HEADER_LEN..116], b"init\0\0");
        assert_eq!(&a[116..124], b"abcde\0\0\0");
        assert_eq!(&a[124..130], NEWC_MAGIC);
    }

    #[test]
    fn padding_for_every_name_and_data_length() {
        for name_len in 1..=8 {
            for data_len in 0..=8 {
                let name = "n".repeat(name_len);
                let data = vec![0xa5u8; data_len];
                let mut w = NewcWriter::new();
                w.file(&name, 0o644, &data).dir("d", 0o700);
                let a = w.finish();
                assert_eq!(a.len() % 4, 0);
                let e = parse(&a);
                assert_eq!(e.len(), 3);
                assert_eq!(e[0].name, name);
                assert_eq!(e[0].data, data);
                let header_and_name = (HEADER_LEN + name_len + 1).next_multiple_of(4);
                let second = header_and_name + data_len.next_multiple_of(4);
                assert_eq!(&a[second..second + 6], NEWC_MAGIC);
                assert_eq!(e[1].name, "d");
                assert_eq!(e[1].fields[MODE], 0o040700);
            }
        }
    }

    #[test]
    fn trailer_and_inodes() {
        let mut w = NewcWriter::new();
        w.dir("a", 0o755).dir("b", 0o755);
        let a = w.finish();
        let e = parse(&a);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e.iter().map(|e| e.fields[INO]).collect::<Vec<_>>(),
            [1, 2, 0]
        );
        let t = &e[2];
        assert_eq!(t.name, TRAILER);
        assert_eq!(t.fields[MODE], 0);
        assert_eq!(t.fields[NLINK], 1);
        assert_eq!(t.fields[FILESIZE], 0);
        assert_eq!(t.fields[NAMESIZE], 11);
        // The trailer entry: 110 + 11 = 121 -> 124 bytes.
        assert_eq!(a.len(), 2 * 112 + 124);
        assert!(
            a.ends_with(b"TRAILER!!!\0\0\0\0"),
            "NUL and 3 bytes of padding"
        );
        assert_eq!(NewcWriter::new().finish().len(), 124);
    }

    #[test]
    fn initramfs_entries() {
        let a = image(b"\x7fELF busybox");
        let e = parse(&a);
        let summary: Vec<(&str, u32, u32, u32, u32)> = e
            .iter()
            .map(|e| {
                (
                    e.name.as_str(),
                    e.fields[MODE],
                    e.fields[NLINK],
                    e.fields[RDEVMAJOR],
                    e.fields[RDEVMINOR],
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("dev", 0o040755, 2, 0, 0),
                ("dev/console", 0o020600, 1, 5, 1),
                ("dev/kmsg", 0o020644, 1, 1, 11),
                ("proc", 0o040755, 2, 0, 0),
                ("sys", 0o040755, 2, 0, 0),
                ("bin", 0o040755, 2, 0, 0),
                ("bin/busybox", 0o100755, 1, 0, 0),
                ("init", 0o100755, 1, 0, 0),
                (TRAILER, 0, 1, 0, 0),
            ]
        );
        assert_eq!(e[6].data, b"\x7fELF busybox");
        assert_eq!(e[7].data, INIT_SCRIPT.as_bytes());
        assert!(INIT_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        assert!(INIT_SCRIPT.contains(INIT_MARKER));
        assert!(INIT_MARKER_XEN.starts_with(INIT_MARKER));
        assert_eq!(image(b"\x7fELF busybox"), a, "deterministic");
    }

    /// GNU cpio reads the archive back (scripts/install-host-deps.sh installs it).
    #[test]
    fn gnu_cpio_lists_the_archive() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let child = Command::new("cpio")
            .args(["-it", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = child.unwrap_or_else(|e| {
            panic!("cannot run cpio ({e}): run scripts/install-host-deps.sh as root")
        });
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&image(b"busybox"))
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "dev\ndev/console\ndev/kmsg\nproc\nsys\nbin\nbin/busybox\ninit\n"
        );
    }
}
