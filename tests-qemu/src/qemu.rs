//! The QEMU runner: a builder for the command line, and a run loop that captures the serial
//! port to a file and stops at the first of: a success marker, a failure marker, QEMU exiting,
//! or a timeout. QEMU always runs in its own process group, which is killed at the end (also
//! when the test panics).

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::cmdline::{Module, initrd_value};
use crate::error::{Error, Result, ResultExt};
use crate::serial::SerialLog;
use crate::{DEFAULT_FAILURE_MARKERS, lock, paths};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// Default time limit of a run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default quiet period after a marker (to collect the rest of a panic dump, for instance).
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(300);
/// Upper bound on the time spent settling after a marker.
const MAX_SETTLE: Duration = Duration::from_secs(3);
/// I/O port of the isa-debug-exit device.
pub const DEBUG_EXIT_IOBASE: u16 = 0xf4;

const POLL: Duration = Duration::from_millis(20);

/// What the machine boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BootSource {
    None,
    /// `-kernel` (QEMU's multiboot1 loader), with `-append` and `-initrd`.
    Kernel(PathBuf),
    /// `-cdrom` + `-boot d` (e.g. a GRUB ISO).
    Cdrom(PathBuf),
}

/// A QEMU invocation under construction.
///
/// Defaults: `-machine q35 -cpu max -accel tcg -nographic -no-reboot -smp 2 -m 2048 -nic none`, the
/// isa-debug-exit device at 0xf4, no success marker, the [`DEFAULT_FAILURE_MARKERS`], a 60 s
/// timeout.
#[derive(Debug, Clone)]
pub struct Qemu {
    name: String,
    boot: BootSource,
    append: Option<String>,
    modules: Vec<Module>,
    smp: u32,
    mem_mib: u32,
    machine: String,
    cpu: String,
    debug_exit: bool,
    extra_args: Vec<OsString>,
    timeout: Duration,
    settle: Duration,
    success_markers: Vec<String>,
    failure_markers: Vec<String>,
    /// Serial input: each item's bytes are typed once its marker has appeared (after the
    /// previous item's).
    input: Vec<(String, Vec<u8>)>,
}

impl Default for Qemu {
    fn default() -> Self {
        Self::new()
    }
}

impl Qemu {
    /// A builder with the defaults above and nothing to boot yet.
    pub fn new() -> Self {
        Qemu {
            name: String::new(),
            boot: BootSource::None,
            append: None,
            modules: Vec::new(),
            smp: 2,
            mem_mib: 2048,
            machine: "q35".into(),
            cpu: "max".into(),
            debug_exit: true,
            extra_args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            settle: DEFAULT_SETTLE,
            success_markers: Vec::new(),
            failure_markers: DEFAULT_FAILURE_MARKERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            input: Vec::new(),
        }
    }

    /// Types `bytes` on the serial console once `marker` has appeared in the output (after the
    /// marker of the previous input, if any). May be repeated.
    pub fn type_after(mut self, marker: &str, bytes: &[u8]) -> Self {
        self.input.push((marker.to_string(), bytes.to_vec()));
        self
    }

    /// Names the run: the serial log goes to `target/tests-qemu/runs/<name>.serial.log`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Boots `elf` with `-kernel` (QEMU's multiboot1 loader).
    pub fn kernel(mut self, elf: impl Into<PathBuf>) -> Self {
        self.boot = BootSource::Kernel(elf.into());
        self
    }

    /// Boots from a CD-ROM image (e.g. from [`crate::grub::build_iso`]) instead of `-kernel`.
    pub fn cdrom(mut self, iso: impl Into<PathBuf>) -> Self {
        self.boot = BootSource::Cdrom(iso.into());
        self
    }

    /// The kernel command line (`-append`); only with [`kernel`](Self::kernel).
    pub fn append(mut self, cmdline: &str) -> Self {
        self.append = Some(cmdline.to_string());
        self
    }

    /// Adds a multiboot module with its command line (`-initrd`, commas escaped); only with
    /// [`kernel`](Self::kernel).
    pub fn module(mut self, path: impl Into<PathBuf>, args: &str) -> Self {
        self.modules.push(Module::new(path, args));
        self
    }

    /// Adds several modules.
    pub fn modules(mut self, modules: impl IntoIterator<Item = Module>) -> Self {
        self.modules.extend(modules);
        self
    }

