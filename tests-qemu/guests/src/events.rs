//! Event delivery and time for the suites: `shared_info` mapped writable, the vCPU 0
//! `vcpu_info` (in `shared_info` or wherever `VCPUOP_register_vcpu_info` moved it), the event
//! upcall entry point Xen's event callback jumps to, a recorder of what each upcall saw, the PV
//! clock (`vcpu_time_info` + `rdtsc`) and thin event-channel hypercall wrappers.
//!
//! The upcall handler does what Linux's 2-level handler does: clear `evtchn_upcall_pending`,
//! swap `evtchn_pending_sel` with 0 and, for every selected word, clear (and record) the pending
//! bits that are not masked. It returns with `HYPERVISOR_iret`, which restores the event mask
//! from the saved `RFLAGS.IF`.

use core::arch::asm;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, compiler_fence};

use xen_abi::callback::{CALLBACKOP_register, CALLBACKTYPE_event, CallbackRegister};
use xen_abi::event_channel::{
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_ipi, EVTCHNOP_bind_virq,
    EVTCHNOP_close, EVTCHNOP_send, EVTCHNOP_status, EVTCHNOP_unmask, EvtchnAllocUnbound,
    EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVirq, EvtchnClose, EvtchnSend, EvtchnStatus,
    EvtchnUnmask,
};
use xen_abi::hypercall as nr;
use xen_abi::version::XENVER_version;
use xen_abi::xen::{DOMID_SELF, SharedInfo, StartInfo, UVMF_INVLPG, VcpuInfo, VcpuTimeInfo};

use crate::hypercall as hc;
use crate::mm::{_PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW};

/// Dirty bit of a PTE.
const _PAGE_DIRTY: u64 = 1 << 6;

/// A page of the image whose virtual address gets remapped.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The page whose VA maps `shared_info` once [`map_shared_info`] ran (its own frame is then
/// unmapped; it is only ever accessed through raw pointers).
static mut SHINFO_PAGE: Page = Page([0; 4096]);

/// VA of the mapped `shared_info` (0: not mapped yet).
static SHINFO_VA: AtomicU64 = AtomicU64::new(0);
/// VA of vCPU 0's `vcpu_info` (0: not known yet).
static VCPU_INFO_VA: AtomicU64 = AtomicU64::new(0);

/// Maps `shared_info` read-write at a page of the image (once; later calls return 0).
pub fn map_shared_info(si: &StartInfo) -> i64 {
    if SHINFO_VA.load(Ordering::SeqCst) != 0 {
        return 0;
    }
    let va = (&raw const SHINFO_PAGE) as u64;
    let pte = si.shared_info | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
    // SAFETY: only SHINFO_PAGE's mapping changes, and nothing reads it as a Rust object.
    let rc = unsafe { hc::update_va_mapping(va, pte, UVMF_INVLPG) };
    if rc == 0 {
        SHINFO_VA.store(va, Ordering::SeqCst);
        let _ = VCPU_INFO_VA.compare_exchange(0, va, Ordering::SeqCst, Ordering::SeqCst);
    }
    rc
}

/// Whether `shared_info` is mapped.
pub fn mapped() -> bool {
    SHINFO_VA.load(Ordering::SeqCst) != 0
}

/// The mapped `shared_info` (panics if [`map_shared_info`] did not succeed).
pub fn shared_info() -> *mut SharedInfo {
    let va = SHINFO_VA.load(Ordering::SeqCst);
    assert!(va != 0, "shared_info is not mapped");
    va as *mut SharedInfo
}

/// vCPU 0's `vcpu_info` (panics if [`map_shared_info`] did not succeed).
pub fn vcpu_info() -> *mut VcpuInfo {
    let va = VCPU_INFO_VA.load(Ordering::SeqCst);
    assert!(va != 0, "shared_info is not mapped");
    va as *mut VcpuInfo
}

/// Tells the helpers that vCPU 0's `vcpu_info` now lives at `va` (after a successful
/// `VCPUOP_register_vcpu_info`).
pub fn set_vcpu_info(va: u64) {
    VCPU_INFO_VA.store(va, Ordering::SeqCst);
}

