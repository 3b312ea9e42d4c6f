//! `bench`: micro-benchmarks of the PV operations a kernel makes most, timed with the TSC, so
//! that the same guest can be measured on Xen 4.17 and on Xenolith (`cargo xtask bench`). Runs
//! only when named (`suites=bench`); `bench_iters=N` sets the iterations of every operation
//! (`bench_iters=1` is the smoke run of `tests-qemu/tests/bench_smoke.rs`).
//!
//! Output, besides the usual verdicts (one per operation, PASS when every call returned what Xen
//! returns; details never carry timings, so the two transcripts compare equal):
//!
//! ```text
//! BENCH boot tsc_ns=<n> system_time_ns=<n>
//! BENCH <op> iters=<per round> ns_per_op=<x.y> cycles_per_op=<x.y>
//! BENCH <op> SKIP reason=<word>
//! BENCH done
//! ```
//!
//! `cycles` are TSC ticks, `ns` the same ticks scaled with the PV clock's `tsc_to_system_mul`
//! and `tsc_shift` (the hypervisor's own calibration). Every operation first runs a few untimed
//! iterations so that QEMU has translated the code paths involved, then five rounds of `iters`
//! iterations, each between two `rdtsc`; the line gives the fastest round per iteration (host
//! noise under TCG only adds time). `bench_iters=N` is the total over the rounds.
//!
//! `BENCH boot`: the TSC at the start of the suite, scaled to ns (under QEMU the TSC starts at 0
//! at machine reset, so this is the time from reset through firmware, hypervisor boot and dom0
//! construction to this guest's first lines; with `-icount` it is virtual time), and the PV
//! clock's system time then (ns since the hypervisor started its clock).

use core::arch::global_asm;
use core::fmt;
use core::ptr;

use xen_abi::callback::{CALLBACKOP_register, CALLBACKTYPE_syscall, CallbackRegister};
use xen_abi::grant_table::{
    GNTCOPY_source_gref, GNTMAP_host_map, GNTST_okay, GNTTABOP_copy, GNTTABOP_map_grant_ref,
    GNTTABOP_setup_table, GNTTABOP_unmap_grant_ref, GTF_permit_access, GnttabCopy, GnttabCopyPtr,
    GnttabMapGrantRef, GnttabSetupTable, GnttabUnmapGrantRef, GrantRef,
};
use xen_abi::hypercall as nr;
use xen_abi::sched::SCHEDOP_yield;
use xen_abi::version::{XEN_VERSION_WORD, XENVER_version};
use xen_abi::xen::{
    DOMID_SELF, GuestHandle, MMU_NORMAL_PT_UPDATE, MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE,
    MmuUpdate, MmuextOp, MulticallEntry, StartInfo, UVMF_INVLPG,
};

use crate::console::println;
use crate::events as ev;
use crate::hypercall as hc;
use crate::mm::{self, _PAGE_PRESENT, PAGE_SIZE};
use crate::traps_rt::{self as rt, Action, probe};
use crate::usermode;
use crate::verdict::{Rc, Suite};
use crate::window;

/// Untimed iterations before each timed loop (at most `iters`).
const WARMUP: u64 = 64;
/// Timed rounds per operation (at most `iters`); the fastest one is reported.
const ROUNDS: u64 = 5;
/// Most iterations `bench_iters=` may ask for.
const MAX_ITERS: u64 = 10_000_000;

/// Default iterations per operation, sized so the whole suite takes a few seconds under QEMU
/// TCG (the slow operations get fewer).
mod default_iters {
    pub const NULL_HYPERCALL: u64 = 20_000;
    pub const MULTICALL_32: u64 = 1_000;
    pub const MMU_UPDATE_1: u64 = 10_000;
    pub const MMU_UPDATE_512: u64 = 50;
    pub const UPDATE_VA_MAPPING: u64 = 10_000;
    pub const EVTCHN_SEND_SELF: u64 = 5_000;
    pub const PF_BOUNCE: u64 = 5_000;
    pub const SYSCALL_BOUNCE: u64 = 10_000;
    pub const SCHED_YIELD: u64 = 10_000;
    pub const EVTCHN_INTERDOMAIN: u64 = 5_000;
    pub const GRANT_MAP_UNMAP: u64 = 5_000;
    pub const GRANT_COPY_4K: u64 = 2_000;
}

