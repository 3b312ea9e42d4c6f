//! The benchmark of Xenolith against Xen 4.17 (`cargo xtask bench`, docs/performance.md) and
//! its smoke test (`tests/bench_smoke.rs`): `pvtest`'s `bench` suite booted as dom0 on either
//! hypervisor, the `BENCH` lines it prints, and the tables that compare them.
//!
//! The guest prints (see `tests-qemu/guests/src/bench.rs`):
//!
//! ```text
//! BENCH boot tsc_ns=<n> system_time_ns=<n>
//! BENCH <op> iters=<n> ns_per_op=<x.y> cycles_per_op=<x.y>
//! BENCH <op> SKIP reason=<word>
//! BENCH <op> FAIL
//! BENCH done
//! ```
//!
//! Runs use the QEMU machine and hypervisor command line of the differential tests
//! ([`guests::pvtest_qemu`]), in one of two [`Mode`]s.

use std::fmt::{self, Write as _};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::elf::Elf64;
use crate::error::{Error, Result, ResultExt};
use crate::guests::{self, Hypervisor};
use crate::verdicts::Transcript;
use crate::{Qemu, RunResult, xen_ref};

/// The guest suite.
pub const SUITE: &str = "bench";
/// `bench_iters` of the smoke run: one timed iteration per operation.
pub const SMOKE_ITERS: u32 = 1;
/// Every operation the guest times, in the order it prints them (docs/performance.md describes
/// each). A run must time all of them.
pub const OPS: &[&str] = &[
    "null_hypercall",
    "multicall_32",
    "mmu_update_1",
    "mmu_update_512",
    "update_va_mapping_invlpg",
    "evtchn_send_self",
    "pf_bounce",
    "syscall_bounce",
    "sched_yield",
    "evtchn_interdomain_roundtrip",
    "grant_map_unmap",
    "grant_copy_4k",
];
/// Operations the guest skips on both hypervisors because one of them cannot run them yet;
/// docs/performance.md keeps the same list. Empty: the interdomain round trip uses a loopback
/// channel and the grant operations a grant of dom0 to itself, which both run.
pub const SKIPPED_OPS: &[&str] = &[];
/// Time limit of one benchmark run (a run takes 5 to 30 s).
pub const BENCH_TIMEOUT: Duration = Duration::from_secs(600);

/// How QEMU keeps time during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deterministic virtual time: `-icount shift=0,sleep=off` runs one instruction per ns of
    /// virtual time and jumps the virtual clock over idle periods instead of following the
    /// host's, so the TSC counts instructions and `ns_per_op` is the number of instructions
    /// (hypervisor and guest) of one operation, the same in every run. Three departures from
    /// the tests' machine, the same for both hypervisors:
    /// - `-smp 1`: under icount QEMU runs all CPUs round-robin on one virtual clock, so an
    ///   idle CPU that wakes up (Xen's does) adds its instructions to CPU 0's measurements,
    ///   which then vary from run to run;
    /// - `-cpu max,-x2apic`: QEMU 10 aborts (`Bad icount read`) when an x2APIC timer register
    ///   is read through its MSR under icount; both hypervisors then use the xAPIC (MMIO);
    /// - `-rtc clock=vm`: the RTC follows virtual time, so the boot time does not depend on
    ///   when in the host's second QEMU started (Xen waits for the RTC's next second at boot).
    Icount,
    /// Plain TCG, as the tests run: the TSC follows the host's, `ns_per_op` is host time spent
    /// emulating the operation (noisy; includes QEMU's cost for TLB flushes and the like).
    Normal,
}

impl Mode {
    /// Both modes, in the order `cargo xtask bench` runs them.
    pub const ALL: [Mode; 2] = [Mode::Icount, Mode::Normal];