/// `evtchn_upcall_mask` of vCPU 0.
pub fn upcall_mask() -> u8 {
    // SAFETY: vcpu_info() points at a live, mapped vcpu_info; volatile because Xen writes it.
    unsafe { ptr::read_volatile(&raw const (*vcpu_info()).evtchn_upcall_mask) }
}

/// Sets `evtchn_upcall_mask` of vCPU 0 (1: events masked).
pub fn set_upcall_mask(mask: u8) {
    compiler_fence(Ordering::SeqCst);
    // SAFETY: as for upcall_mask(); the guest owns this byte.
    unsafe { ptr::write_volatile(&raw mut (*vcpu_info()).evtchn_upcall_mask, mask) };
    compiler_fence(Ordering::SeqCst);
}

/// `evtchn_upcall_pending` of vCPU 0.
pub fn upcall_pending() -> u8 {
    // SAFETY: as for upcall_mask().
    unsafe { ptr::read_volatile(&raw const (*vcpu_info()).evtchn_upcall_pending) }
}

/// The `evtchn_pending` word holding `port`.
fn pending_word(port: u32) -> &'static AtomicU64 {
    let w = (port / 64) as usize % 64;
    // SAFETY: shared_info is mapped for the rest of the run; the word is 8-byte aligned and
    // Xen only ever updates it with atomic operations too.
    unsafe { AtomicU64::from_ptr((&raw mut (*shared_info()).evtchn_pending[w]).cast()) }
}

/// The `evtchn_mask` word holding `port`.
fn mask_word(port: u32) -> &'static AtomicU64 {
    let w = (port / 64) as usize % 64;
    // SAFETY: as for pending_word().
    unsafe { AtomicU64::from_ptr((&raw mut (*shared_info()).evtchn_mask[w]).cast()) }
}

/// Whether `port`'s pending bit is set.
pub fn port_pending(port: u32) -> bool {
    pending_word(port).load(Ordering::SeqCst) & (1 << (port % 64)) != 0
}

/// Whether `port`'s mask bit is set.
pub fn port_masked(port: u32) -> bool {
    mask_word(port).load(Ordering::SeqCst) & (1 << (port % 64)) != 0
}

/// Sets or clears `port`'s mask bit directly in `shared_info` (no hypercall).
pub fn set_port_mask(port: u32, masked: bool) {
    let bit = 1u64 << (port % 64);
    if masked {
        mask_word(port).fetch_or(bit, Ordering::SeqCst);
    } else {
        mask_word(port).fetch_and(!bit, Ordering::SeqCst);
    }
}

/// Clears `port`'s pending bit.
pub fn clear_port_pending(port: u32) {
    pending_word(port).fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
}

// ---------------------------------------------------------------------------------------------
// The PV clock.

/// Reads the TSC.
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc only reads the time-stamp counter (Xen leaves CR4.TSD clear for PV dom0).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A consistent copy of vCPU 0's `vcpu_time_info` (seqlock read) and whether the final
/// `version` was even and unchanged across the copy.
pub fn read_time() -> (VcpuTimeInfo, bool) {
    // SAFETY: vcpu_info() is mapped; `time` is a plain field inside it.
    let t = unsafe { &raw const (*vcpu_info()).time };
    let mut copy = VcpuTimeInfo::default();
    for _ in 0..10_000 {
        // SAFETY: t points at the mapped vcpu_time_info; volatile because Xen updates it.
        let v1 = unsafe { ptr::read_volatile(&raw const (*t).version) };
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as above.
        copy = unsafe { ptr::read_volatile(t) };
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as above.
        let v2 = unsafe { ptr::read_volatile(&raw const (*t).version) };
        if v1 == v2 && v1 & 1 == 0 {
            return (copy, true);
        }
    }
    (copy, false)
}

/// Scales a TSC delta to nanoseconds with `vcpu_time_info`'s `tsc_to_system_mul`/`tsc_shift`.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift < 0 {
        delta >> (-i32::from(shift)).min(63)
    } else {
        delta << i32::from(shift).min(63)
    };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

/// System time (ns since Xen booted) now, from the PV clock.
pub fn now_ns() -> u64 {
    let (t, _) = read_time();
    let delta = rdtsc().wrapping_sub(t.tsc_timestamp);
    // A TSC read just before Xen's timestamp would be "negative": count it as 0.
    let delta = if delta > 1 << 62 { 0 } else { delta };
    t.system_time
        .wrapping_add(scale_delta(delta, t.tsc_to_system_mul, t.tsc_shift))
}