/// Entries of the multicall benchmark.
const MULTICALL_ENTRIES: usize = 32;
/// Entries of an L1 table (the batched `mmu_update`).
const L1_ENTRIES: usize = 512;
/// The window the `update_va_mapping` benchmark remaps.
const W_UVM: usize = 0;
/// The window used to fill spare frames.
const W_FILL: usize = 1;
/// The window holding frame 0 of the guest's grant table (grant benchmarks).
const W_GNTTAB: usize = 2;
/// The window grant mappings go to (grant benchmarks).
const W_GNTMAP: usize = 3;
/// The grant reference the grant benchmarks use (above the 8 reserved ones).
const GREF: GrantRef = 8;
/// First word of the two data frames (tells which one a window maps).
const MAGIC: [u64; 2] = [0x4843_4e45_4254_5641, 0x4843_4e45_4254_5642];
/// An address no mapping of this guest covers (the user half is empty).
const UNMAPPED: u64 = 0x0000_7fff_dead_0000;
/// `rax` of the user-mode `syscall` that ends the syscall benchmark.
const SYSCALL_EXIT: u64 = 0x5e5e;
/// `rax` of the user-mode `syscall`s being timed.
const SYSCALL_NOP: u64 = 0x5e00;

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    // The PV clock lives in vcpu_info (and the event benchmark needs shared_info anyway).
    let rc = ev::map_shared_info(si);
    if rc != 0 {
        s.check(
            "setup",
            false,
            format_args!("map_shared_info rc={}", Rc(rc)),
        );
        println!("BENCH done");
        return;
    }
    let (t, stable) = ev::read_time();
    let clock = Clock {
        mul: t.tsc_to_system_mul,
        shift: t.tsc_shift,
    };
    boot_line(clock);
    s.check(
        "setup",
        stable && clock.mul != 0,
        format_args!("clock_stable={stable}"),
    );
    let mut b = Bench {
        s,
        clock,
        iters: parse_iters(si.cmd_line_bytes()),
    };
    null_hypercall(&mut b);
    multicall_32(&mut b);
    page_tables(&mut b, si);
    evtchn_send_self(&mut b);
    pf_bounce(&mut b, si);
    syscall_bounce(&mut b, si);
    sched_yield(&mut b);
    evtchn_interdomain_roundtrip(&mut b);
    grants(&mut b, si);
    println!("BENCH done");
}

/// The TSC scale of the PV clock.
#[derive(Clone, Copy)]
struct Clock {
    mul: u32,
    shift: i8,
}

impl Clock {
    /// TSC ticks to ns.
    fn ns(self, ticks: u64) -> u64 {
        ev::scale_delta(ticks, self.mul, self.shift)
    }
}

/// Prints `BENCH boot` (see the module documentation).
fn boot_line(clock: Clock) {
    let tsc = ev::rdtsc();
    let system_time = ev::now_ns();
    println!(
        "BENCH boot tsc_ns={} system_time_ns={system_time}",
        clock.ns(tsc)
    );
}

/// `bench_iters=N` from the command line (the last one wins), clamped to `1..=MAX_ITERS`.
fn parse_iters(cmdline: &[u8]) -> Option<u64> {
    let mut iters = None;
    for word in cmdline.split(|b| b.is_ascii_whitespace()) {
        if let Some(v) = word.strip_prefix(b"bench_iters=") {
            let n = core::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            iters = n.map(|n| n.clamp(1, MAX_ITERS));
        }
    }
    iters
}

/// `total / n` with one decimal.
struct PerOp(u64, u64);

impl fmt::Display for PerOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = u128::from(self.0) * 10 / u128::from(self.1.max(1));
        write!(f, "{}.{}", tenths / 10, tenths % 10)
    }
}

/// The suite's state: where verdicts go, the clock, and the iteration override.
struct Bench<'a> {
    s: &'a mut Suite,
    clock: Clock,
    iters: Option<u64>,
}

impl Bench<'_> {
    /// The iterations of an operation whose default is `default`.
    fn iters(&self, default: u64) -> u64 {
        self.iters.unwrap_or(default)
    }

    /// Reports a timed operation: its `BENCH` line (when it worked: `iters` is per round, the
    /// times are the fastest round's per iteration) and its verdict, PASS if `ok`, with
    /// `details` (which must not carry timings).
    fn report(&mut self, op: &str, sample: Sample, ok: bool, details: fmt::Arguments) {
        let Sample { iters, ticks } = sample;
        if ok {
            println!(
                "BENCH {op} iters={iters} ns_per_op={} cycles_per_op={}",
                PerOp(self.clock.ns(ticks), iters),
                PerOp(ticks, iters)
            );
        } else {
            println!("BENCH {op} FAIL");
        }
        self.s.check(op, ok, details);
    }

    /// Reports an operation that cannot run (here or on any of the hypervisors compared).
    /// Every operation runs today; kept for the ones still to come (PVH).
    #[allow(dead_code)]
    fn skip(&mut self, op: &str, reason: &str) {
        println!("BENCH {op} SKIP reason={reason}");
        self.s.skip(op, format_args!("reason={reason}"));
    }

    /// Reports an operation whose setup failed.
    fn setup_failed(&mut self, op: &str, details: fmt::Arguments) {
        println!("BENCH {op} FAIL");
        self.s.check(op, false, details);
    }
}

