//! `hostile`: a seeded, reproducible hostile guest. As dom0 it issues random hypercalls with
//! arguments biased towards dangerous values (hypervisor pointers, unmapped, non-canonical and
//! misaligned addresses, huge counts, wrapped lengths, MFNs outside its memory), then targeted
//! abuse: page-table updates that map its own page tables, hypervisor or foreign frames
//! writable or make self-referencing L4 entries, descriptor abuse, grant abuse, event-channel
//! abuse, accesses that fault on itself (caught by `probe.rs`'s handlers and counted) and
//! privileged instructions from its own user mode (`hostile/user.rs`).
//! After each class it checks that it still owns exactly its memory (`current_reservation`,
//! P2M/M2P agreement for a sample of frames, its page-table walk) and that its canary page is
//! unchanged. At the end it offers an event channel to domain 1 as the "done" signal.
//!
//! As a domU (the sibling) the suite is the canary: it fills a page, checks it while dom0
//! fuzzes, and finishes when dom0's signal port shows up (bounded wait).
//!
//! Command line: `seed=N iters=N` (defaults 1 and 100000). Calls that legitimately end or
//! freeze the domain (`SCHEDOP_shutdown`/`remote_shutdown`/`block`/`poll`/`watchdog`,
//! `VCPUOP_down`, `set_trap_table` with real tables, `console_io`, `NEW_BASEPTR` of random
//! tables, `stack_switch`, `set_callbacks`, `callback_op`, `iret`) are never made with usable
//! arguments: they only get pointers the hypervisor must refuse, or are replaced by harmless
//! ones. Pointers into the guest's own memory only ever point at a fuzz buffer (whose contents
//! never name the guest's own frames or domain 1), so accepted calls cannot hurt the guest.
//!
//! Details are deterministic for a given seed and hypervisor: counts, and an FNV hash of the
//! per-errno histogram of each class.

use core::ptr;

use xen_abi::errno::Errno;
use xen_abi::hypercall as nr;
use xen_abi::memory::{XENMEM_current_reservation, XENMEM_maximum_ram_page};
use xen_abi::sched::SCHEDOP_yield;
use xen_abi::xen::{
    DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_PRESERVE_AD, MmuUpdate, SIF_INITDOMAIN,
    StartInfo, UVMF_INVLPG,
};

use crate::console::println;
use crate::events as ev;
use crate::hypercall as hc;
use crate::mm::{self, _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, PTE_MFN_MASK};
use crate::probe;
use crate::verdict::{Rc, Suite};
use crate::window;

mod user;

/// The sibling domain (never targeted with privileged operations: dom0 may legitimately
/// destroy it).
const SIBLING: u16 = 1;
/// Start of the hypervisor's virtual range.
const HV_START: u64 = 0xffff_8000_0000_0000;
/// Size of the hypervisor's virtual range (up to 0xffff_87ff_ffff_ffff).
const HV_SIZE: u64 = 0x0000_0800_0000_0000;
/// Highest port the 2-level ABI has for a 64-bit guest.
const NR_EVTCHN_2L: u64 = 4096;
/// The read-only M2P every PV guest has mapped.
const M2P: u64 = xen_abi::arch_x86::MACH2PHYS_VIRT_START;

// -------------------------------------------------------------------------------------------
// PRNG (splitmix64: tiny, seeded, identical on every run).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// -------------------------------------------------------------------------------------------
// Pages of the guest: the fuzz buffer (hypercalls may read and write it) and the canary.

#[repr(C, align(4096))]
struct Pages<const N: usize>([u8; N]);

const BUF_SIZE: usize = 4 * 4096;
/// Pointers into the buffer stay below this offset, so every structure fits.
const BUF_PTR_SPAN: u64 = 8192;

/// The fuzz buffer: only accessed through raw pointers (hypercalls write it).
static mut BUF: Pages<BUF_SIZE> = Pages([0; BUF_SIZE]);
/// The canary page: filled once, never written again.
static mut CANARY: Pages<4096> = Pages([0; 4096]);

fn buf_va() -> u64 {
    (&raw mut BUF) as u64
}

fn canary_word(i: usize) -> u64 {
    let mut r = Rng(0xc0ff_ee00 ^ i as u64);
    r.next()
}

fn canary_fill() {
    for i in 0..512 {
        // SAFETY: CANARY is this module's page; 512 u64 words fit in it.
        unsafe { ptr::write_volatile((&raw mut CANARY as *mut u64).add(i), canary_word(i)) };
    }
}

fn canary_ok() -> bool {
    (0..512).all(|i| {
        // SAFETY: as in canary_fill, read only.
        let v = unsafe { ptr::read_volatile((&raw const CANARY as *const u64).add(i)) };
        v == canary_word(i)
    })
}

// -------------------------------------------------------------------------------------------
// Statistics: per-class return-code histogram.

const HIST: usize = 136;

struct Stats {
    calls: u64,
    ok: u64,
    positive: u64,
    errno: [u32; HIST],
    other: u64,
}