// ---------------------------------------------------------------------------------------------
// The event upcall.

/// Emits an event-callback entry point `$name` (in section `.text.$section`) that calls
/// `extern "C" fn $handler(frame: *const u64)` with Xen's bounce frame (rcx, r11, rip, cs with
/// the saved mask in bits 32..39, rflags, rsp, ss; events are masked), saving the caller-saved
/// registers the frame does not hold, and returns with `HYPERVISOR_iret`.
macro_rules! upcall_entry {
    ($section:literal, $name:literal, $handler:path) => {
        core::arch::global_asm!(
            concat!(".pushsection .text.", $section, ", \"ax\""),
            ".balign 16",
            concat!(".global ", $name),
            concat!($name, ":"),
            "    cld",
            "    push %rax",
            "    push %rdi",
            "    push %rsi",
            "    push %rdx",
            "    push %r8",
            "    push %r9",
            "    push %r10",
            "    push %rbp",
            "    mov %rsp, %rbp",
            "    lea 64(%rsp), %rdi",
            "    and $-16, %rsp",
            "    call {handler}",
            "    mov %rbp, %rsp",
            "    pop %rbp",
            "    pop %r10",
            "    pop %r9",
            "    pop %r8",
            "    pop %rdx",
            "    pop %rsi",
            "    pop %rdi",
            "    pop %rax",
            "    pop %rcx",
            "    pop %r11",
            // HYPERVISOR_iret frame: rax, r11, rcx, flags, then rip, cs, rflags, rsp, ss from
            // Xen's.
            "    push $0",
            "    push %rcx",
            "    push %r11",
            "    push %rax",
            "    mov ${iret}, %eax",
            "    syscall",
            "    ud2",
            ".popsection",
            handler = sym $handler,
            iret = const xen_abi::hypercall::iret,
            options(att_syntax)
        );
    };
}
pub(crate) use upcall_entry;

upcall_entry!("pvtest_events", "pvtest_event_entry", pvtest_event_handler);

unsafe extern "C" {
    /// The event callback entry point.
    static pvtest_event_entry: u8;
}

/// The address to register as the event callback.
pub fn entry_address() -> u64 {
    (&raw const pvtest_event_entry) as u64
}

/// Upcalls since the last [`reset`].
static UPCALLS: AtomicU32 = AtomicU32::new(0);
/// First upcall since the last reset: `evtchn_upcall_pending | mask << 8 | saved_mask << 16`.
static FIRST_FLAGS: AtomicU64 = AtomicU64::new(0);
/// First upcall since the last reset: `evtchn_pending_sel` as found.
static FIRST_SEL: AtomicU64 = AtomicU64::new(0);
/// First upcall since the last reset: unmasked pending bits of word 0 as found.
static FIRST_PORTS0: AtomicU64 = AtomicU64::new(0);
/// First upcall since the last reset: system time at entry.
static FIRST_TIME: AtomicU64 = AtomicU64::new(0);
/// Ports 0..63 seen pending (unmasked) by any upcall since the last reset.
static SEEN_PORTS0: AtomicU64 = AtomicU64::new(0);
/// Ports >= 64 seen since the last reset.
static SEEN_OTHER: AtomicU32 = AtomicU32::new(0);

/// What the first upcall since the last [`reset`] found.
#[derive(Clone, Copy, Default)]
pub struct Upcall {
    /// `evtchn_upcall_pending` at entry.
    pub pending: u8,
    /// `evtchn_upcall_mask` at entry (Xen masks events when it delivers the upcall).
    pub mask: u8,
    /// The event mask saved in the bounce frame (bits 32..39 of the CS slot).
    pub saved_mask: u8,
    /// `evtchn_pending_sel` at entry.
    pub sel: u64,
    /// Pending, unmasked bits of `evtchn_pending[0]` at entry.
    pub ports0: u64,
    /// System time at entry.
    pub time_ns: u64,
}