/// The best of a few timed rounds of an operation.
#[derive(Clone, Copy)]
struct Sample {
    /// Iterations per round.
    iters: u64,
    /// TSC ticks of the fastest round.
    ticks: u64,
}

/// Splits `iters` into rounds: (rounds, iterations per round).
fn rounds(iters: u64) -> (u64, u64) {
    let rounds = ROUNDS.min(iters).max(1);
    (rounds, (iters / rounds).max(1))
}

/// Runs `op` a few times untimed, then in [`ROUNDS`] rounds of `iters / ROUNDS` iterations,
/// each between two TSC reads. Returns the fastest round (the host's noise under TCG only ever
/// adds time) and whether every call returned true.
fn timed(iters: u64, mut op: impl FnMut() -> bool) -> (Sample, bool) {
    let mut ok = true;
    for _ in 0..WARMUP.min(iters) {
        ok &= op();
    }
    let (rounds, per_round) = rounds(iters);
    let mut best = u64::MAX;
    for _ in 0..rounds {
        let start = ev::rdtsc();
        for _ in 0..per_round {
            ok &= op();
        }
        best = best.min(ev::rdtsc().wrapping_sub(start));
    }
    let sample = Sample {
        iters: per_round,
        ticks: best,
    };
    (sample, ok)
}

// ---------------------------------------------------------------------------------------------
// Hypercalls.

/// `xen_version(XENVER_version)`: the cheapest hypercall there is (no argument, no copy).
fn xen_version() -> i64 {
    // SAFETY: XENVER_version takes no argument.
    unsafe { hc::xen_version(XENVER_version, ptr::null_mut()) }
}

/// The null hypercall: entry, dispatch and exit with nothing to do.
fn null_hypercall(b: &mut Bench) {
    let n = b.iters(default_iters::NULL_HYPERCALL);
    let (sample, ok) = timed(n, || xen_version() == i64::from(XEN_VERSION_WORD));
    b.report(
        "null_hypercall",
        sample,
        ok,
        format_args!("all_returned_version={ok}"),
    );
}

/// A multicall of 32 `xen_version(XENVER_version)`: the per-entry cost of the dispatcher
/// without the per-hypercall entry and exit.
fn multicall_32(b: &mut Bench) {
    let n = b.iters(default_iters::MULTICALL_32);
    let mut calls = [MulticallEntry {
        op: nr::xen_version,
        result: 0,
        args: [u64::from(XENVER_version), 0, 0, 0, 0, 0],
    }; MULTICALL_ENTRIES];
    let list = calls.as_mut_ptr() as u64;
    let (sample, rc_ok) = timed(n, || {
        // SAFETY: `calls` is a live array of MULTICALL_ENTRIES entries the hypervisor reads and
        // writes the results into; every entry is a harmless xen_version.
        let rc = unsafe { hc::hypercall3(nr::multicall, list, MULTICALL_ENTRIES as u64, 0) };
        rc == 0
    });
    let results_ok = calls
        .iter()
        .all(|c| c.result == u64::from(XEN_VERSION_WORD));
    b.report(
        "multicall_32",
        sample,
        rc_ok && results_ok,
        format_args!("rc_ok={rc_ok} results_ok={results_ok}"),
    );
}

/// `SCHEDOP_yield` with no other vCPU to run: the scheduler's fast path (Xen 4.17 runs its
/// scheduler softirq and picks the same vCPU again).
fn sched_yield(b: &mut Bench) {
    let n = b.iters(default_iters::SCHED_YIELD);
    let (sample, ok) = timed(n, || {
        // SAFETY: SCHEDOP_yield takes no argument; with nothing else runnable it returns at once.
        let rc = unsafe { hc::hypercall3(nr::sched_op, u64::from(SCHEDOP_yield), 0, 0) };
        rc == 0
    });
    b.report("sched_yield", sample, ok, format_args!("rc_ok={ok}"));
}