impl Stats {
    const fn new() -> Self {
        Stats {
            calls: 0,
            ok: 0,
            positive: 0,
            errno: [0; HIST],
            other: 0,
        }
    }
    fn add(&mut self, rc: i64) {
        self.calls += 1;
        if rc == 0 {
            self.ok += 1;
        } else if rc > 0 {
            self.positive += 1;
        } else if ((-rc) as usize) < HIST {
            self.errno[(-rc) as usize] += 1;
        } else {
            self.other += 1;
        }
    }
    /// FNV-1a over the whole histogram.
    fn hash(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        let mut eat = |v: u64| {
            for b in v.to_le_bytes() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
        };
        eat(self.calls);
        eat(self.ok);
        eat(self.positive);
        eat(self.other);
        for &e in &self.errno {
            eat(u64::from(e));
        }
        h
    }
    /// The two most frequent errnos.
    fn top(&self) -> [(usize, u32); 2] {
        let mut top = [(0usize, 0u32); 2];
        for (e, &n) in self.errno.iter().enumerate() {
            if n > top[0].1 {
                top[1] = top[0];
                top[0] = (e, n);
            } else if n > top[1].1 {
                top[1] = (e, n);
            }
        }
        top
    }
    fn report(&self, s: &mut Suite, check: &str, violations: u64) {
        let t = self.top();
        s.check(
            check,
            violations == 0,
            format_args!(
                "calls={} ok={} pos={} top={}:{} {}:{} hist={:#010x} violations={violations}",
                self.calls,
                self.ok,
                self.positive,
                Errno(t[0].0 as i32).name(),
                t[0].1,
                Errno(t[1].0 as i32).name(),
                t[1].1,
                self.hash()
            ),
        );
    }
}

// -------------------------------------------------------------------------------------------
// What the guest knows about itself.

struct Ctx<'a> {
    si: &'a StartInfo,
    rng: Rng,
    /// current_reservation at the start.
    reservation: i64,
    /// max_ram_page.
    max_mfn: u64,
    /// MFNs of the page tables on the scratch page's path: L4, L3, L2, L1.
    pt: [u64; 4],
    /// A frame of the hypervisor (a table its L4 slots point at), if found.
    xen_frame: Option<u64>,
    /// RAM frames that are not the guest's.
    foreign: [u64; 8],
    nforeign: usize,
    /// The scratch page's L1 entry (machine address, original value).
    scratch_l1: (u64, u64),
    /// The canary page's original PTE.
    canary_pte: u64,
    /// Violations (isolation breaks) found, over all classes.
    violations: u64,
}

fn owned(si: &StartInfo, mfn: u64) -> bool {
    let Ok(pfn) = probe::read_u64(M2P + mfn * 8) else {
        return false;
    };
    pfn < si.nr_pages && mm::p2m(si)[pfn as usize] == mfn
}

fn reservation() -> i64 {
    let mut d = DOMID_SELF;
    // SAFETY: XENMEM_current_reservation reads a domid_t.
    unsafe { hc::memory_op(XENMEM_current_reservation, (&raw mut d).cast()) }
}

/// The MFNs of the page tables on the path to `va`.
fn pt_path(si: &StartInfo, va: u64) -> Option<[u64; 4]> {
    let mut out = [0u64; 4];
    let mut mfn = mm::p2m(si)[mm::va_to_pfn(si.pt_base) as usize];
    let mut table_va = si.pt_base;
    for (i, level) in (1..=4u32).rev().enumerate() {
        out[i] = mfn;
        if level == 1 {
            break;
        }
        let idx = (va >> (12 + 9 * (level - 1))) & 0x1ff;
        // SAFETY: the initial page tables are mapped read-only at table_va.
        let e = unsafe { ptr::read_volatile((table_va + idx * 8) as *const u64) };
        if e & _PAGE_PRESENT == 0 {
            return None;
        }
        mfn = (e & PTE_MFN_MASK) >> 12;
        table_va = mm::mfn_to_va(si, mfn)?;
    }
    Some(out)
}

impl Ctx<'_> {
    /// A value biased towards what hurts.
    fn val(&mut self, allow_buf: bool, allow_own: bool) -> u64 {
        let r = self.rng.next();
        match self.rng.below(if allow_own { 20 } else { 18 }) {
            0 => 0,
            1 => self.rng.below(64),
            2 => u64::MAX - self.rng.below(16),
            3 => [u32::MAX as u64, 0x7fff_ffff, 0x8000_0000, 1 << 63][self.rng.below(4) as usize],
            4 | 5 => (HV_START + self.rng.below(HV_SIZE)) & !(7 * (r & 1)),
            6 => {
                [0x1000, 0x7fff_ffff_f000, 0x7fff_dead_0000, 0x10_0000][self.rng.below(4) as usize]
            }
            7 => 0x8000_0000_0000_0000 + (r & 0xffff_ffff),
            8 => 0x0000_8000_0000_0000 - (r & 0xfff),
            9 => self.max_mfn + self.rng.below(4096),
            10 => (self.max_mfn + self.rng.below(64)) << 12 | (r & 0xfff),
            11 => 1 << (20 + self.rng.below(30)),
            12 if self.nforeign > 0 => {
                let m = self.foreign[self.rng.below(self.nforeign as u64) as usize];
                if r & 1 == 0 {
                    m
                } else {
                    m << 12 | (r >> 1 & 0x7)
                }
            }
            13 if allow_buf => buf_va() + self.rng.below(BUF_PTR_SPAN),
            14 if allow_buf => buf_va() + (self.rng.below(BUF_PTR_SPAN) & !7),
            18 | 19 => {
                let m = self.pt[self.rng.below(4) as usize];
                if r & 1 == 0 {
                    m
                } else {
                    m << 12 | (r >> 1 & 0xff8)
                }
            }
            _ => r,
        }
    }

    /// Fills the fuzz buffer with biased values that never name the guest's own frames or the
    /// sibling domain, and never point into the guest.
    fn fill_buf(&mut self) {
        for i in 0..BUF_SIZE / 8 {
            let mut v = self.val(false, false);
            // Scrub 16-bit halves equal to the sibling's domid (or the nameless dom0 self,
            // which is fine) so no structure field names domain 1.
            for k in 0..4 {
                if (v >> (16 * k)) & 0xffff == u64::from(SIBLING) {
                    v = v & !(0xffff << (16 * k)) | (u64::from(DOMID_SELF) << (16 * k));
                }
            }
            // SAFETY: BUF holds BUF_SIZE bytes.
            unsafe { ptr::write_volatile((&raw mut BUF as *mut u64).add(i), v) };
        }
    }

    fn bad_ptr(&mut self) -> u64 {
        loop {
            let v = self.val(false, false);
            // Not null (which means "clear" for some calls) and not into the guest.
            if v != 0 && !(mm::VIRT_BASE..mm::VIRT_BASE + (1 << 30)).contains(&v) {
                return v;
            }
        }
    }

    fn scratch_restore(&mut self) {
        if let Ok(e) = mm::walk(self.si, mm::scratch_va())
            && e.value != self.scratch_l1.1
        {
            // SAFETY: puts the scratch page's own mapping back.
            unsafe { hc::update_va_mapping(mm::scratch_va(), self.scratch_l1.1, UVMF_INVLPG) };
        }
    }

    /// The memory checks after a class.
    fn check_memory(&mut self, s: &mut Suite, check: &str) {
        let res = reservation();
        let p2m = mm::p2m(self.si);
        let n = self.si.nr_pages;
        let mut bad = 0;
        for k in 0..64 {
            let pfn = k * n / 64 + (k * 7) % (n / 64).max(1);
            let pfn = pfn.min(n - 1);
            let mfn = p2m[pfn as usize];
            if probe::read_u64(M2P + mfn * 8) != Ok(pfn) {
                bad += 1;
            }
        }
        let canary = canary_ok();
        let pte = mm::walk(self.si, (&raw const CANARY) as u64)
            .map(|e| e.value & PTE_MFN_MASK)
            .unwrap_or(0);
        let pte_ok = pte == self.canary_pte & PTE_MFN_MASK;
        s.check(
            check,
            res == self.reservation && bad == 0 && canary && pte_ok,
            format_args!(
                "reservation_same={} p2m_m2p_bad={bad} canary={canary} mapping={pte_ok}",
                res == self.reservation
            ),
        );
    }
}

