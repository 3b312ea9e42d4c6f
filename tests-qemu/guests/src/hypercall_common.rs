//! The 64-bit hypercall ABI shared by `pvtest` and `pvhtest` (each `hypercall` module includes
//! this file with `#[path]`): the argument registers ([`hypercall_asm!`]) and the wrappers
//! built on the including module's `hypercall5`, which is how that binary enters the
//! hypervisor (`syscall` for PV, a call into the hypercall page for PVH).

use xen_abi::hypercall as nr;
use xen_abi::xen::CONSOLEIO_write;

use super::hypercall5;

/// `asm!($insn, ...)` with the five hypercall arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`,
/// all treated as clobbered (Xen debug builds scribble over them), then the caller's own
/// operands (the number, the result, what `$insn` clobbers). Used inside an `unsafe` block.
macro_rules! hypercall_asm {
    ($insn:literal, [$a1:expr, $a2:expr, $a3:expr, $a4:expr, $a5:expr], $($rest:tt)*) => {
        core::arch::asm!(
            $insn,
            inlateout("rdi") $a1 => _,
            inlateout("rsi") $a2 => _,
            inlateout("rdx") $a3 => _,
            inlateout("r10") $a4 => _,
            inlateout("r8") $a5 => _,
            $($rest)*
        )
    };
}
pub(crate) use hypercall_asm;

/// Hypercall with up to three arguments.
///
/// # Safety
/// As for `hypercall5`.
#[inline(always)]
pub unsafe fn hypercall3(op: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(op, a1, a2, a3, 0, 0) }
}

/// `HYPERVISOR_console_io(CONSOLEIO_write, len, buf)`.
pub fn console_write(bytes: &[u8]) -> i64 {
    // SAFETY: the hypervisor only reads `bytes.len()` bytes from the valid slice.
    unsafe {
        hypercall3(
            nr::console_io,
            u64::from(CONSOLEIO_write),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
        )
    }
}