// ---------------------------------------------------------------------------------------------
// Page tables: a pinned L1 of spare frames for mmu_update, a window for update_va_mapping.

/// The spare frames the page-table benchmarks use.
struct Frames {
    /// Becomes an L1 table (pinned, not hooked into the address space).
    l1: u64,
    /// Two data frames the entries alternate between.
    data: [u64; 2],
}

/// A writable, accessed, dirty PTE for `mfn` (what Linux installs for a data page).
fn data_pte(mfn: u64) -> u64 {
    window::pte(mfn, true)
}

/// An `MMU_NORMAL_PT_UPDATE` of entry `idx` of table `mfn`.
fn pt_update(mfn: u64, idx: usize, val: u64) -> MmuUpdate {
    MmuUpdate {
        ptr: (mfn * PAGE_SIZE + idx as u64 * 8) | MMU_NORMAL_PT_UPDATE,
        val,
    }
}

/// One `mmuext_op`: its rc.
fn mmuext(op: MmuextOp) -> i64 {
    // SAFETY: the suite only pins/unpins its own spare frames and sets the user base pointer
    // to its own kernel L4 (or clears it), which cannot break the kernel's mappings.
    unsafe { hc::mmuext_op(&[op], DOMID_SELF).0 }
}

/// `mmu_update` of `reqs`: (rc, done).
fn mmu_update(reqs: &[MmuUpdate]) -> (i64, u32) {
    // SAFETY: every request targets the suite's own pinned spare L1.
    unsafe { hc::mmu_update(reqs, DOMID_SELF) }
}

/// Fills spare frame `mfn` with `word(index)` through the fill window.
fn fill(si: &StartInfo, mfn: u64, word: impl Fn(usize) -> u64) -> bool {
    if window::map(si, W_FILL, mfn, true) != 0 {
        return false;
    }
    window::fill(W_FILL, word);
    window::restore(si, W_FILL) == 0
}

/// Finds and prepares the frames: the L1 zeroed and pinned, the data frames marked.
fn setup_frames(si: &StartInfo) -> Result<Frames, &'static str> {
    let spare = |k| window::spare(si, k).map(|(_, mfn)| mfn);
    let (Some(l1), Some(a), Some(b)) = (spare(0), spare(1), spare(2)) else {
        return Err("no_spare_frames");
    };
    let f = Frames { l1, data: [a, b] };
    let filled = fill(si, f.l1, |_| 0)
        && fill(si, a, |i| if i == 0 { MAGIC[0] } else { 0 })
        && fill(si, b, |i| if i == 0 { MAGIC[1] } else { 0 });
    if !filled {
        return Err("fill_failed");
    }
    if mmuext(MmuextOp::with_mfn(MMUEXT_PIN_L1_TABLE, f.l1)) != 0 {
        return Err("pin_failed");
    }
    Ok(f)
}

/// Clears the L1 and unpins it; returns whether both worked.
fn teardown_frames(f: &Frames) -> bool {
    let zero: [MmuUpdate; L1_ENTRIES] = core::array::from_fn(|i| pt_update(f.l1, i, 0));
    let (rc, done) = mmu_update(&zero);
    let rc_unpin = mmuext(MmuextOp::with_mfn(MMUEXT_UNPIN_TABLE, f.l1));
    rc == 0 && done == L1_ENTRIES as u32 && rc_unpin == 0
}

fn page_tables(b: &mut Bench, si: &StartInfo) {
    let f = match setup_frames(si) {
        Ok(f) => f,
        Err(why) => {
            for op in ["mmu_update_1", "mmu_update_512", "update_va_mapping_invlpg"] {
                b.setup_failed(op, format_args!("setup={why}"));
            }
            return;
        }
    };
    mmu_update_1(b, &f);
    mmu_update_512(b, &f);
    update_va_mapping_invlpg(b, si, &f);
    let ok = teardown_frames(&f);
    b.s.check("teardown_page_tables", ok, format_args!("ok={ok}"));
}

/// One `mmu_update` of one L1 entry, alternating between the two data frames (so that every
/// update really replaces a mapping: a reference dropped, a writable type taken).
fn mmu_update_1(b: &mut Bench, f: &Frames) {
    let n = b.iters(default_iters::MMU_UPDATE_1);
    let reqs = f.data.map(|mfn| [pt_update(f.l1, 0, data_pte(mfn))]);
    let mut k = 0;
    let (sample, ok) = timed(n, || {
        k ^= 1;
        mmu_update(&reqs[k]) == (0, 1)
    });
    b.report("mmu_update_1", sample, ok, format_args!("rc_ok={ok}"));
}