/// Parses `key=N` from the command line.
fn arg(si: &StartInfo, key: &[u8], default: u64) -> u64 {
    for w in si.cmd_line_bytes().split(|b| b.is_ascii_whitespace()) {
        if let Some(v) = w.strip_prefix(key)
            && let Some(v) = v.strip_prefix(b"=")
        {
            let mut n: u64 = 0;
            for &c in v {
                if !c.is_ascii_digit() {
                    return default;
                }
                n = n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            }
            return n;
        }
    }
    default
}

fn yield_cpu() {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { hc::hypercall3(nr::sched_op, u64::from(SCHEDOP_yield), 0, 0) };
}

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    if si.flags & SIF_INITDOMAIN == 0 {
        canary_role(s, si);
        return;
    }
    let seed = arg(si, b"seed", 1);
    let iters = arg(si, b"iters", 100_000);
    canary_fill();
    for w in 0..window::COUNT {
        window::restore(si, w);
    }
    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max_mfn = unsafe { hc::memory_op(XENMEM_maximum_ram_page, ptr::null_mut()) } as u64;
    let (Some(pt), Ok(scr), Ok(can)) = (
        pt_path(si, mm::scratch_va()),
        mm::walk(si, mm::scratch_va()),
        mm::walk(si, (&raw const CANARY) as u64),
    ) else {
        s.check("setup", false, format_args!("page-table walk failed"));
        return;
    };
    let mut c = Ctx {
        si,
        rng: Rng(seed),
        reservation: reservation(),
        max_mfn,
        pt,
        xen_frame: None,
        foreign: [0; 8],
        nforeign: 0,
        scratch_l1: (scr.maddr, scr.value),
        canary_pte: can.value,
        violations: 0,
    };
    // A hypervisor frame: a present L4 slot of the hypervisor's range not naming our L4.
    for slot in 256..272u64 {
        // SAFETY: the L4 is mapped read-only at pt_base.
        let e = unsafe { ptr::read_volatile((si.pt_base + slot * 8) as *const u64) };
        let m = (e & PTE_MFN_MASK) >> 12;
        if e & _PAGE_PRESENT != 0 && m != pt[0] && !owned(si, m) {
            c.xen_frame = Some(m);
            break;
        }
    }
    // Foreign RAM frames: spread over RAM, not ours.
    for k in 1..32u64 {
        let m = max_mfn * k / 32 + 17;
        if c.nforeign < c.foreign.len() && m < max_mfn && !owned(si, m) {
            c.foreign[c.nforeign] = m;
            c.nforeign += 1;
        }
    }
    s.check(
        "setup",
        c.reservation > 0,
        format_args!(
            "seed={seed} iters={iters} xen_frame={} foreign={}",
            c.xen_frame.is_some(),
            c.nforeign
        ),
    );
    c.check_memory(s, "setup.memory");

    random_calls(s, &mut c, iters);
    c.check_memory(s, "random.memory");
    mmu_class(s, &mut c, (iters / 20).max(100));
    c.check_memory(s, "mmu.memory");
    descriptor_class(s, &mut c, (iters / 50).max(100));
    c.check_memory(s, "desc.memory");
    grant_class(s, &mut c, (iters / 50).max(100));
    c.check_memory(s, "grant.memory");
    evtchn_class(s, &mut c, (iters / 50).max(100));
    c.check_memory(s, "evtchn.memory");
    fault_class(s, &mut c, (iters / 100).max(50));
    c.check_memory(s, "faults.memory");
    user_class(s, &mut c, (iters / 100).max(50));
    c.check_memory(s, "user.memory");
    signal_sibling(s, si);
    println!(
        "HOSTILE summary seed={seed} iters={iters} violations={} canary={}",
        c.violations,
        canary_ok()
    );
}