extern "C" fn pvtest_event_handler(frame: *const u64) {
    let vi = vcpu_info();
    // SAFETY: Xen wrote the bounce frame at `frame` (rcx, r11, rip, cs, ...).
    let cs_slot = unsafe { frame.add(3).read_volatile() };
    // SAFETY: vi is the mapped vcpu_info; volatile because Xen writes it.
    let (pending, mask) = unsafe {
        (
            ptr::read_volatile(&raw const (*vi).evtchn_upcall_pending),
            ptr::read_volatile(&raw const (*vi).evtchn_upcall_mask),
        )
    };
    // SAFETY: as above; the guest clears its own pending flag before scanning.
    unsafe { ptr::write_volatile(&raw mut (*vi).evtchn_upcall_pending, 0) };
    // SAFETY: evtchn_pending_sel is 8-byte aligned and Xen sets bits in it atomically.
    let sel_word = unsafe { AtomicU64::from_ptr(&raw mut (*vi).evtchn_pending_sel) };
    let sel = sel_word.swap(0, Ordering::SeqCst);
    let mut ports0 = 0;
    let mut others = 0;
    let mut bits = sel;
    while bits != 0 {
        let w = bits.trailing_zeros();
        bits &= bits - 1;
        let port = w * 64;
        let ready =
            pending_word(port).load(Ordering::SeqCst) & !mask_word(port).load(Ordering::SeqCst);
        pending_word(port).fetch_and(!ready, Ordering::SeqCst);
        if w == 0 {
            ports0 |= ready;
        } else {
            others += ready.count_ones();
        }
    }
    let n = UPCALLS.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        let saved_mask = (cs_slot >> 32) as u8;
        FIRST_FLAGS.store(
            u64::from(pending) | u64::from(mask) << 8 | u64::from(saved_mask) << 16,
            Ordering::SeqCst,
        );
        FIRST_SEL.store(sel, Ordering::SeqCst);
        FIRST_PORTS0.store(ports0, Ordering::SeqCst);
        FIRST_TIME.store(now_ns(), Ordering::SeqCst);
    }
    SEEN_PORTS0.fetch_or(ports0, Ordering::SeqCst);
    SEEN_OTHER.fetch_add(others, Ordering::SeqCst);
}

/// Forgets the upcalls recorded so far.
pub fn reset() {
    UPCALLS.store(0, Ordering::SeqCst);
    FIRST_FLAGS.store(0, Ordering::SeqCst);
    FIRST_SEL.store(0, Ordering::SeqCst);
    FIRST_PORTS0.store(0, Ordering::SeqCst);
    FIRST_TIME.store(0, Ordering::SeqCst);
    SEEN_PORTS0.store(0, Ordering::SeqCst);
    SEEN_OTHER.store(0, Ordering::SeqCst);
}

/// Upcalls since the last [`reset`].
pub fn upcalls() -> u32 {
    UPCALLS.load(Ordering::SeqCst)
}

/// The first upcall since the last [`reset`].
pub fn first() -> Upcall {
    let flags = FIRST_FLAGS.load(Ordering::SeqCst);
    Upcall {
        pending: flags as u8,
        mask: (flags >> 8) as u8,
        saved_mask: (flags >> 16) as u8,
        sel: FIRST_SEL.load(Ordering::SeqCst),
        ports0: FIRST_PORTS0.load(Ordering::SeqCst),
        time_ns: FIRST_TIME.load(Ordering::SeqCst),
    }
}

/// Whether an upcall since the last [`reset`] handled `port` (ports below 64 only).
pub fn seen(port: u32) -> bool {
    port < 64 && SEEN_PORTS0.load(Ordering::SeqCst) & (1 << port) != 0
}

/// A cheap hypercall, so that Xen checks for pending events on its way back (what Linux's
/// `xen_force_evtchn_callback` does).
pub fn poke() {
    // SAFETY: XENVER_version takes no argument.
    unsafe { hc::xen_version(XENVER_version, ptr::null_mut()) };
}

/// Unmasks events and spins (poking Xen) until `target` upcalls have been recorded since the
/// last [`reset`] or `budget_ns` of system time passed; masks events again. Returns whether
/// the target was reached.
pub fn wait_upcalls(target: u32, budget_ns: u64) -> bool {
    let deadline = now_ns().saturating_add(budget_ns);
    set_upcall_mask(0);
    loop {
        poke();
        if upcalls() >= target || now_ns() > deadline {
            break;
        }
        core::hint::spin_loop();
    }
    set_upcall_mask(1);
    upcalls() >= target
}

