//! shared_info and event-channel upcalls for an HVM guest.
//!
//! shared_info is mapped with `XENMEM_add_to_physmap(XENMAPSPACE_shared_info)` over a page of
//! the guest's own RAM (as Linux does for PVH). Upcalls come as an interrupt at
//! [`CALLBACK_VECTOR`] once `HVM_PARAM_CALLBACK_IRQ` is `(HVM_PARAM_CALLBACK_TYPE_VECTOR <<
//! 56) | vector`: the hypervisor injects it whenever `vcpu_info[0].evtchn_upcall_pending` is
//! set and interrupts are enabled. [`upcall`] records what it saw and clears the pending
//! flag, the selector and the pending bits, so the upcall is not injected again.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use crate::hypercall::{hypercall3, op};
use crate::idt::CALLBACK_VECTOR;
use xen_abi::hvm::{
    HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_TYPE_VECTOR, HVMOP_get_param, HVMOP_set_param,
    XenHvmParam,
};
use xen_abi::hypercall as nr;
use xen_abi::memory::{XENMAPSPACE_shared_info, XENMEM_add_to_physmap, XenAddToPhysmap};
use xen_abi::xen::{DOMID_SELF, SharedInfo, VcpuInfo};

/// The page of RAM whose frame shared_info replaces.
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut SHARED: Page = Page([0; 4096]);

static MAPPED: AtomicBool = AtomicBool::new(false);
static CALLBACK_SET: AtomicBool = AtomicBool::new(false);

/// shared_info (valid once [`map_shared_info`] succeeded).
pub fn shared() -> *mut SharedInfo {
    (&raw mut SHARED).cast()
}

/// vCPU 0's `vcpu_info` in shared_info.
pub fn vcpu0() -> *mut VcpuInfo {
    // SAFETY: in bounds of the shared page; no reference is created.
    unsafe { &raw mut (*shared()).vcpu_info[0] }
}

/// `XENMEM_add_to_physmap(DOMID_SELF, XENMAPSPACE_shared_info, 0)` at the shared page's gfn.
pub fn map_shared_info() -> i64 {
    let mut xatp = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_shared_info,
        idx: 0,
        gpfn: shared() as u64 >> 12,
    };
    // SAFETY: a valid xen_add_to_physmap; the page it replaces is used for nothing else.
    let rc = unsafe { op(nr::memory_op, XENMEM_add_to_physmap, &mut xatp) };
    if rc == 0 {
        MAPPED.store(true, Ordering::SeqCst);
    }
    rc
}

/// Maps shared_info unless already mapped; whether it is.
pub fn ensure_shared_info() -> bool {
    MAPPED.load(Ordering::SeqCst) || map_shared_info() == 0
}

/// `HVMOP_get_param(DOMID_SELF, index)` as (rc, value).
pub fn get_param(index: u32) -> (i64, u64) {
    let mut p = XenHvmParam {
        domid: DOMID_SELF,
        _pad0: 0,
        index,
        value: 0,
    };
    // SAFETY: a valid xen_hvm_param.
    let rc = unsafe { op(nr::hvm_op, HVMOP_get_param, &mut p) };
    (rc, p.value)
}

/// `HVMOP_set_param(DOMID_SELF, index, value)`.
pub fn set_param(index: u32, value: u64) -> i64 {
    let mut p = XenHvmParam {
        domid: DOMID_SELF,
        _pad0: 0,
        index,
        value,
    };
    // SAFETY: a valid xen_hvm_param.
    unsafe { op(nr::hvm_op, HVMOP_set_param, &mut p) }
}