// -------------------------------------------------------------------------------------------
// Random hypercalls.

/// Hypercalls that take (pointer, count) in arguments 1 and 2.
const PTR_COUNT_12: [u64; 3] = [nr::mmu_update, nr::mmuext_op, nr::multicall];

fn random_calls(s: &mut Suite, c: &mut Ctx, iters: u64) {
    let mut st = Stats::new();
    let mut sanitised = 0u64;
    let mut skipped = 0u64;
    for i in 0..iters {
        c.fill_buf();
        let op = if c.rng.chance(95) {
            c.rng.below(64)
        } else {
            [64, 65, 100, 0xffff, 1 << 32, u64::MAX][c.rng.below(6) as usize]
        };
        let mut a = [0u64; 5];
        for x in &mut a {
            *x = c.val(true, true);
        }
        match sanitise(c, op, &mut a) {
            None => {
                skipped += 1;
                continue;
            }
            Some(true) => sanitised += 1,
            Some(false) => {}
        }
        // Counts next to a pointer into the buffer stay small (the hypervisor must not walk
        // past it into the guest).
        let in_buf = |p: u64| (buf_va()..buf_va() + BUF_SIZE as u64).contains(&p);
        if PTR_COUNT_12.contains(&op) && in_buf(a[0]) {
            a[1] %= 16;
        }
        if op == nr::grant_table_op && in_buf(a[1]) {
            a[2] %= 16;
        }
        if c.rng.chance(1) && i % 1000 == 0 {
            yield_cpu();
        }
        // SAFETY: `sanitise` removed every call that can end, freeze or corrupt this guest;
        // pointers into the guest only name the fuzz buffer, whose contents never name the
        // guest's own frames.
        let rc = unsafe { hc::hypercall5(op, a[0], a[1], a[2], a[3], a[4]) };
        st.add(rc);
        if matches!(
            op,
            nr::update_va_mapping | nr::update_va_mapping_otherdomain
        ) {
            c.scratch_restore();
        }
    }
    // Undo the state calls may have left: FPU TS, debug registers.
    // SAFETY: clears the virtual CR0.TS.
    unsafe { hc::hypercall3(nr::fpu_taskswitch, 0, 0, 0) };
    for r in [7u64, 0, 1, 2, 3] {
        // SAFETY: zero is a valid value for every debug register.
        unsafe { hc::hypercall3(nr::set_debugreg, r, 0, 0) };
    }
    println!("HOSTILE random sanitised={sanitised} skipped={skipped}");
    st.report(s, "random.calls", 0);
}

/// Makes call `op` harmless to the guest itself; returns whether anything was changed, or
/// `None` for calls that are never made (they take their arguments from the stack or redirect
/// the guest: `stack_switch`, `set_callbacks`, `iret`, `callback_op`).
#[allow(clippy::collapsible_match)]
fn sanitise(c: &mut Ctx, op: u64, a: &mut [u64; 5]) -> Option<bool> {
    let before = *a;
    let is_guest = |p: u64| p >= mm::VIRT_BASE;
    match op {
        // Only pointers the hypervisor must refuse.
        nr::set_trap_table
        | nr::set_gdt
        | nr::multicall
        | nr::physdev_op
        | nr::physdev_op_compat
        | nr::kexec_op
        | nr::xenoprof_op
        | nr::xenpmu_op => {
            a[0] = c.bad_ptr();
            a[1] = c.bad_ptr();
        }
        // Never: they end, freeze or redirect the guest.
        nr::stack_switch | nr::set_callbacks | nr::iret | nr::callback_op => {
            return None;
        }
        nr::console_io => {
            a[0] = 0; // CONSOLEIO_write
            a[1] = 0;
        }
        nr::sched_op_compat => a[0] = u64::from(SCHEDOP_yield),
        nr::sched_op => {
            // yield, shutdown_code, pin_override and unknown commands only.
            if a[0] < 8 && !matches!(a[0], 0 | 5 | 7) {
                a[0] = 0;
            }
        }
        nr::set_debugreg => {
            if a[0] % 8 >= 4 {
                a[1] &= !0xff; // no breakpoint enables
            }
        }
        nr::update_va_mapping | nr::update_va_mapping_otherdomain => {
            // Only the scratch page among the guest's own addresses.
            if is_guest(a[0]) && !(HV_START..HV_START + HV_SIZE).contains(&a[0]) {
                a[0] = mm::scratch_va();
            }
            if op == nr::update_va_mapping_otherdomain {
                a[3] = scrub_domid(a[3]);
            }
        }
        nr::mmu_update | nr::mmuext_op => a[3] = scrub_domid(a[3]),
        nr::dm_op => a[0] = scrub_domid(a[0]),
        nr::memory_op => {
            // Queries only with usable pointers; anything that can change the reservation or
            // the physmap gets a pointer the hypervisor must refuse.
            if !matches!(a[0] & 0x3f, 2 | 3 | 4 | 10 | 12) || a[0] == 5 {
                a[1] = c.bad_ptr();
            }
        }
        nr::grant_table_op => {
            // Copies, transfers and unmap-and-replace only with refused pointers.
            if matches!(a[0], 4 | 5 | 7) {
                a[1] = c.bad_ptr();
            }
        }
        nr::vcpu_op => {
            // No initialise, down, area registration, vcpu_info move or NMI.
            if matches!(a[0], 0 | 2 | 5 | 10 | 11 | 13) {
                a[0] = 3; // VCPUOP_is_up
            }
        }
        nr::event_channel_op => {
            // No FIFO control block or array (they would name pfns of ours).
            if matches!(a[0], 11..=13) {
                a[0] = 5; // EVTCHNOP_status
            }
        }
        nr::event_channel_op_compat => {
            a[0] = c.bad_ptr();
        }
        _ => {}
    }
    Some(*a != before)
}