    /// Number of vCPUs (`-smp`).
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    /// RAM size in MiB (`-m`).
    pub fn mem_mib(mut self, mib: u32) -> Self {
        self.mem_mib = mib;
        self
    }

    /// Machine type (`-machine`, default `q35`).
    pub fn machine(mut self, machine: &str) -> Self {
        self.machine = machine.to_string();
        self
    }

    /// CPU model (`-cpu`, default `max`).
    pub fn cpu(mut self, cpu: &str) -> Self {
        self.cpu = cpu.to_string();
        self
    }

    /// Whether to add `-device isa-debug-exit,iobase=0xf4,iosize=0x04` (default on).
    pub fn debug_exit(mut self, on: bool) -> Self {
        self.debug_exit = on;
        self
    }

    /// Appends one raw QEMU argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Appends raw QEMU arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Time limit for [`run`](Self::run) (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long output must stay quiet after a marker before the run ends (default 300 ms,
    /// capped at 3 s in total).
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Ends the run successfully when the serial output contains `marker`. May be repeated; the
    /// first marker seen (of either kind) wins.
    pub fn success_marker(mut self, marker: &str) -> Self {
        self.success_markers.push(marker.to_string());
        self
    }

    /// Ends the run as failed when the serial output contains `marker` (in addition to the
    /// defaults, unless [`no_failure_markers`](Self::no_failure_markers) came first).
    pub fn failure_marker(mut self, marker: &str) -> Self {
        self.failure_markers.push(marker.to_string());
        self
    }

    /// Drops all failure markers, including the default `FATAL TRAP` / `Panic on CPU` (for tests
    /// that expect a crash).
    pub fn no_failure_markers(mut self) -> Self {
        self.failure_markers.clear();
        self
    }