/// One `mmu_update` of all 512 entries of the L1, alternating between the data frames.
/// `ns_per_op` is per hypercall (per 512 entries).
fn mmu_update_512(b: &mut Bench, f: &Frames) {
    let n = b.iters(default_iters::MMU_UPDATE_512);
    let batch = |mfn: u64| -> [MmuUpdate; L1_ENTRIES] {
        core::array::from_fn(|i| pt_update(f.l1, i, data_pte(mfn)))
    };
    let reqs = [batch(f.data[0]), batch(f.data[1])];
    let mut k = 0;
    let (sample, ok) = timed(n, || {
        k ^= 1;
        mmu_update(&reqs[k]) == (0, L1_ENTRIES as u32)
    });
    b.report("mmu_update_512", sample, ok, format_args!("rc_ok={ok}"));
}

/// `update_va_mapping(va, pte, UVMF_INVLPG)` of a page of the image, alternating between the
/// two data frames; afterwards the window must show the frame mapped last.
fn update_va_mapping_invlpg(b: &mut Bench, si: &StartInfo, f: &Frames) {
    let n = b.iters(default_iters::UPDATE_VA_MAPPING);
    let ptes = f.data.map(data_pte);
    let mut k = 0;
    let (sample, rc_ok) = timed(n, || {
        k ^= 1;
        window::map_pte(W_UVM, ptes[k], UVMF_INVLPG) == 0
    });
    let maps_last = window::read(W_UVM, 0) == MAGIC[k];
    let restored = window::restore(si, W_UVM) == 0;
    b.report(
        "update_va_mapping_invlpg",
        sample,
        rc_ok && maps_last && restored,
        format_args!("rc_ok={rc_ok} maps_last={maps_last} restored={restored}"),
    );
}

// ---------------------------------------------------------------------------------------------
// Events and traps.

/// `EVTCHNOP_send` on an IPI port bound to this vCPU with events unmasked: the hypervisor
/// delivers the upcall on its way back from the hypercall, the handler (`events.rs`) scans the
/// pending bits and returns with `HYPERVISOR_iret`. One iteration is that whole round.
fn evtchn_send_self(b: &mut Bench) {
    const OP: &str = "evtchn_send_self";
    let rc_cb = ev::register_callback();
    let (rc_bind, port) = ev::bind_ipi(0);
    if rc_cb != 0 || rc_bind != 0 {
        b.setup_failed(
            OP,
            format_args!("callback={} bind_ipi={}", Rc(rc_cb), Rc(rc_bind)),
        );
        return;
    }
    ev::set_port_mask(port, false);
    ev::drain();
    let n = b.iters(default_iters::EVTCHN_SEND_SELF);
    ev::set_upcall_mask(0);
    let (sample, ok) = timed(n, || {
        let before = ev::upcalls();
        ev::send(port) == 0 && ev::upcalls() == before + 1
    });
    ev::set_upcall_mask(1);
    let seen = ev::seen(port);
    let rc_close = ev::close(port);
    b.report(
        OP,
        sample,
        ok && seen && rc_close == 0,
        format_args!(
            "upcall_per_send={ok} port_seen={seen} close={}",
            Rc(rc_close)
        ),
    );
}

/// A read of an unmapped address with a #PF handler installed: the hypervisor bounces the
/// fault to the guest kernel, whose handler (`traps_rt.rs`) records it and returns past the
/// read with `HYPERVISOR_iret`.
fn pf_bounce(b: &mut Bench, si: &StartInfo) {
    const OP: &str = "pf_bounce";
    let unmapped = match mm::walk(si, UNMAPPED) {
        Ok(e) => e.value & _PAGE_PRESENT == 0,
        Err(_) => true,
    };
    let rc_gate = rt::set_gate(14, 0, false);
    if !unmapped || rc_gate != 0 {
        b.setup_failed(
            OP,
            format_args!("unmapped={unmapped} set_trap_table={}", Rc(rc_gate)),
        );
        rt::restore_default_traps();
        return;
    }
    let n = b.iters(default_iters::PF_BOUNCE);
    let (sample, ok) = timed(n, || {
        rt::arm(Action::default());
        // SAFETY: the read faults (nothing is mapped there); the runtime resumes after it with
        // every register restored.
        unsafe {
            probe!([], ["mov ({addr}), {addr}"], [],
                addr = inout(reg) UNMAPPED => _,)
        };
        rt::take().is_some_and(|t| t.vector == 14 && t.error_code == Some(0))
    });
    rt::restore_default_traps();
    b.report(OP, sample, ok, format_args!("pf_bounced_each_time={ok}"));
}