fn scrub_domid(d: u64) -> u64 {
    if d & 0xffff == u64::from(SIBLING) {
        u64::from(DOMID_SELF)
    } else {
        d
    }
}

// -------------------------------------------------------------------------------------------
// Page-table abuse.

#[derive(Clone, Copy)]
enum Target {
    OwnPt(usize),
    Xen,
    Foreign(usize),
    Beyond,
}

fn mmu_class(s: &mut Suite, c: &mut Ctx, iters: u64) {
    let mut st = Stats::new();
    let mut violations = 0u64;
    let mut accepted_ro = 0u64;
    let l4 = c.pt[0];
    // Unused L4 slots: one in the user half, one in the guest kernel half.
    let free_slot = |slot: u64| {
        // SAFETY: the L4 is mapped read-only at pt_base.
        unsafe { ptr::read_volatile((c.si.pt_base + slot * 8) as *const u64) == 0 }
    };
    let slots: [u64; 2] = [100, 300];
    let slots_free = slots.map(free_slot);
    for i in 0..iters {
        let target = match c.rng.below(8) {
            0..=3 => Target::OwnPt(c.rng.below(4) as usize),
            4 => Target::Xen,
            5 | 6 if c.nforeign > 0 => Target::Foreign(c.rng.below(c.nforeign as u64) as usize),
            _ => Target::Beyond,
        };
        let mfn = match target {
            Target::OwnPt(l) => c.pt[l],
            Target::Xen => match c.xen_frame {
                Some(m) => m,
                None => continue,
            },
            Target::Foreign(k) => c.foreign[k],
            Target::Beyond => c.max_mfn + c.rng.below(1 << 20),
        };
        let writable = c.rng.chance(70);
        let extra = [0, 1 << 63, 1 << 2, 1 << 7, 1 << 8][c.rng.below(5) as usize];
        let pte = mfn << 12
            | _PAGE_PRESENT
            | _PAGE_ACCESSED
            | if writable {
                _PAGE_RW | window::_PAGE_DIRTY
            } else {
                0
            }
            | extra;
        let method = c.rng.below(4);
        let (rc, in_l4) = match method {
            0 => {
                // SAFETY: only the scratch page's mapping changes; restored below.
                let rc = unsafe { hc::update_va_mapping(mm::scratch_va(), pte, UVMF_INVLPG) };
                (rc, None)
            }
            1 | 2 => {
                let kind = if method == 1 {
                    MMU_NORMAL_PT_UPDATE
                } else {
                    MMU_PT_UPDATE_PRESERVE_AD
                };
                let req = [MmuUpdate {
                    ptr: c.scratch_l1.0 | kind,
                    val: pte,
                }];
                // SAFETY: as above.
                let (rc, _) = unsafe { hc::mmu_update(&req, DOMID_SELF) };
                (rc, None)
            }
            _ => {
                // An unused L4 slot: pointing at our own L4 is the self-reference trick.
                let k = (i % 2) as usize;
                if !slots_free[k] {
                    continue;
                }
                let mfn = if c.rng.chance(50) { l4 } else { mfn };
                let pte = pte & !PTE_MFN_MASK | mfn << 12;
                let req = [MmuUpdate {
                    ptr: (l4 << 12) + slots[k] * 8,
                    val: pte & !(1 << 7) & !(1 << 8),
                }];
                // SAFETY: the slot was empty; it is cleared again below.
                let (rc, _) = unsafe { hc::mmu_update(&req, DOMID_SELF) };
                (rc, Some((slots[k], mfn == l4)))
            }
        };
        st.add(rc);
        if rc == 0 {
            let bad = match (in_l4, target) {
                // A writable self-reference, or an L4 entry to a hypervisor/foreign frame.
                (Some((_, true)), _) => writable,
                (Some(_), Target::Xen | Target::Foreign(_)) => true,
                (Some(_), Target::OwnPt(l)) => l != 1 && writable,
                (Some(_), Target::Beyond) => false,
                (None, Target::OwnPt(_) | Target::Xen | Target::Foreign(_)) => writable,
                (None, Target::Beyond) => false,
            };
            if bad {
                violations += 1;
                println!(
                    "HOSTILE FINDING mmu iter={i} method={method} target_mfn={mfn:#x} pte={pte:#x}"
                );
            } else {
                accepted_ro += 1;
            }
            if let Some((slot, _)) = in_l4 {
                let req = [MmuUpdate {
                    ptr: (l4 << 12) + slot * 8,
                    val: 0,
                }];
                // SAFETY: clears the slot this class filled.
                unsafe { hc::mmu_update(&req, DOMID_SELF) };
            }
        }
        c.scratch_restore();
    }
    c.violations += violations;
    println!("HOSTILE mmu accepted_harmless={accepted_ro}");
    st.report(s, "mmu.writable_pt_xen_foreign", violations);
}

// -------------------------------------------------------------------------------------------
// Descriptor abuse.