    /// The machine and boot arguments shared by test runs and interactive runs (everything but
    /// the serial/display setup).
    pub fn machine_args(&self) -> Result<Vec<OsString>> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-machine");
        push(&self.machine);
        push("-cpu");
        push(&self.cpu);
        push("-accel");
        push("tcg");
        push("-smp");
        push(&self.smp.to_string());
        push("-m");
        push(&self.mem_mib.to_string());
        push("-no-reboot");
        // No NIC: saves the iPXE option ROM's boot time.
        push("-nic");
        push("none");
        if self.debug_exit {
            push("-device");
            push(&format!(
                "isa-debug-exit,iobase={DEBUG_EXIT_IOBASE:#x},iosize=0x04"
            ));
        }
        match &self.boot {
            BootSource::None => return Err(Error::new("nothing to boot: set kernel() or cdrom()")),
            BootSource::Kernel(k) => {
                a.push("-kernel".into());
                a.push(k.into());
                if let Some(cmdline) = &self.append {
                    a.push("-append".into());
                    a.push(cmdline.into());
                }
                if !self.modules.is_empty() {
                    a.push("-initrd".into());
                    a.push(initrd_value(&self.modules)?.into());
                }
            }
            BootSource::Cdrom(iso) => {
                if self.append.is_some() || !self.modules.is_empty() {
                    return Err(Error::new(
                        "append() and module() only apply to -kernel boots; put them in the ISO",
                    ));
                }
                a.push("-cdrom".into());
                a.push(iso.into());
                a.push("-boot".into());
                a.push("d".into());
            }
        }
        a.extend(self.extra_args.iter().cloned());
        Ok(a)
    }

    /// The full argument list for a captured run with the serial port written to `serial`.
    pub fn capture_args(&self, serial: &Path) -> Result<Vec<OsString>> {
        let mut a = self.machine_args()?;
        a.extend(
            ["-nographic", "-monitor", "none"]
                .into_iter()
                .map(OsString::from),
        );
        if self.input.is_empty() {
            let mut file = OsString::from("file:");
            file.push(serial);
            a.push("-serial".into());
            a.push(file);
        } else {
            // Output to the log file, input from a FIFO the harness writes.
            let mut dev = OsString::from("file,id=ser0,path=");
            dev.push(serial);
            dev.push(",input-path=");
            dev.push(input_fifo(serial));
            a.extend([
                "-chardev".into(),
                dev,
                "-serial".into(),
                "chardev:ser0".into(),
            ]);
        }
        Ok(a)
    }

    /// A command for an interactive session: serial and the QEMU monitor multiplexed on this
    /// terminal (`-nographic`; Ctrl-A X quits, Ctrl-A C switches to the monitor).
    pub fn interactive_command(&self) -> Result<Command> {
        let mut cmd = Command::new(QEMU);
        cmd.args(self.machine_args()?)
            .args(["-nographic", "-serial", "mon:stdio"]);
        Ok(cmd)
    }

    /// Boots QEMU (holding the global QEMU lock) and waits for a marker, exit or timeout.
    pub fn run(&self) -> Result<RunResult> {
        let dir = paths::scratch_dir("runs")?;
        let name = if self.name.is_empty() {
            static N: AtomicUsize = AtomicUsize::new(0);
            format!("run{}", N.fetch_add(1, Ordering::Relaxed))
        } else {
            self.name.clone()
        };
        let serial_path = dir.join(format!("{name}.serial.log"));
        let qemu_log_path = dir.join(format!("{name}.qemu.log"));
        let args = self.capture_args(&serial_path)?;
        let command_line = shell_words(QEMU, &args);

        let _lock = lock::acquire()?;
        File::create(&serial_path).ctx(|| format!("creating {}", serial_path.display()))?;
        // Opened read-write before QEMU starts, so QEMU's open for reading does not block.
        let mut typist = if self.input.is_empty() {
            None
        } else {
            Some(Typist::open(&input_fifo(&serial_path), &self.input)?)
        };
        let qemu_log =
            File::create(&qemu_log_path).ctx(|| format!("creating {}", qemu_log_path.display()))?;
        let child = Command::new(QEMU)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(qemu_log.try_clone()?)
            .stderr(qemu_log)
            .process_group(0)
            .spawn()
            .ctx(|| {
                format!("starting {QEMU} (is QEMU installed? see scripts/install-host-deps.sh)")
            })?;
        let start = Instant::now();
        let mut guard = KillOnDrop(Some(child));
        let mut reader = SerialReader::open(&serial_path)?;

        let mut status = None;
        let end = loop {
            reader.poll()?;
            if let Some(t) = typist.as_mut() {
                t.poll(&reader.text)?;
            }
            if let Some(end) = self.marker_end(&reader.text) {
                break end;
            }
            if let Some(st) = guard.child().try_wait()? {
                status = Some(st);
                reader.poll()?;
                break self.marker_end(&reader.text).unwrap_or(EndReason::Exited);
            }
            if start.elapsed() >= self.timeout {
                break EndReason::Timeout;
            }
            thread::sleep(POLL);
        };

        // After a marker, let the output settle (collect the rest of a dump), noting an exit.
        if matches!(end, EndReason::Success(_) | EndReason::Failure(_)) && status.is_none() {
            let settle_start = Instant::now();
            let mut last_change = Instant::now();
            while last_change.elapsed() < self.settle && settle_start.elapsed() < MAX_SETTLE {
                thread::sleep(POLL);
                if reader.poll()? {
                    last_change = Instant::now();
                }
                if let Some(st) = guard.child().try_wait()? {
                    status = Some(st);
                    reader.poll()?;
                    break;
                }
            }
        }
        let elapsed = start.elapsed();
        guard.kill();
        reader.poll()?;
        let qemu_output = fs::read(&qemu_log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Ok(RunResult {
            serial: SerialLog::new(&reader.bytes),
            status,
            elapsed,
            end,
            qemu_output,
            command_line,
            serial_path,
        })
    }

    /// The earliest marker occurring in `text`, if any.
    fn marker_end(&self, text: &str) -> Option<EndReason> {
        let success = self.success_markers.iter().filter_map(|m| {
            text.find(m.as_str())
                .map(|p| (p, EndReason::Success(m.clone())))
        });
        let failure = self.failure_markers.iter().filter_map(|m| {
            text.find(m.as_str())
                .map(|p| (p, EndReason::Failure(m.clone())))
        });
        success
            .chain(failure)
            .min_by_key(|(p, _)| *p)
            .map(|(_, e)| e)
    }
}

/// The FIFO a run with serial input reads from, next to its serial log.
fn input_fifo(serial: &Path) -> PathBuf {
    serial.with_extension("in")
}

/// Types the scripted serial input into the FIFO as the output shows each marker.
struct Typist {
    fifo: File,
    script: Vec<(String, Vec<u8>)>,
    next: usize,
    /// Where in the output the last typed item's marker was found.
    from: usize,
}