// ---------------------------------------------------------------------------------------------
// User mode: syscall bounce.
//
// `usermode::enter` runs the user code below with `rbx = iters`; it makes `iters` `syscall`s,
// each bounced by the hypervisor to the kernel's syscall callback, which returns to user mode
// with `HYPERVISOR_iret`; a last `syscall` with `rax = SYSCALL_EXIT` makes the callback leave
// user mode for good (`pvtest_user_leave`). The callback runs on the stack `usermode` gives to
// `stack_switch`.

global_asm!(
    ".pushsection .text.pvtest_bench, \"ax\"",
    ".balign 16",
    // User mode.
    ".global pvtest_bench_user_code",
    "pvtest_bench_user_code:",
    "    test %rbx, %rbx",
    "    jz 2f",
    "1:",
    "    mov ${nop}, %eax",
    "    syscall",
    "    dec %rbx",
    "    jnz 1b",
    "2:",
    "    mov ${exit}, %eax",
    "    syscall",
    "    ud2",
    // The syscall callback (kernel mode). Bounce frame: rcx, r11, rip, cs, rflags, rsp, ss.
    ".balign 16",
    ".global pvtest_bench_syscall_entry",
    "pvtest_bench_syscall_entry:",
    "    cmp ${exit}, %rax",
    "    je 3f",
    // Back to user mode: the frame's last five words plus rax, r11, rcx, flags.
    "    pop %rcx",
    "    pop %r11",
    "    pushq $0",
    "    push %rcx",
    "    push %r11",
    "    push %rax",
    "    mov ${iret}, %eax",
    "    syscall",
    "    ud2",
    "3:",
    "    jmp pvtest_user_leave",
    ".popsection",
    iret = const nr::iret,
    nop = const SYSCALL_NOP,
    exit = const SYSCALL_EXIT,
    options(att_syntax)
);

unsafe extern "C" {
    /// The user code: `rbx` syscall round trips, then the exit syscall.
    static pvtest_bench_user_code: u8;
    /// The syscall callback.
    static pvtest_bench_syscall_entry: u8;
}

/// Sets up user mode ([`usermode::setup`]) and the syscall callback. Returns the first
/// failing step.
fn setup_user_mode(si: &StartInfo) -> Result<(), (&'static str, i64)> {
    usermode::setup(si)?;
    let cb = CallbackRegister {
        type_: CALLBACKTYPE_syscall,
        flags: 0,
        _pad0: 0,
        address: (&raw const pvtest_bench_syscall_entry) as u64,
    };
    // SAFETY: the hypervisor reads the callback_register; the entry takes its syscall frame.
    let rc = unsafe {
        hc::hypercall3(
            nr::callback_op,
            u64::from(CALLBACKOP_register),
            (&raw const cb) as u64,
            0,
        )
    };
    if rc != 0 {
        return Err(("register_syscall", rc));
    }
    Ok(())
}

/// A user-mode `syscall` bounced to the guest kernel's syscall callback and the return to user
/// mode with `HYPERVISOR_iret`. The timed run also enters and leaves user mode once, which is
/// one more round trip: `iters` + 1 round trips in all.
fn syscall_bounce(b: &mut Bench, si: &StartInfo) {
    const OP: &str = "syscall_bounce";
    if let Err((step, rc)) = setup_user_mode(si) {
        b.setup_failed(OP, format_args!("{step}={}", Rc(rc)));
        return;
    }
    let n = b.iters(default_iters::SYSCALL_BOUNCE);
    let code = (&raw const pvtest_bench_user_code) as u64;
    let run = |iters: u64| {
        let start = ev::rdtsc();
        // SAFETY: user mode is set up; the user code's only way back is its exit syscall,
        // whose callback ends with `jmp pvtest_user_leave`.
        unsafe { usermode::enter(code, 0, 0, iters) };
        ev::rdtsc().wrapping_sub(start)
    };
    run(WARMUP.min(n));
    // As `timed` does, but a round of `k` syscalls is `k + 1` round trips.
    let (rounds, per_round) = rounds(n);
    let best = (0..rounds).map(|_| run(per_round)).min().unwrap_or(0);
    let rc = usermode::clear_user_baseptr();
    let sample = Sample {
        iters: per_round + 1,
        ticks: best,
    };
    b.report(
        OP,
        sample,
        rc == 0,
        format_args!("returned=true clear_user_baseptr={}", Rc(rc)),
    );
}