fn descriptor_class(s: &mut Suite, c: &mut Ctx, iters: u64) {
    let mut st = Stats::new();
    let mut violations = 0u64;
    let spares: [Option<(u64, u64)>; 2] = [window::spare(c.si, 20), window::spare(c.si, 21)];
    const DESCS: [u64; 8] = [
        0x00af_9a00_0000_ffff, // DPL0 64-bit code
        0x00cf_9200_0000_ffff, // DPL0 data
        0x00af_fa00_0000_ffff, // DPL3 64-bit code
        0x00cf_f200_0000_ffff, // DPL3 data
        0x0000_ec00_0000_1000, // DPL3 call gate
        0x0000_8c00_0000_1000, // DPL0 call gate
        0x0000_8900_0000_0067, // 64-bit TSS
        0x0000_8200_0000_0fff, // LDT
    ];
    for i in 0..iters {
        let desc = if c.rng.chance(60) {
            DESCS[c.rng.below(8) as usize]
                | ((c.rng.next() & 0x0000_00ff_ffff_0000) * u64::from(c.rng.chance(30)))
        } else {
            c.rng.next()
        };
        let which = c.rng.below(6);
        let (maddr, spare) = match which {
            0 | 1 => match spares[(which & 1) as usize] {
                Some((_, m)) => ((m << 12) + (c.rng.below(512) << 3), true),
                None => continue,
            },
            2 => (
                (c.pt[c.rng.below(4) as usize] << 12) + (c.rng.below(512) << 3),
                false,
            ),
            3 => (c.scratch_l1.1 & PTE_MFN_MASK, false),
            4 => (c.val(false, true), false),
            _ => match c.xen_frame {
                Some(m) => (m << 12, false),
                None => (c.foreign[0] << 12, false),
            },
        };
        // SAFETY: update_descriptor only writes a descriptor into a frame of ours that is not
        // mapped (a spare frame) or is refused.
        let rc = unsafe { hc::hypercall3(nr::update_descriptor, maddr, desc, 0) };
        st.add(rc);
        if rc == 0 {
            // Accepted: only a frame of ours with no special type (a spare frame, or the
            // writable scratch page, where Xen too accepts descriptors as plain data) may
            // take it, and what was stored must be a checked descriptor.
            let bad = if which == 3 {
                let v = mm::scratch_read_u64((maddr & 0xfff) as usize);
                bad_descriptor(v)
            } else if !spare {
                true
            } else {
                let mfn = maddr >> 12;
                let stored = if window::map(c.si, 0, mfn, false) == 0 {
                    let v = window::read(0, ((maddr & 0xfff) / 8) as usize);
                    window::restore(c.si, 0);
                    v
                } else {
                    desc
                };
                bad_descriptor(stored)
            };
            if bad {
                violations += 1;
                println!(
                    "HOSTILE FINDING desc iter={i} which={which} maddr={maddr:#x} desc={desc:#x}"
                );
            }
        }
    }
    c.violations += violations;
    st.report(s, "desc.dpl0_system_foreign", violations);
}

/// A present descriptor a guest must never get: a code/data segment with DPL 0, or a system
/// descriptor other than a call gate or type 0 (the harmless upper half of a call gate, which
/// Xen's `check_descriptor` accepts).
fn bad_descriptor(d: u64) -> bool {
    let present = d & (1 << 47) != 0;
    let system = d & (1 << 44) == 0;
    let dpl = (d >> 45) & 3;
    let ty = (d >> 40) & 0xf;
    present && ((!system && dpl == 0) || (system && ty != 0xc && ty != 0))
}

// -------------------------------------------------------------------------------------------
// Grant abuse (own table, read-only grant of a spare frame, refs nobody granted).