impl Typist {
    fn open(path: &Path, script: &[(String, Vec<u8>)]) -> Result<Self> {
        let _ = fs::remove_file(path);
        let ok = Command::new("mkfifo")
            .arg(path)
            .status()
            .ctx(|| "running mkfifo".to_string())?
            .success();
        if !ok {
            return Err(Error::new(format!("mkfifo {} failed", path.display())));
        }
        let fifo = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .ctx(|| format!("opening {}", path.display()))?;
        Ok(Typist {
            fifo,
            script: script.to_vec(),
            next: 0,
            from: 0,
        })
    }

    /// Types every item whose marker has appeared, in order.
    fn poll(&mut self, text: &str) -> Result<()> {
        use std::io::Write;
        while let Some((marker, bytes)) = self.script.get(self.next) {
            let Some(at) = text.get(self.from..).and_then(|t| t.find(marker.as_str())) else {
                break;
            };
            self.from += at + marker.len();
            // One byte at a time, as a person types: the UART has a small FIFO.
            for b in bytes {
                self.fifo.write_all(&[*b])?;
                self.fifo.flush()?;
                thread::sleep(Duration::from_millis(5));
            }
            self.next += 1;
        }
        Ok(())
    }
}

/// Reads the growing serial file incrementally.
struct SerialReader {
    file: File,
    bytes: Vec<u8>,
    text: String,
}

impl SerialReader {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
        Ok(SerialReader {
            file,
            bytes: Vec::new(),
            text: String::new(),
        })
    }

    /// Reads new bytes; returns whether there were any.
    fn poll(&mut self) -> Result<bool> {
        let before = self.bytes.len();
        self.file.seek(SeekFrom::Start(before as u64))?;
        self.file.read_to_end(&mut self.bytes)?;
        let grew = self.bytes.len() > before;
        if grew {
            self.text = String::from_utf8_lossy(&self.bytes).into_owned();
        }
        Ok(grew)
    }
}

/// Kills QEMU's whole process group when dropped, so a panicking test leaves nothing behind.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present until killed")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            // QEMU was spawned with process_group(0): its pgid is its pid.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// This success marker appeared.
    Success(String),
    /// This failure marker appeared.
    Failure(String),
    /// QEMU exited by itself (see [`RunResult::status`]) without a marker.
    Exited,
    /// The time limit passed.
    Timeout,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Success(m) => write!(f, "success marker {m:?} seen"),
            EndReason::Failure(m) => write!(f, "failure marker {m:?} seen"),
            EndReason::Exited => f.write_str("QEMU exited"),
            EndReason::Timeout => f.write_str("timed out"),
        }
    }
}

/// The outcome of [`Qemu::run`].
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Everything the guest wrote to the serial port.
    pub serial: SerialLog,
    /// QEMU's exit status if it exited by itself (`None` if the harness killed it).
    pub status: Option<ExitStatus>,
    /// Time from start until the end condition (and settling).
    pub elapsed: Duration,
    /// What ended the run.
    pub end: EndReason,
    /// QEMU's own stdout and stderr.
    pub qemu_output: String,
    /// The QEMU command line, for reproducing by hand.
    pub command_line: String,
    /// Where the serial log was written.
    pub serial_path: PathBuf,
}

impl RunResult {
    /// QEMU's exit code, if it exited by itself.
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The value the guest wrote to isa-debug-exit, if QEMU exited that way (status
    /// `(value << 1) | 1`). An exit status of 1 is ambiguous (value 0 or a QEMU error).
    pub fn debug_exit_value(&self) -> Option<i32> {
        self.exit_code().filter(|c| c & 1 == 1).map(|c| c >> 1)
    }

    /// Whether the run ended on a success marker.
    pub fn succeeded(&self) -> bool {
        matches!(self.end, EndReason::Success(_))
    }

    /// All serial lines (cleaned).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.serial.lines()
    }

    /// The first serial line starting with `prefix`.
    pub fn find_line(&self, prefix: &str) -> Option<&str> {
        self.serial.find_line(prefix)
    }

    /// Every serial line starting with `prefix`.
    pub fn find_lines(&self, prefix: &str) -> Vec<&str> {
        self.serial.find_lines(prefix)
    }