/// The `HVM_PARAM_CALLBACK_IRQ` value selecting [`CALLBACK_VECTOR`].
pub const CALLBACK_VIA_VECTOR: u64 =
    (HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | CALLBACK_VECTOR as u64;

/// Points upcalls at [`CALLBACK_VECTOR`].
pub fn set_callback_vector() -> i64 {
    let rc = set_param(HVM_PARAM_CALLBACK_IRQ, CALLBACK_VIA_VECTOR);
    if rc == 0 {
        CALLBACK_SET.store(true, Ordering::SeqCst);
    }
    rc
}

/// shared_info mapped and upcalls routed to the vector; whether both are done.
pub fn ensure_upcalls() -> bool {
    ensure_shared_info() && (CALLBACK_SET.load(Ordering::SeqCst) || set_callback_vector() == 0)
}

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` must be the structure `cmd` takes.
pub unsafe fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { op(nr::event_channel_op, cmd, arg as *mut T) }
}

/// `HYPERVISOR_vcpu_op(cmd, vcpu, arg)`.
///
/// # Safety
/// `arg` must be the structure `cmd` takes.
pub unsafe fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: &mut T) -> i64 {
    // SAFETY: forwarded contract.
    unsafe {
        hypercall3(
            nr::vcpu_op,
            u64::from(cmd),
            u64::from(vcpu),
            arg as *mut T as u64,
        )
    }
}

/// Upcalls taken so far.
static UPCALLS: AtomicU32 = AtomicU32::new(0);
/// At the last upcall: `evtchn_upcall_pending`, the selector, and pending word 0.
static LAST_PENDING: AtomicU8 = AtomicU8::new(0);
static LAST_SEL: AtomicU64 = AtomicU64::new(0);
static LAST_WORD0: AtomicU64 = AtomicU64::new(0);

/// What one upcall saw.
#[derive(Clone, Copy)]
pub struct Upcall {
    /// `evtchn_upcall_pending` on entry.
    pub pending: u8,
    /// `evtchn_pending_sel` on entry.
    pub sel: u64,
    /// `evtchn_pending[0]` on entry.
    pub word0: u64,
}

impl Upcall {
    /// Whether `port`'s pending bit (in word 0) and its selector bit were set.
    pub fn saw_port(&self, port: u32) -> bool {
        port < 64 && self.sel & 1 != 0 && self.word0 & (1 << port) != 0
    }
}

/// The callback vector's handler (interrupts off): records and clears the pending state.
pub fn upcall() {
    let vi = vcpu0();
    // SAFETY: shared_info is mapped before the callback is set; the fields are atomically
    // accessed words shared with the hypervisor.
    let (pending, sel) = unsafe {
        (
            AtomicU8::from_ptr(&raw mut (*vi).evtchn_upcall_pending),
            AtomicU64::from_ptr((&raw mut (*vi).evtchn_pending_sel).cast()),
        )
    };
    LAST_PENDING.store(pending.swap(0, Ordering::SeqCst), Ordering::SeqCst);
    let sel_bits = sel.swap(0, Ordering::SeqCst);
    LAST_SEL.store(sel_bits, Ordering::SeqCst);
    let mut word0 = 0;
    for w in 0..64 {
        if sel_bits & (1 << w) != 0 {
            // SAFETY: as above, evtchn_pending words are shared atomics.
            let word =
                unsafe { AtomicU64::from_ptr((&raw mut (*shared()).evtchn_pending[w]).cast()) };
            let bits = word.swap(0, Ordering::SeqCst);
            if w == 0 {
                word0 = bits;
            }
        }
    }
    LAST_WORD0.store(word0, Ordering::SeqCst);
    UPCALLS.fetch_add(1, Ordering::SeqCst);
}

/// Upcalls taken so far.
pub fn upcalls() -> u32 {
    UPCALLS.load(Ordering::SeqCst)
}

fn last() -> Upcall {
    Upcall {
        pending: LAST_PENDING.load(Ordering::SeqCst),
        sel: LAST_SEL.load(Ordering::SeqCst),
        word0: LAST_WORD0.load(Ordering::SeqCst),
    }
}

/// Opens an interrupt window `spins` times (`sti; pause; cli`) until an upcall after the
/// `before`-th arrives; the upcall, or `None`.
pub fn poll_upcall(before: u32, spins: u32) -> Option<Upcall> {
    for _ in 0..spins {
        if upcalls() != before {
            return Some(last());
        }
        // SAFETY: only the callback vector can interrupt; its handler preserves the state.
        unsafe { asm!("sti", "pause", "cli", options(nomem, nostack)) };
    }
    (upcalls() != before).then(last)
}

/// Halts (`sti; hlt`) until an upcall after the `before`-th arrives.
pub fn halt_for_upcall(before: u32) -> Upcall {
    while upcalls() == before {
        // SAFETY: `sti; hlt` wakes on the next interrupt (the shadow of sti covers hlt, so a
        // pending one cannot slip in between); the handler preserves the state.
        unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    }
    last()
}