/// Lets any pending upcall run, then forgets it.
pub fn drain() {
    set_upcall_mask(0);
    poke();
    set_upcall_mask(1);
    reset();
}

/// `HYPERVISOR_callback_op(CALLBACKOP_register, {CALLBACKTYPE_event, entry})`.
pub fn register_callback() -> i64 {
    let cb = CallbackRegister {
        type_: CALLBACKTYPE_event,
        flags: 0,
        _pad0: 0,
        address: entry_address(),
    };
    // SAFETY: Xen reads the callback_register; the entry point takes Xen's bounce frame and
    // returns with HYPERVISOR_iret.
    unsafe {
        hc::hypercall3(
            nr::callback_op,
            u64::from(CALLBACKOP_register),
            &cb as *const _ as u64,
            0,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Event-channel operations.

/// `event_channel_op(cmd, arg)` on a local structure.
fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: `arg` is the structure `cmd` reads and writes (the callers pick the pairing).
    unsafe { hc::event_channel_op(cmd, (arg as *mut T).cast()) }
}

/// `EVTCHNOP_bind_virq`: (rc, port).
pub fn bind_virq(virq: u32, vcpu: u32) -> (i64, u32) {
    let mut a = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    let rc = evtchn_op(EVTCHNOP_bind_virq, &mut a);
    (rc, a.port)
}

/// `EVTCHNOP_bind_ipi`: (rc, port).
pub fn bind_ipi(vcpu: u32) -> (i64, u32) {
    let mut a = EvtchnBindIpi { vcpu, port: 0 };
    let rc = evtchn_op(EVTCHNOP_bind_ipi, &mut a);
    (rc, a.port)
}

/// `EVTCHNOP_alloc_unbound` for a channel of this domain to itself: (rc, port).
pub fn alloc_unbound_self() -> (i64, u32) {
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    let rc = evtchn_op(EVTCHNOP_alloc_unbound, &mut a);
    (rc, a.port)
}

/// `EVTCHNOP_bind_interdomain` to `remote_port` of this domain: (rc, local port).
pub fn bind_interdomain_self(remote_port: u32) -> (i64, u32) {
    bind_interdomain(DOMID_SELF, remote_port)
}

/// `EVTCHNOP_alloc_unbound` of a port of this domain offered to `remote_dom`: (rc, port).
pub fn alloc_unbound(remote_dom: u16) -> (i64, u32) {
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom,
        port: 0,
    };
    let rc = evtchn_op(EVTCHNOP_alloc_unbound, &mut a);
    (rc, a.port)
}

/// `EVTCHNOP_bind_interdomain` to `remote_port` of domain `remote_dom`: (rc, local port).
pub fn bind_interdomain(remote_dom: u16, remote_port: u32) -> (i64, u32) {
    let mut a = EvtchnBindInterdomain {
        remote_dom,
        _pad0: 0,
        remote_port,
        local_port: 0,
    };
    let rc = evtchn_op(EVTCHNOP_bind_interdomain, &mut a);
    (rc, a.local_port)
}

/// `EVTCHNOP_send`.
pub fn send(port: u32) -> i64 {
    let mut a = EvtchnSend { port };
    evtchn_op(EVTCHNOP_send, &mut a)
}

/// `EVTCHNOP_unmask`.
pub fn unmask(port: u32) -> i64 {
    let mut a = EvtchnUnmask { port };
    evtchn_op(EVTCHNOP_unmask, &mut a)
}

/// `EVTCHNOP_close`.
pub fn close(port: u32) -> i64 {
    let mut a = EvtchnClose { port };
    evtchn_op(EVTCHNOP_close, &mut a)
}

/// `EVTCHNOP_status` of one of this domain's ports.
pub fn status(port: u32) -> (i64, EvtchnStatus) {
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        port,
        status: 0xffff_ffff,
        vcpu: 0xffff_ffff,
        u: [0xffff_ffff; 2],
        ..EvtchnStatus::default()
    };
    let rc = evtchn_op(EVTCHNOP_status, &mut st);
    (rc, st)
}