    /// See [`SerialLog::xen_value`].
    pub fn xen_value(&self, key: &str) -> Option<&str> {
        self.serial.xen_value(key)
    }

    /// A report for assertion messages: how it ended, the command, QEMU's output and the serial
    /// tail.
    pub fn report(&self) -> String {
        format!(
            "QEMU run {} after {:.1?} (exit status: {})\ncommand: {}\nserial log: {}\n\
             --- QEMU output ---\n{}\n--- serial (last 60 lines) ---\n{}\n--- end ---",
            self.end,
            self.elapsed,
            self.status
                .map_or("none (killed)".into(), |s| s.to_string()),
            self.command_line,
            self.serial_path.display(),
            self.qemu_output.trim_end(),
            self.serial.tail(60)
        )
    }

    /// Panics with [`report`](Self::report) unless the run ended on a success marker.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.succeeded(), "{}", self.report());
        self
    }

    /// Panics with the report unless a line starts with `prefix`; returns that line.
    #[track_caller]
    pub fn expect_line(&self, prefix: &str) -> &str {
        match self.find_line(prefix) {
            Some(l) => l,
            None => panic!("no line starting with {prefix:?}\n{}", self.report()),
        }
    }
}

/// Renders a command line for humans (quoting arguments with shell-special characters).
pub fn shell_words(program: &str, args: &[OsString]) -> String {
    let mut s = program.to_string();
    for a in args {
        let a = a.to_string_lossy();
        s.push(' ');
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:+@%".contains(c))
        {
            s.push_str(&a);
        } else {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn kernel_args() {
        let q = Qemu::new()
            .kernel("/x/xenolith")
            .append("console=com1 com1=115200,8n1")
            .module("/x/dom0", "root=/dev/xvda console=hvc0,115200")
            .smp(4)
            .mem_mib(512)
            .arg("-d")
            .arg("int");
        let a = strs(&q.capture_args(Path::new("/t/s.log")).unwrap());
        let joined = a.join(" ");
        assert!(
            joined
                .starts_with("-machine q35 -cpu max -accel tcg -smp 4 -m 512 -no-reboot -nic none")
        );
        assert!(joined.contains("-device isa-debug-exit,iobase=0xf4,iosize=0x04"));
        let i = a.iter().position(|s| s == "-append").unwrap();
        assert_eq!(
            a[i + 1],
            "console=com1 com1=115200,8n1",
            "-append is not comma-escaped"
        );
        let i = a.iter().position(|s| s == "-initrd").unwrap();
        assert_eq!(a[i + 1], "/x/dom0 root=/dev/xvda console=hvc0,,115200");
        assert!(joined.ends_with("-d int -nographic -monitor none -serial file:/t/s.log"));
    }

    #[test]
    fn cdrom_args_and_misuse() {
        let a = strs(
            &Qemu::new()
                .cdrom("/x.iso")
                .debug_exit(false)
                .machine_args()
                .unwrap(),
        );
        assert!(
            a.windows(4)
                .any(|w| w == ["-cdrom", "/x.iso", "-boot", "d"])
        );
        assert!(!a.iter().any(|s| s.contains("isa-debug-exit")));
        assert!(
            Qemu::new()
                .cdrom("/x.iso")
                .append("a")
                .machine_args()
                .is_err()
        );
        assert!(Qemu::new().machine_args().is_err());
    }

    #[test]
    fn earliest_marker_wins() {
        let q = Qemu::new().success_marker("done");
        assert_eq!(q.marker_end("x"), None);
        assert_eq!(
            q.marker_end("a done"),
            Some(EndReason::Success("done".into()))
        );
        assert_eq!(
            q.marker_end("FATAL TRAP ... done"),
            Some(EndReason::Failure("FATAL TRAP".into()))
        );
        assert_eq!(
            q.marker_end("done ... Panic on CPU 0"),
            Some(EndReason::Success("done".into()))
        );
        let q = q.no_failure_markers().failure_marker("oops");
        assert_eq!(q.marker_end("FATAL TRAP"), None);
        assert_eq!(
            q.marker_end("oops"),
            Some(EndReason::Failure("oops".into()))
        );
    }

    #[test]
    fn shell_quoting() {
        let args: Vec<OsString> = ["-append", "a b", "it's", "x,y"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(shell_words("q", &args), r"q -append 'a b' 'it'\''s' x,y");
    }
}