// ---------------------------------------------------------------------------------------------
// Interdomain events: a loopback channel.

/// An event round trip over an interdomain channel. Xen 4.17 cannot start a second domain
/// without a toolstack, so the channel is a loopback one, as Linux's `evtchn` tests make:
/// `alloc_unbound` of a port offered to `DOMID_SELF`, then `bind_interdomain` of a second port
/// of the same domain to it. The interdomain send path (the peer's port looked up through the
/// channel, its pending bit set, the peer vCPU notified) is the same as for another domain.
/// One iteration is a round trip: a send on one end delivered as an upcall for the other, and
/// the echo back the other way (two sends, two upcalls).
fn evtchn_interdomain_roundtrip(b: &mut Bench) {
    const OP: &str = "evtchn_interdomain_roundtrip";
    let rc_cb = ev::register_callback();
    let (rc_alloc, remote) = ev::alloc_unbound_self();
    let (rc_bind, local) = if rc_alloc == 0 {
        ev::bind_interdomain_self(remote)
    } else {
        (rc_alloc, 0)
    };
    if rc_cb != 0 || rc_alloc != 0 || rc_bind != 0 {
        b.setup_failed(
            OP,
            format_args!(
                "callback={} alloc_unbound={} bind_interdomain={}",
                Rc(rc_cb),
                Rc(rc_alloc),
                Rc(rc_bind)
            ),
        );
        return;
    }
    ev::set_port_mask(remote, false);
    ev::set_port_mask(local, false);
    // Xen raises a newly bound port: let that upcall run first.
    ev::drain();
    let n = b.iters(default_iters::EVTCHN_INTERDOMAIN);
    ev::set_upcall_mask(0);
    let (sample, ok) = timed(n, || {
        let before = ev::upcalls();
        ev::send(local) == 0
            && ev::upcalls() == before + 1
            && ev::send(remote) == 0
            && ev::upcalls() == before + 2
    });
    ev::set_upcall_mask(1);
    let seen = ev::seen(remote) && ev::seen(local);
    let rc_close = ev::close(local);
    let rc_close_remote = ev::close(remote);
    b.report(
        OP,
        sample,
        ok && seen && rc_close == 0 && rc_close_remote == 0,
        format_args!(
            "upcall_per_send={ok} ports_seen={seen} close={} close_remote={}",
            Rc(rc_close),
            Rc(rc_close_remote)
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// Grants: dom0 grants a spare frame to itself (as the `gnttab` suite does on both hypervisors).

/// `grant_table_op(cmd, ops, ops.len())`.
fn gnttab<T>(cmd: u32, ops: &mut [T]) -> i64 {
    // SAFETY: `ops` is a live array of the structure `cmd` takes; the operations only touch
    // the suite's own grant table, windows and spare frames.
    unsafe {
        hc::hypercall3(
            nr::grant_table_op,
            u64::from(cmd),
            ops.as_mut_ptr() as u64,
            ops.len() as u64,
        )
    }
}

/// Frame 0 of the guest's grant table: (rc, status, mfn).
fn gnttab_frame0() -> (i64, i16, u64) {
    let mut frames = [0u64; 1];
    let mut op = [GnttabSetupTable {
        dom: DOMID_SELF,
        _pad0: 0,
        nr_frames: 1,
        status: 0x7777,
        _pad1: [0; 3],
        frame_list: GuestHandle::new(frames.as_mut_ptr() as u64),
    }];
    let rc = gnttab(GNTTABOP_setup_table, &mut op);
    (rc, op[0].status, frames[0])
}

/// Writes v1 entry `r` of the table mapped at `W_GNTTAB`: the frame first, then the flags and
/// domain (`gnttab_grant_foreign_access_ref`); `flags = 0` clears it.
fn set_grant(r: GrantRef, to: u16, frame: u64, flags: u16) {
    let h = (window::va(W_GNTTAB) + u64::from(r) * 8) as *mut u32;
    // SAFETY: the table's frame 0 is mapped writable at the window; v1 entries are 8 bytes,
    // naturally aligned, and `r` < 512.
    unsafe {
        ptr::write_volatile(h.add(1), frame as u32);
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        ptr::write_volatile(h, u32::from(flags) | u32::from(to) << 16);
    }
}

/// The grant benchmarks: a spare frame granted to dom0 itself, then mapped and unmapped, and
/// copied from.
fn grants(b: &mut Bench, si: &StartInfo) {
    const OPS: [&str; 2] = ["grant_map_unmap", "grant_copy_4k"];
    let spare = |k| window::spare(si, k).map(|(_, mfn)| mfn);
    let (Some(data), Some(dest)) = (spare(3), spare(4)) else {
        for op in OPS {
            b.setup_failed(op, format_args!("setup=no_spare_frames"));
        }
        return;
    };
    let (rc, st, frame0) = gnttab_frame0();
    let ok = rc == 0
        && st == GNTST_okay
        && window::restore(si, W_GNTMAP) == 0
        && fill(si, data, |i| MAGIC[0] ^ i as u64)
        && fill(si, dest, |_| 0)
        && window::map(si, W_GNTTAB, frame0, true) == 0;
    if !ok {
        for op in OPS {
            b.setup_failed(
                op,
                format_args!("setup_table={} status={st} mapped={ok}", Rc(rc)),
            );
        }
        return;
    }
    set_grant(GREF, 0, data, GTF_permit_access);
    grant_map_unmap(b);
    grant_copy_4k(b, si, dest);
    set_grant(GREF, 0, 0, 0);
    let restored = window::restore(si, W_GNTTAB) == 0 && window::restore(si, W_GNTMAP) == 0;
    b.s.check(
        "teardown_grants",
        restored,
        format_args!("restored={restored}"),
    );
}

/// `GNTTABOP_map_grant_ref` of the grant at a window's address (`GNTMAP_host_map`), then
/// `GNTTABOP_unmap_grant_ref` of it: two hypercalls per iteration. The last mapping is read
/// before its unmap.
fn grant_map_unmap(b: &mut Bench) {
    const OP: &str = "grant_map_unmap";
    let n = b.iters(default_iters::GRANT_MAP_UNMAP);
    let va = window::va(W_GNTMAP);
    let map_unmap = |check: bool| {
        let mut m = [GnttabMapGrantRef {
            host_addr: va,
            flags: GNTMAP_host_map,
            ref_: GREF,
            dom: 0,
            status: 0x7777,
            handle: 0x7777_7777,
            dev_bus_addr: 0,
        }];
        let rc = gnttab(GNTTABOP_map_grant_ref, &mut m);
        if rc != 0 || m[0].status != GNTST_okay {
            return (false, false);
        }
        let read_ok = !check || window::read(W_GNTMAP, 1) == MAGIC[0] ^ 1;
        let mut u = [GnttabUnmapGrantRef {
            host_addr: va,
            dev_bus_addr: 0,
            handle: m[0].handle,
            status: 0x7777,
            _pad0: 0,
        }];
        let rc = gnttab(GNTTABOP_unmap_grant_ref, &mut u);
        (rc == 0 && u[0].status == GNTST_okay, read_ok)
    };
    let (sample, ok) = timed(n, || map_unmap(false).0);
    let (again, read_ok) = map_unmap(true);
    b.report(
        OP,
        sample,
        ok && again && read_ok,
        format_args!("map_unmap_ok={ok} read_ok={read_ok}"),
    );
}

/// `GNTTABOP_copy` of 4 KiB from the grant (`GNTCOPY_source_gref`) to another of dom0's own
/// frames; afterwards the destination holds the granted frame's words.
fn grant_copy_4k(b: &mut Bench, si: &StartInfo, dest: u64) {
    const OP: &str = "grant_copy_4k";
    let n = b.iters(default_iters::GRANT_COPY_4K);
    let (sample, ok) = timed(n, || {
        let mut op = [GnttabCopy {
            source: GnttabCopyPtr::with_gref(GREF, 0, 0),
            dest: GnttabCopyPtr::with_gmfn(dest, DOMID_SELF, 0),
            len: PAGE_SIZE as u16,
            flags: GNTCOPY_source_gref,
            status: 0x7777,
            _pad0: 0,
        }];
        gnttab(GNTTABOP_copy, &mut op) == 0 && op[0].status == GNTST_okay
    });
    let copied = window::map(si, W_FILL, dest, false) == 0
        && (0..512).all(|i| window::read(W_FILL, i) == MAGIC[0] ^ i as u64);
    let restored = window::restore(si, W_FILL) == 0;
    b.report(
        OP,
        sample,
        ok && copied && restored,
        format_args!("copy_ok={ok} copied={copied} restored={restored}"),
    );
}
