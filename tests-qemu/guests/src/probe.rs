//! Probing accesses that may fault: the probe installs its own handlers for #NM, #NP, #GP and
//! #PF (`set_trap_table` only replaces the vectors it lists), runs one instruction with a
//! recovery address armed, and puts the guest's default handlers (`pvtest_trap_stubs` in
//! `entry.rs`) back afterwards. A fault resumes at the recovery address with the vector, the
//! error code and the faulting `rip` recorded; a fault while no probe is armed goes on to the
//! default handler with the bounce frame untouched.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use xen_abi::arch_x86::{FLAT_KERNEL_CS, TrapInfo};
use xen_abi::hypercall as nr;

use crate::hypercall::set_trap_table;

/// Vectors the probe handles, with whether Xen pushes an error code.
const VECTORS: [(u8, bool); 4] = [(7, false), (11, true), (13, true), (14, true)];

/// Where to resume after a fault (0: no probe armed).
static PROBE_FIXUP: AtomicU64 = AtomicU64::new(0);
/// Vector of the last probed fault.
static PROBE_VECTOR: AtomicU32 = AtomicU32::new(0);
/// Error code of the last probed fault (0 for vectors without one).
static PROBE_ERROR: AtomicU64 = AtomicU64::new(0);
/// `rip` of the last probed fault.
static PROBE_RIP: AtomicU64 = AtomicU64::new(0);

global_asm!(
    ".pushsection .text.pvtest_probe, \"ax\"",
    ".balign 16",
    "pvtest_probe_v7:",
    "    movl $7, {vector}(%rip)",
    "    jmp pvtest_probe_noec",
    "pvtest_probe_v11:",
    "    movl $11, {vector}(%rip)",
    "    jmp pvtest_probe_ec",
    "pvtest_probe_v13:",
    "    movl $13, {vector}(%rip)",
    "    jmp pvtest_probe_ec",
    "pvtest_probe_v14:",
    "    movl $14, {vector}(%rip)",
    "    jmp pvtest_probe_ec",
    // Bounce frame with an error code: rcx, r11, error code, rip, cs, rflags, rsp, ss.
    "pvtest_probe_ec:",
    "    cmpq $0, {fixup}(%rip)",
    "    je pvtest_probe_unexpected",
    "    mov 16(%rsp), %rax",
    "    mov %rax, {error}(%rip)",
    "    mov 24(%rsp), %rax",
    "    mov %rax, {rip}(%rip)",
    "    mov {fixup}(%rip), %rax",
    "    mov %rax, 24(%rsp)",
    "    pop %rcx",
    "    pop %r11",
    "    add $8, %rsp",
    "    jmp pvtest_probe_resume",
    // Without an error code: rcx, r11, rip, cs, rflags, rsp, ss.
    "pvtest_probe_noec:",
    "    cmpq $0, {fixup}(%rip)",
    "    je pvtest_probe_unexpected",
    "    movq $0, {error}(%rip)",
    "    mov 16(%rsp), %rax",
    "    mov %rax, {rip}(%rip)",
    "    mov {fixup}(%rip), %rax",
    "    mov %rax, 16(%rsp)",
    "    pop %rcx",
    "    pop %r11",
    // HYPERVISOR_iret to the recovery address with rax = 1 ("faulted").
    "pvtest_probe_resume:",
    "    movq $0, {fixup}(%rip)",
    "    push $0",
    "    push %rcx",
    "    push %r11",
    "    mov $1, %eax",
    "    push %rax",
    "    mov ${iret}, %eax",
    "    syscall",
    "    ud2",
    // Not a probe: hand the untouched frame to the default stub of this vector.
    "pvtest_probe_unexpected:",
    "    mov {vector}(%rip), %eax",
    "    shl $4, %rax",
    "    lea pvtest_trap_stubs(%rip), %rcx",
    "    add %rcx, %rax",
    "    jmp *%rax",
    ".popsection",
    vector = sym PROBE_VECTOR,
    fixup = sym PROBE_FIXUP,
    error = sym PROBE_ERROR,
    rip = sym PROBE_RIP,
    iret = const nr::iret,
    options(att_syntax)
);

unsafe extern "C" {
    static pvtest_probe_v7: u8;
    static pvtest_probe_v11: u8;
    static pvtest_probe_v13: u8;
    static pvtest_probe_v14: u8;
    /// The default handlers of `entry.rs` (16 bytes per vector).
    static pvtest_trap_stubs: u8;
}

/// A fault a probe caught.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Exception vector.
    pub vector: u32,
    /// Error code (0 for vectors without one).
    pub error_code: u64,
    /// Faulting instruction.
    pub rip: u64,
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "vector={} error_code={:#x}",
            self.vector, self.error_code
        )
    }
}