fn grant_class(s: &mut Suite, c: &mut Ctx, iters: u64) {
    use xen_abi::grant_table::{
        GNTMAP_device_map, GNTMAP_host_map, GNTMAP_readonly, GNTTABOP_map_grant_ref,
        GNTTABOP_setup_table, GNTTABOP_unmap_grant_ref, GTF_permit_access, GTF_readonly,
        GnttabMapGrantRef, GnttabSetupTable, GnttabUnmapGrantRef,
    };
    let mut frames = [0u64; 1];
    let mut setup = [GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: 1,
        status: 0x7777,
        frame_list: xen_abi::xen::GuestHandle::new(frames.as_mut_ptr() as u64),
        ..Default::default()
    }];
    // SAFETY: setup_table reads the op and writes one frame number into `frames`.
    let rc = unsafe {
        hc::hypercall3(
            nr::grant_table_op,
            u64::from(GNTTABOP_setup_table),
            setup.as_mut_ptr() as u64,
            1,
        )
    };
    let Some((_, ro_mfn)) = window::spare(c.si, 22) else {
        s.skip("grant.abuse", format_args!("no spare frame"));
        return;
    };
    if rc != 0 || setup[0].status != 0 || window::map(c.si, 1, frames[0], true) != 0 {
        s.skip(
            "grant.abuse",
            format_args!("setup rc={} status={}", Rc(rc), setup[0].status),
        );
        return;
    }
    const R_RO: u32 = 10;
    let self_id: u64 = 0; // dom0 grants to itself
    window::write(
        1,
        R_RO as usize,
        u64::from(GTF_permit_access | GTF_readonly) | self_id << 16 | (ro_mfn & 0xffff_ffff) << 32,
    );
    let mut st = Stats::new();
    let mut violations = 0u64;
    let host = window::va(2);
    for i in 0..iters {
        let (dom, granted_ro) = match c.rng.below(5) {
            0 | 1 => (DOMID_SELF, true),
            2 => (0, true),
            3 => (SIBLING, false),
            _ => ([42, 0x7ff5, 0xffff, 0x7ff2][c.rng.below(4) as usize], false),
        };
        let gref: u32 = match c.rng.below(5) {
            0 | 1 if granted_ro => R_RO,
            2 => 11 + c.rng.below(100) as u32,
            3 => [u32::MAX, 1 << 16, 512, 0x8000_0000][c.rng.below(4) as usize],
            _ => 64 + c.rng.below(448) as u32,
        };
        let is_ro_ref = granted_ro && gref == R_RO;
        let flags = match c.rng.below(4) {
            0 => GNTMAP_host_map,
            1 => GNTMAP_host_map | GNTMAP_readonly,
            2 => GNTMAP_device_map | GNTMAP_host_map,
            _ => c.rng.next() as u32 & 0x3f,
        };
        let addr = match c.rng.below(4) {
            0 | 1 => host,
            2 => host + 1 + c.rng.below(4095),
            _ => c.val(false, false),
        };
        let mut op = [GnttabMapGrantRef {
            host_addr: addr,
            flags,
            ref_: gref,
            dom,
            status: 0x7777,
            handle: 0,
            dev_bus_addr: 0,
        }];
        // SAFETY: the host address is the window page or one that must be refused.
        let rc = unsafe {
            hc::hypercall3(
                nr::grant_table_op,
                u64::from(GNTTABOP_map_grant_ref),
                op.as_mut_ptr() as u64,
                1,
            )
        };
        st.add(rc);
        st.add(-i64::from(op[0].status).min(0));
        if rc == 0 && op[0].status == 0 {
            let writable = flags & GNTMAP_readonly == 0;
            if !is_ro_ref || writable {
                violations += 1;
                println!(
                    "HOSTILE FINDING grant iter={i} dom={dom} ref={gref} flags={flags:#x} addr={addr:#x}"
                );
            }
            let mut un = [GnttabUnmapGrantRef {
                host_addr: if flags & GNTMAP_host_map != 0 {
                    addr
                } else {
                    0
                },
                dev_bus_addr: op[0].dev_bus_addr,
                handle: op[0].handle,
                status: 0,
                _pad0: 0,
            }];
            // SAFETY: undoes the mapping just made.
            unsafe {
                hc::hypercall3(
                    nr::grant_table_op,
                    u64::from(GNTTABOP_unmap_grant_ref),
                    un.as_mut_ptr() as u64,
                    1,
                )
            };
            window::restore(c.si, 2);
        }
        // Bogus unmaps too.
        if i % 4 == 0 {
            let mut un = [GnttabUnmapGrantRef {
                host_addr: host,
                dev_bus_addr: 0,
                handle: c.rng.next() as u32,
                status: 0,
                _pad0: 0,
            }];
            // SAFETY: a handle nobody has must be refused.
            let rc = unsafe {
                hc::hypercall3(
                    nr::grant_table_op,
                    u64::from(GNTTABOP_unmap_grant_ref),
                    un.as_mut_ptr() as u64,
                    1,
                )
            };
            st.add(rc);
        }
    }
    window::write(1, R_RO as usize, 0);
    window::restore(c.si, 1);
    window::restore(c.si, 2);
    c.violations += violations;
    st.report(s, "grant.abuse", violations);
}

// -------------------------------------------------------------------------------------------
// Event-channel abuse.

fn evtchn_class(s: &mut Suite, c: &mut Ctx, iters: u64) {
    use xen_abi::event_channel::{
        EVTCHNOP_bind_vcpu, EVTCHNOP_close, EVTCHNOP_send, EVTCHNOP_status, EVTCHNOP_unmask,
    };
    let mut st = Stats::new();
    let mut violations = 0u64;
    for i in 0..iters {
        let port: u64 = match c.rng.below(4) {
            0 => NR_EVTCHN_2L + c.rng.below(1 << 20),
            1 => [u32::MAX as u64, 0x8000_0000, NR_EVTCHN_2L, 1 << 17][c.rng.below(4) as usize],
            2 => c.rng.below(NR_EVTCHN_2L),
            _ => c.rng.next() & 0xffff_ffff,
        };
        let cmd = [
            EVTCHNOP_send,
            EVTCHNOP_close,
            EVTCHNOP_unmask,
            EVTCHNOP_status,
            EVTCHNOP_bind_vcpu,
        ][c.rng.below(5) as usize];
        // Every one of these starts with a port (status: domid, port).
        let mut arg = [0u32; 8];
        if cmd == EVTCHNOP_status {
            arg[0] = u32::from(DOMID_SELF);
            arg[1] = port as u32;
        } else {
            arg[0] = port as u32;
            arg[1] = c.rng.below(4) as u32; // bind_vcpu's vcpu
        }
        // SAFETY: `arg` is large enough for each of these structures.
        let rc = unsafe { hc::event_channel_op(cmd, arg.as_mut_ptr().cast()) };
        st.add(rc);
        if rc == 0 && (port as u32 as u64) >= NR_EVTCHN_2L && cmd != EVTCHNOP_status {
            violations += 1;
            println!("HOSTILE FINDING evtchn iter={i} cmd={cmd} port={port:#x}");
        }
    }
    // Exhaustion: allocate until refused, then give everything back.
    let mut n = 0u32;
    let mut last = 0u32;
    let mut fail_rc = 0;
    while n < 2 * NR_EVTCHN_2L as u32 {
        let (rc, p) = ev::alloc_unbound_self();
        if rc != 0 {
            fail_rc = rc;
            break;
        }
        n += 1;
        last = last.max(p);
    }
    let mut closed = 0;
    for p in 1..=last {
        if ev::close(p) == 0 {
            closed += 1;
        }
    }
    let (rc_again, p) = ev::alloc_unbound_self();
    if rc_again == 0 {
        ev::close(p);
    }
    s.check(
        "evtchn.exhaustion",
        fail_rc != 0 && closed == n && rc_again == 0,
        format_args!(
            "allocated={n} refused={} closed={closed} again={}",
            Rc(fail_rc),
            Rc(rc_again)
        ),
    );
    c.violations += violations;
    st.report(s, "evtchn.ports", violations);
}

