//! Hypercalls the HVM way: through the hypercall page. CPUID finds Xen's leaves (signature
//! "XenVMMXenVMM" at 0x40000000 + n * 0x100, as Linux searches them); leaf base+2 gives the
//! number of hypercall pages (eax) and the MSR (ebx) that installs them: writing a page's
//! guest-physical address to that MSR makes the hypervisor fill it with one 32-byte stub per
//! hypercall (`mov $nr, %eax; vmcall|vmmcall; ret`). A hypercall is a `call` to
//! `page + nr * 32` with the arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8` (the 64-bit HVM
//! ABI) and the result in `rax`.

use core::arch::{asm, x86_64::__cpuid};

#[path = "../hypercall_common.rs"]
mod common;
use common::hypercall_asm;
pub use common::{console_write, hypercall3};
use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::hypercall as nr;
use xen_abi::sched::{SCHEDOP_shutdown, SHUTDOWN_crash, SHUTDOWN_poweroff, SchedShutdown};

/// Bytes per stub in the hypercall page.
pub const STUB_SIZE: usize = 32;

/// The hypercall page (the hypervisor writes it when its address goes to the MSR).
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);

/// The page; identity-mapped, so its address is its guest-physical address.
pub static mut HYPERCALL_PAGE: Page = Page([0; 4096]);

/// Whether the page has been installed.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The Xen CPUID leaves as found.
#[derive(Clone, Copy)]
pub struct XenLeaves {
    /// The first leaf (0x40000000 + n * 0x100).
    pub base: u32,
    /// Its eax: the highest Xen leaf.
    pub max: u32,
}

/// `cpuid(leaf, 0)` as (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = __cpuid(leaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// "XenVMMXenVMM" as CPUID returns it in ebx, ecx, edx.
const XEN_SIGNATURE: [u32; 3] = [
    u32::from_le_bytes(*b"XenV"),
    u32::from_le_bytes(*b"MMXe"),
    u32::from_le_bytes(*b"nVMM"),
];

/// Searches 0x40000000..0x40010000 in steps of 0x100 for "XenVMMXenVMM".
pub fn find_xen_leaves() -> Option<XenLeaves> {
    (0x4000_0000u32..0x4001_0000)
        .step_by(0x100)
        .find_map(|base| {
            let (max, b, c, d) = cpuid(base);
            let sig = [b, c, d];
            (sig == XEN_SIGNATURE && max >= base + 2).then_some(XenLeaves { base, max })
        })
}

/// Installs the hypercall page through the MSR from leaf base+2.
pub fn install(leaves: XenLeaves) {
    let (_pages, msr, _, _) = cpuid(leaves.base + 2);
    let gpa = (&raw const HYPERCALL_PAGE) as u64;
    // SAFETY: the MSR is Xen's hypercall-page MSR; writing it only makes the hypervisor fill
    // the page, which this guest owns and uses for nothing else.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") msr,
            in("eax") gpa as u32,
            in("edx") (gpa >> 32) as u32,
            options(nostack)
        )
    };
    INSTALLED.store(true, Ordering::SeqCst);
}

/// Whether hypercalls can be made.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::SeqCst)
}

/// The bytes of the page.
pub fn page() -> &'static [u8; 4096] {
    // SAFETY: only the hypervisor writes the page (at install time).
    unsafe { &*(&raw const HYPERCALL_PAGE).cast::<[u8; 4096]>() }
}

/// Makes hypercall `op` with five arguments and returns the hypervisor's `rax`.
///
/// # Safety
/// The page must be installed ([`installed`]); pointer arguments must be valid for whatever
/// the hypercall reads or writes through them.
#[inline(always)]
pub unsafe fn hypercall5(op: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let stub = (&raw const HYPERCALL_PAGE) as u64 + op * STUB_SIZE as u64;
    let ret: i64;
    // SAFETY: the caller upholds the hypercall's contract; the stub sets eax, traps to the
    // hypervisor and returns. The argument registers are treated as clobbered (Xen debug
    // builds scribble over them).
    unsafe {
        hypercall_asm!(
            "call r11",
            [a1, a2, a3, a4, a5],
            in("r11") stub,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r9") _,
        );
    }
    ret
}

/// `HYPERVISOR_<op>(cmd, arg)` for the ops that take a command and one structure.
///
/// # Safety
/// `arg` must point to the structure `cmd` takes (or be null where it takes none).
pub unsafe fn op<T>(op: u64, cmd: u32, arg: *mut T) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(op, u64::from(cmd), arg as u64, 0) }
}

/// `SCHEDOP_shutdown(reason)`, then spins (halting) if it returns.
fn shutdown(reason: u32) -> ! {
    if installed() {
        let mut arg = SchedShutdown { reason };
        // SAFETY: `arg` is a valid sched_shutdown that the hypervisor only reads.
        unsafe { op(nr::sched_op, SCHEDOP_shutdown, &mut arg) };
    }
    loop {
        // SAFETY: with interrupts off this parks the vCPU for good.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Powers the domain off.
pub fn poweroff() -> ! {
    shutdown(SHUTDOWN_poweroff)
}

/// Crashes the domain.
pub fn crash() -> ! {
    shutdown(SHUTDOWN_crash)
}