    /// A short name (for run names).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Icount => "icount",
            Mode::Normal => "normal",
        }
    }

    /// The number of CPUs (`-smp`).
    pub fn smp(self) -> u32 {
        match self {
            Mode::Icount => 1,
            Mode::Normal => 2,
        }
    }

    /// The `-cpu` model.
    pub fn cpu(self) -> &'static str {
        match self {
            Mode::Icount => "max,-x2apic",
            Mode::Normal => "max",
        }
    }

    /// Extra QEMU arguments.
    pub fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Mode::Icount => &["-icount", "shift=0,sleep=off", "-rtc", "clock=vm"],
            Mode::Normal => &[],
        }
    }

    /// What the numbers of this mode mean, in one line.
    pub fn describe(self) -> String {
        let args = self.qemu_args().join(" ");
        match self {
            Mode::Icount => format!(
                "icount mode (-smp {} -cpu {} {args}): ns = virtual ns = instructions executed",
                self.smp(),
                self.cpu()
            ),
            Mode::Normal => format!(
                "normal mode (-smp {} -cpu {}, plain TCG as the tests run): ns = host ns, noisy",
                self.smp(),
                self.cpu()
            ),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The guest's command line: `suites=bench`, plus `bench_iters=<n>` when given.
pub fn guest_args(iters: Option<u32>) -> String {
    match iters {
        Some(n) => format!("suites={SUITE} bench_iters={n}"),
        None => format!("suites={SUITE}"),
    }
}

/// The QEMU run of the bench suite on `hv` in `mode`: [`guests::pvtest_qemu`] (same machine
/// and hypervisor command line as the differential tests) with the mode's CPU and arguments.
pub fn bench_qemu(
    hv: Hypervisor,
    hv_elf: &Path,
    guest: &Path,
    iters: Option<u32>,
    mode: Mode,
) -> Qemu {
    let iters_tag = iters.map_or(String::new(), |n| format!("-{n}iters"));
    guests::pvtest_qemu(hv, hv_elf, guest, &guest_args(iters))
        .cpu(mode.cpu())
        .smp(mode.smp())
        .args(mode.qemu_args().iter().copied())
        .timeout(BENCH_TIMEOUT)
        .name(&format!("bench-{}-{}{iters_tag}", mode.name(), hv.name()))
}

/// A finished benchmark run.
#[derive(Debug, Clone)]
pub struct BenchRun {
    /// Which hypervisor ran it.
    pub hypervisor: Hypervisor,
    /// How QEMU kept time.
    pub mode: Mode,
    /// The QEMU run.
    pub run: RunResult,
    /// The verdicts (one per operation, plus setup and teardown).
    pub transcript: Transcript,
    /// The `BENCH` lines.
    pub report: BenchReport,
}

impl BenchRun {
    /// Checks that the run ended normally, that the suite's verdicts are consistent and all
    /// PASS (but the [`SKIPPED_OPS`], which must be SKIP) and that every operation printed its
    /// `BENCH` line (every one of [`OPS`] but the skipped ones timed); the error lists what is
    /// wrong.
    pub fn check(&self) -> std::result::Result<(), String> {
        let mut errors = Vec::new();
        if !self.run.succeeded() {
            errors.push(format!("the run did not end normally: {}", self.run.end));
        }
        errors.extend(self.transcript.consistency_problems());
        if self.transcript.suite(SUITE).next().is_none() {
            errors.push("no bench verdicts".to_string());
        }
        for v in self.transcript.suite(SUITE) {
            let want = if SKIPPED_OPS.contains(&v.check.as_str()) {
                crate::verdicts::Outcome::Skip
            } else {
                crate::verdicts::Outcome::Pass
            };
            if v.outcome != want {
                errors.push(format!("expected {want}: {v}"));
            }
        }
        errors.extend(self.report.problems());
        for op in OPS {
            let timed = matches!(self.report.get(op), Some(OpResult::Timed(_)));
            if !timed && !SKIPPED_OPS.contains(op) {
                errors.push(format!("operation {op} was not timed"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// The QEMU report followed by the transcript, for error messages.
    pub fn report_text(&self) -> String {
        format!(
            "{}\n--- {} ({}) transcript ---\n{}",
            self.run.report(),
            self.hypervisor,
            self.mode,
            self.transcript
        )
    }
}

/// Runs the bench suite on `hv` in `mode` with `iters` (the guest's defaults when `None`).
/// Builds `pvtest` and Xenolith, or fetches Xen, as the differential tests do.
pub fn run_bench(hv: Hypervisor, mode: Mode, iters: Option<u32>) -> Result<BenchRun> {
    run_bench_on(hv, &hv.elf()?, &guests::pvtest_elf()?, mode, iters)
}

/// [`run_bench`] with the hypervisor booted from `hv_elf` and the guest from `guest`.
pub fn run_bench_on(
    hv: Hypervisor,
    hv_elf: &Path,
    guest: &Path,
    mode: Mode,
    iters: Option<u32>,
) -> Result<BenchRun> {
    let run = bench_qemu(hv, hv_elf, guest, iters, mode).run()?;
    let transcript = Transcript::parse(run.serial.text());
    let report = BenchReport::parse(run.serial.text());
    Ok(BenchRun {
        hypervisor: hv,
        mode,
        run,
        transcript,
        report,
    })
}

/// The host CPU's model name (from `/proc/cpuinfo`), if known.
pub fn host_cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// The BENCH lines.

/// One operation's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Timed iterations.
    pub iters: u64,
    /// Nanoseconds per iteration (TSC scaled with the PV clock).
    pub ns_per_op: f64,
    /// TSC ticks per iteration.
    pub cycles_per_op: f64,
}

/// What the guest said about one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// It ran and was timed.
    Timed(Timing),
    /// It cannot run; the reason.
    Skipped(String),
    /// It ran but did not return what it should (see its verdict).
    Failed,
}

/// `BENCH boot`: the TSC at the start of the suite scaled to ns (time since machine reset),
/// and the PV clock's system time then (time since the hypervisor started its clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boot {
    /// Scaled TSC, ns.
    pub tsc_ns: u64,
    /// System time, ns.
    pub system_time_ns: u64,
}

/// The `BENCH` lines of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    /// `BENCH boot`, if printed.
    pub boot: Option<Boot>,
    /// Operations in the order printed.
    pub ops: Vec<(String, OpResult)>,
    /// Whether `BENCH done` was printed.
    pub done: bool,
    /// Lines that did not parse.
    pub malformed: Vec<String>,
}

/// `key=value` from whitespace-separated words.
fn field<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
}

impl BenchReport {
    /// Parses the `BENCH` lines of a serial log (anything before `BENCH ` on a line is ignored).
    pub fn parse(text: &str) -> BenchReport {
        let mut r = BenchReport::default();
        for line in text.lines() {
            let Some(p) = line.find("BENCH ") else {
                continue;
            };
            let words: Vec<&str> = line[p + "BENCH ".len()..].split_whitespace().collect();
            if !r.parse_words(&words) {
                r.malformed.push(line[p..].trim_end().to_string());
            }
        }
        r
    }

    /// Takes one line's words; false if they do not parse.
    fn parse_words(&mut self, words: &[&str]) -> bool {
        match words {
            ["done"] => {
                self.done = true;
                true
            }
            ["boot", rest @ ..] => {
                let num = |k| field(rest, k).and_then(|v| v.parse().ok());
                match (num("tsc_ns"), num("system_time_ns")) {
                    (Some(tsc_ns), Some(system_time_ns)) => {
                        self.boot = Some(Boot {
                            tsc_ns,
                            system_time_ns,
                        });
                        true
                    }
                    _ => false,
                }
            }
            [op, "SKIP", rest @ ..] => {
                let reason = field(rest, "reason").unwrap_or("").to_string();
                self.ops.push((op.to_string(), OpResult::Skipped(reason)));
                true
            }
            [op, "FAIL"] => {
                self.ops.push((op.to_string(), OpResult::Failed));
                true
            }
            [op, rest @ ..] => {
                let iters = field(rest, "iters").and_then(|v| v.parse().ok());
                let ns = field(rest, "ns_per_op").and_then(|v| v.parse().ok());
                let cycles = field(rest, "cycles_per_op").and_then(|v| v.parse().ok());
                match (iters, ns, cycles) {
                    (Some(iters), Some(ns_per_op), Some(cycles_per_op)) => {
                        self.ops.push((
                            op.to_string(),
                            OpResult::Timed(Timing {
                                iters,
                                ns_per_op,
                                cycles_per_op,
                            }),
                        ));
                        true
                    }
                    _ => false,
                }
            }
            [] => false,
        }
    }

    /// The result of `op`.
    pub fn get(&self, op: &str) -> Option<&OpResult> {
        self.ops.iter().find(|(o, _)| o == op).map(|(_, r)| r)
    }

    /// What is wrong with the report: malformed or duplicate lines, a failed operation, a
    /// missing `BENCH boot` or `BENCH done`.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .malformed
            .iter()
            .map(|l| format!("malformed line: {l:?}"))
            .collect();
        for (i, (op, r)) in self.ops.iter().enumerate() {
            if self.ops[..i].iter().any(|(o, _)| o == op) {
                out.push(format!("operation {op} reported twice"));
            }
            if *r == OpResult::Failed {
                out.push(format!("operation {op} failed"));
            }
        }
        if self.boot.is_none() {
            out.push("no BENCH boot line".to_string());
        }
        if !self.done {
            out.push("no BENCH done line".to_string());
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Tables.

/// `xenolith / xen`, when both are positive.
pub fn ratio(xenolith: f64, xen: f64) -> Option<f64> {
    (xenolith > 0.0 && xen > 0.0).then(|| xenolith / xen)
}

/// A number of ns, with one decimal below 100.
fn fmt_ns(ns: f64) -> String {
    if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

/// One cell of the table for `r`.
fn cell(r: Option<&OpResult>) -> String {
    match r {
        Some(OpResult::Timed(t)) => fmt_ns(t.ns_per_op),
        Some(OpResult::Skipped(_)) => "skipped".to_string(),
        Some(OpResult::Failed) => "FAILED".to_string(),
        None => "-".to_string(),
    }
}

/// Renders rows as a Markdown table with aligned columns (the first left-aligned, the others
/// right-aligned).
fn markdown(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let mut s = String::from("|");
        for (c, text) in cells.iter().enumerate() {
            if c == 0 {
                let _ = write!(s, " {text:<w$} |", w = widths[c]);
            } else {
                let _ = write!(s, " {text:>w$} |", w = widths[c]);
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    let rule = widths
        .iter()
        .enumerate()
        .map(|(c, &w)| {
            if c == 0 {
                format!(":{}", "-".repeat(w - 1))
            } else {
                format!("{}:", "-".repeat(w - 1))
            }
        })
        .collect();
    out.push_str(&line(rule));
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// The comparison table: operation, Xenolith ns/op, Xen ns/op, ratio (Xenolith / Xen; below 1
/// means Xenolith is faster). Operations appear in the guest's order; a missing report leaves
/// its column empty.
pub fn table(xenolith: Option<&BenchReport>, xen: Option<&BenchReport>) -> String {
    let mut ops: Vec<&str> = Vec::new();
    for r in [xenolith, xen].into_iter().flatten() {
        for (op, _) in &r.ops {
            if !ops.contains(&op.as_str()) {
                ops.push(op);
            }
        }
    }
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|&op| {
            let a = xenolith.and_then(|r| r.get(op));
            let b = xen.and_then(|r| r.get(op));
            let ratio = match (a, b) {
                (Some(OpResult::Timed(a)), Some(OpResult::Timed(b))) => {
                    ratio(a.ns_per_op, b.ns_per_op).map(|r| format!("{r:.2}"))
                }
                _ => None,
            };
            vec![
                op.to_string(),
                cell(a),
                cell(b),
                ratio.unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    markdown(
        &["operation", "Xenolith ns/op", "Xen 4.17 ns/op", "ratio"],
        &rows,
    )
}

/// The boot-time table: machine reset to the start of the bench suite in dom0 (the scaled
/// TSC) and the hypervisor's system time then, in ms.
pub fn boot_table(xenolith: Option<&BenchReport>, xen: Option<&BenchReport>) -> String {
    let ms = |r: Option<&BenchReport>, f: fn(&Boot) -> u64| {
        r.and_then(|r| r.boot.as_ref()).map(|b| f(b) as f64 / 1e6)
    };
    let row = |what: &str, f: fn(&Boot) -> u64| {
        let (a, b) = (ms(xenolith, f), ms(xen, f));
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ratio = a
            .zip(b)
            .and_then(|(a, b)| ratio(a, b))
            .map_or("-".to_string(), |r| format!("{r:.2}"));
        vec![what.to_string(), show(a), show(b), ratio]
    };
    markdown(
        &["time to dom0 (ms)", "Xenolith", "Xen 4.17", "ratio"],
        &[
            row("machine reset -> bench suite start (TSC)", |b| b.tsc_ns),
            row("hypervisor clock start -> bench suite start", |b| {
                b.system_time_ns
            }),
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// Image sizes.

/// Sizes of a hypervisor image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    /// The ELF file (Xenolith's carries debug information; Xen's is stripped).
    pub file: u64,
    /// Bytes the PT_LOAD segments take from the file (what a loader copies).
    pub load_file: u64,
    /// Bytes the PT_LOAD segments take in memory (with bss).
    pub load_mem: u64,
    /// Those file bytes compressed with `gzip -9`, for comparison with `xen.gz`.
    pub load_gz: Option<u64>,
}

impl ImageSize {
    /// Measures the ELF at `path` (ELF64 like Xenolith's, or ELF32 like the unpacked `xen.gz`,
    /// a multiboot image whose one PT_LOAD holds the 64-bit hypervisor).
    pub fn of(path: &Path) -> Result<ImageSize> {
        let bytes = fs::read(path).ctx(|| format!("reading {}", path.display()))?;
        let segs = load_segments(&bytes).map_err(|e| e.context(path.display()))?;
        let mut loaded = Vec::new();
        for s in &segs {
            let start = usize::try_from(s.offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(s.filesz).unwrap_or(usize::MAX));
            let b = bytes.get(start..end).ok_or_else(|| {
                Error::new(format!(
                    "{}: a PT_LOAD lies beyond the file",
                    path.display()
                ))
            })?;
            loaded.extend_from_slice(b);
        }
        Ok(ImageSize {
            file: bytes.len() as u64,
            load_file: segs.iter().map(|s| s.filesz).sum(),
            load_mem: segs.iter().map(|s| s.memsz).sum(),
            load_gz: gzip_len(&loaded).ok(),
        })
    }
}

/// The part of a PT_LOAD program header the sizes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// File offset.
    pub offset: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory.
    pub memsz: u64,
}

/// The PT_LOAD segments of an ELF32 or ELF64 file.
pub fn load_segments(bytes: &[u8]) -> Result<Vec<LoadSegment>> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(Error::new("not an ELF file"));
    }
    match bytes.get(4) {
        Some(2) => Ok(Elf64::parse(bytes)?
            .load_segments()
            .iter()
            .map(|p| LoadSegment {
                offset: p.p_offset,
                filesz: p.p_filesz,
                memsz: p.p_memsz,
            })
            .collect()),
        Some(1) => load_segments32(bytes),
        _ => Err(Error::new("unknown ELF class")),
    }
}

/// The PT_LOAD segments of an ELF32 file (little-endian).
fn load_segments32(b: &[u8]) -> Result<Vec<LoadSegment>> {
    let u16_at = |off: usize| {
        b.get(off..off + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
    };
    let u32_at = |off: usize| crate::elf::read_u32(b, off);
    let truncated = || Error::new("ELF32 header truncated");
    let phoff = u32_at(0x1c).ok_or_else(truncated)? as usize;
    let phentsize = usize::from(u16_at(0x2a).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(0x2c).ok_or_else(truncated)?);
    let mut out = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let word = |at: usize| u32_at(ph + at).map(u64::from).ok_or_else(truncated);
        if word(0)? == u64::from(crate::elf::PT_LOAD) {
            out.push(LoadSegment {
                offset: word(4)?,
                filesz: word(16)?,
                memsz: word(20)?,
            });
        }
    }
    Ok(out)
}

/// The length of `data` compressed with `gzip -9`.
fn gzip_len(data: &[u8]) -> Result<u64> {
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ctx(|| "running gzip")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = data.to_vec();
    // Feed gzip from another thread so a full stdout pipe cannot deadlock the two.
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().ctx(|| "waiting for gzip")?;
    feeder
        .join()
        .map_err(|_| Error::new("gzip feeder panicked"))?
        .ctx(|| "writing to gzip")?;
    if !out.status.success() {
        return Err(Error::new(format!("gzip failed ({})", out.status)));
    }
    Ok(out.stdout.len() as u64)
}

/// The cached Debian package of the reference Xen, if any.
pub fn xen_deb() -> Option<PathBuf> {
    crate::debian::newest_deb(&xen_ref::cache_dir(), xen_ref::PACKAGE)
        .ok()
        .flatten()
}

/// The size of `path_in_package` in a `dpkg-deb -c` listing (`-rw-r--r-- root/root 1016220
/// 2024-01-01 00:00 ./boot/xen-4.17-amd64.gz`).
pub fn size_in_listing(listing: &str, path_in_package: &str) -> Option<u64> {
    listing.lines().find_map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        let name = words.get(5)?.trim_start_matches("./");
        (name == path_in_package)
            .then(|| words.get(2)?.parse().ok())
            .flatten()
    })
}

/// The size of `xen.gz` in the cached package (`None` without a package, e.g. with
/// `XEN_REF_ELF`).
pub fn xen_gz_size() -> Option<u64> {
    let deb = xen_deb()?;
    let out = Command::new("dpkg-deb").arg("-c").arg(&deb).output().ok()?;
    size_in_listing(
        &String::from_utf8_lossy(&out.stdout),
        xen_ref::XEN_GZ_IN_PACKAGE,
    )
}

/// The image-size table (KiB).
pub fn size_table(
    xenolith: Option<&ImageSize>,
    xen: Option<&ImageSize>,
    xen_gz: Option<u64>,
) -> String {
    let kib = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.0}", v as f64 / 1024.0));
    let row = |what: &str, f: fn(&ImageSize) -> Option<u64>| {
        let (a, b) = (xenolith.and_then(f), xen.and_then(f));
        let r = a
            .zip(b)
            .and_then(|(a, b)| ratio(a as f64, b as f64))
            .map_or("-".to_string(), |r| format!("{r:.2}"));
        vec![what.to_string(), kib(a), kib(b), r]
    };
    let mut rows = vec![
        row("ELF file", |s| Some(s.file)),
        row("PT_LOAD bytes in the file", |s| Some(s.load_file)),
        row("PT_LOAD bytes in memory (with bss)", |s| Some(s.load_mem)),
        row("PT_LOAD file bytes, gzip -9", |s| s.load_gz),
    ];
    rows.push(vec![
        "xen.gz as packaged".to_string(),
        "-".to_string(),
        kib(xen_gz),
        "-".to_string(),
    ]);
    markdown(
        &["image size (KiB)", "Xenolith", "Xen 4.17", "ratio"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
(XEN) something\n\
PVTEST start xenolith-pvtest\n\
BENCH boot tsc_ns=180463951 system_time_ns=102228852\n\
VERDICT bench.setup PASS clock_stable=true\n\
BENCH null_hypercall iters=20000 ns_per_op=250.0 cycles_per_op=250.5\n\
(XEN) noise BENCH mmu_update_512 iters=50 ns_per_op=265049.9 cycles_per_op=265049.6\n\
BENCH pf_bounce FAIL\n\
BENCH grant_copy_4k SKIP reason=no_grant_tables\n\
BENCH done\n";

    #[test]
    fn parses_bench_lines() {
        let r = BenchReport::parse(LOG);
        assert_eq!(
            r.boot,
            Some(Boot {
                tsc_ns: 180_463_951,
                system_time_ns: 102_228_852
            })
        );
        assert!(r.done);
        assert!(r.malformed.is_empty(), "{:?}", r.malformed);
        assert_eq!(
            r.get("null_hypercall"),
            Some(&OpResult::Timed(Timing {
                iters: 20000,
                ns_per_op: 250.0,
                cycles_per_op: 250.5
            }))
        );
        assert!(matches!(r.get("mmu_update_512"), Some(OpResult::Timed(t)) if t.iters == 50));
        assert_eq!(r.get("pf_bounce"), Some(&OpResult::Failed));
        assert_eq!(
            r.get("grant_copy_4k"),
            Some(&OpResult::Skipped("no_grant_tables".into()))
        );
        assert_eq!(r.problems(), ["operation pf_bounce failed"]);
    }

    #[test]
    fn flags_incomplete_reports() {
        let r = BenchReport::parse(
            "BENCH null_hypercall iters=x ns_per_op=1 cycles_per_op=1\nBENCH a SKIP reason=r\nBENCH a SKIP reason=r\n",
        );
        let p = r.problems();
        assert!(p.iter().any(|p| p.starts_with("malformed line")), "{p:?}");
        assert!(p.iter().any(|p| p == "operation a reported twice"), "{p:?}");
        assert!(p.contains(&"no BENCH boot line".to_string()));
        assert!(p.contains(&"no BENCH done line".to_string()));
    }

    #[test]
    fn comparison_table() {
        let xl = BenchReport::parse(
            "BENCH null_hypercall iters=1 ns_per_op=250.0 cycles_per_op=250.0\n\
             BENCH grant_copy_4k SKIP reason=no_grant_tables\n",
        );
        let xen = BenchReport::parse(
            "BENCH null_hypercall iters=1 ns_per_op=1000.0 cycles_per_op=1000.0\n\
             BENCH sched_yield iters=1 ns_per_op=12.25 cycles_per_op=12.25\n\
             BENCH grant_copy_4k SKIP reason=no_grant_tables\n",
        );
        let t = table(Some(&xl), Some(&xen));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[0].starts_with("| operation "), "{t}");
        assert!(lines[1].starts_with("| :---"), "{t}");
        let cells = |l: &str| -> Vec<String> {
            l.split('|')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        };
        assert_eq!(cells(lines[2]), ["null_hypercall", "250", "1000", "0.25"]);
        assert_eq!(
            cells(lines[3]),
            ["grant_copy_4k", "skipped", "skipped", "-"]
        );
        assert_eq!(cells(lines[4]), ["sched_yield", "-", "12.2", "-"]);
        // Every line has the same width.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{t}");
        let only_xen = table(None, Some(&xen));
        assert!(only_xen.contains("| null_hypercall "), "{only_xen}");
    }

    #[test]
    fn boot_and_size_tables() {
        let xl = BenchReport::parse("BENCH boot tsc_ns=180000000 system_time_ns=100000000\n");
        let xen = BenchReport::parse("BENCH boot tsc_ns=500000000 system_time_ns=400000000\n");
        let t = boot_table(Some(&xl), Some(&xen));
        let row: Vec<&str> = t
            .lines()
            .nth(2)
            .unwrap()
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(row[2..5], ["180.0", "500.0", "0.36"], "{t}");
        let a = ImageSize {
            file: 4096,
            load_file: 2048,
            load_mem: 8192,
            load_gz: Some(1024),
        };
        let t = size_table(Some(&a), Some(&a), Some(2048));
        assert!(t.contains("| xen.gz as packaged "), "{t}");
        assert!(t.lines().all(|l| l.ends_with('|')), "{t}");
    }

    #[test]
    fn elf_load_segments() {
        // ELF32 with one PT_LOAD (offset 0x80, filesz 0x100, memsz 0x200) and one PT_NOTE.
        let mut e = vec![0u8; 0x80 + 0x100];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 1;
        e[0x1c..0x20].copy_from_slice(&0x34u32.to_le_bytes());
        e[0x2a..0x2c].copy_from_slice(&32u16.to_le_bytes());
        e[0x2c..0x2e].copy_from_slice(&2u16.to_le_bytes());
        let ph = |e: &mut Vec<u8>, at: usize, words: [u32; 6]| {
            for (i, w) in words.iter().enumerate() {
                e[at + 4 * i..at + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
            }
        };
        ph(&mut e, 0x34, [1, 0x80, 0, 0, 0x100, 0x200]);
        ph(&mut e, 0x54, [4, 0x40, 0, 0, 0x10, 0x10]);
        assert_eq!(
            load_segments(&e).unwrap(),
            [LoadSegment {
                offset: 0x80,
                filesz: 0x100,
                memsz: 0x200
            }]
        );
        assert!(load_segments(b"\x7fELF").is_err());
        assert!(load_segments(b"nope").is_err());
        // An ELF64 (the synthetic multiboot image).
        let elf64 = crate::synth::tiny_kernel();
        let segs = load_segments(&elf64).unwrap();
        assert!(!segs.is_empty());
    }

    #[test]
    fn package_listing() {
        let listing = "\
drwxr-xr-x root/root         0 2025-05-01 10:00 ./boot/\n\
-rw-r--r-- root/root   1016220 2025-05-01 10:00 ./boot/xen-4.17-amd64.gz\n\
-rw-r--r-- root/root      1234 2025-05-01 10:00 ./boot/xen-4.17-amd64.config\n";
        assert_eq!(
            size_in_listing(listing, xen_ref::XEN_GZ_IN_PACKAGE),
            Some(1_016_220)
        );
        assert_eq!(size_in_listing(listing, "boot/nope"), None);
    }

    #[test]
    fn modes_and_command_line() {
        assert_eq!(guest_args(None), "suites=bench");
        assert_eq!(guest_args(Some(1)), "suites=bench bench_iters=1");
        let q = bench_qemu(
            Hypervisor::Xen,
            Path::new("/x/xen.elf"),
            Path::new("/g/pvtest"),
            Some(1),
            Mode::Icount,
        );
        let a: Vec<String> = q
            .capture_args(Path::new("/s.log"))
            .unwrap()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let joined = a.join(" ");
        assert!(
            joined.starts_with("-machine q35 -cpu max,-x2apic -accel tcg -smp 1 -m 2048"),
            "{joined}"
        );
        assert!(
            joined.contains("-icount shift=0,sleep=off -rtc clock=vm"),
            "{joined}"
        );
        assert!(
            joined.contains(&format!("-append {}", xen_ref::CMDLINE)),
            "{joined}"
        );
        assert!(
            joined.contains("-initrd /g/pvtest suites=bench bench_iters=1"),
            "{joined}"
        );
        let n = bench_qemu(
            Hypervisor::Xenolith,
            Path::new("/x/xenolith"),
            Path::new("/g/pvtest"),
            None,
            Mode::Normal,
        )
        .capture_args(Path::new("/s.log"))
        .unwrap();
        let n: Vec<String> = n.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert!(
            n.join(" ")
                .starts_with("-machine q35 -cpu max -accel tcg -smp 2 -m 2048")
        );
        assert!(!n.iter().any(|s| s == "-icount"));
        assert!((ratio(1.0, 4.0).unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