/// Installs the probe handlers (`probe = true`) or the defaults of `entry.rs`.
fn install(probe: bool) {
    let mut table = [TrapInfo::default(); VECTORS.len() + 1];
    for (slot, &(vector, _)) in table.iter_mut().zip(VECTORS.iter()) {
        let address = if probe {
            match vector {
                7 => (&raw const pvtest_probe_v7) as u64,
                11 => (&raw const pvtest_probe_v11) as u64,
                13 => (&raw const pvtest_probe_v13) as u64,
                _ => (&raw const pvtest_probe_v14) as u64,
            }
        } else {
            (&raw const pvtest_trap_stubs) as u64 + 16 * u64::from(vector)
        };
        *slot = TrapInfo {
            vector,
            flags: 0,
            cs: FLAT_KERNEL_CS,
            _pad0: 0,
            address,
        };
    }
    // SAFETY: every handler takes Xen's bounce frame (the probe stubs resume or forward to the
    // default stub; the default stubs report and crash); the table ends with a zero entry.
    unsafe { set_trap_table(&table) };
}

/// Runs `f` (which arms the probe around one instruction and returns whether it faulted) with
/// the probe handlers installed.
fn probed(f: impl FnOnce() -> u64) -> Option<Fault> {
    install(true);
    let faulted = f();
    install(false);
    (faulted != 0).then(|| Fault {
        vector: PROBE_VECTOR.load(Ordering::SeqCst),
        error_code: PROBE_ERROR.load(Ordering::SeqCst),
        rip: PROBE_RIP.load(Ordering::SeqCst),
    })
}

/// Writes `value` to `addr`, reporting a fault instead of dying of it.
pub fn write_u64(addr: u64, value: u64) -> Option<Fault> {
    probed(|| {
        let faulted: u64;
        // SAFETY: the callers pass addresses whose write is either harmless or refused by the
        // hypervisor (a fault resumes at label 2 with rax = 1; rcx/r11 come back unchanged).
        unsafe {
            asm!(
                "lea 2f(%rip), %rax",
                "mov %rax, {fixup}(%rip)",
                "xor %eax, %eax",
                "mov {value}, ({addr})",
                "2:",
                "movq $0, {fixup}(%rip)",
                addr = in(reg) addr,
                value = in(reg) value,
                fixup = sym PROBE_FIXUP,
                out("rax") faulted,
                out("rcx") _,
                out("r11") _,
                options(att_syntax)
            );
        }
        faulted
    })
}

/// Reads the `u64` at `addr`, reporting a fault instead of dying of it.
pub fn read_u64(addr: u64) -> Result<u64, Fault> {
    let mut value: u64 = 0;
    let fault = probed(|| {
        let faulted: u64;
        // SAFETY: reading may fault (caught) but changes nothing.
        unsafe {
            asm!(
                "lea 2f(%rip), %rax",
                "mov %rax, {fixup}(%rip)",
                "xor %eax, %eax",
                "mov ({addr}), {value}",
                "2:",
                "movq $0, {fixup}(%rip)",
                addr = in(reg) addr,
                value = inout(reg) value,
                fixup = sym PROBE_FIXUP,
                out("rax") faulted,
                out("rcx") _,
                out("r11") _,
                options(att_syntax)
            );
        }
        faulted
    });
    match fault {
        None => Ok(value),
        Some(f) => Err(f),
    }
}

/// Loads `%es` with `selector` and reads it back (the value read, or the fault).
pub fn load_es(selector: u16) -> Result<u16, Fault> {
    let mut back: u64 = 0xffff;
    let fault = probed(|| {
        let faulted: u64;
        // SAFETY: %es is not used for addressing in 64-bit mode; a refused load faults (caught).
        unsafe {
            asm!(
                "lea 2f(%rip), %rax",
                "mov %rax, {fixup}(%rip)",
                "xor %eax, %eax",
                "mov {sel:e}, %es",
                "mov %es, {back:e}",
                "2:",
                "movq $0, {fixup}(%rip)",
                sel = in(reg) u32::from(selector),
                back = inout(reg) back,
                fixup = sym PROBE_FIXUP,
                out("rax") faulted,
                out("rcx") _,
                out("r11") _,
                options(att_syntax)
            );
        }
        faulted
    });
    match fault {
        None => Ok(back as u16),
        Some(f) => Err(f),
    }
}

/// Executes one x87 instruction (`fnop`): faults with #NM while the virtual CR0.TS is set.
pub fn fpu_insn() -> Option<Fault> {
    probed(|| {
        let faulted: u64;
        // SAFETY: fnop changes no state the compiler knows of (the target is soft-float).
        unsafe {
            asm!(
                "lea 2f(%rip), %rax",
                "mov %rax, {fixup}(%rip)",
                "xor %eax, %eax",
                "fnop",
                "2:",
                "movq $0, {fixup}(%rip)",
                fixup = sym PROBE_FIXUP,
                out("rax") faulted,
                out("rcx") _,
                out("r11") _,
                options(att_syntax)
            );
        }
        faulted
    })
}