// -------------------------------------------------------------------------------------------
// Accesses that fault on the guest itself.

fn fault_class(s: &mut Suite, c: &mut Ctx, iters: u64) {
    let mut faults = [0u32; 4]; // #GP, #PF, other, none
    let mut violations = 0u64;
    for i in 0..iters {
        let write = c.rng.chance(40);
        let addr = match c.rng.below(5) {
            0 => c.si.pt_base + (c.rng.below(512) << 3), // own L4 (read-only)
            1 => HV_START + (c.rng.below(HV_SIZE) & !7),
            2 => 0x8000_0000_0000_0000 | (c.rng.next() & 0x7fff_ffff_fff8), // non-canonical
            3 => 0x10_0000 + (c.rng.below(1 << 30) & !7),                   // unmapped user range
            _ => M2P + (c.rng.below(1 << 20) << 3),                         // read-only M2P
        };
        let f = if write {
            // Writes only where the guest has no writable mapping: a success is an isolation
            // break (the value written is the one already there when it is readable).
            let v = probe::read_u64(addr).unwrap_or(0);
            probe::write_u64(addr, v)
        } else {
            probe::read_u64(addr).err()
        };
        match f {
            Some(f) if f.vector == 13 => faults[0] += 1,
            Some(f) if f.vector == 14 => faults[1] += 1,
            Some(_) => faults[2] += 1,
            None => {
                faults[3] += 1;
                if write {
                    violations += 1;
                    println!("HOSTILE FINDING fault iter={i} write to {addr:#x} succeeded");
                }
            }
        }
    }
    c.violations += violations;
    s.check(
        "faults.caught",
        violations == 0,
        format_args!(
            "accesses={iters} gp={} pf={} other={} none={} violations={violations}",
            faults[0], faults[1], faults[2], faults[3]
        ),
    );
}

/// Privileged instructions from guest user mode (see `hostile/user.rs`).
fn user_class(s: &mut Suite, c: &mut Ctx, iters: u64) {
    if let Err((step, rc)) = user::setup(c.si) {
        user::teardown();
        s.check(
            "user.faults",
            false,
            format_args!("setup {step}={}", Rc(rc)),
        );
        return;
    }
    let n = user::run(&mut c.rng, iters);
    let rc = user::teardown();
    let violations = u64::from(n.completed);
    c.violations += violations;
    if let Some((insn, o)) = n.first_bad {
        println!("HOSTILE FINDING user {insn:?} {o:?}");
    }
    s.check(
        "user.faults",
        n.other == 0 && n.completed == 0 && rc == 0,
        format_args!(
            "insns={iters} gp={} noop={} other={} completed={} ({}) violations={violations} teardown={}",
            n.gp,
            n.noop,
            n.other,
            n.completed,
            user::names(n.completed_slots),
            Rc(rc)
        ),
    );
}

// -------------------------------------------------------------------------------------------
// The sibling.

/// Offers a port to domain 1 (its signal that the fuzzing is over) and waits (bounded) until
/// the sibling has gone (its reservation drops to nothing).
fn signal_sibling(s: &mut Suite, si: &StartInfo) {
    let (rc, port) = ev::alloc_unbound(SIBLING);
    if rc != 0 {
        s.skip("sibling.signal", format_args!("no sibling rc={}", Rc(rc)));
        return;
    }
    if ev::map_shared_info(si) != 0 {
        s.skip("sibling.signal", format_args!("no shared info"));
        return;
    }
    let start = ev::now_ns();
    let mut gone = false;
    while ev::now_ns() - start < 60_000_000_000 {
        let mut d = SIBLING;
        // SAFETY: XENMEM_current_reservation reads a domid_t.
        let r = unsafe { hc::memory_op(XENMEM_current_reservation, (&raw mut d).cast()) };
        if r <= 0 {
            gone = true;
            break;
        }
        yield_cpu();
    }
    ev::close(port);
    s.check("sibling.signal", gone, format_args!("gone={gone}"));
}

/// The domU side: a canary page checked until dom0's signal port appears.
fn canary_role(s: &mut Suite, si: &StartInfo) {
    canary_fill();
    let rc = ev::map_shared_info(si);
    if rc != 0 {
        s.check("canary.setup", false, format_args!("map={}", Rc(rc)));
        return;
    }
    let wait_ns = arg(si, b"canary_wait", 600) * 1_000_000_000;
    let start = ev::now_ns();
    let mut intact = true;
    let mut signalled = false;
    let mut last_try = 0;
    while ev::now_ns() - start < wait_ns {
        intact &= canary_ok();
        let now = ev::now_ns();
        if now - last_try > 20_000_000 {
            last_try = now;
            for p in 1..64 {
                let (rc, local) = ev::bind_interdomain(0, p);
                if rc == 0 {
                    let _ = local; // left bound: dom0 sees it until this domain is gone
                    signalled = true;
                    break;
                }
            }
            if signalled {
                break;
            }
        }
        yield_cpu();
    }
    intact &= canary_ok();
    s.check(
        "canary.signalled",
        signalled,
        format_args!("signalled={signalled}"),
    );
    s.check("canary.intact", intact, format_args!("intact={intact}"));
    let res = reservation();
    s.check(
        "canary.reservation",
        res == si.nr_pages as i64,
        format_args!("same={}", res == si.nr_pages as i64),
    );
}
