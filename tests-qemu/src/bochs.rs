//! A Bochs runner, for what QEMU TCG cannot emulate (Intel VMX): boots the hypervisor from a
//! GRUB ISO (multiboot2) on Bochs' `corei7_skylake_x` CPU, captures COM1 into a file and stops
//! Bochs (SIGKILL: it ignores SIGTERM) once a success or failure marker shows up there, or at
//! the timeout. Bochs' own exit status says nothing (always 1), so runs are judged by markers.
//! Run files (bochsrc, debugger rc, serial and Bochs log) go to `target/tests-qemu/runs/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, ResultExt};
use crate::serial::SerialLog;
use crate::{DEFAULT_FAILURE_MARKERS, grub, lock, paths};

/// The Bochs binary.
pub const BOCHS: &str = "bochs";
/// BIOS and VGA BIOS images of Debian's `bochsbios` and `vgabios` packages.
pub const BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// See [`BIOS`].
pub const VGA_BIOS: &str = "/usr/share/vgabios/vgabios.bin";

/// Whether Bochs and its BIOS images are installed; the error says what to install.
pub fn available() -> Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {BOCHS}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found || !Path::new(BIOS).is_file() || !Path::new(VGA_BIOS).is_file() {
        return Err(Error::new(
            "Bochs is not installed (bochs, bochsbios, vgabios, bochs-term): run \
             scripts/install-host-deps.sh --bochs",
        ));
    }
    Ok(())
}

/// The bochsrc for a run: one `corei7_skylake_x` CPU (VMX with EPT and unrestricted guest),
/// `mem_mib` of RAM, the ISO as a CD-ROM on ata0-master, COM1 into `serial`, Bochs' log into
/// `log`, the terminal display (Debian's Bochs has no `nogui`).
pub fn bochsrc(iso: &Path, serial: &Path, log: &Path, mem_mib: u32) -> String {
    format!(
        "megs: {mem_mib}\n\
         cpu: model=corei7_skylake_x, count=1, ips=50000000, reset_on_triple_fault=0\n\
         clock: sync=none\n\
         romimage: file={BIOS}\n\
         vgaromimage: file={VGA_BIOS}\n\
         display_library: term\n\
         ata0-master: type=cdrom, path={iso}, status=inserted\n\
         boot: cdrom\n\
         com1: enabled=1, mode=file, dev={serial}\n\
         log: {log}\n\
         panic: action=fatal\n\
         error: action=report\n\
         info: action=ignore\n\
         debug: action=ignore\n",
        iso = iso.display(),
        serial = serial.display(),
        log = log.display(),
    )
}

/// A finished Bochs run.
#[derive(Debug)]
pub struct BochsResult {
    /// COM1 output.
    pub serial: SerialLog,
    /// Whether the success marker was seen (and no failure marker).
    pub success: bool,
    /// Why the run ended.
    pub end: String,
    /// Time from start to the end condition.
    pub elapsed: Duration,
    /// The serial and Bochs log files.
    pub serial_path: PathBuf,
    /// Bochs' log file (names the failed check of a refused VM entry).
    pub log_path: PathBuf,
}

impl BochsResult {
    /// A human-readable summary with the tail of the serial log and of Bochs' log.
    pub fn report(&self) -> String {
        let log = fs::read_to_string(&self.log_path).unwrap_or_default();
        let log_tail: Vec<&str> = log.lines().rev().take(20).collect();
        format!(
            "Bochs run ended: {} after {:.1?}\nserial log: {}\nBochs log: {}\n\
             --- Bochs log (last 20 lines) ---\n{}\n--- serial (last 60 lines) ---\n{}\n--- end ---",
            self.end,
            self.elapsed,
            self.serial_path.display(),
            self.log_path.display(),
            log_tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            self.serial.tail(60)
        )
    }

    /// Panics with the report unless a line starts with `prefix`; returns that line.
    #[track_caller]
    pub fn expect_line(&self, prefix: &str) -> &str {
        match self.serial.find_line(prefix) {
            Some(l) => l,
            None => panic!("no line starting with {prefix:?}\n{}", self.report()),
        }
    }
}

/// Boots `elf` with command line `args` under Bochs until `success_marker` (or a crash
/// marker) appears on COM1, or `timeout`.
pub fn run(
    name: &str,
    elf: &Path,
    args: &str,
    success_marker: &str,
    timeout: Duration,
) -> Result<BochsResult> {
    available()?;
    let iso = grub::build_iso(&format!("bochs-{name}"), elf, args, &[])?;
    let dir = paths::scratch_dir("runs")?;
    let serial_path = dir.join(format!("bochs-{name}.serial"));
    let log_path = dir.join(format!("bochs-{name}.log"));
    let rc_path = dir.join(format!("bochs-{name}.bochsrc"));
    let dbg_path = dir.join(format!("bochs-{name}.rc"));
    let _ = fs::remove_file(&serial_path);
    let _ = fs::remove_file(&log_path);
    fs::write(&rc_path, bochsrc(&iso, &serial_path, &log_path, 256))
        .ctx(|| format!("writing {}", rc_path.display()))?;
    // Bochs' debugger stops before the first instruction: continue.
    fs::write(&dbg_path, "c\n").ctx(|| format!("writing {}", dbg_path.display()))?;

    let _lock = lock::acquire()?;
    let start = Instant::now();
    let mut child = Command::new(BOCHS)
        .arg("-q")
        .arg("-f")
        .arg(&rc_path)
        .arg("-rc")
        .arg(&dbg_path)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(&dir)
        .spawn()
        .ctx(|| "starting bochs")?;
    let end;
    let mut success = false;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let text = SerialLog::new(&fs::read(&serial_path).unwrap_or_default());
        if let Some(m) = DEFAULT_FAILURE_MARKERS.iter().find(|m| text.contains(m)) {
            end = format!("failure marker {m:?}");
            break;
        }
        if text.contains(success_marker) {
            success = true;
            end = format!("success marker {success_marker:?}");
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            end = format!("bochs exited by itself ({status})");
            break;
        }
        if start.elapsed() > timeout {
            end = format!("timeout ({timeout:?})");
            break;
        }
    }
    let elapsed = start.elapsed();
    // SIGKILL: Bochs ignores SIGTERM. (Already exited: the error is harmless.)
    let _ = child.kill();
    let _ = child.wait();
    let serial = SerialLog::new(&fs::read(&serial_path).unwrap_or_default());
    Ok(BochsResult {
        serial,
        success,
        end,
        elapsed,
        serial_path,
        log_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bochsrc_has_the_measured_settings() {
        let rc = bochsrc(
            Path::new("/t/a.iso"),
            Path::new("/t/s"),
            Path::new("/t/l"),
            256,
        );
        assert!(rc.contains("cpu: model=corei7_skylake_x, count=1, ips=50000000"));
        assert!(rc.contains("reset_on_triple_fault=0"));
        assert!(rc.contains("clock: sync=none\n"));
        assert!(rc.contains("ata0-master: type=cdrom, path=/t/a.iso, status=inserted\n"));
        assert!(rc.contains("boot: cdrom\n"));
        assert!(rc.contains("com1: enabled=1, mode=file, dev=/t/s\n"));
        assert!(rc.contains("display_library: term\n"));
        assert!(rc.contains("log: /t/l\n"));
    }
}
